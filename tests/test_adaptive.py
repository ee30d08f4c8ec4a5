"""Adaptive re-selection: step down after k misses, step up only after hysteresis, bounded load."""

from __future__ import annotations

import time

import pytest

from helpers.adaptive import AdaptiveController, Rung, burn_cpu

LADDER = [Rung("big", 2, 1.0), Rung("mid", 2, 0.5), Rung("small", 1, 0.1)]


def test_steps_down_after_k_consecutive_misses_only() -> None:
    c = AdaptiveController(LADDER, budget_ms=2.0, k=3, hysteresis=10, window=4)
    assert [c.observe(i, ms) for i, ms in enumerate([3, 3, 1, 3, 3])] == [None] * 5  # the streak was broken
    assert c.observe(5, 3.0) == LADDER[1]
    assert [d.index for d in c.decisions] == [5] and "3 requests in a row" in c.decisions[0].reason
    for i in range(6, 9):
        c.observe(i, 3.0)
    assert c.rung == LADDER[2]
    for i in range(9, 20):  # at the bottom: misses cannot step further down
        assert c.observe(i, 9.0) is None


def test_steps_up_only_after_hysteresis_and_when_predicted_to_fit() -> None:
    c = AdaptiveController(LADDER, budget_ms=2.0, k=2, hysteresis=10, headroom=0.7, window=4)
    c.observe(0, 5.0)
    assert c.observe(1, 5.0) == LADDER[1]
    # fast again at once, but no swap back within the hysteresis
    assert all(c.observe(i, 0.2) is None for i in range(2, 11))
    # mid observed at 0.2 ms -> big predicted at 0.2 * 1.0 / 0.5 = 0.4 ms <= 0.7 * 2 ms
    assert c.observe(11, 0.2) == LADDER[0]
    assert c.decisions[-1].index == 11 and "predicted" in c.decisions[-1].reason


def test_no_step_up_when_the_rung_above_would_not_fit() -> None:
    c = AdaptiveController(LADDER, budget_ms=2.0, k=1, hysteresis=0, headroom=0.7, window=3)
    assert c.observe(0, 2.5) == LADDER[1]
    # mid at 1.2 ms -> big predicted at 2.4 ms > 1.4 ms: stay
    assert all(c.observe(i, 1.2) is None for i in range(1, 30))
    assert c.rung == LADDER[1]


@pytest.mark.parametrize("kwargs", [dict(budget_ms=0), dict(budget_ms=float("nan")), dict(budget_ms=1, k=0),
                                    dict(budget_ms=1, headroom=0)])
def test_bad_policy_settings_are_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        AdaptiveController(LADDER, **kwargs)
    with pytest.raises(ValueError, match="at least one rung"):
        AdaptiveController([], budget_ms=1)


def test_burn_cpu_stops_by_itself() -> None:
    start = time.perf_counter()
    workers = burn_cpu(0.5, workers=1)
    assert all(w.wait(timeout=20) == 0 for w in workers)
    assert time.perf_counter() - start < 15
    with pytest.raises(ValueError):
        burn_cpu(600)
