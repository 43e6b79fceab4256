"""Through the loss: what a framework's sampled loss did with the candidates it drew.

**Through the loss** (``via = loss``; TensorFlow's ``tf.nn.sampled_softmax_loss`` and Paddle 1.8's
``sampled_softmax_with_cross_entropy`` drawing their own candidates with a fixed seed, see
``impls/samplers.py``): the candidates and expected counts each loss call drew get every check above
(unique settings only: both losses sample unique), and per setting:

``loss_shape`` (exact)
    each call's loss has the API's documented shape (TF ``[batch]``, Paddle ``[N, 1]``).
``true_labels_in_front`` (exact, where the framework exposes its sampled layout: Paddle's ``Samples``)
    column 0 of every row is its label, and the candidates after it are the same on every row.
``accidental_hits_removed`` (exact, where exposed: Paddle's ``SampledLogits``)
    exactly the sampled columns whose class is the row's label were pushed below ``-1e19`` (Paddle
    subtracts 1e20 there).
``drawn_candidates_identity`` (exact, TensorFlow)
    the loss TF computes from the candidates ``tf.random.log_uniform_candidate_sampler`` returns with
    the same seeds has the same bits as the loss that drew its own: they are what the loss drew.
``loss_vs_oracle``
    the oracle's loss (``impls/reference/``, float64) recomputed from the candidates and expected
    counts the framework drew, against the framework's loss under the suite's tolerance
    (``conformance/compare.py``: the float32 rtol of the op's accumulation length and its logit
    scale); statistic: the worst ratio to the allowed error over all draws.  The message says on how
    many draws an oracle *without* accidental-hit removal would have disagreed (the check's power
    on hit removal where the framework does not expose it).

The op-specific facts (the problem, the oracle's case, the documented loss shape) come from the
op's :class:`~impls.ops.core.SamplerLoss`, reached through the registry by the ``loss_op`` the worker
names; this module names no op.
"""
from __future__ import annotations

import numpy as np

from conformance import compare
from conformance.sampler.table import check_row
from impls.ops import get

PADDLE_HIT_SHIFT = -1e19  # Paddle 1.8's sample_logits subtracts 1e20 from a hit's sampled logit


def _problem_float64(arrays):
    """The fixed problem every draw of a setting shares (``input_*``), by input name, in float64."""
    return {k[len("input_"):]: np.asarray(v, dtype=np.float64 if np.asarray(v).dtype.kind == "f" else np.int64)
            for k, v in arrays.items() if k.startswith("input_")}


def _oracle_case(loss_op, arrays, d, remove_accidental_hits=True, f64=None):
    """``(oracle loss in float64, params, inputs by the op's input names)`` of draw ``d``, as the op's
    :class:`~impls.ops.core.SamplerLoss` makes them; ``f64``: :func:`_problem_float64` of ``arrays``
    when the caller has it already."""
    f64 = _problem_float64(arrays) if f64 is None else f64
    return get(loss_op).sampler_loss.oracle_case(arrays, d, f64, remove_accidental_hits)


def _vs_oracle(loss_op, arrays, d, actual, remove_accidental_hits=True, f64=None, allowed=None):
    """Draw ``d``'s loss against the oracle's under the suite's tolerance: ``(OutputError, allowed)``,
    ``allowed`` = ``(rtol, logit scale, the tolerance's reason)`` of the draw.  They depend on the
    draw's inputs only, not on the hit removal: a second comparison of the same draw passes them in
    (the scale's bound over all classes is most of the work)."""
    golden, params, inputs = _oracle_case(loss_op, arrays, d, remove_accidental_hits, f64)
    if allowed is None:
        scale = get(loss_op).logit_scale(params, inputs)
        tolerance = compare.tolerance({"op": loss_op, "dtype": "float32", "params": params, "logit_scale": scale},
                                      {k: np.shape(v) for k, v in inputs.items()})
        allowed = (tolerance.rtol, scale, tolerance.reason)
    rtol, scale, _ = allowed
    return compare.compare_output("loss", actual, golden, rtol, scale), allowed


def loss_rows(setting, arrays, loss_op):
    candidates, loss = np.asarray(arrays["candidates"]), np.asarray(arrays["loss"])
    D, N = len(candidates), setting["num_true"]
    documented = get(loss_op).sampler_loss.loss_shape(D, N)
    rows = [check_row("loss_shape", "pass" if loss.shape == documented else "fail",
                      "%s: losses of %d calls %s, documented %s" % (loss_op, D, loss.shape, documented))]
    if loss.shape != documented:
        return rows
    labels = np.asarray(arrays.get("input_labels", arrays.get("input_label"))).reshape(N)
    hits = candidates[:, None, :] == labels[None, :, None]  # [D, N, S]
    hit_draws = np.flatnonzero(hits.any(axis=(1, 2)))
    if "samples" in arrays:
        samples = np.asarray(arrays["samples"])
        wrong_front = int(np.count_nonzero(samples[:, :, 0] != labels[None, :]))
        unshared = int(np.count_nonzero((samples[:, :, 1:] != samples[:, :1, 1:]).any(axis=2)))
        rows.append(check_row("true_labels_in_front", "pass" if wrong_front == unshared == 0 else "fail",
                              "Samples [N, 1+S] of %d draws: %d rows without their label in column 0, %d rows "
                              "whose candidates differ from row 0's" % (D, wrong_front, unshared),
                              statistic=wrong_front + unshared))
        removed = np.asarray(arrays["sampled_logits"])[:, :, 1:] <= PADDLE_HIT_SHIFT
        wrong = int(np.count_nonzero(removed != hits))
        rows.append(check_row("accidental_hits_removed", "pass" if wrong == 0 else "fail",
                              "%d accidental hits in %d of %d draws; %d sampled logits removed (below %g) where "
                              "the drawn samples say otherwise" % (int(hits.sum()), len(hit_draws), D, wrong,
                                                                   PADDLE_HIT_SHIFT),
                              statistic=wrong))
    else:
        hidden = "%s returns the loss only: checked through loss_vs_oracle" % loss_op
        rows.append(check_row("true_labels_in_front", "unsupported", hidden))
        rows.append(check_row("accidental_hits_removed", "unsupported", "%s (%d accidental hits in %d of %d draws)"
                              % (hidden, int(hits.sum()), len(hit_draws), D)))
    if "loss_given_candidates" in arrays:
        given = np.asarray(arrays["loss_given_candidates"])
        differ = int(np.count_nonzero((given != loss).any(axis=1)))
        rows.append(check_row("drawn_candidates_identity", "pass" if differ == 0 else "fail",
                              "%d of %d draws: the loss from the candidates tf.random.log_uniform_candidate_sampler "
                              "returns with the same seeds differs in its bits from the loss that drew its own"
                              % (differ, D), statistic=differ))

    try:
        rows.append(_loss_vs_oracle_row(loss_op, arrays, loss, hit_draws))
    except Exception as error:  # e.g. Samples the oracle rejects (no label in front): the other rows stand
        rows.append(check_row("loss_vs_oracle", "error",
                              "oracle recomputation failed: %s: %s" % (type(error).__name__, error)))
    return rows


def _loss_vs_oracle_row(loss_op, arrays, loss, hit_draws):
    D = len(loss)
    worst, worst_draw, tolerance_reason = 0.0, 0, ""
    f64, allowed = _problem_float64(arrays), {}
    for d in range(D):
        error, allowed[d] = _vs_oracle(loss_op, arrays, d, loss[d], f64=f64)
        ratio = float("inf") if error.problem else error.ratio
        if ratio > worst or d == 0:
            worst, worst_draw, tolerance_reason = ratio, d, allowed[d][2]
    # Would an oracle that keeps the hits have agreed anyway?  (The check's power on hit removal.)
    powerless = sum(not _vs_oracle(loss_op, arrays, d, loss[d], remove_accidental_hits=False, f64=f64,
                                   allowed=allowed[d])[0].failed for d in hit_draws)
    message = ("oracle loss from the drawn candidates vs %s's over %d calls: worst %.3g of the allowed error "
               "(draw %d; %s); without accidental-hit removal the oracle would disagree on %d of the %d draws "
               "with hits" % (loss_op, D, worst, worst_draw, tolerance_reason, len(hit_draws) - powerless,
                              len(hit_draws)))
    return check_row("loss_vs_oracle", "pass" if worst <= 1.0 else "fail", message, statistic=worst, threshold=1.0)
