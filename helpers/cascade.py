"""A confidence cascade: a small variant answers first, uncertain inputs go on to a large one.

Each input is classified by the small model; where its confidence (the top-1 probability, or the
margin between the top two) is below ``threshold``, the large model's answer replaces it. The
average cost is the small model's plus the escalation rate times the large model's, and the
accuracy approaches the large model's when the small model's confidence ranks its own mistakes
well. Nothing here imports TensorFlow: this is app-side code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

import numpy as np
import pandas as pd

from helpers.litert_runner import LiteRTModel

Score = Literal["top1", "margin"]
SCORES: tuple[str, ...] = ("top1", "margin")


def confidence(logits: np.ndarray, score: Score = "top1") -> np.ndarray:
    """Per-row confidence from logits: the softmax top-1 probability, or top-1 minus top-2."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}.")
    z = np.asarray(logits, dtype=np.float64)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    top2 = np.sort(p, axis=-1)[:, -2:]
    return top2[:, 1] if score == "top1" else top2[:, 1] - top2[:, 0]


def cascade_predictions(small_logits: np.ndarray, large_logits: np.ndarray, threshold: float,
                        score: Score = "top1") -> tuple[np.ndarray, np.ndarray]:
    """(predictions, escalated mask) of a cascade, from both models' logits on the same inputs."""
    escalated = confidence(small_logits, score) < threshold
    predictions = np.where(escalated, np.argmax(large_logits, -1), np.argmax(small_logits, -1))
    return predictions, escalated


def sweep(small_logits: np.ndarray, large_logits: np.ndarray, y: np.ndarray, thresholds: Iterable[float],
          score: Score = "top1") -> pd.DataFrame:
    """Accuracy and escalation rate of the cascade at each threshold, from cached logits (no timing)."""
    rows = []
    for t in thresholds:
        pred, esc = cascade_predictions(small_logits, large_logits, float(t), score)
        rows.append({"threshold": float(t), "accuracy": float(np.mean(pred == y)),
                     "escalation_rate": float(np.mean(esc))})
    return pd.DataFrame(rows)


class Cascade:
    """Serve requests with a small model, escalating uncertain inputs to a large one.

    Both interpreters are loaded once. :meth:`predict` answers a batch: the small model sees all of
    it, the large model only the escalated rows (one call, the batch resized to their number).
    """

    def __init__(self, small: Path | LiteRTModel, large: Path | LiteRTModel, threshold: float,
                 score: Score = "top1", num_threads: int = 1) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}.")
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}.")
        self.small = small if isinstance(small, LiteRTModel) else LiteRTModel(Path(small), num_threads=num_threads)
        self.large = large if isinstance(large, LiteRTModel) else LiteRTModel(Path(large), num_threads=num_threads)
        self.threshold, self.score = float(threshold), score

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(predicted classes, escalated mask) for the batch ``x``."""
        small_logits = self.small.predict(x)
        escalated = confidence(small_logits, self.score) < self.threshold
        predictions = np.argmax(small_logits, -1)
        if escalated.any():
            predictions[escalated] = np.argmax(self.large.predict(np.asarray(x)[escalated]), -1)
        return predictions, escalated


@dataclass(frozen=True)
class RequestTiming:
    """Per-request wall time of serving ``x`` one request at a time: mean, p50 and p95 (ms)."""

    mean_ms: float
    p50_ms: float
    p95_ms: float
    requests: int

    def as_dict(self) -> dict[str, float]:
        return {"mean_ms": self.mean_ms, "p50_ms": self.p50_ms, "p95_ms": self.p95_ms, "requests": self.requests}


def time_requests(answer, x: np.ndarray, batch: int = 1, repeats: int = 3, warmup: int = 20) -> RequestTiming:
    """Time ``answer(x[i:i+batch])`` over every request of ``x``, ``repeats`` times after warm-up."""
    if batch < 1 or len(x) < batch:
        raise ValueError(f"batch must be in [1, {len(x)}], got {batch}.")
    starts = range(0, len(x) - batch + 1, batch)
    for i in list(starts)[:warmup]:
        answer(x[i:i + batch])
    times = []
    for _ in range(repeats):
        for i in starts:
            t0 = time.perf_counter_ns()
            answer(x[i:i + batch])
            times.append((time.perf_counter_ns() - t0) / 1e6)
    t = np.asarray(times)
    return RequestTiming(round(float(t.mean()), 5), round(float(np.median(t)), 5),
                         round(float(np.percentile(t, 95)), 5), len(t))
