"""The Pareto front over accuracy (higher is better), size and latency (lower is better), and its plot.

No TensorFlow here, and matplotlib only inside the plot: the selection CLI uses :func:`pareto_front`.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from helpers.results_table import BASELINE, ReportError

OBJECTIVES: dict[str, str] = {"accuracy": "max", "size_kb": "min", "latency_ms@1": "min"}


def pareto_front(frame: pd.DataFrame, objectives: Mapping[str, str] | None = None) -> pd.Series:
    """Which rows are Pareto-optimal: no other row is at least as good on every objective and
    strictly better on one.

    ``objectives`` maps a column to ``"max"`` or ``"min"`` (default: accuracy up, size and 1-thread
    latency down). Rows tied on every objective do not dominate each other, so all of them stay on
    the front; a single row is always optimal. A row with a missing (NaN) objective cannot be
    compared: it is not on the front and dominates nothing. Returns a boolean Series named
    ``pareto``.
    """
    objectives = dict(OBJECTIVES if objectives is None else objectives)
    if frame.empty:
        raise ReportError("No variants to compare: the table is empty (is the manifest empty?).")
    if not objectives:
        raise ReportError("Give at least one objective, e.g. {'accuracy': 'max'}.")
    for column, sense in objectives.items():
        if column not in frame.columns:
            raise ReportError(f"Objective {column!r} is not a column of the table; columns are {list(frame.columns)}.")
        if sense not in ("max", "min"):
            raise ReportError(f"Objective {column!r} must be 'max' or 'min', got {sense!r}.")
    # Turn every objective into "smaller is better".
    values = np.column_stack(
        [frame[c].astype(float).to_numpy() * (-1.0 if s == "max" else 1.0) for c, s in objectives.items()]
    )
    complete = ~np.isnan(values).any(axis=1)
    optimal = complete.copy()
    for i in np.flatnonzero(complete):
        others = values[complete]
        dominated = np.all(others <= values[i], axis=1) & np.any(others < values[i], axis=1)
        optimal[i] = not dominated.any()
    return pd.Series(optimal, index=frame.index, name="pareto")


def dominated_by(frame: pd.DataFrame, front: pd.Series, objectives: Mapping[str, str] | None = None) -> pd.Series:
    """For each variant off the front, one Pareto-optimal variant that dominates it ("" on the front).

    Lets a notebook show *why* a variant is off the front, and check the front independently.
    """
    objectives = dict(OBJECTIVES if objectives is None else objectives)
    signs = {c: (-1.0 if s == "max" else 1.0) for c, s in objectives.items()}
    out = {}
    for name in frame.index:
        out[name] = ""
        if front[name]:
            continue
        mine = np.array([frame.at[name, c] * k for c, k in signs.items()], dtype=float)
        for other in front[front].index:
            theirs = np.array([frame.at[other, c] * k for c, k in signs.items()], dtype=float)
            if np.all(theirs <= mine) and np.any(theirs < mine):
                out[name] = other
                break
    return pd.Series(out, name="dominated_by")


def technique_family(name: str, technique: str) -> str:
    """A coarse family for colouring plots (a manifest can hold dozens of technique strings)."""
    n, t = str(name).lower(), str(technique).lower()
    if name == BASELINE:
        return "baseline fp32"
    if "mobile" in n or "mobile" in t:
        return "mobile-scale model"
    if "student" in n or "student" in t or "distill" in t:
        return "distillation / student"
    if "prun" in n or "prun" in t:
        return "pruning (+ quantization)"
    if "clust" in n or "cqat" in n or "clust" in t:
        return "clustering (+ quantization)"
    if "qat" in n or "qat" in t or "aware" in t:
        return "quantization-aware training"
    if n.startswith(("ptq", "lq", "sel")) or "ptq" in t or "quant" in t:
        return "post-training quantization"
    return "other"


def pareto_plot(
    frame: pd.DataFrame,
    front: pd.Series,
    size: str = "size_kb",
    latency: str = "latency_ms@1",
    accuracy: str = "accuracy",
    error_floor_pct: float = 0.1,
) -> Any:
    """Test error against file size and against latency, all on log scales, so lower-left is better
    on both panels; colour = technique family, Pareto-optimal variants drawn as large stars, numbered
    (most accurate first) with the names keyed beside the panels.
    Error is shown as ``max(100 * (1 - accuracy), error_floor_pct)`` so a perfect score stays on a
    log axis. Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt
    import matplotlib.ticker as mticker
    import seaborn as sns

    data = frame.assign(
        pareto=front.map({True: "Pareto-optimal", False: "dominated"}),
        family=[technique_family(n, t) for n, t in zip(frame.index, frame["technique"])],
        error=np.maximum(100 * (1 - frame[accuracy].astype(float)), error_floor_pct),
    ).reset_index()
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), sharey=True)
    panels = ((axes[0], size, "file size (KB)"), (axes[1], latency, "median latency, 1 thread (ms)"))
    plain = mticker.FuncFormatter(lambda v, _: f"{v:g}")
    ranked = data[data.pareto == "Pareto-optimal"].sort_values(["error", size])
    for ax, x, label in panels:
        sns.scatterplot(
            data=data, x=x, y="error", hue="family", style="pareto", size="pareto",
            sizes={"Pareto-optimal": 220, "dominated": 50}, markers={"Pareto-optimal": "*", "dominated": "o"},
            style_order=["Pareto-optimal", "dominated"], ax=ax, legend=ax is axes[0], alpha=0.85,
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        values = data[x].astype(float)
        narrow = bool(values.min() > 0 and values.max() / values.min() < 20)
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain if narrow else mticker.NullFormatter())
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
        ax.tick_params(which="minor", labelsize=7)
        ax.set_xlabel(f"{label}, log scale")
        for number, (_, row) in enumerate(ranked.iterrows(), 1):  # numbers, keyed at the right: names would collide
            ax.annotate(str(number), (row[x], row["error"]), xytext=(5, 4), textcoords="offset points",
                        fontsize=9, fontweight="bold")
    axes[0].set_ylabel("test error (%, log scale): lower is better")
    handles, labels = axes[0].get_legend_handles_labels()
    axes[0].get_legend().remove()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    key = "\n".join(f"{k}  {name}" for k, name in enumerate(ranked["name"], 1))
    fig.text(0.83, 0.55, "Pareto-optimal\n(most accurate first)\n\n" + key, fontsize=8, va="center", family="monospace")
    fig.suptitle("Every variant: error × size × latency (stars: Pareto-optimal on all three; lower-left is better)")
    fig.tight_layout(rect=(0, 0.16, 0.82, 1))
    return fig

