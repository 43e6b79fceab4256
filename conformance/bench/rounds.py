"""Paired rounds: how often, and for how long, each impl is timed on a shape (issue 18: ratios that reproduce).

When several impls are compared, every impl is timed in each round of a shape, in turn, for
``ROUND_SECONDS``, and a ratio is computed round by round, so that a machine whose speed drifts
over seconds moves the two times of a round together.  The rounds of a shape are spread over
``PASSES`` passes through the whole grid, minutes apart, so that a slow spell of the machine takes
the rounds of one pass at most.  In each pass a shape gets ``ROUNDS`` rounds, and more while some
impl's ratio interval is wider than ``SETTLED_WITHIN`` around its ratio.  The measurements behind
every value here: docs/SPEED_NOTES.md, "Paired rounds and passes".
"""
from __future__ import annotations

from conformance.bench.stats import paired_ratios

PASSES = 6  # a round's ratio has a log spread of about 0.15 however long the round: only more rounds narrow it
QUICK_PASSES = 3  # the quick grid (`conformance all`): a smoke test that stays within 10 minutes
ROUNDS = 3  # rounds of a shape in each pass, at least
MAX_ROUNDS = 6  # ...and at most, while unsettled
FAST_MAX_ROUNDS = 9  # where every impl's round is ROUND_SECONDS long: cheap rounds, the worst-reproducing ratios
SLOW_MAX_ROUNDS = 3  # where some call takes SLOW_CALL_SECONDS or more: rounds seconds long
SLOW_CALL_SECONDS = 0.25
ROUND_SECONDS = 0.06  # 30 ms rounds measured 15% noisier a round
ROUND_MIN_SAMPLES = 3  # calls in a round at least (one where a call takes longer than the round)
SETTLED_WITHIN = 0.05


def round_timing(round_index, rounds) -> dict:
    """A round's timing limits (``impls.bench.measure``'s ``timing``): the worker's own limits for an
    impl timed alone (``rounds`` 1), ``ROUND_SECONDS`` of samples in a paired round.

    A later round re-warms: one call (at least ``impls.bench.REWARM_SECONDS``) faults back in the
    pages the worker released at the end of its last turn and refills the caches, without the
    first round's warm-up to a settled time and its full garbage collection, which cost three or
    more calls a turn (1-3 s for Paddle's 1.3 s [4096, 10^5] weights-based forward) and, in a
    TensorFlow worker, 0.1-0.3 s of collection."""
    if rounds == 1:
        return {"rewarm": False, "memory": True}
    return {"min_seconds": ROUND_SECONDS, "max_seconds": ROUND_SECONDS, "min_samples": ROUND_MIN_SAMPLES,
            "capped_min_samples": 1, "rewarm": round_index > 0, "memory": round_index == 0,
            "release_memory": True}  # the worker is stopped after its turn: it keeps its live memory only


def time_spec(sessions, spec, turns, rounds=None, inputs=None, first_round=0):
    """Time one pass of a spec on every session (``session.ImplBench``), from round ``first_round``
    on: one turn for an impl alone, else paired rounds, the order rotating from round to round
    (``ROUNDS`` and more while unsettled, or a fixed number, ``rounds``).  ``turns``: the
    :class:`conformance.bench.turns.Turns` that stops the other workers; ``inputs``: the folder of
    the spec's stored inputs, or None."""
    alone = len(sessions) == 1
    fixed = 1 if alone else rounds
    round_index = first_round
    while True:
        order = sessions[round_index % len(sessions):] + sessions[:round_index % len(sessions)]  # rotate
        for session in order:
            if not session.runs(round_index):
                continue
            if not alone and session.can_run(spec):
                turns.give(session)
            session.run(spec, round_index, 1 if alone else (fixed or ROUNDS), inputs)
        round_index += 1
        taken = round_index - first_round
        if fixed is not None:
            if taken >= fixed:
                return
        elif taken >= ROUNDS and (taken >= _max_rounds(sessions) or _settled(sessions)):
            return


def _max_rounds(sessions) -> int:
    """``MAX_ROUNDS``; ``SLOW_MAX_ROUNDS`` where some impl's calls take ``SLOW_CALL_SECONDS`` or more;
    ``FAST_MAX_ROUNDS`` where every impl's round is ``ROUND_SECONDS`` long (``ROUND_MIN_SAMPLES``
    of its calls take no longer)."""
    medians = [min(session.round_medians()) for session in sessions if session.ok()]
    slowest = max(medians) if medians else 0.0
    if slowest >= SLOW_CALL_SECONDS:
        return SLOW_MAX_ROUNDS
    return FAST_MAX_ROUNDS if slowest * ROUND_MIN_SAMPLES <= ROUND_SECONDS else MAX_ROUNDS


def _settled(sessions) -> bool:
    """Whether every timed impl's ratio interval lies within ``SETTLED_WITHIN`` of its ratio."""
    timed = {session.impl: session.round_medians() for session in sessions if session.ok()}
    if len(timed) < 2:
        return True
    for ratio, low, high in paired_ratios(timed).values():
        if high > ratio * (1 + SETTLED_WITHIN) or low < ratio / (1 + SETTLED_WITHIN):
            return False
    return True
