"""The reference's speed devices change no bit of any result.

* Row-parallel blocks (``_row_blocks``/``_for_blocks``): every corpus case computed with blocks of
  a few rows on several threads equals, bit for bit, the same case computed in one block.  Corpus
  cases are small, so the thresholds are lowered here to force many blocks even on them.
* The 16-element ufunc buffer (``_row_broadcast_speed``) and the lazily zeroed weight gradient
  (``_sparse_zeros``) likewise: every corpus case gives the same bits with them on and off.
* ``_float32_to_float16`` equals ``astype(float16)`` on float32 values spanning every exponent,
  every float16 subnormal boundary and rounding tie, overflow, infinities and NaN.
"""
import contextlib
import tracemalloc

import numpy as np
import pytest

from helpers_reference import ROOT, ref  # noqa: F401 - puts the repo on sys.path
from conformance import corpus
from impls.caseio import Case
from impls.reference_adapter import NumpyReference

CASES = corpus.DEFAULT_CASES_DIR
COMPUTED = [e for e in corpus.load_manifest(CASES)["cases"] if not e.get("invalid")]


def _outputs(case):
    adapter = NumpyReference()
    adapter.load("cpu")
    return adapter.run(case)


def _all_fast_paths_on(monkeypatch):
    monkeypatch.setattr(ref, "_PARALLEL_MIN_ELEMENTS", 1)
    monkeypatch.setattr(ref, "_BLOCK_ELEMENTS", 8)  # a row or two per block
    monkeypatch.setattr(ref, "_THREADS", 3)
    monkeypatch.setattr(ref, "_SPARSE_ZEROS_MIN_BYTES", 0)  # every weight gradient lazily zeroed
    monkeypatch.setattr(ref, "_SPARSE_ZEROS_MAX_TOUCHED", float("inf"))


def _all_fast_paths_off(monkeypatch):
    monkeypatch.setattr(ref, "_THREADS", 1)  # one block
    monkeypatch.setattr(ref, "_SPARSE_ZEROS_MIN_BYTES", 1 << 62)  # np.zeros
    monkeypatch.setattr(ref, "_row_broadcast_speed", lambda xp: contextlib.nullcontext())  # NumPy's buffer


@pytest.mark.parametrize("entry", COMPUTED, ids=[e["id"] for e in COMPUTED])
def test_fast_paths_give_the_same_bits(entry, monkeypatch):
    case = Case.read(CASES / entry["file"])
    _all_fast_paths_on(monkeypatch)
    fast = _outputs(case)
    _all_fast_paths_off(monkeypatch)
    plain = _outputs(case)
    assert sorted(fast) == sorted(plain)
    for name in plain:
        assert fast[name].dtype == plain[name].dtype and fast[name].shape == plain[name].shape, name
        assert fast[name].tobytes() == plain[name].tobytes(), name


def test_the_row_broadcast_buffer_is_restored():
    before = np.getbufsize()
    ref.softmax_with_cross_entropy_grad(np.zeros((3, 4), np.float32), np.zeros((3, 1), np.int64))
    assert np.getbufsize() == before
    with pytest.raises(ValueError, match="label"):
        ref.softmax_with_cross_entropy(np.zeros((3, 4), np.float32), np.full((3, 1), 9, np.int64))
    assert np.getbufsize() == before


def test_sparse_zeros_are_zero_writable_and_traced_while_alive():
    shape = (1 << 16, 33)  # 8.6 MB of float32, over the threshold
    size = shape[0] * shape[1] * 4
    assert size >= ref._SPARSE_ZEROS_MIN_BYTES
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        array = ref._sparse_zeros(shape, np.float32, rows_written=1)
        assert tracemalloc.get_traced_memory()[0] - base >= size  # counted like a NumPy buffer
        assert array.shape == shape and array.dtype == np.float32 and array.flags.writeable
        array[12345] = 1.5
        assert float(array.sum(dtype=np.float64)) == 1.5 * shape[1]
        assert array.base is not None  # a view of the mapping: the lazy path was taken
        del array
        assert tracemalloc.get_traced_memory()[0] - base < size // 100  # untracked once freed
        dense = ref._sparse_zeros(shape, np.float32, rows_written=shape[0])  # every row: plain np.zeros
        assert dense.base is None and not dense.any()
    finally:
        tracemalloc.stop()


def test_blocks_cover_every_row_once(monkeypatch):
    monkeypatch.setattr(ref, "_PARALLEL_MIN_ELEMENTS", 1)
    monkeypatch.setattr(ref, "_THREADS", 2)
    for rows, width, block in [(1, 5, 8), (7, 3, 8), (1000, 1000, 1 << 16), (5, 10 ** 6, 1 << 20)]:
        monkeypatch.setattr(ref, "_BLOCK_ELEMENTS", block)
        blocks = ref._row_blocks(np, rows, width)
        covered = [r for start, stop in blocks for r in range(start, stop)]
        assert covered == list(range(rows))
        assert len(blocks) >= min(rows, 2)  # at least one block per thread when there are rows enough


def test_an_exception_in_a_block_reaches_the_caller(monkeypatch):
    monkeypatch.setattr(ref, "_THREADS", 2)

    def failing(start, stop):
        if start > 0:
            raise ValueError("block %d:%d" % (start, stop))

    with pytest.raises(ValueError, match="block"):
        ref._for_blocks([(0, 1), (1, 2)], failing)


def _float32_samples():
    rng = np.random.default_rng(7)
    parts = [
        np.arange(0, 2 ** 32, 4093, dtype=np.uint64).astype(np.uint32),  # every exponent, many mantissas
        rng.integers(0, 2 ** 32, 500_000, dtype=np.uint64).astype(np.uint32),
        np.arange(0x33000000 - 4, 0x38800000 + 4, 7, dtype=np.uint32),  # the float16 subnormal range
        np.arange(0x477FE000, 0x47800100, dtype=np.uint32),  # the largest float16 and overflow
    ]
    # exact ties between two float16 neighbours (normal and subnormal), both parities
    ties = (np.arange(1, 4000, dtype=np.float64) + 0.5) * 2.0 ** -24
    ties = np.concatenate([ties, (2048 + np.arange(0, 2000) + 0.5) * 2.0 ** -11])
    parts.append(ties.astype(np.float32).view(np.uint32))
    bits = np.concatenate(parts)
    return np.concatenate([bits, bits | np.uint32(0x80000000)]).view(np.float32)


def test_float32_to_float16_is_astype_bit_for_bit():
    x = _float32_samples()
    with np.errstate(all="ignore"):
        expected = x.astype(np.float16)
    got = ref._float32_to_float16(x)
    assert got.dtype == np.float16 and got.shape == x.shape
    nan = np.isnan(x)
    assert np.isnan(got[nan]).all()
    mismatch = np.flatnonzero(got.view(np.uint16)[~nan] != expected.view(np.uint16)[~nan])
    assert mismatch.size == 0, [(float(x[~nan][i]), float(got[~nan][i]), float(expected[~nan][i]))
                                for i in mismatch[:5]]


def test_float32_to_float16_keeps_shape_and_layout():
    x = np.linspace(-70000, 70000, 24, dtype=np.float32).reshape(2, 3, 4)[:, ::2]  # a strided view
    with np.errstate(over="ignore"):
        assert ref._float32_to_float16(x).tobytes() == x.astype(np.float16).tobytes()
    assert ref._float32_to_float16(x).shape == x.shape


def test_sparse_zeros_of_an_empty_shard(monkeypatch):
    monkeypatch.setattr(ref, "_SPARSE_ZEROS_MIN_BYTES", 0)
    monkeypatch.setattr(ref, "_SPARSE_ZEROS_MAX_TOUCHED", float("inf"))
    empty = ref._sparse_zeros((0, 5), np.float32, rows_written=0)  # an anonymous mapping cannot be empty
    assert empty.shape == (0, 5) and empty.dtype == np.float32
