"""PaddlePaddle 1.8 (fluid, static graph) adapter: the last Paddle with the native sampled op.

Runs on Python 3.8 with numpy 1.23 (paddlepaddle 1.8.5 needs protobuf < 3.21).

* ``sampled_softmax_with_cross_entropy`` is ``fluid.layers.sampled_softmax_with_cross_entropy``
  with ``use_customized_samples=True``: the case's samples and probabilities are fed as inputs.
* ``softmax_with_cross_entropy`` is ``fluid.layers.softmax_with_cross_entropy`` (1.8 already has
  ``soft_label``, ``ignore_index``, ``numeric_stable_mode``, ``return_softmax`` and ``axis``).
* ``sampled_softmax_loss`` (TensorFlow's API) is left out, so it is reported unsupported.
* ``cross_entropy`` is left out too: 1.8's ``fluid.layers.cross_entropy`` takes probabilities only
  (no logits, class weights, reductions or smoothing); the logits form is ``softmax_with_cross_entropy``,
  tested above.

Static graph: one ``Program`` per case signature (op, dtype, input shapes, params) is built once,
with ``append_backward`` of ``reduce_sum(loss * upstream)`` (the upstream is fed like any input),
and cached with its own ``Scope``; a call only feeds arrays and fetches ``loss`` and
``<logits>@GRAD``.  ``prepare`` turns the inputs into ``LoDTensor``s on the place once; the
forward-only benchmark mode builds (and caches) a second program without the backward part.
Paddle is imported in ``load`` only.
"""
from __future__ import annotations

import json

import numpy as np

from impls.base import Adapter, NotNative, OpSupport, Unsupported

# Paddle 1.8's CPU kernels of softmax_with_cross_entropy and sample_logits are registered for
# float and double only (float16 exists on CUDA only, bfloat16 not at all).  float64 is declared
# for the sampled op because its kernel and API accept it, although the layer itself then fails
# (see the op's note): that failure is a result to record, not a case to hide.
_DTYPES = ("float32", "float64")


class EnforceNotMet(RuntimeError):
    """Paddle 1.8's error, re-raised with its summary only.

    Paddle 1.8 puts kilobytes of C++ and Python call stacks before the actual message, which
    the worker's length-limited error record would otherwise cut off.
    """

    def __init__(self, error):
        text = str(error)
        marker = "Error Message Summary:"
        if marker in text:
            text = text.split(marker, 1)[1].lstrip("- \n")
        super().__init__(text.strip())


class PaddleLegacyAdapter(Adapter):
    name = "paddle-legacy"
    devices = ("cpu", "gpu")
    ops = {
        "softmax_with_cross_entropy": OpSupport(
            "native", _DTYPES, unsupported_features=("label_rank_minus_1",), no_gradient=("label",),
            note="fluid.layers.softmax_with_cross_entropy (static graph); label_rank_minus_1: 1.8.5 requires "
                 "size 1 on axis ('the axis dimension of Input(Label) should be 1'); no_gradient label: "
                 "append_backward makes no label@GRAD for a soft label"),
        "sampled_softmax_with_cross_entropy": OpSupport(
            "native", _DTYPES,
            note="fluid.layers.sampled_softmax_with_cross_entropy(use_customized_samples=True); "
                 "the layer one-hots its labels with depth num_samples+1 in float32, so it raises "
                 "for num_true > 1 and for float64"),
    }

    def __init__(self):
        super().__init__()
        self._programs = {}  # (signature, backward) -> (program, {output name: variable fetched}, scope)

    def load(self, device: str) -> str:
        import paddle  # noqa: PLC0415 - frameworks are imported in load() only
        import paddle.fluid as fluid  # noqa: PLC0415

        if device == "gpu":
            if not fluid.is_compiled_with_cuda():
                raise RuntimeError("paddle %s is a CPU-only build: no gpu" % paddle.__version__)
            if fluid.core.get_cuda_device_count() == 0:
                raise RuntimeError("paddle %s has CUDA but sees no GPU" % paddle.__version__)
            place = fluid.CUDAPlace(0)
        elif device == "cpu":
            place = fluid.CPUPlace()
        else:
            raise ValueError("device: expected 'cpu' or 'gpu', got %r" % (device,))
        self.fluid = fluid
        self.device = device
        self.place = place
        self.executor = fluid.Executor(place)
        self.version = paddle.__version__
        return self.version

    def prepare(self, case):
        if case.op not in self.ops:
            raise Unsupported("paddle-legacy has no %s" % case.op)
        feed = self._feed(case)
        if case.op == "softmax_with_cross_entropy" and not case.params["soft_label"]:
            self._refuse_out_of_bounds_grad(case)
        signature = json.dumps(
            [case.op, case.dtype, sorted((k, v.shape) for k, v in feed.items()), case.params],
            sort_keys=True)
        tensors = {}
        for name, array in feed.items():  # fed as LoDTensors already on the place: no per-call conversion
            tensors[name] = self.fluid.core.LoDTensor()
            tensors[name].set(array, self.place)
        return case, feed, signature, tensors

    def compute(self, state, backward=True):
        case, feed, signature, tensors = state
        try:
            key = (signature, bool(backward))
            if key not in self._programs:
                self._programs[key] = self._build(case, feed, backward=bool(backward))
            program, fetch, scope = self._programs[key]
            values = self.executor.run(program, feed=tensors, fetch_list=list(fetch.values()), scope=scope,
                                       return_numpy=False, use_program_cache=True)
        except self.fluid.core.EnforceNotMet as error:
            raise EnforceNotMet(error) from error
        return dict(zip(fetch, values))

    def to_numpy(self, outputs) -> dict:
        return {name: np.array(value) for name, value in outputs.items()}

    def synchronize(self):
        # Executor.run returns after its fetch ops have copied the results to the host: a run is
        # synchronous on both places, nothing is left queued.
        sync = getattr(self.fluid.core, "_cuda_synchronize", None)  # absent from the 1.8 CPU build
        if self.device == "gpu" and sync is not None:
            sync(self.place)

    def _refuse_out_of_bounds_grad(self, case):
        """Refuse (not tested natively) before Paddle 1.8.5 writes outside its gradient buffer.

        Its CPU ``softmax_with_cross_entropy_grad`` ignores ``ignore_index`` and subtracts the
        upstream at flat offset ``i*d + label*remain + j`` for every label, ignored ones included.
        An out-of-range label (e.g. -100) then lands in another row's gradient (that wrong answer
        is returned as is) or outside the buffer, corrupting the worker's heap: only the latter
        is refused, so that later cases in this process stay trustworthy.  The refusal is the
        adapter's, not Paddle's, so the row says "not tested natively", never "raises".
        """
        if self.device != "cpu":
            return
        shape = case.inputs["logits"].shape
        axis = case.params["axis"] % len(shape)
        rows, width = int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))
        remain = width // shape[axis]
        label = case.inputs["label"].reshape(rows, remain).astype(np.int64)
        offsets = (np.arange(rows)[:, None] * width + label * remain + np.arange(remain)[None, :])
        outside = (offsets < 0) | (offsets >= rows * width)
        if outside.any():
            raise NotNative(
                "paddle %s CPU softmax_with_cross_entropy_grad does not skip ignore_index: label %d "
                "would be written at flat offset %d of a %d-element gradient (out of bounds); "
                "not run" % (self.version, label[outside][0], offsets[outside][0], rows * width))

    def _feed(self, case) -> dict:
        """Case inputs as fed: floats in the case dtype, integers (labels, samples) as int64."""
        return {name: array.astype(case.dtype if array.dtype.kind == "f" else np.int64)
                for name, array in case.inputs.items()}

    def _build(self, case, feed, backward=True):
        """Build (once per signature) the forward (+ backward) program of ``case``'s op."""
        fluid = self.fluid
        program, startup = fluid.Program(), fluid.Program()
        with fluid.program_guard(program, startup), fluid.unique_name.guard():
            data = {name: fluid.data(name, list(array.shape), str(array.dtype))
                    for name, array in feed.items()}
            logits = data["logits"]
            logits.stop_gradient = False  # so append_backward produces logits@GRAD
            p = case.params
            soft = case.op == "softmax_with_cross_entropy" and p["soft_label"]
            if soft:
                data["label"].stop_gradient = False  # asked of Paddle: does its backward reach the label?
            softmax = None
            if case.op == "softmax_with_cross_entropy":
                out = fluid.layers.softmax_with_cross_entropy(
                    logits, data["label"], soft_label=p["soft_label"], ignore_index=p["ignore_index"],
                    numeric_stable_mode=p["numeric_stable_mode"], return_softmax=p["return_softmax"],
                    axis=p["axis"])
                loss, softmax = out if p["return_softmax"] else (out, None)
            else:
                loss = fluid.layers.sampled_softmax_with_cross_entropy(
                    logits, data["label"], num_samples=p["num_samples"], num_true=p["num_true"],
                    remove_accidental_hits=p["remove_accidental_hits"],
                    use_customized_samples=True,
                    customized_samples=data["customized_samples"],
                    customized_probabilities=data["customized_probabilities"],
                    seed=p.get("seed", 0))
            if backward:
                total = fluid.layers.reduce_sum(loss * data["upstream"])
                fluid.backward.append_backward(total)
        fetch = {"loss": loss.name}  # output name -> variable fetched
        if backward:
            fetch["grad/logits"] = logits.name + "@GRAD"
            label_grad = data["label"].name + "@GRAD"
            if soft and program.global_block().has_var(label_grad):  # else Paddle has no label gradient
                fetch["grad/label"] = label_grad
        if softmax is not None:
            fetch["softmax"] = softmax.name
        # No parameters, so the startup program is empty; each program gets its own scope.
        return program, fetch, fluid.Scope()


ADAPTER = PaddleLegacyAdapter
