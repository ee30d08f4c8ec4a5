"""Tables and plots for run-time variant selection (notebook 07): per-profile choices, the Pareto
plot of accuracy against latency, and the hot-swap timeline.

Kept apart from :mod:`helpers.selection` so the selector CLI never imports matplotlib.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from helpers.selection import (
    KB, Constraints, DeviceProfile, NoVariantFits, Selection, latency_at, measured_threads, pareto_front,
    select_variant,
)


def profile_table(
    variants: Sequence[dict[str, Any]],
    profiles: Iterable[DeviceProfile],
    objective: str | None = None,
    fallback: str = "refuse",
) -> pd.DataFrame:
    """One row per device profile: the variant chosen and its measured size, accuracy, latency at the
    profile's thread count and peak memory; or the refusal and the constraint that caused it.
    ``objective=None`` uses each profile's own objective."""
    rows = []
    for p in profiles:
        goal = objective or p.objective
        row: dict[str, Any] = {"profile": p.name, "threads": p.threads, "objective": goal}
        try:
            sel = select_variant(variants, p.constraints(), goal, fallback)  # type: ignore[arg-type]
        except NoVariantFits as exc:
            row.update({"chosen": "(refused)", "ruled out by": exc.constraint})
        else:
            v = sel.variant
            mem = v.get("peak_memory_bytes")
            row.update({
                "chosen": v["name"] + (" (fallback)" if sel.fallback else ""),
                "size_kb": round(v["size_bytes"] / KB, 1),
                "accuracy": v["accuracy"],
                "latency_ms": sel.latency_ms,
                "measured at threads": measured_threads(v, p.threads),
                "peak_memory_kb": None if mem is None else round(mem / KB),
                "candidates": len(sel.candidates),
            })
        rows.append(row)
    table = pd.DataFrame(rows).set_index("profile")
    for col in ("candidates", "measured at threads"):
        if col in table:
            table[col] = table[col].astype("Int64")
    return table


def pareto_plot(
    variants: Sequence[dict[str, Any]],
    constraints: Constraints,
    selection: Selection | None,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Accuracy against latency at ``constraints.threads``; point size = file size; the Pareto front
    as a line; variants breaking a constraint faded; the chosen variant ringed in red."""
    threads = constraints.threads
    frame = pd.DataFrame(
        [{"name": v["name"], "latency_ms": latency_at(v, threads), "accuracy": v["accuracy"],
          "size_kb": v["size_bytes"] / KB,
          "limits": "met" if selection is not None and v["name"] in selection.candidates else "broken"}
         for v in variants]
    ).dropna(subset=["latency_ms"])
    if ax is None:
        _, ax = plt.subplots(figsize=(8.5, 4.2))
    sns.scatterplot(data=frame, x="latency_ms", y="accuracy", size="size_kb", sizes=(30, 300), hue="limits",
                    hue_order=["met", "broken"], palette={"met": "tab:blue", "broken": "lightgray"}, ax=ax, legend="brief")
    front = frame[frame["name"].isin(pareto_front(variants, threads))].sort_values("latency_ms")
    ax.plot(front["latency_ms"], front["accuracy"], "--", color="tab:blue", lw=1, alpha=0.6, label="Pareto front")
    for k, (_, r) in enumerate(frame.sort_values(["latency_ms", "name"]).iterrows()):
        ax.annotate(r["name"], (r["latency_ms"], r["accuracy"]), fontsize=7, xytext=(5, 4 if k % 2 == 0 else -10),
                    textcoords="offset points")  # alternate above / below so neighbours stay readable
    if selection is not None:
        chosen = frame[frame["name"] == selection.name]
        ax.scatter(chosen["latency_ms"], chosen["accuracy"], s=600, facecolors="none", edgecolors="red", lw=2,
                   label=f"chosen: {selection.name}" + (" (fallback)" if selection.fallback else ""))
    if constraints.max_latency_ms is not None:
        ax.axvline(constraints.max_latency_ms, color="gray", ls=":", lw=1)
    if constraints.min_accuracy is not None:
        ax.axhline(constraints.min_accuracy, color="gray", ls=":", lw=1)
    ax.set_xlabel(f"median latency, ms ({threads} thread{'s' if threads > 1 else ''}, this machine)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title or "Variants: accuracy vs latency (point size = file size)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return ax


def timeline_plot(log: pd.DataFrame, phases: pd.DataFrame, swaps: pd.DataFrame, ax: Any = None) -> Any:
    """Hot-swap timeline: each request's latency, coloured by the variant that served it, conditions
    shaded, and a vertical line where each swap went live.

    ``log`` has columns index, variant, latency_ms; ``phases`` has condition, start, stop;
    ``swaps`` has live_at, new.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3.8))
    shades = plt.cm.Pastel2(np.linspace(0, 1, max(len(phases), 2)))
    for (_, ph), shade in zip(phases.iterrows(), shades):
        ax.axvspan(ph["start"], ph["stop"], color=shade, alpha=0.5, lw=0)
        ax.text((ph["start"] + ph["stop"]) / 2, 1.0, ph["condition"], transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=8)
    sns.scatterplot(data=log, x="index", y="latency_ms", hue="variant", s=10, linewidth=0, ax=ax)
    for _, s in swaps.iterrows():
        ax.axvline(s["live_at"], color="black", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xlabel("request")
    ax.set_ylabel("latency, ms (log)")
    ax.legend(fontsize=7, title="served by", title_fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax
