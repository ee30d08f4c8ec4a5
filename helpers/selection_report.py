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


FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("baseline", ("baseline",)),
    ("mobile-scale", ("mobile", "pruned_mobile")),
    ("post-training quantization", ("ptq", "lq", "sel")),
    ("quantization-aware training", ("qat",)),
    ("pruning", ("pruned",)),
    ("clustering", ("clustered", "cqat", "pcqat")),
    ("distillation", ("student",)),
)


def family(name: str) -> str:
    """The technique family of a variant, from its name's prefix (``"other"`` if none matches)."""
    for label, prefixes in FAMILIES:
        if any(name == p or name.startswith(p + "_") for p in prefixes):
            return label
    return "other"


def pareto_plot(
    variants: Sequence[dict[str, Any]],
    constraints: Constraints,
    selection: Selection | None,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Accuracy against latency at ``constraints.threads`` on a log latency axis, one colour per
    technique family, point size = file size, variants breaking a constraint faded. Only the
    Pareto-optimal variants are labelled, with numbers explained in a key beside the plot; the
    chosen variant is ringed in red."""
    threads = constraints.threads
    frame = pd.DataFrame(
        [{"name": v["name"], "latency_ms": latency_at(v, threads), "accuracy": float(v["accuracy"]),
          "size_kb": v["size_bytes"] / KB, "family": family(v["name"]),
          "met": selection is not None and v["name"] in selection.candidates}
         for v in variants]
    ).dropna(subset=["latency_ms"])
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4.4))
    families = [f for f, _ in FAMILIES if f in set(frame["family"])] + (["other"] if "other" in set(frame["family"]) else [])
    colours = dict(zip(families, sns.color_palette("tab10", len(families))))
    sizes = 25 + 275 * np.sqrt(frame["size_kb"] / max(frame["size_kb"].max(), 1e-9))
    for fam in families:
        for met, alpha in ((True, 0.9), (False, 0.25)):
            part = frame[(frame["family"] == fam) & (frame["met"] == met)]
            if len(part):
                ax.scatter(part["latency_ms"], part["accuracy"], s=sizes[part.index], color=colours[fam], alpha=alpha,
                           edgecolors="white", linewidths=0.5, label=fam if met or not frame[frame["family"] == fam]["met"].any() else None)
    front = frame[frame["name"].isin(pareto_front(variants, threads))].sort_values(["latency_ms", "name"])
    ax.plot(front["latency_ms"], front["accuracy"], "--", color="black", lw=0.8, alpha=0.6, label="Pareto front")
    key = []
    for k, (_, r) in enumerate(front.iterrows(), 1):
        ax.annotate(str(k), (r["latency_ms"], r["accuracy"]), fontsize=8, fontweight="bold", xytext=(4, 4),
                    textcoords="offset points")
        key.append(f"{k}  {r['name']}  ({r['accuracy']:.4f}, {r['latency_ms']:.4g} ms)")
    if selection is not None:
        chosen = frame[frame["name"] == selection.name]
        ax.scatter(chosen["latency_ms"], chosen["accuracy"], s=500, facecolors="none", edgecolors="red", lw=2,
                   label=f"chosen: {selection.name}" + (" (fallback)" if selection.fallback else ""))
    if constraints.max_latency_ms is not None:
        ax.axvline(constraints.max_latency_ms, color="gray", ls=":", lw=1)
    if constraints.min_accuracy is not None:
        ax.axhline(constraints.min_accuracy, color="gray", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel(f"median latency, ms, log scale ({threads} thread{'s' if threads > 1 else ''}, this machine)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title or "Variants: accuracy vs latency (point size = file size, faded = breaks a limit)", fontsize=10)
    legend = ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, markerscale=0.6)
    for handle in legend.legend_handles:
        if hasattr(handle, "set_sizes"):
            handle.set_sizes([30])
            handle.set_alpha(1.0)  # the key shows each family's colour in full, even when its points are faded
    ax.text(1.02, 0.0, "Pareto front (accuracy, latency):\n" + "\n".join(key), transform=ax.transAxes, fontsize=7,
            va="bottom", ha="left", family="monospace")
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
