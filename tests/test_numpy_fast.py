"""The speed devices of the contender ``impls/numpy_fast/`` change no bit of any result.

* Row-parallel blocks (``_row_blocks``/``_for_blocks``): every corpus case computed with blocks of
  a few rows on several threads equals, bit for bit, the same case computed in one block.  Corpus
  cases are small, so the thresholds are lowered here to force many blocks even on them.
* The 16-element ufunc buffer (``_row_broadcast_speed``) likewise: every corpus case gives the
  same bits with it on and off.
* The sparse weight and bias gradients of ``sampled_softmax_loss_grad`` (``_embedding_gradients``)
  densify to the bits of a sequential dense scatter-add in the ids' order (the dense gradient the
  contender returned before, and the oracle's summation order).
* ``_row_sums`` (a dot product per float32 row) gives a row the same bits alone, in any batch or
  block and at any offset, and stays within a few ulp of the exact sum.
* ``_float32_to_float16`` equals ``astype(float16)`` on float32 values spanning every exponent,
  every float16 subnormal boundary and rounding tie, overflow, infinities and NaN.

The shift-free exponentials (``_SHIFT_FREE_EXP``) do change bits, by design: they skip the rounding
of ``z - max``.  They are held to the suite's own tolerance against the shifted computation over
the corpus, and their per-row fallback is checked to give exactly the shifted bits, row by row.
"""
import contextlib
import math
import tracemalloc

import numpy as np
import pytest

from helpers_reference import ROOT  # noqa: F401 - puts the repo on sys.path
from conformance import compare, corpus
from impls.caseio import Case, SparseRows
from impls import numpy_fast as fast
from impls.numpy_fast import core as fast_core  # its switches, read there at call time
from impls.numpy_fast_adapter import NumpyFast
from impls.support import why_unsupported

CASES = corpus.DEFAULT_CASES_DIR
# The computed cases the contender takes (not the oracle-only features it declares unsupported).
COMPUTED = [e for e in corpus.load_manifest(CASES)["cases"]
            if not e.get("invalid") and why_unsupported(NumpyFast(), "cpu", e) is None]


def _outputs(case):
    adapter = NumpyFast()
    adapter.load("cpu")
    return adapter.run(case)


def _all_fast_paths_on(monkeypatch):
    monkeypatch.setattr(fast_core, "_PARALLEL_MIN_ELEMENTS", 1)
    monkeypatch.setattr(fast_core, "_BLOCK_ELEMENTS", 8)  # a row or two per block
    monkeypatch.setattr(fast_core, "_THREADS", 3)


def _all_fast_paths_off(monkeypatch):
    monkeypatch.setattr(fast_core, "_THREADS", 1)  # one block
    monkeypatch.setattr(fast_core, "_row_broadcast_speed", lambda xp: contextlib.nullcontext())  # NumPy's buffer


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


SHIFT_FREE_CASES = [e for e in COMPUTED if e["dtype"] != "float64"]  # float64 always shifts


@pytest.mark.parametrize("entry", SHIFT_FREE_CASES, ids=[e["id"] for e in SHIFT_FREE_CASES])
def test_shift_free_exponentials_agree_with_the_shifted_ones(entry, monkeypatch):
    """Within the tolerance any framework gets (both differ only in rounding z - max, a few ulps)."""
    case = Case.read(CASES / entry["file"])
    shift_free = _outputs(case)
    monkeypatch.setattr(fast_core, "_SHIFT_FREE_EXP", False)
    shifted = _outputs(case)
    tol = compare.tolerance(case.meta, {k: v.shape for k, v in case.inputs.items()})
    scales = compare.output_scales(case)
    for name in shifted:
        err = compare.compare_output(name, shift_free[name], shifted[name].astype(np.float64), tol.rtol,
                                     scales.get(name, 1.0))
        assert not err.problem and err.ratio <= 1.0, (name, err)


def test_shift_free_rows_out_of_range_get_the_shifted_bits_row_by_row():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((5, 40)).astype(np.float32)
    logits[1] += 60  # sum of exp(z) about e^60 > 2^64: would lose the reciprocal's precision
    logits[3] -= 70  # sum about e^-70 < 2^-63: exponentials would be subnormal
    logits[4, 7] = np.inf  # a NaN row, as documented
    labels = rng.integers(0, 40, (5, 1))
    batch = fast.softmax_with_cross_entropy_grad(logits, labels)
    for row in range(5):
        alone = fast.softmax_with_cross_entropy_grad(logits[row:row + 1], labels[row:row + 1])
        for name in batch:
            assert batch[name][row].tobytes() == alone[name][0].tobytes(), (row, name)
    with np.errstate(invalid="ignore"):  # the +inf row
        e, s, shift = fast._exp_and_sum(np, logits, axis=1)
    assert (shift[[0, 2]] == 0).all() and (shift[[1, 3]] == logits[[1, 3]].max(axis=1, keepdims=True)).all()
    assert e[[0, 2]].tobytes() == np.exp(logits[[0, 2]]).tobytes()  # shift-free where in range
    with np.errstate(invalid="ignore"):
        assert e[[1, 3]].tobytes() == np.exp(logits[[1, 3]] - shift[[1, 3]]).tobytes()
    assert np.isnan(batch["loss"][4]).all() and np.isnan(batch["logits"][4]).all()


def _sampled_inputs(rng, batch=6, classes=50, num_true=2, num_sampled=12, dim=8):
    labels = np.stack([rng.choice(classes, num_true, replace=False) for _ in range(batch)])
    candidates, true_expected, sampled_expected = fast.log_uniform_candidate_sampler(
        labels, num_true, num_sampled, True, classes, seed=5)
    samples = np.concatenate([labels, np.broadcast_to(candidates, (batch, num_sampled))], axis=1)
    probabilities = np.concatenate([true_expected, np.broadcast_to(sampled_expected, (batch, num_sampled))], axis=1)
    sswce = dict(logits=rng.standard_normal((batch, classes)).astype(np.float32) * 8, label=labels,
                 num_samples=num_sampled, num_true=num_true, use_customized_samples=True,
                 customized_samples=samples, customized_probabilities=probabilities.astype(np.float32))
    ssl = dict(weights=rng.standard_normal((classes, dim)).astype(np.float32) * 3,
               biases=rng.standard_normal(classes).astype(np.float32), labels=labels,
               inputs=rng.standard_normal((batch, dim)).astype(np.float32), num_sampled=num_sampled,
               num_classes=classes, num_true=num_true,
               sampled_values=(candidates, true_expected.astype(np.float32), sampled_expected.astype(np.float32)))
    return sswce, ssl


def _every_grad_function(seed):
    rng = np.random.default_rng(seed)
    sswce, ssl = _sampled_inputs(rng)
    logits, labels = rng.standard_normal((6, 30)).astype(np.float32) * 8, rng.integers(0, 30, (6, 1))
    return [(fast.softmax_with_cross_entropy_grad, dict(logits=logits, label=labels)),
            (fast.sampled_softmax_with_cross_entropy_grad, sswce), (fast.sampled_softmax_loss_grad, ssl)]


@pytest.mark.parametrize("index", range(3), ids=["swce", "sswce", "ssl"])
def test_shift_free_fallback_is_the_shifted_computation(index, monkeypatch):
    function, kwargs = _every_grad_function(4)[index]
    monkeypatch.setattr(fast_core, "_SHIFT_FREE_SUM_RANGE", (np.inf, np.inf))  # every row out of range
    fallback = function(**kwargs)
    monkeypatch.setattr(fast_core, "_SHIFT_FREE_EXP", False)
    shifted = function(**kwargs)
    for name in shifted:
        assert _bits(fallback[name]) == _bits(shifted[name]), name


def _bits(output):
    """An output's bytes; a sparse gradient's are those of its ids and rows, and its shape."""
    if isinstance(output, SparseRows):
        return output.indices.tobytes(), output.values.tobytes(), tuple(output.dense_shape)
    return output.tobytes()


def test_sampled_rows_out_of_range_get_the_shifted_bits_row_by_row(monkeypatch):
    sswce, _ = _sampled_inputs(np.random.default_rng(6))
    sswce["logits"][1] += 60  # over 2^64
    sswce["logits"][4] -= 70  # under 2^-63
    batch = fast.sampled_softmax_with_cross_entropy_grad(**sswce)
    monkeypatch.setattr(fast_core, "_SHIFT_FREE_EXP", False)
    shifted = fast.sampled_softmax_with_cross_entropy_grad(**sswce)
    monkeypatch.undo()
    for row in range(sswce["logits"].shape[0]):
        alone = fast.sampled_softmax_with_cross_entropy_grad(**dict(
            sswce, logits=sswce["logits"][row:row + 1], label=sswce["label"][row:row + 1],
            customized_samples=sswce["customized_samples"][row:row + 1],
            customized_probabilities=sswce["customized_probabilities"][row:row + 1]))
        for name in batch:
            assert batch[name][row].tobytes() == alone[name][0].tobytes(), (row, name)
        if row in (1, 4):  # recomputed with the shift
            assert batch["loss"][row].tobytes() == shifted["loss"][row].tobytes()
            assert batch["logits"][row].tobytes() == shifted["logits"][row].tobytes()


def test_the_row_broadcast_buffer_is_restored():
    before = np.getbufsize()
    fast.softmax_with_cross_entropy_grad(np.zeros((3, 4), np.float32), np.zeros((3, 1), np.int64))
    assert np.getbufsize() == before
    with pytest.raises(ValueError, match="label"):
        fast.softmax_with_cross_entropy(np.zeros((3, 4), np.float32), np.full((3, 1), 9, np.int64))
    assert np.getbufsize() == before


def test_blocks_cover_every_row_once(monkeypatch):
    monkeypatch.setattr(fast_core, "_PARALLEL_MIN_ELEMENTS", 1)
    monkeypatch.setattr(fast_core, "_THREADS", 2)
    for rows, width, block in [(1, 5, 8), (7, 3, 8), (1000, 1000, 1 << 16), (5, 10 ** 6, 1 << 20)]:
        monkeypatch.setattr(fast_core, "_BLOCK_ELEMENTS", block)
        blocks = fast._row_blocks(np, rows, width)
        covered = [r for start, stop in blocks for r in range(start, stop)]
        assert covered == list(range(rows))
        assert len(blocks) >= min(rows, 2)  # at least one block per thread when there are rows enough


def test_an_exception_in_a_block_reaches_the_caller(monkeypatch):
    monkeypatch.setattr(fast_core, "_THREADS", 2)

    def failing(start, stop):
        if start > 0:
            raise ValueError("block %d:%d" % (start, stop))

    with pytest.raises(ValueError, match="block"):
        fast._for_blocks([(0, 1), (1, 2)], failing)


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
    got = fast._float32_to_float16(x)
    assert got.dtype == np.float16 and got.shape == x.shape
    nan = np.isnan(x)
    assert np.isnan(got[nan]).all()
    mismatch = np.flatnonzero(got.view(np.uint16)[~nan] != expected.view(np.uint16)[~nan])
    assert mismatch.size == 0, [(float(x[~nan][i]), float(got[~nan][i]), float(expected[~nan][i]))
                                for i in mismatch[:5]]


def test_float32_to_float16_of_empty_arrays():
    for shape in [(0,), (0, 5), (3, 0)]:
        got = fast._float32_to_float16(np.zeros(shape, dtype=np.float32))
        assert got.shape == shape and got.dtype == np.float16


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_an_empty_batch_gives_empty_results(dtype):
    """No row: nothing to reduce (NumPy's min and max of nothing raise), empty outputs."""
    labels = np.zeros((0, 1), np.int64)
    swce = fast.softmax_with_cross_entropy_grad(np.zeros((0, 5), dtype), labels)
    assert swce["loss"].shape == (0, 1) and swce["logits"].shape == (0, 5)
    sswce = fast.sampled_softmax_with_cross_entropy_grad(
        np.zeros((0, 5), dtype), labels, 2, use_customized_samples=True,
        customized_samples=np.zeros((0, 3), np.int64), customized_probabilities=np.ones((0, 3), dtype))
    assert sswce["loss"].shape == (0, 1) and sswce["logits"].shape == (0, 5)
    sampled = (np.array([1, 2]), np.ones((0, 1), dtype), np.ones(2, dtype))
    ssl = fast.sampled_softmax_loss_grad(np.ones((6, 3), dtype), np.zeros(6, dtype), labels, np.zeros((0, 3), dtype),
                                        2, 6, sampled_values=sampled)
    assert ssl["loss"].shape == (0,) and ssl["inputs"].shape == (0, 3)
    # Only the sampled ids have gradient rows: those of the candidates, zero without a batch.
    assert ssl["weights"].dense_shape == (6, 3) and ssl["biases"].dense_shape == (6,)
    assert sorted(ssl["weights"].indices.tolist()) == [1, 2] == sorted(ssl["biases"].indices.tolist())
    assert not ssl["weights"].values.any() and not ssl["biases"].values.any()
    for name in ("weights", "biases"):
        ssl[name] = ssl[name].values
    for out in (swce, sswce, ssl):
        assert all(value.dtype == dtype for value in out.values())


def test_float32_to_float16_keeps_shape_and_layout():
    x = np.linspace(-70000, 70000, 24, dtype=np.float32).reshape(2, 3, 4)[:, ::2]  # a strided view
    with np.errstate(over="ignore"):
        assert fast._float32_to_float16(x).tobytes() == x.astype(np.float16).tobytes()
    assert fast._float32_to_float16(x).shape == x.shape


# ``_row_sums``: float32 rows of up to _DOT_ROW_SUMS_MAX elements are summed by a dot product per
# row (NumPy 2.x), everything else by NumPy's sum.
ROW_SUM_LENGTHS = [2, 3, 17, 513, 1000, fast_core._DOT_ROW_SUMS_MAX]


@pytest.mark.parametrize("length", ROW_SUM_LENGTHS)
def test_row_sums_of_a_row_do_not_depend_on_its_batch(length):
    rng = np.random.default_rng(length)
    e = np.exp(rng.standard_normal((37, length)).astype(np.float32) * 3)
    whole = fast._row_sums(np, e, 1)
    assert whole.shape == (37, 1) and whole.dtype == np.float32
    alone = np.concatenate([fast._row_sums(np, e[i:i + 1], 1) for i in range(37)])
    single = np.stack([fast._row_sums(np, e[i], 0) for i in range(37)])  # 1-D rows
    blocks = np.concatenate([fast._row_sums(np, e[i:i + 5], 1) for i in range(0, 37, 5)])
    shifted = np.zeros((37, length + 1), dtype=np.float32)
    shifted[:, 1:] = e  # the same rows at another offset and row stride
    stacked = fast._row_sums(np, e.reshape(37, 1, length), 2)[:, 0]  # a rank-3 array
    for other in (alone, single, blocks, fast._row_sums(np, shifted[:, 1:], 1), stacked):
        assert other.tobytes() == whole.tobytes()


@pytest.mark.parametrize("length", ROW_SUM_LENGTHS)
def test_row_sums_are_within_a_few_ulp_of_the_exact_sum(length):
    rng = np.random.default_rng(100 + length)
    e = np.exp(rng.standard_normal((64, length)).astype(np.float32) * 3)
    exact = np.array([math.fsum(row) for row in e.astype(np.float64)])
    got = fast._row_sums(np, e, 1)[:, 0].astype(np.float64)
    # NumPy's pairwise sum is within 2-3 ulp here; 8 ulp (2^-24 each) leaves room, and is still 16
    # times inside the suite's float32 tolerance of 16 ulp of 2^-23 (see conformance/compare.py).
    assert np.abs(got / exact - 1).max() <= 8 * 2.0 ** -24


def test_row_sums_use_the_dot_product_only_where_they_should():
    rng = np.random.default_rng(5)
    short = rng.random((4, 100), dtype=np.float32)
    dot = np.matmul(short[:, None, :], np.ones(100, dtype=np.float32))
    assert fast._row_sums(np, short, 1).tobytes() == (dot if fast_core._DOT_ROW_SUMS else short.sum(1, keepdims=True)).tobytes()
    for e, axis in [(rng.random((4, fast_core._DOT_ROW_SUMS_MAX + 1), dtype=np.float32), 1),  # long rows
                    (short.astype(np.float64), 1),  # the golden dtype
                    (short, 0),  # not the last axis
                    (np.asfortranarray(short)[:, ::2], 1)]:  # strided rows
        assert fast._row_sums(np, e, axis).tobytes() == e.sum(axis=axis, keepdims=True).tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float16", "float64"])
@pytest.mark.parametrize("num_shards, strategy", [(1, "mod"), (3, "mod"), (3, "div")])
def test_embedding_gradients_are_a_sequential_scatter_add(dtype, num_shards, strategy):
    # The sparse weight and bias gradients (repeats summed into their first occurrence, each id
    # once) densify, bit for bit, to a dense scatter-add in the ids' order, rounded once to dtype.
    rng = np.random.default_rng(7)
    num_classes, dim, count = 23, 5, 60  # 60 ids over 23 classes: most ids repeat, some 5 times
    ids = rng.integers(0, num_classes, count)
    rows = rng.standard_normal((count, dim)).astype(np.float32 if dtype != "float64" else np.float64)
    bias_values = rng.standard_normal(count).astype(rows.dtype)
    dense, dense_bias = np.zeros((num_classes, dim), rows.dtype), np.zeros(num_classes, rows.dtype)
    for i, k in enumerate(ids):  # the sequential sum, in the ids' order
        dense[k] += rows[i]
        dense_bias[k] += bias_values[i]
    layout = fast.shard_layout(num_classes, num_shards, strategy)
    shards, biases = fast._embedding_gradients(np, ids, rows.copy(), bias_values.copy(), layout, strategy,
                                              np.dtype(dtype))
    # The shards of the dense gradient, cut as tf.nn.embedding_lookup lays them out.
    if strategy == "div":
        expected = np.split(dense, np.cumsum(layout)[:-1])
    else:
        expected = [dense[p::num_shards] for p in range(num_shards)]
    assert [s.dense_shape for s in shards] == [e.shape for e in expected]
    for got, want in zip(shards, expected):
        assert got.values.dtype == np.dtype(dtype) and got.values.shape == (len(got.indices), dim)
        assert len(set(got.indices.tolist())) == len(got.indices)  # each id once: no rounding left
        assert got.dense().tobytes() == want.astype(dtype).tobytes()
    assert sum(len(s.indices) for s in shards) == len(set(ids.tolist()))  # only the ids' rows
    assert biases.dense_shape == (num_classes,)
    assert biases.dense().tobytes() == dense_bias.astype(dtype).tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("with_grad", [False, True], ids=["forward", "grad"])
def test_sampled_softmax_loss_never_builds_batch_by_num_classes(dtype, with_grad):
    """A memory property of the contender (the oracle joins shards into a dense float64 copy and
    returns dense gradients): forward and gradient memory grow with B*(T+S) and (T+S)*D, not with
    num_classes (the weight and bias gradients are sparse rows)."""
    num_classes, batch, dim, num_sampled = 10 ** 6, 4, 2, 8
    r = np.random.default_rng(27)
    weights = r.normal(size=(num_classes, dim)).astype(dtype)
    biases = r.normal(size=num_classes).astype(dtype)
    shards = [weights[p::3].copy() for p in range(3)]  # the "mod" layout of 3 shards, cut by slicing
    inputs = r.normal(size=(batch, dim)).astype(dtype)
    labels = r.integers(0, num_classes, size=(batch, 2)).astype(np.int64)
    forbidden = batch * num_classes * 4  # the smallest [B, num_classes] float array
    function = fast.sampled_softmax_loss_grad if with_grad else fast.sampled_softmax_loss
    for w in (weights, shards):
        tracemalloc.start()
        try:
            out = function(w, biases, labels, inputs, num_sampled, num_classes, num_true=2, seed=1)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        loss = out["loss"] if with_grad else out
        assert loss.shape == (batch,) and np.all(np.isfinite(loss))
        # Also far below a single [num_classes] float64 temporary (8 MB), or a dense [num_classes]
        # bias gradient (4 MB in float32).
        assert peak < forbidden / 50, "peak %d bytes for B*num_classes*4 = %d" % (peak, forbidden)
        if with_grad:  # the sampled rows only: at most B*T + S of them
            grads = [out["weights"]] if w is weights else out["weights"]
            assert [g.dense_shape for g in grads] == [a.shape for a in ([w] if w is weights else w)]
            assert sum(len(g.indices) for g in grads) <= batch * 2 + num_sampled


# ----------------------------------------------------------------------------------------------
# losses near FLT_MAX
# ----------------------------------------------------------------------------------------------
# Losses near FLT_MAX: finite in the oracle's float64, each within the float32 range once rounded,
# though a float32 intermediate of the textbook formula (a logit gap m - z, a sum of them, or
# z = logits - max) overflows.  Each case is checked against the oracle's golden outputs with the
# suite's own comparison and tolerance (conformance/compare.py), as the conformance run does.
FLT_MAX = float(np.finfo(np.float32).max)


def _passes_against_the_oracle(spec):
    case = corpus.build_case(spec)  # golden outputs from impls/reference/, in float64
    with np.errstate(over="ignore"):  # the float32 rounding of the inputs near FLT_MAX
        status, errors, _, message = compare.compare(case, _outputs(case))
    assert status == "pass", message
    return case


def _sswce_spec(name, logits, label, samples, probabilities, upstream):
    inputs = {"logits": np.array(logits), "label": np.array(label), "customized_samples": np.array(samples),
              "customized_probabilities": np.array(probabilities), "upstream": np.array(upstream)}
    params = {"num_samples": len(samples[0]) - len(label[0]), "num_true": len(label[0]),
              "remove_accidental_hits": True, "seed": 0, "use_customized_samples": True}
    return corpus.Spec(name, "sampled_softmax_with_cross_entropy", "float32", params, inputs, name)


def test_sampled_loss_near_flt_max_found_by_the_search():
    """The find of CI's 60 s search (seed 1) before the fix, sampled_softmax_with_cross_entropy-normal-T2-
    h3ce2254d5b-f32, value for value (its stored case went with the fix; this test keeps it).

    The sampled logit is FLT_MAX (+ 1.57, rounded away in float32) over true logits 0.93 and -0.60,
    so the row leaves the shift-free range; in the shifted path each gap m - z_true rounds to
    FLT_MAX in float32 and their sum, for the mean, overflowed: the loss was inf, not FLT_MAX.
    """
    spec = _sswce_spec(
        "normal-T2-h3ce2254d5b",
        logits=[[float.fromhex("0x1.ep-3"), float.fromhex("0x1.fffffep+127"), float.fromhex("-0x1.16p+1")]],
        label=[[0, 2]], samples=[[0, 2, 1]],
        probabilities=[[0.5, float.fromhex("0x1.a8ff98p-3"), float.fromhex("0x1.a8ff98p-3")]], upstream=[[-0.25]])
    case = _passes_against_the_oracle(spec)
    assert case.golden["loss"].astype(np.float32)[0, 0] == np.float32(FLT_MAX)  # the edge itself


def test_sampled_loss_near_flt_max_with_one_gap_of_twice_flt_max():
    """True logits -FLT_MAX and FLT_MAX: the one gap m - z_true = 2 * FLT_MAX overflows float32 alone;
    the mean of the gaps, the loss, is FLT_MAX.  A second row with ordinary logits beside it."""
    spec = _sswce_spec("one-gap-overflows", logits=[[-FLT_MAX, FLT_MAX, 0.0, 1.0], [0.5, -1.0, 2.0, 0.25]],
                       label=[[0, 1], [2, 0]], samples=[[0, 1, 2, 3], [2, 0, 3, 1]],
                       probabilities=[[1.0, 1.0, 1.0, 1.0], [0.25, 0.5, 0.125, 0.75]], upstream=[[0.5], [-1.0]])
    _passes_against_the_oracle(spec)


def test_sampled_softmax_loss_near_flt_max():
    """The same edge through sampled_softmax_loss (the shared core): true logits 0, a sampled one FLT_MAX."""
    inputs = {"weights": np.array([[0.0], [0.0], [FLT_MAX], [1.0]]), "biases": np.zeros(4),
              "labels": np.array([[0, 1]]), "inputs": np.array([[1.0]]), "sampled_candidates": np.array([2, 3]),
              "true_expected_count": np.ones((1, 2)), "sampled_expected_count": np.ones(2),
              "upstream": np.array([0.5])}
    params = {"num_sampled": 2, "num_classes": 4, "num_true": 2, "remove_accidental_hits": True,
              "partition_strategy": "mod", "num_shards": 0}
    case = _passes_against_the_oracle(
        corpus.Spec("near-flt-max", "sampled_softmax_loss", "float32", params, inputs, "near FLT_MAX"))
    assert case.golden["loss"].astype(np.float32)[0] == np.float32(FLT_MAX)


def test_soft_label_loss_of_a_row_spanning_more_than_flt_max():
    """logits 1e38 and -FLT_MAX: z = logits - max overflows float32 to -inf, and the loss (and the
    label gradient) was inf where the oracle's is 1.35e38.  The other row keeps its own bits."""
    logits = [[1e38, -FLT_MAX, 0.0], [1.0, 2.0, 3.0]]
    label = [[0.5, 0.25, 0.25], [0.25, 0.25, 0.5]]
    params = {"soft_label": True, "ignore_index": -100, "numeric_stable_mode": True, "return_softmax": True,
              "axis": -1}
    inputs = {"logits": np.array(logits), "label": np.array(label), "upstream": np.array([[0.25], [1.0]])}
    case = _passes_against_the_oracle(
        corpus.Spec("span-over-flt-max", "softmax_with_cross_entropy", "float32", params, inputs, "span"))
    assert np.isfinite(case.golden["loss"]).all() and np.isfinite(case.golden["grad/label"]).all()
    logits32, label32 = np.array(logits, np.float32), np.array(label, np.float32)
    with np.errstate(over="ignore"):
        batch = fast.softmax_with_cross_entropy_grad(logits32, label32, soft_label=True)
        alone = fast.softmax_with_cross_entropy_grad(logits32[1:], label32[1:], soft_label=True)
    for name in batch:
        assert batch[name][1].tobytes() == alone[name][0].tobytes(), name
