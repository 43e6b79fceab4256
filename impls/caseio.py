"""Reading and writing corpus case files and adapter output files.

A case is one ``.npz`` file: every input array under ``input/<name>``, every golden float64 output
under ``golden/<name>`` and the case's metadata as UTF-8 JSON under ``meta.json``.  Output names are
flat strings: ``loss``, ``softmax``, ``grad/<argument>`` and ``grad/weights/<shard>`` for sharded
weights, so a golden file, an adapter's result and a report column all use the same key.

This module is on the worker side: it must run on Python 3.8 with numpy 1.23 and imports no
framework.  bfloat16 has no portable ``.npy`` dtype, so bfloat16 inputs are stored as float32
(every stored value is exactly a bfloat16) and the case's ``dtype`` says what they are (see
``impls/dtypes.py``).
"""
from __future__ import annotations

import collections
import io
import json
import zipfile

import numpy as np

from impls import ops

# A fixed timestamp makes the zip bytes depend on content only, so regeneration is byte-identical.
_FIXED_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    # np.require, not np.ascontiguousarray: that one makes a 0-d array (a reduced loss) 1-d.
    np.lib.format.write_array(buffer, np.require(array, requirements="C"), allow_pickle=False)
    return buffer.getvalue()


def write_npz(path, arrays: dict, extra_files: dict = None) -> None:
    """Write ``arrays`` (name -> ndarray) as a deterministic, compressed ``.npz``."""
    with zipfile.ZipFile(str(path), "w") as archive:
        members = [(name + ".npy", _npy_bytes(arrays[name])) for name in sorted(arrays)]
        members += sorted((extra_files or {}).items())
        for member_name, payload in members:
            info = zipfile.ZipInfo(member_name, date_time=_FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, payload, compresslevel=6)


def read_npz(path) -> tuple:
    """Return ``(arrays, extra_files)`` of a file written by :func:`write_npz`."""
    arrays, extra = {}, {}
    with zipfile.ZipFile(str(path)) as archive:
        for member in archive.namelist():
            payload = archive.read(member)
            if member.endswith(".npy"):
                arrays[member[: -len(".npy")]] = np.lib.format.read_array(
                    io.BytesIO(payload), allow_pickle=False
                )
            else:
                extra[member] = payload
    return arrays, extra


class Case:
    """One stored conformance case: metadata, inputs in their storage dtype, golden float64 outputs."""

    def __init__(self, meta: dict, inputs: dict, golden: dict, convention_golden: dict = None):
        self.meta = meta
        self.inputs = inputs
        self.golden = golden
        # An op with documented conventions (``cross_entropy``): convention -> {output: golden} for the
        # outputs where that convention's documented formula gives other numbers than ``golden``'s
        # (the first convention's).  Stored as ``convention/<name>/<output>``.
        self.convention_golden = convention_golden if convention_golden is not None else {}

    id = property(lambda self: self.meta["id"])
    op = property(lambda self: self.meta["op"])
    dtype = property(lambda self: self.meta["dtype"])
    params = property(lambda self: self.meta["params"])
    features = property(lambda self: frozenset(self.meta.get("features", ())))

    @property
    def upstream(self) -> np.ndarray:
        """The cotangent of the loss: gradients are those of ``sum(upstream * loss)``."""
        return self.inputs["upstream"]

    @property
    def weight_shards(self) -> list:
        """``sampled_softmax_loss`` weights as a list of shards (one element when unsharded)."""
        return ops.weight_shards(self.inputs)

    @property
    def bias_shards(self):
        """``sampled_softmax_loss`` biases: one array, or a list of shards laid out like the weights
        (inputs ``biases/<i>``, the feature ``sharded_biases``)."""
        return ops.bias_shards(self.inputs)

    def golden_for(self, convention: str = "") -> dict:
        """The golden outputs under a documented convention (``""``: the base golden).  Raises
        ValueError when the case has conventions and this one documents no formula for it."""
        conventions = self.meta.get("conventions")
        if not convention or conventions is None:
            return dict(self.golden)
        if convention not in conventions:
            why = self.meta.get("undefined_conventions", {}).get(convention, "not a convention of this op")
            raise ValueError("%s: no golden for the %s convention (%s)" % (self.id, convention, why))
        golden = dict(self.golden)
        golden.update(self.convention_golden.get(convention, {}))
        return golden

    def reference_kwargs(self, cast=None) -> dict:
        """Keyword arguments for the reference function of ``self.op`` (``cast`` maps each array)."""
        cast = cast or (lambda a: a)
        return ops.get(self.op).reference_kwargs(self.params, {k: cast(v) for k, v in self.inputs.items()})

    def write(self, path) -> None:
        arrays = {"input/" + k: v for k, v in self.inputs.items()}
        arrays.update({"golden/" + k: v for k, v in self.golden.items()})
        arrays.update({"convention/%s/%s" % (c, k): v for c, golden in self.convention_golden.items()
                       for k, v in golden.items()})
        meta = json.dumps(self.meta, indent=1, sort_keys=True).encode("utf-8")
        write_npz(path, arrays, {"meta.json": meta})

    @classmethod
    def read(cls, path) -> "Case":
        arrays, extra = read_npz(path)
        if "meta.json" not in extra:
            raise ValueError("case file %s: no meta.json member" % path)
        meta = json.loads(extra["meta.json"].decode("utf-8"))
        inputs = {k[len("input/"):]: v for k, v in arrays.items() if k.startswith("input/")}
        golden = {k[len("golden/"):]: v for k, v in arrays.items() if k.startswith("golden/")}
        conventions = {}
        for key, value in arrays.items():
            if key.startswith("convention/"):
                _, convention, name = key.split("/", 2)
                conventions.setdefault(convention, {})[name] = value
        return cls(meta, inputs, golden, conventions)


def flatten_gradients(result: dict) -> dict:
    """Turn a reference ``*_grad`` dict (or an adapter's equivalent) into flat output names.

    ``{"loss": L, "softmax": S, "logits": G}`` -> ``{"loss": L, "softmax": S, "grad/logits": G}``;
    a list of shard gradients under ``weights`` becomes ``grad/weights/0``, ``grad/weights/1``, ...
    """
    flat = {}
    for name, value in result.items():
        if name in ("loss", "softmax"):
            flat[name] = value
        elif isinstance(value, (list, tuple)) and not isinstance(value, SparseRows):
            for index, shard in enumerate(value):
                flat["grad/%s/%d" % (name, index)] = shard
        else:
            flat["grad/" + name] = value
    return flat


class SparseRows(collections.namedtuple("SparseRows", "indices values dense_shape")):
    """A gradient that is non-zero in a few rows only: ``dense[indices[i]] += values[i]``.

    The NumPy form of what TensorFlow calls ``IndexedSlices``, PyTorch a sparse COO gradient and
    Paddle ``SelectedRows``: ``indices`` ``[n]`` row ids (repeats allowed), ``values`` ``[n, ...]``
    their rows, ``dense_shape`` the shape of the whole gradient (``values.shape[1:]`` after its
    first axis).  An op computes it (timed); comparison densifies it (untimed).
    """

    def dense(self) -> np.ndarray:
        """The dense NumPy array, repeated rows summed in their order (as ``np.add.at`` does)."""
        values = np.asarray(self.values)
        out = np.zeros(tuple(self.dense_shape), dtype=values.dtype)
        np.add.at(out, np.asarray(self.indices, dtype=np.int64), values)
        return out
