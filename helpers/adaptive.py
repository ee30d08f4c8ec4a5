"""Adaptive re-selection under load: a serving loop that watches its own latency against a budget.

The policy (:class:`AdaptiveController`) is separate from the serving mechanics, so an app can put
it in front of any hot-swapping server:

- a *ladder* of rungs ``(variant, threads)``, ordered from the preferred one (most accurate) to the
  fastest, each with its calibrated median latency on this device;
- after ``k`` consecutive requests over budget it steps **down** one rung (a new interpreter, or a
  new thread count, which also needs a new interpreter: XNNPACK fixes its thread pool when the
  interpreter is built);
- it steps **up** again only when ``hysteresis`` requests have passed since the last swap and the
  rung above is predicted to fit: the recent median latency times the calibrated ratio between the
  two rungs, under ``headroom`` x budget. No flapping back and forth on one slow request.

:func:`burn_cpu` injects load for the experiments: background processes that spin for a fixed time,
then exit by themselves. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Rung:
    """One step of the ladder: a variant at a thread count, and its calibrated median latency."""

    variant: str
    threads: int
    calibrated_ms: float


@dataclass(frozen=True)
class Decision:
    """A swap the controller asked for, at request ``index``, and why."""

    index: int
    old: Rung
    new: Rung
    reason: str


class AdaptiveController:
    """Decide when to swap rung from observed latencies (see the module docstring)."""

    def __init__(self, ladder: Sequence[Rung], budget_ms: float, k: int = 3, hysteresis: int = 100,
                 headroom: float = 0.7, window: int = 20) -> None:
        if not ladder:
            raise ValueError("the ladder needs at least one rung.")
        if not np.isfinite(budget_ms) or budget_ms <= 0:
            raise ValueError(f"budget_ms must be a positive finite number, got {budget_ms!r}.")
        if k < 1 or hysteresis < 0 or window < 1 or not 0 < headroom <= 1:
            raise ValueError("need k >= 1, hysteresis >= 0, window >= 1 and 0 < headroom <= 1.")
        self.ladder, self.budget_ms = list(ladder), float(budget_ms)
        self.k, self.hysteresis, self.headroom = k, hysteresis, headroom
        self.position = 0
        self.misses = 0
        self.last_swap = -(10**9)
        self.recent: deque[float] = deque(maxlen=window)
        self.decisions: list[Decision] = []

    @property
    def rung(self) -> Rung:
        return self.ladder[self.position]

    def observe(self, index: int, latency_ms: float) -> Rung | None:
        """Record request ``index``'s latency; return the rung to swap to, or None to stay."""
        self.recent.append(latency_ms)
        self.misses = self.misses + 1 if latency_ms > self.budget_ms else 0
        old = self.rung
        if self.misses >= self.k and self.position + 1 < len(self.ladder):
            self._move(index, +1, f"{self.misses} requests in a row over {self.budget_ms:g} ms")
        elif (self.position > 0 and index - self.last_swap >= self.hysteresis
              and len(self.recent) == self.recent.maxlen):
            above = self.ladder[self.position - 1]
            predicted = float(np.median(self.recent)) * above.calibrated_ms / old.calibrated_ms
            if predicted <= self.headroom * self.budget_ms:
                self._move(index, -1, f"{above.variant}@{above.threads} predicted {predicted:.3f} ms "
                                      f"<= {self.headroom:g} x budget")
        return None if self.rung == old else self.rung

    def _move(self, index: int, step: int, reason: str) -> None:
        old = self.rung
        self.position += step
        self.decisions.append(Decision(index, old, self.rung, reason))
        self.misses, self.last_swap = 0, index
        self.recent.clear()


def burn_cpu(seconds: float, workers: int = 2) -> list[subprocess.Popen]:
    """Start ``workers`` processes that each keep one core busy for ``seconds``, then exit.

    Bounded by construction (each child stops itself); the caller may also ``wait()`` on them.
    """
    if not 0 < seconds <= 60 or not 1 <= workers <= 16:
        raise ValueError("burn between 0 and 60 s on 1 to 16 workers.")
    spin = f"import time\nend = time.perf_counter() + {float(seconds)!r}\nwhile time.perf_counter() < end: pass\n"
    return [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(workers)]
