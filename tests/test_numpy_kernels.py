"""The contender's compiled row kernels (``impls/numpy_fast/kernels.py``) against its NumPy path.

* ``_expf`` is within 1.01 ulp of the exact exponential from FLT_MIN to e^88 (its callers clamp
  there), flushes results below FLT_MIN to 0 and keeps NaN.
* Every float32 corpus case the contender takes gives, through the kernels, results within the
  suite's own tolerance of the NumPy path's (the golden outputs are checked by the conformance
  tests; this pins down that the kernels compute what the NumPy path computes).
* A row's bits depend on that row alone: alone or in a batch, on one thread or two.
* A row the kernels do not serve (NaN, ``+inf``, an all ``-inf`` row, a shift-free sum out of
  range) gets exactly the NumPy path's bits.
* The kernels are what runs: each float32 gradient call goes through its kernel.

Skipped where numba is not installed (the Python 3.8 environment runs the NumPy path alone).
"""
import numpy as np
import pytest

from helpers_reference import ROOT  # noqa: F401 - puts the repo on sys.path
from conformance import compare, corpus
from impls import numpy_fast as fast
from impls.numpy_fast import core as fast_core  # its switches, read there at call time
from impls.numpy_fast import kernels
from impls.caseio import Case
from impls.numpy_fast_adapter import NumpyFast
from impls.support import why_unsupported

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed (or CONFORMANCE_NUMPY_KERNELS=0)")

CASES = corpus.DEFAULT_CASES_DIR
FLOAT32_CASES = [e for e in corpus.load_manifest(CASES)["cases"]
                 if e["dtype"] == "float32" and not e.get("invalid") and why_unsupported(NumpyFast(), "cpu", e) is None]


def _outputs(case):
    adapter = NumpyFast()
    adapter.load("cpu")
    return adapter.run(case)


def _exp(x):
    out = np.empty_like(x)
    kernels._exp(x, out)
    return out


def test_expf_is_within_an_ulp_of_the_exact_exponential():
    # Every 64th float32 from the FLT_MIN threshold to the callers' clamp, and the ends themselves.
    low, high = np.float32(-87.33654), np.float32(88.0)
    bits = np.arange(np.float32(0).view(np.int32), low.view(np.int32), 64, dtype=np.int32)
    x = np.concatenate([bits.view(np.float32), -bits.view(np.float32),
                        np.arange(0, high.view(np.int32), 64, dtype=np.int32).view(np.float32), [low, high]])
    x = x[(x >= low) & (x <= high)].astype(np.float32)
    exact = np.exp(x.astype(np.float64))
    ulps = np.abs(_exp(x).astype(np.float64) - exact) / np.spacing(exact.astype(np.float32)).astype(np.float64)
    assert x.size > 10 ** 6 and ulps.max() <= 1.01


def test_expf_flushes_below_flt_min_and_keeps_nan():
    x = np.array([-87.34, -100.0, -np.inf, np.nan, 0.0, 1.0], dtype=np.float32)
    y = _exp(x)
    assert (y[:3] == 0).all() and np.isnan(y[3]) and y[4] == 1.0 and y[5] == np.float32(np.e)


@pytest.mark.parametrize("entry", FLOAT32_CASES, ids=[e["id"] for e in FLOAT32_CASES])
def test_kernels_agree_with_the_numpy_path(entry, monkeypatch):
    case = Case.read(CASES / entry["file"])
    compiled = _outputs(case)
    monkeypatch.setattr(fast_core, "_KERNELS", False)
    plain = _outputs(case)
    tol = compare.tolerance(case.meta, {k: v.shape for k, v in case.inputs.items()})
    scales = compare.output_scales(case)
    assert sorted(compiled) == sorted(plain)
    for name in plain:
        err = compare.compare_output(name, compiled[name], plain[name].astype(np.float64), tol.rtol,
                                     scales.get(name, 1.0))
        assert not err.problem and err.ratio <= 1.0, (name, err)


def _inputs(seed, batch=7, classes=300, num_true=2, num_sampled=40, dim=16):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((batch, classes)) * 4).astype(np.float32)
    labels = np.stack([rng.choice(classes, num_true, replace=False) for _ in range(batch)])
    candidates, true_expected, sampled_expected = fast.log_uniform_candidate_sampler(
        labels, num_true, num_sampled, True, classes, seed=3)
    samples = np.concatenate([labels, np.broadcast_to(candidates, (batch, num_sampled))], axis=1)
    probabilities = np.concatenate([true_expected, np.broadcast_to(sampled_expected, (batch, num_sampled))], axis=1)
    upstream = rng.uniform(0.5, 2, (batch, 1)).astype(np.float32)
    swce = dict(logits=logits, label=labels[:, :1], upstream=upstream)
    sswce = dict(logits=logits, label=labels, num_samples=num_sampled, num_true=num_true,
                 use_customized_samples=True, customized_samples=np.ascontiguousarray(samples),
                 customized_probabilities=probabilities.astype(np.float32), upstream=upstream)
    ssl = dict(weights=(rng.standard_normal((classes, dim)) * 3).astype(np.float32),
               biases=rng.standard_normal(classes).astype(np.float32), labels=labels,
               inputs=rng.standard_normal((batch, dim)).astype(np.float32), num_sampled=num_sampled,
               num_classes=classes, num_true=num_true, upstream=upstream[:, 0],
               sampled_values=(candidates, true_expected.astype(np.float32), sampled_expected.astype(np.float32)))
    return [(fast.softmax_with_cross_entropy_grad, swce, "logits"),
            (fast.sampled_softmax_with_cross_entropy_grad, sswce, "logits"),
            (fast.sampled_softmax_loss_grad, ssl, "inputs")]


def _rows(kwargs, rows, batched_names):
    """``kwargs`` with the batch-indexed arguments cut to ``rows``."""
    out = dict(kwargs)
    for name in batched_names:
        if name in out:
            out[name] = out[name][rows]
    if "sampled_values" in out:
        candidates, true_expected, sampled_expected = out["sampled_values"]
        out["sampled_values"] = (candidates, true_expected[rows], sampled_expected)
    return out


BATCHED = ("logits", "label", "labels", "inputs", "upstream", "customized_samples", "customized_probabilities")
OPS = ["swce", "sswce", "ssl"]


@pytest.mark.parametrize("index", range(2), ids=OPS[:2])
def test_a_rows_bits_depend_on_that_row_alone(index):
    function, kwargs, batched_grad = _inputs(1)[index]
    batch = function(**kwargs)
    kernels.set_threads(1)
    try:
        one_thread = function(**kwargs)
    finally:
        kernels.set_threads(fast_core._THREADS)
    for row in range(kwargs["logits"].shape[0]):
        alone = function(**_rows(kwargs, slice(row, row + 1), BATCHED))
        for name in ("loss", batched_grad):
            assert batch[name][row].tobytes() == alone[name][0].tobytes(), (row, name)
            assert batch[name].tobytes() == one_thread[name].tobytes(), name


def test_a_rows_bits_depend_on_that_row_alone_in_the_weights_based_kernel():
    """On the kernel itself: the op's own matrix products (OpenBLAS) round a row differently in a
    batch of one (a matrix-vector product) than in a larger one."""
    rng = np.random.default_rng(1)
    zt, zs = (rng.standard_normal((7, 2)) * 4).astype(np.float32), (rng.standard_normal((7, 40)) * 4).astype(np.float32)
    offset, u = rng.standard_normal(40).astype(np.float32), rng.uniform(0.5, 2, 7).astype(np.float32)
    true_ids, candidates = rng.integers(0, 30, (7, 2)), rng.integers(0, 30, 40)

    def run(rows):
        t, s, loss, served = zt[rows].copy(), zs[rows].copy(), np.empty(len(rows), np.float32), np.empty(len(rows), bool)
        kernels.sampled_core(t, s, offset, true_ids[rows], candidates, True, 2.0 ** -63, 2.0 ** 64, u[rows], True,
                             loss, served)
        assert served.all()
        return loss, t, s

    batch = run(np.arange(7))
    for row in range(7):
        for whole, alone in zip(batch, run(np.array([row]))):
            assert whole[row].tobytes() == alone[0].tobytes(), row


def _unusual(kwargs, op):
    """Rows the kernels leave to the NumPy path: sums over 2^64 and under 2^-63, NaN, +inf, all -inf."""
    kwargs = dict(kwargs)
    if op == "ssl":
        inputs = kwargs["inputs"].copy()
        inputs[1] *= 40  # logits of a few hundred: the sum overflows the range
        inputs[3, 0] = np.nan
        kwargs["inputs"] = inputs
        return kwargs, (1, 3)
    logits = kwargs["logits"].copy()
    logits[1] += 60
    logits[2] -= 70
    logits[3, kwargs["label"][3, 0]] = np.nan
    logits[4, :] = -np.inf
    logits[5, kwargs["label"][5, 0]] = np.inf
    kwargs["logits"] = logits
    return kwargs, (1, 2, 3, 4, 5)


@pytest.mark.parametrize("index", range(3), ids=OPS)
def test_rows_the_kernels_do_not_serve_get_the_numpy_paths_bits(index, monkeypatch):
    function, kwargs, batched_grad = _inputs(2)[index]
    kwargs, rows = _unusual(kwargs, OPS[index])
    with np.errstate(all="ignore"):
        compiled = function(**kwargs)
        monkeypatch.setattr(fast_core, "_KERNELS", False)
        plain = function(**kwargs)
    for name in ("loss", batched_grad):
        for row in rows:
            assert compiled[name][row].tobytes() == plain[name][row].tobytes(), (row, name)


def test_ignored_rows_get_a_zero_loss_and_gradient():
    logits = np.random.default_rng(4).standard_normal((4, 50)).astype(np.float32)
    label = np.array([[3], [-100], [7], [-100]])
    result = fast.softmax_with_cross_entropy_grad(logits, label)
    assert (result["loss"][[1, 3]] == 0).all() and (result["logits"][[1, 3]] == 0).all()
    assert (result["loss"][[0, 2]] > 0).all()


@pytest.mark.parametrize("index,kernel", [(0, "swce_hard"), (1, "sswce_rows"), (2, "sampled_core")], ids=OPS)
def test_float32_calls_go_through_the_kernels(index, kernel, monkeypatch):
    calls = []
    original = getattr(kernels, kernel)
    monkeypatch.setattr(kernels, kernel, lambda *args: calls.append(1) or original(*args))
    function, kwargs, _ = _inputs(5)[index]
    function(**kwargs)
    assert calls == [1]


def test_repeated_ids_sum_to_the_numpy_paths_bits(monkeypatch):
    rng = np.random.default_rng(6)
    ids = rng.integers(0, 30, 200)  # many repeats
    rows, bias_values = rng.standard_normal((200, 16)).astype(np.float32), rng.standard_normal(200).astype(np.float32)

    def gradients():
        (weights,), biases = fast._embedding_gradients(np, ids, rows.copy(), bias_values.copy(), [30], "mod",
                                                       np.float32)
        return [part.tobytes() for part in (weights.indices, weights.values, biases.indices, biases.values)]

    calls, original = [], kernels.sum_repeated_rows
    monkeypatch.setattr(kernels, "sum_repeated_rows", lambda *args: calls.append(1) or original(*args))
    compiled = gradients()
    assert calls == [1]
    monkeypatch.setattr(fast_core, "_KERNELS", False)
    assert compiled == gradients() and calls == [1]


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 33, 1000])
def test_the_streamed_zero_fill_writes_zeros_exactly_where_asked(length):
    """Every start alignment (a float32 row may start at any 4-byte offset of a cache line): the
    unaligned head and tail as well as the streamed lines, and nothing on either side."""
    for offset in range(17):
        buffer = np.full(length + 64, np.nan, dtype=np.float32)
        row = buffer[offset:offset + length]
        kernels._zero(row, True)
        assert (row == 0).all() and not np.signbit(row).any(), offset
        assert np.isnan(buffer[:offset]).all() and np.isnan(buffer[offset + length:]).all(), offset


def test_a_streamed_gradient_has_the_plain_fills_bits(monkeypatch):
    """The logits-based kernel with its gradient zero-filled by non-temporal stores (forced here;
    by default only for a gradient of ``STREAM_BYTES`` or more) gives the same bits as with the
    ordinary fill; rows of 16 * 40 + 7 classes start at every alignment."""
    function, kwargs, _ = _inputs(7, batch=16, classes=16 * 40 + 7, num_sampled=8)[1]
    plain = function(**kwargs)
    streamed_calls, original = [], kernels.sswce_rows
    monkeypatch.setattr(kernels, "streams", lambda grad, width: True)
    monkeypatch.setattr(kernels, "sswce_rows", lambda *args: streamed_calls.append(args[-1]) or original(*args))
    streamed = function(**kwargs)
    assert streamed_calls == [True]
    for name in ("loss", "logits"):
        assert plain[name].tobytes() == streamed[name].tobytes(), name


def test_only_large_sparsely_sampled_gradients_are_streamed():
    # np.empty of these sizes reserves address space only: no page is touched
    assert kernels.streams(np.empty((128, 10 ** 6), dtype=np.float32), 513)  # 512 MB, a sampled column per 122 lines
    assert not kernels.streams(np.empty((4096, 10 ** 4), dtype=np.float32), 513)  # 164 MB, one per 1.2 lines
    assert not kernels.streams(np.empty((4, 10 ** 6), dtype=np.float32), 513)  # 16 MB: the caches may keep it
    assert not kernels.streams(None, 513)
