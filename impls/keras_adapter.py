"""Keras 3 adapter: one API, three backends (``keras-tensorflow``, ``keras-jax``, ``keras-torch``).

Keras 3 runs the same loss classes on TensorFlow, JAX or PyTorch, chosen by ``KERAS_BACKEND`` before
``import keras``; a user switching backends expects the same numbers and the same errors.  Each impl
sets its backend in :meth:`KerasAdapter.load` (in its own worker process: the backend cannot change
once Keras is imported) and runs ``cross_entropy`` through Keras's public API as a Keras user writes it:

* ``keras.losses.SparseCategoricalCrossentropy(from_logits, ignore_class, axis, reduction, dtype)`` for
  class indices and ``keras.losses.CategoricalCrossentropy(from_logits, label_smoothing, axis,
  reduction, dtype)`` for probability targets, called with ``sample_weight``; class weights as
  ``Model.fit(class_weight=...)`` turns them into sample weights (``weight[label]``, times the case's
  per-position ``sample_weight`` where both are given, as ``fit`` multiplies them).
* ``keras.ops.sparse_categorical_crossentropy`` / ``categorical_crossentropy`` / ``log_softmax`` take
  ``(target, output, from_logits, axis)`` only (checked in Keras 3.15.1): no option the classes lack,
  so the classes are what is run; the classes call them underneath.
* Everything between the case's arrays and the loss is backend-neutral Keras (``keras.ops``); only the
  gradient is the backend's own, taken as Keras's trainer for that backend takes it:
  ``tf.GradientTape`` inside ``tf.function`` (TensorFlow), ``jax.vjp`` inside ``jax.jit`` (JAX),
  ``torch.autograd`` (PyTorch).  Each impl runs the mode Keras's own ``jit_compile="auto"`` picks on
  a CPU (keras/src/trainers/trainer.py, ``resolve_auto_jit_compile``): a ``tf.function`` graph without
  XLA, a ``jax.jit`` program, eager PyTorch.  The compiled modes of the other two are impls of their
  own (``keras-tensorflow-xla``: ``jit_compile=True``; ``keras-torch-compile``: ``torch.compile``).

The golden is Keras's documented convention (``convention="keras"``), whatever the backend.  Install
one backend per environment: TensorFlow 2.21 imports jax when it is installed (its tflite utilities)
and Keras's Orbax callback does too, so an environment holding all three would put two frameworks in
one process.  Must import (not run) on Python 3.8.
"""
from __future__ import annotations

import importlib
import os

import numpy as np

from impls import dtypes
from impls.base import Adapter, NotNative, OpSupport, Unsupported
from impls.ops import OPS

# The registry's reductions -> Keras's: the mean is Keras's default "sum_over_batch_size" (the sum over
# the positions not masked by ignore_class, whatever the sample weights).
KERAS_REDUCTION = {"mean": "sum_over_batch_size", "sum": "sum", "none": None}

_NOTE = ("keras.losses.SparseCategoricalCrossentropy(from_logits=use_softmax, ignore_class=ignore_index, axis, "
         "reduction) for class indices, keras.losses.CategoricalCrossentropy(from_logits=use_softmax, "
         "label_smoothing, axis, reduction) for probabilities, both with dtype=the case dtype (Keras computes in "
         "floatx, float32, otherwise) and reduction 'sum_over_batch_size' / 'sum' / None for mean / sum / none; "
         "sample_weight as given, class weights as Model.fit(class_weight=...) passes them (sample_weight = "
         "weight[label], times the per-position sample_weight); label_smoothing with class indices is "
         "unsupported (SparseCategoricalCrossentropy has no label_smoothing; one-hot encoding them for "
         "CategoricalCrossentropy would be the adapter's conversion, not Keras's)")


class KerasAdapter(Adapter):
    name = "keras-tensorflow"
    # One API on several backends: the report's *Across backends* section sets the impls of one ``api``
    # side by side, case by case (the compiled modes are compared with their eager impl instead).
    api = "keras"
    backend = "tensorflow"
    jit_compile = False  # what Keras's jit_compile="auto" resolves to on a CPU for this backend
    devices = ("cpu", "gpu")
    ops = {"cross_entropy": OpSupport("native", dtypes.NAMES, convention="keras",
                                      note=_NOTE + "; tf.GradientTape in tf.function (no XLA)")}

    def __init__(self):
        super().__init__()
        self.keras = self.framework = None
        self._programs = {}  # (static params, leaves, inputs, backward) -> the backend's program
        self._last = None  # the latest outputs, for synchronize

    def load(self, device: str) -> str:
        if device not in self.devices:
            raise ValueError("device: expected one of %s, got %r" % (", ".join(self.devices), device))
        os.environ["KERAS_BACKEND"] = self.backend  # read once, at import
        if device == "cpu":
            os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # no backend initialises CUDA for a CPU run
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if self.backend == "jax":
            os.environ["JAX_PLATFORMS"] = "cuda" if device == "gpu" else "cpu"
        import keras  # noqa: PLC0415 - frameworks are imported only here

        if keras.backend.backend() != self.backend:
            raise RuntimeError("%s: keras was imported with backend %r before KERAS_BACKEND was set"
                               % (self.name, keras.backend.backend()))
        framework = importlib.import_module(self.backend)
        if self.backend == "jax":
            framework.config.update("jax_enable_x64", True)  # float64 cases, as a Keras-on-JAX user must
        if device == "gpu" and not _sees_gpu(self.backend, framework):
            raise RuntimeError("%s %s sees no GPU" % (self.backend, framework.__version__))
        self.keras, self.framework, self.device = keras, framework, device
        return "%s (%s %s)" % (keras.__version__, self.backend, framework.__version__)

    def prepare(self, case):
        if self.keras is None:
            raise RuntimeError("%s adapter: run() before load()" % self.name)
        if case.op not in self.ops:
            raise Unsupported("%s has no op %r" % (self.name, case.op))
        params, ops = case.params, self.keras.ops
        soft, smoothing = bool(params["soft_label"]), float(params["label_smoothing"])
        if smoothing and not soft:
            raise Unsupported("Keras's SparseCategoricalCrossentropy has no label_smoothing (Keras %s); smoothing "
                              "class indices would take the adapter's one-hot conversion" % self.keras.__version__)
        if "weight" in case.inputs:
            if soft:
                raise Unsupported("Keras takes no class weights for probability targets (fit's class_weight "
                                  "weighs a position by its argmax class, a data-pipeline rule, not the loss's)")
            classes = case.inputs["logits"].shape[int(params["axis"])]
            if case.inputs["weight"].shape != (classes,):
                # The weights never reach Keras: the adapter's weight[label] gather would judge them.
                raise NotNative("weight of shape %s for %d classes: Keras takes no class weights, so no Keras "
                                "contract decides" % (case.inputs["weight"].shape, classes))
        leaves = OPS[case.op].differentiable_in(params)
        tensors = {}
        for name, array in case.inputs.items():
            if np.issubdtype(array.dtype, np.floating):  # stored as float32/64: cast to the case dtype
                tensor = ops.cast(ops.convert_to_tensor(array), case.dtype)
            else:
                tensor = ops.convert_to_tensor(array.astype(np.int64))
            tensors[name] = self._leaf(tensor) if name in leaves else tensor
        static = dict(soft=soft, from_logits=bool(params["use_softmax"]), axis=int(params["axis"]),
                      reduction=KERAS_REDUCTION[params["reduction"]], ignore_class=int(params["ignore_index"]),
                      label_smoothing=smoothing, dtype=case.dtype)
        return static, sorted(n for n in tensors if n in leaves), tensors

    def compute(self, state, backward=True):
        static, leaves, tensors = state
        key = (tuple(sorted(static.items())), tuple(leaves), tuple(sorted(tensors)), bool(backward))
        if key not in self._programs:
            self._programs[key] = self._program(static, leaves if backward else [])
        self._last = self._programs[key](tensors)
        return self._last

    def to_numpy(self, outputs) -> dict:
        ops = self.keras.ops
        standardize = self.keras.backend.standardize_dtype
        return {name: ops.convert_to_numpy(ops.cast(value, "float32") if standardize(value.dtype) == "bfloat16"
                                           else value)  # bfloat16 -> float32 is exact
                for name, value in outputs.items()}

    def synchronize(self):
        if self.device == "gpu" and self._last is not None:
            for value in self._last.values():
                self.keras.ops.convert_to_numpy(value)  # a read waits for every backend's queue

    # -- what a Keras user writes: backend-neutral -------------------------------------------------
    def keras_loss(self, t, static):
        keras, ops = self.keras, self.keras.ops
        sample_weight = t.get("sample_weight")
        if static["soft"]:
            loss = keras.losses.CategoricalCrossentropy(
                from_logits=static["from_logits"], label_smoothing=static["label_smoothing"], axis=static["axis"],
                reduction=static["reduction"], dtype=static["dtype"])
            return loss(t["label"], t["logits"], sample_weight=sample_weight)
        loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=static["from_logits"], ignore_class=static["ignore_class"], axis=static["axis"],
            reduction=static["reduction"], dtype=static["dtype"])
        if "weight" in t:
            # As fit(class_weight=...) does: each position's weight is its class's; an ignored position's
            # is masked by Keras (ignore_class) whatever it is, so it reads class 0's.
            label = t["label"]
            class_weight = ops.take(t["weight"], ops.where(ops.equal(label, static["ignore_class"]), 0, label))
            sample_weight = class_weight if sample_weight is None else sample_weight * class_weight
        return loss(t["label"], t["logits"], sample_weight=sample_weight)

    # -- the backend's own part: leaves and gradients -----------------------------------------------
    def _leaf(self, tensor):
        if self.backend == "torch":
            return tensor.detach().requires_grad_(True)
        return tensor

    def _program(self, static, leaves):
        """``tensors -> {"loss", "grad/<leaf>"...}``: the loss and the gradients of sum(upstream * loss),
        as Keras's trainer for the backend computes a training step's gradients."""
        return {"tensorflow": self._tensorflow_program, "jax": self._jax_program,
                "torch": self._torch_program}[self.backend](static, leaves)

    def _tensorflow_program(self, static, leaves):
        tf = self.framework

        def step(t):
            with tf.GradientTape() as tape:
                for name in leaves:
                    tape.watch(t[name])
                loss = self.keras_loss(t, static)
                target = tf.reduce_sum(loss * t["upstream"]) if leaves else None
            out = {"loss": loss}
            if leaves:
                for name, grad in zip(leaves, tape.gradient(target, [t[n] for n in leaves])):
                    if grad is not None:  # None: TF does not differentiate it; not invented here
                        out["grad/" + name] = grad
            return out

        # No autograph (every Python `if` tests a static parameter); one trace per shape, as a Keras
        # training step with a fixed batch shape has (Keras's losses read static ranks).
        return tf.function(step, jit_compile=True if self.jit_compile else None, autograph=False)

    def _jax_program(self, static, leaves):
        jax = self.framework

        def step(t):
            rest = {n: v for n, v in t.items() if n not in leaves}
            if not leaves:
                return {"loss": self.keras_loss(t, static)}
            loss, pullback = jax.vjp(lambda diff: self.keras_loss(dict(rest, **diff), static),
                                     {n: t[n] for n in leaves})
            (grads,) = pullback(t["upstream"].astype(loss.dtype))
            return dict({"loss": loss}, **{"grad/" + n: g for n, g in grads.items()})

        return jax.jit(step)

    def _torch_program(self, static, leaves):
        torch = self.framework
        loss_of = self._compiled_torch_loss(static)

        def step(t):
            if not leaves:
                with torch.no_grad():  # inference: no autograd graph is recorded
                    return {"loss": loss_of(t)}
            loss = loss_of(t)
            grads = torch.autograd.grad((loss * t["upstream"]).sum(), [t[n] for n in leaves], allow_unused=True)
            return dict({"loss": loss.detach()},
                        **{"grad/" + n: g for n, g in zip(leaves, grads) if g is not None})

        return step

    def _compiled_torch_loss(self, static):
        return lambda t: self.keras_loss(t, static)


def _sees_gpu(backend, framework) -> bool:
    if backend == "tensorflow":
        return bool(framework.config.list_physical_devices("GPU"))
    if backend == "jax":
        return any(d.platform == "gpu" for d in framework.devices())
    return bool(framework.cuda.is_available())


class KerasJaxAdapter(KerasAdapter):
    name = "keras-jax"
    backend = "jax"
    jit_compile = True  # Keras's JAX trainer always jits ("auto" is True for JAX)
    ops = {"cross_entropy": OpSupport("native", dtypes.NAMES, convention="keras",
                                      note=_NOTE + "; jax.vjp in jax.jit, jax_enable_x64 on for float64")}


class KerasTorchAdapter(KerasAdapter):
    name = "keras-torch"
    backend = "torch"
    ops = {"cross_entropy": OpSupport("native", dtypes.NAMES, convention="keras",
                                      note=_NOTE + "; torch.autograd.grad, eager (Keras's torch default)")}


class KerasTensorflowXlaAdapter(KerasAdapter):
    """Keras on TensorFlow with ``jit_compile=True``: the training step compiled whole by XLA."""

    name = "keras-tensorflow-xla"
    compiled_from = "keras-tensorflow"
    jit_compile = True
    ops = {"cross_entropy": KerasAdapter.ops["cross_entropy"].noted("; tf.function(jit_compile=True): XLA")}


class KerasTorchCompileAdapter(KerasTorchAdapter):
    """Keras on PyTorch with ``jit_compile=True``: Keras's torch trainer wraps its step in
    ``torch.compile``; here the loss is compiled (inductor) and autograd differentiates the compiled
    graph, as for impl torch-compile."""

    name = "keras-torch-compile"
    compiled_from = "keras-torch"
    opt_in = "compiles each case (10-30 s a case on 2 cores): run it by name, --impl keras-torch-compile"
    ops = {"cross_entropy": KerasTorchAdapter.ops["cross_entropy"].noted("; the loss under torch.compile "
                                                                         "(dynamic=True), inductor")}

    def load(self, device):
        version = super().load(device)
        import torch._dynamo  # noqa: PLC0415

        torch._dynamo.config.cache_size_limit = 1024  # every (params, dtype) is a guard set of its own
        torch._dynamo.config.accumulated_cache_size_limit = 4096
        return version

    def _compiled_torch_loss(self, static):
        return self.framework.compile(lambda t: self.keras_loss(t, static), dynamic=True)


ADAPTER = KerasAdapter
ADAPTERS = {"keras-tensorflow": KerasAdapter, "keras-tensorflow-xla": KerasTensorflowXlaAdapter,
            "keras-jax": KerasJaxAdapter, "keras-torch": KerasTorchAdapter,
            "keras-torch-compile": KerasTorchCompileAdapter}
