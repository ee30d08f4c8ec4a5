"""Comparing the latency of several ``.tflite`` models fairly on a shared machine: one table from
interleaved rounds (:func:`helpers.litert_runner.interleaved_latency`), and a verdict that calls a
difference only when it is larger than the run's own noise.

No TensorFlow here: this runs on LiteRT alone.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from helpers.litert_runner import ModelSource, interleaved_latency, paired_speedup


def compare_latency(
    sources: Mapping[str, ModelSource],
    sample: np.ndarray,
    num_threads: int = 1,
    rounds: int = 3,
    runs: int = 200,
    warmup: int = 20,
    reference: str | None = None,
    budget_ms: float | None = None,
    skip_unloadable: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """Median single-sample ``invoke()`` latency of several models, timed in ``rounds`` interleaved
    rounds (a new random order each round) so that a burst of load hits all of them alike.

    One row per model (index ``model``, in the order given): ``median_ms`` (median of the round
    medians), ``round_min_ms`` / ``round_max_ms`` (the spread across rounds), ``threads``,
    ``vs_first`` (``median_ms`` over the first model's) and ``speedup`` (per round, ``reference``
    time over this model's time, then the median over rounds: > 1 is faster; ``reference`` defaults
    to the first model). ``budget_ms`` caps the timed calls per round for slow models;
    ``skip_unloadable`` leaves out a model that cannot be loaded or fed ``sample`` instead of raising.
    """
    if not isinstance(sources, Mapping) or not sources:
        raise ValueError("sources must be a non-empty mapping {label: path or bytes}.")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}.")
    if reference is not None and reference not in sources:
        raise ValueError(f"reference {reference!r} is not one of the models {list(sources)}.")
    per_round = interleaved_latency(
        dict(sources), sample, num_threads, rounds=rounds, runs=runs, warmup=warmup, seed=seed,
        budget_ms=budget_ms, skip_unloadable=skip_unloadable,
    )
    if per_round.columns.empty:
        raise ValueError("none of the models could be loaded and fed the sample; check the files and the sample's shape.")
    frame = pd.DataFrame(
        {"median_ms": per_round.median(), "round_min_ms": per_round.min(), "round_max_ms": per_round.max()}
    ).rename_axis("model")
    frame["threads"] = num_threads
    frame["vs_first"] = frame["median_ms"] / frame["median_ms"].iloc[0]
    ref = reference if reference in per_round.columns else per_round.columns[0]
    frame["speedup"] = paired_speedup(per_round, ref)
    return frame


def latency_verdict(table: pd.DataFrame, reference: str, candidate: str, margin: float = 0.15) -> tuple[float, str]:
    """Speed of ``candidate`` relative to ``reference`` from a :func:`compare_latency` table, and a
    verdict that calls a difference only when it is larger than ``margin`` *and* the two models'
    round ranges do not overlap (on a shared machine, smaller differences are noise)."""
    for label in (reference, candidate):
        if label not in table.index:
            raise ValueError(f"{label!r} is not in the latency table ({list(table.index)}).")
    needed = {"median_ms", "round_min_ms", "round_max_ms"} - set(table.columns)
    if needed:
        raise ValueError(f"the latency table lacks {sorted(needed)}; build it with compare_latency.")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}.")
    ref, cand = table.loc[reference], table.loc[candidate]
    speedup = float(ref["median_ms"] / cand["median_ms"])
    if speedup > 1 + margin and cand["round_max_ms"] < ref["round_min_ms"]:
        return speedup, "faster"
    if speedup < 1 / (1 + margin) and cand["round_min_ms"] > ref["round_max_ms"]:
        return speedup, "slower"
    return speedup, f"no clear difference (within {margin:.0%} or within this run's spread)"
