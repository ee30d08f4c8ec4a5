"""The results dashboard's machinery (notebook 08): every variant in one table, the Pareto front over
accuracy (higher is better), size and latency (lower is better), published claims held against the
manifest's measurements with a computed verdict, a cross-check of the workbook's latency harness
against the benchmark tool shipped in the ``ai-edge-litert`` wheel, and a report that opens without
Jupyter (Markdown and HTML, plots as PNG beside them).

Nothing here hard-codes a result: tables and verdicts are computed from the manifest and from
measurements passed in as arguments.
"""

from __future__ import annotations

import fnmatch
import html
import importlib.util
import json
import math
import string
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from helpers.paths import atomic_write_text


class ReportError(ValueError):
    """Input the dashboard cannot work with: an empty manifest, a missing column, a failed tool run."""


# --------------------------------------------------------------------------------------------------
# One table for every variant
# --------------------------------------------------------------------------------------------------

BASELINE = "baseline_fp32"
TABLE_COLUMNS = ["technique", "size_kb", "gzip_kb", "params", "sparsity", "accuracy", "latency_ms@1", "latency_ms@2"]


def _peak_memory_mb(value: Any) -> float:
    """``peak_memory_bytes`` as MB: a number, or a mapping (e.g. per thread count) -> its largest value."""
    if isinstance(value, Mapping):
        numbers = [v for v in value.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return max(numbers) / 2**20 if numbers else math.nan
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) / 2**20
    return math.nan


def variants_table(doc: Mapping[str, Any]) -> pd.DataFrame:
    """Every variant of a validated manifest in one table, indexed by name.

    Columns: technique, size and gzipped size in KB, params, sparsity, accuracy, median latency (ms)
    at 1 and 2 threads (NaN where a variant was not measured at that count) and ``peak_memory_mb``
    when at least one entry carries ``peak_memory_bytes``. Raises :class:`ReportError` for a manifest
    without variants.
    """
    from helpers.registry import validate_manifest

    validate_manifest(doc)
    if not doc["variants"]:
        raise ReportError("The manifest lists no variants; run notebook 01 (or `make run`) to register baseline_fp32.")
    rows = []
    for v in doc["variants"]:
        row: dict[str, Any] = {
            "name": v["name"],
            "technique": v["technique"],
            "size_kb": v["size_bytes"] / 1024,
            "gzip_kb": v["gzip_bytes"] / 1024,
            "params": v["params"],
            "sparsity": v["sparsity"],
            "accuracy": float(v["accuracy"]),
        }
        for threads in ("1", "2"):
            row[f"latency_ms@{threads}"] = float(v["latency_ms"].get(threads, math.nan))
        if "peak_memory_bytes" in v:
            row["peak_memory_mb"] = _peak_memory_mb(v["peak_memory_bytes"])
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("name")
    frame["params"] = frame["params"].astype("Int64")
    frame["sparsity"] = frame["sparsity"].astype(float)
    columns = TABLE_COLUMNS + (["peak_memory_mb"] if "peak_memory_mb" in frame else [])
    return frame[columns]


# --------------------------------------------------------------------------------------------------
# Pareto front
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# Claims vs measured
# --------------------------------------------------------------------------------------------------

KINDS = ("about", "at_least", "range", "up_to")
METRICS = ("size_ratio", "gzip_ratio", "speedup@1", "acc_gain_pp", "extra")
VERDICTS = ("agrees", "exceeds", "within the 'up to' bound", "falls short", "not measured")


@dataclass(frozen=True)
class Claim:
    """One published figure and how to find the variant(s) that test it.

    ``metric``: ``size_ratio`` / ``gzip_ratio`` (baseline bytes ÷ variant bytes), ``speedup@1``
    (baseline latency ÷ variant latency at 1 thread), ``acc_gain_pp`` (accuracy of the best
    matching variant minus the best ``reference`` variant, in percentage points) or ``extra`` (a
    value the notebook measured itself, passed under ``key``). ``kind`` says how the figure is
    meant: ``about`` (≈ low), ``at_least`` (≥ low), ``range`` (low–high), ``up_to`` (≤ low).
    Variants match by glob patterns on the lower-cased name or technique, minus ``exclude`` (name
    globs). Among several matches, the best value among those within ``max_drop_pp`` percentage
    points of the baseline's accuracy is used (the published figures come "with minimal loss of
    accuracy"); only if none is that accurate, the best overall. The variant is named either way.
    """

    key: str
    technique: str
    claim: str
    metric: str
    kind: str
    low: float
    source: str
    high: float | None = None
    names: tuple[str, ...] = ()
    techniques: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    reference_names: tuple[str, ...] = ()
    reference_techniques: tuple[str, ...] = ()
    tol: float = 0.15
    abs_tol: float = 0.0
    max_drop_pp: float = 1.0
    why: str = ""
    why_exceeds: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ReportError(f"claim {self.key!r}: kind must be one of {KINDS}, got {self.kind!r}.")
        if self.metric not in METRICS:
            raise ReportError(f"claim {self.key!r}: metric must be one of {METRICS}, got {self.metric!r}.")
        if self.kind == "range" and (self.high is None or self.high < self.low):
            raise ReportError(f"claim {self.key!r}: a range needs high >= low.")


_WHY_SPEED = (
    "Here one invoke of the fp32 baseline takes {base_ms:.3f} ms at 1 thread, so fixed per-invoke costs "
    "(the Python call into the runtime, operator dispatch, delegate and thread-pool bookkeeping) are a large "
    "share of it; the published speedups come from larger models on ARM phone cores, where arithmetic "
    "dominates. On this x86 CPU XNNPACK's float32 kernels are already vectorised, leaving int8 less to win."
)
_WHY_DYNAMIC = _WHY_SPEED + (
    " Dynamic-range models also quantize their activations on every invoke, which costs time a tiny model "
    "cannot earn back."
)
_WHY_SIZE = (
    "A .tflite file also holds the graph, int32 biases and quantization parameters that do not shrink; "
    "how close the ratio gets to the ideal depends on the share of large weight tensors."
)
_WHY_GZIP = (
    "Only the compressed file shrinks (zeros or repeated values compress well), so the ratio depends on the "
    "sparsity or cluster count actually reached and on gzip; the published figure is for other models "
    "(MNIST / ImageNet) and settings."
)
_WHY_DISTILL = (
    "On this test split one image is {pp_per_image:.2f} pp; the 8x8 digits are easy enough that a small "
    "student trained alone is already near the teacher, leaving distillation little to add, and a gain of a "
    "few images is within seed-to-seed noise (notebook 06 shows the spread over seeds)."
)
_EXCEEDS_SIZE = (
    "This baseline keeps most of its parameters in one large dense layer, so almost the whole file is weights "
    "that the technique shrinks; the published figure is for models where more of the file (graph, small "
    "layers, biases, metadata) does not shrink, or for other settings (sparsity, cluster count)."
)
_EXCEEDS_SPEED = (
    "A speedup above the published one on a model whose fp32 invoke takes {base_ms:.3f} ms means the two graphs "
    "differ in fixed per-invoke work on this CPU, not only in arithmetic; treat it as specific to this machine."
)
_EXCEEDS_DISTILL = (
    "One test image is {pp_per_image:.2f} pp here, so a gain above the Keras example's is a few images; "
    "notebook 06's spread over seeds says whether it is more than noise."
)
_EXCEEDS_XNNPACK = (
    "Without the delegate LiteRT runs its built-in float kernels, which on this x86 CPU are less optimised than "
    "XNNPACK's SIMD kernels for this model's convolutions and large dense layer; the blog's 2.3x is an average "
    "over mobile networks on ARM phones."
)
_WHY_XNNPACK = (
    "The blog's figure is an average over mobile networks on ARM; for a model whose invoke takes "
    "{base_ms:.3f} ms the delegate's per-invoke overhead weighs as much as the faster kernels."
)

# Variants of other techniques that may also carry a PTQ-like technique string (e.g. a pruned model
# quantized with the int8 recipe), or that keep part of the model in float on purpose (selective):
# PTQ claims are tested on plain post-training variants only.
_NOT_PLAIN_PTQ = ("*mobile*", "prun*", "clust*", "*qat*", "student*", "*distill*", "*selective*")

CLAIMS: tuple[Claim, ...] = (
    Claim("dynamic_size", "PTQ dynamic range", "4x smaller", "size_ratio", "about", 4.0,
          "LiteRT docs, Post-training quantization (summary table)", names=("ptq_dynamic*", "ptq_dr*", "*dynamic_range*"),
          techniques=("*dynamic*",), exclude=_NOT_PLAIN_PTQ, why=_WHY_SIZE, why_exceeds=_EXCEEDS_SIZE),
    Claim("dynamic_speed", "PTQ dynamic range", "2–3x faster on CPU", "speedup@1", "range", 2.0,
          "LiteRT docs, Post-training quantization (summary table)", high=3.0, names=("ptq_dynamic*", "ptq_dr*", "*dynamic_range*"),
          techniques=("*dynamic*",), exclude=_NOT_PLAIN_PTQ, why=_WHY_DYNAMIC, why_exceeds=_EXCEEDS_SPEED),
    Claim("int8_size", "PTQ full integer int8", "4x smaller", "size_ratio", "about", 4.0,
          "LiteRT docs, Post-training quantization (summary table)", names=("ptq_int8*", "ptq_full_int8*", "ptq_full_integer*"),
          techniques=("*full*int*", "ptq_int8", "ptq-int8"), exclude=(*_NOT_PLAIN_PTQ, "*16x8*", "*int16*", "*fallback*"),
          why=_WHY_SIZE, why_exceeds=_EXCEEDS_SIZE),
    Claim("int8_speed", "PTQ full integer int8", "3x+ faster", "speedup@1", "at_least", 3.0,
          "LiteRT docs, Post-training quantization (summary table)", names=("ptq_int8*", "ptq_full_int8*", "ptq_full_integer*"),
          techniques=("*full*int*", "ptq_int8", "ptq-int8"), exclude=(*_NOT_PLAIN_PTQ, "*16x8*", "*int16*", "*fallback*"),
          why=_WHY_SPEED, why_exceeds=_EXCEEDS_SPEED),
    Claim("fp16_size", "PTQ float16", "2x smaller", "size_ratio", "about", 2.0,
          "LiteRT docs, Post-training quantization (summary table)", names=("ptq_fp16*", "ptq_float16*"),
          techniques=("*float16*", "*fp16*"), exclude=_NOT_PLAIN_PTQ, why=_WHY_SIZE, why_exceeds=_EXCEEDS_SIZE),
    Claim("int16x8_size", "PTQ 16x8", "almost 3–4x smaller", "size_ratio", "range", 3.0,
          "LiteRT docs, Post-training quantization (16x8 section)", high=4.0, names=("ptq_int16x8*", "ptq_16x8*", "*16x8*"),
          techniques=("*16x8*",), exclude=_NOT_PLAIN_PTQ, why=_WHY_SIZE, why_exceeds=_EXCEEDS_SIZE),
    Claim("qat_size", "Quantization-aware training int8", "4x smaller", "size_ratio", "about", 4.0,
          "TF Model Optimization, Quantization aware training overview (guide/quantization/training.md)", names=("qat_int8*", "qat*"),
          techniques=("qat*", "*quantization-aware*", "*quantization_aware*"),
          exclude=("*mobile*", "*pqat*", "*cqat*", "*pcqat*", "prun*", "clust*", "*selective*"), why=_WHY_SIZE, why_exceeds=_EXCEEDS_SIZE),
    Claim("qat_speed", "Quantization-aware training int8", "typically 1.5–4x faster on CPU", "speedup@1", "range",
          1.5, "TF Model Optimization, Quantization aware training overview (guide/quantization/training.md)", high=4.0, names=("qat_int8*", "qat*"),
          techniques=("qat*", "*quantization-aware*", "*quantization_aware*"),
          exclude=("*mobile*", "*pqat*", "*cqat*", "*pcqat*", "prun*", "clust*", "*selective*"), why=_WHY_SPEED, why_exceeds=_EXCEEDS_SPEED),
    Claim("pruning_gzip", "Pruning (stripped, gzipped)", "3x smaller", "gzip_ratio", "about", 3.0,
          "TF Model Optimization, Pruning in Keras example (pruning_with_keras)", names=("pruned*", "prune_*"),
          techniques=("*prun*",), exclude=("*int8*", "*qat*", "*quant*", "*int16*", "*fp16*", "*float16*", "*mobile*"),
          why=_WHY_GZIP, why_exceeds=_EXCEEDS_SIZE),
    Claim("pruning_quant_gzip", "Pruning + int8 quantization (gzipped)", "about 10x smaller", "gzip_ratio", "about",
          10.0, "TF Model Optimization, Pruning in Keras example (pruning_with_keras)",
          names=("prun*int8*", "prun*quant*", "*pqat*"), techniques=("*prun*int8*", "*prun*quant*", "*pqat*"),
          exclude=("*mobile*", "*pcqat*"), why=_WHY_GZIP, why_exceeds=_EXCEEDS_SIZE),
    Claim("clustering_gzip", "Weight clustering (gzipped)", "up to 5x smaller", "gzip_ratio", "up_to", 5.0,
          "TF Model Optimization, Weight clustering overview (guide/clustering)", names=("clustered*", "cluster_*"),
          techniques=("*cluster*",), exclude=("*int8*", "*cqat*", "*quant*", "*mobile*", "*prun*"), why=_WHY_GZIP, why_exceeds=_EXCEEDS_SIZE),
    Claim("distillation_gain", "Knowledge distillation", "distilled student +0.5 pp over the student alone "
          "(97.6 → 98.1 %)", "acc_gain_pp", "at_least", 0.5, "Keras example, Knowledge Distillation (keras-io examples/vision/knowledge_distillation.py)",
          names=("student_distilled*", "*distill*"), techniques=("*distill*",), exclude=("*int8*", "*quant*"),
          reference_names=("student_scratch*", "student_alone*", "*scratch*"), reference_techniques=("*scratch*",),
          tol=0.0, abs_tol=0.25, why=_WHY_DISTILL, why_exceeds=_EXCEEDS_DISTILL),
    Claim("xnnpack_speed", "XNNPACK delegate (fp32)", "2.3x average speedup", "extra", "about", 2.3,
          "TensorFlow blog, XNNPACK float inference (2020-07)", why=_WHY_XNNPACK, why_exceeds=_EXCEEDS_XNNPACK),
)


def _match(frame: pd.DataFrame, names: Sequence[str], techniques: Sequence[str], exclude: Sequence[str]) -> list[str]:
    """Variants whose lower-cased name matches a ``names`` glob; only when none does, those whose
    technique matches a ``techniques`` glob (a workbook name like ``ptq_int8`` says more about the
    recipe than a free-text technique). ``exclude`` name globs and the baseline never match."""
    by_name, by_technique = [], []
    for name, technique in zip(frame.index, frame["technique"]):
        n, t = str(name).lower(), str(technique).lower()
        if name == BASELINE or any(fnmatch.fnmatch(n, p) for p in exclude):
            continue
        if any(fnmatch.fnmatch(n, p) for p in names):
            by_name.append(name)
        elif any(fnmatch.fnmatch(t, p) for p in techniques):
            by_technique.append(name)
    return by_name or by_technique


def _same_architecture(frame: pd.DataFrame, candidates: list[str]) -> list[str]:
    """Drop candidates whose parameter count is known and differs from the baseline's by > 5 %
    (e.g. a mobile-scale model): a size or speed ratio against baseline_fp32 would be meaningless."""
    base = frame.at[BASELINE, "params"]
    if pd.isna(base):
        return candidates
    keep = []
    for name in candidates:
        p = frame.at[name, "params"]
        if pd.isna(p) or abs(float(p) - float(base)) <= 0.05 * float(base):
            keep.append(name)
    return keep


def claim_variants(frame: pd.DataFrame, claims: Iterable[Claim] = CLAIMS) -> dict[str, list[str]]:
    """The manifest variants each claim would be tested on (``{claim.key: [names]}``)."""
    out = {}
    for c in claims:
        if c.metric in ("extra",):
            out[c.key] = []
            continue
        found = _match(frame, c.names, c.techniques, c.exclude)
        if c.metric != "acc_gain_pp":
            found = _same_architecture(frame, found)
        out[c.key] = found
    return out


def verdict(measured: float | None, claim: Claim) -> str:
    """One of :data:`VERDICTS`, computed from the number and the claim's kind and tolerances."""
    if measured is None or (isinstance(measured, float) and math.isnan(measured)):
        return "not measured"
    lo = claim.low - max(abs(claim.low) * claim.tol, claim.abs_tol)
    top = claim.high if claim.high is not None else claim.low
    hi = top + max(abs(top) * claim.tol, claim.abs_tol)
    if claim.kind == "at_least":
        return "agrees" if measured >= lo else "falls short"
    if claim.kind == "up_to":
        if measured > hi:
            return "exceeds"
        return "agrees" if measured >= lo else "within the 'up to' bound"
    # about / range
    if measured > hi:
        return "exceeds"
    return "agrees" if measured >= lo else "falls short"


def _figure(claim: Claim, unit: str) -> str:
    if claim.kind == "range":
        return f"{claim.low:g}–{claim.high:g}{unit}"
    prefix = {"at_least": "≥ ", "up_to": "≤ ", "about": "≈ "}[claim.kind]
    return f"{prefix}{claim.low:g}{unit}"


class _Fill(string.Formatter):
    """Template filler that shows a missing field as "?" instead of raising."""

    def get_value(self, key: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        return kwargs.get(key, "?") if isinstance(key, str) else super().get_value(key, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> str:
        return "?" if value == "?" else super().format_field(value, format_spec)


def claims_table(
    frame: pd.DataFrame,
    claims: Iterable[Claim] = CLAIMS,
    latency_1t: Mapping[str, float] | None = None,
    extra: Mapping[str, float] | None = None,
    context: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Published claims next to what this workbook measured, with a computed verdict.

    ``frame`` is :func:`variants_table` output and must hold ``baseline_fp32``. ``latency_1t``
    (name → ms) overrides the manifest's 1-thread latencies with values measured in one run, so speed
    ratios compare like with like; ``extra`` (claim key → value) carries numbers the notebook measured
    itself; ``context`` fills the explanation templates (e.g. ``base_ms``, ``pp_per_image``). A claim
    whose variant is absent gets "not measured". The explanation (``why`` or ``why_exceeds`` of the
    claim) is filled in only when the verdict is "falls short" or "exceeds": where this machine disagrees.
    """
    if BASELINE not in frame.index:
        raise ReportError(f"The table has no {BASELINE!r} row; claims are ratios against it. Run notebook 01 first.")
    claims = list(claims)
    latency_1t = dict(latency_1t or {})
    extra = dict(extra or {})
    base = frame.loc[BASELINE]
    matches = claim_variants(frame, claims)

    def lat(name: str) -> float:
        return float(latency_1t.get(name, frame.at[name, "latency_ms@1"]))

    ctx = {"base_ms": lat(BASELINE), **(context or {})}

    rows = []
    for c in claims:
        names = matches[c.key]
        value: float | None = None
        variant = ""
        unit = "x"
        scores: dict[str, float] = {}
        if c.metric == "extra":
            value = extra.get(c.key)
            variant = "baseline_fp32 (XNNPACK off vs on)" if c.key == "xnnpack_speed" else ""
        elif names and c.metric == "size_ratio":
            scores = {n: float(base["size_kb"]) / float(frame.at[n, "size_kb"]) for n in names}
        elif names and c.metric == "gzip_ratio":
            scores = {n: float(base["gzip_kb"]) / float(frame.at[n, "gzip_kb"]) for n in names}
        elif names and c.metric == "speedup@1":
            scores = {n: lat(BASELINE) / lat(n) for n in names}
        elif names and c.metric == "acc_gain_pp":
            unit = " pp"
            refs = _match(frame, c.reference_names, c.reference_techniques, c.exclude)
            if refs:
                ref = max(refs, key=lambda n: frame.at[n, "accuracy"])
                scores = {n: 100 * (frame.at[n, "accuracy"] - frame.at[ref, "accuracy"]) for n in names}
        if c.metric == "acc_gain_pp":
            unit = " pp"
        scores = {n: v for n, v in scores.items() if not math.isnan(v)}  # e.g. a variant never timed
        if c.metric != "extra" and names and scores:
            if c.metric != "acc_gain_pp":
                accurate = {n: v for n, v in scores.items()
                            if 100 * (float(base["accuracy"]) - float(frame.at[n, "accuracy"])) <= c.max_drop_pp}
                scores = accurate or scores
            variant = max(scores, key=scores.get)
            value = float(scores[variant])
            if c.metric == "acc_gain_pp":
                variant = f"{variant} vs {ref}"
        drop = math.nan
        if c.metric in ("size_ratio", "gzip_ratio", "speedup@1") and variant:
            drop = 100 * (float(frame.at[variant, "accuracy"]) - float(base["accuracy"]))
        v = verdict(value, c)
        template = {"falls short": c.why, "exceeds": c.why_exceeds}.get(v, "")
        why = _Fill().format(template, **ctx)
        rows.append({
            "technique": c.technique,
            "published": f"{c.claim} ({_figure(c, unit)})",
            "source": c.source,
            "variant": variant or "—",
            "measured": "not measured" if value is None else f"{value:.2f}{unit}",
            "accuracy vs baseline (pp)": drop,
            "value": math.nan if value is None else value,
            "verdict": v,
            "why (where this machine disagrees)": why,
        })
    return pd.DataFrame(rows).set_index("technique")


def claims_plot(claims: pd.DataFrame, claim_defs: Iterable[Claim] = CLAIMS) -> Any:
    """Measured ratio (bar, coloured by verdict) against the published figure (black tick; a grey band
    for a range) for every measured ratio claim (``x`` units; the accuracy-gain row is left to the table).
    ``claims`` is :func:`claims_table` output built from the same ``claim_defs``. Returns the Figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    defs = list(claim_defs)
    if len(defs) != len(claims):
        raise ReportError("claims and claim_defs differ in length; build the table from the same claims.")
    rows = []
    for (technique, row), c in zip(claims.iterrows(), defs):
        if c.metric == "acc_gain_pp" or pd.isna(row["value"]):
            continue
        aspect = "speed" if c.metric in ("speedup@1", "extra") else "size"
        rows.append({"claim": f"{technique}: {aspect}", "measured": row["value"], "verdict": row["verdict"],
                     "low": c.low, "high": c.high if c.high is not None else c.low})
    with sns.axes_style("whitegrid"):
        fig, ax = plt.subplots(figsize=(8, 0.45 * max(len(rows), 2) + 1.2))
    if not rows:
        ax.text(0.5, 0.5, "no published claim has a measured variant yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    data = pd.DataFrame(rows)
    palette = {"agrees": "#4c9f70", "exceeds": "#3b75af", "within the 'up to' bound": "#9bbf85", "falls short": "#d1603d"}
    sns.barplot(data=data, y="claim", x="measured", hue="verdict", palette=palette, dodge=False, ax=ax)
    for i, r in data.iterrows():
        if r["high"] > r["low"]:
            ax.fill_betweenx([i - 0.4, i + 0.4], r["low"], r["high"], color="grey", alpha=0.3, lw=0)
        ax.plot([r["low"], r["low"]], [i - 0.4, i + 0.4], color="black", lw=2)
    ax.set_xlabel("measured ratio vs baseline_fp32 (x); black tick / grey band: published figure")
    ax.set_ylabel("")
    ax.legend(title="verdict", fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


def remeasure_latency(
    paths: Mapping[str, Path],
    sample: np.ndarray,
    num_threads: int = 1,
    rounds: int = 3,
    runs: int = 100,
    warmup: int = 20,
    budget_ms: float = 150.0,
) -> dict[str, float]:
    """Median 1-sample latency (ms) of each model, measured in one run and interleaved: ``rounds``
    passes over all models, then the median of the per-round medians, so a burst of load on the
    machine hits every model alike.

    Each round times ``runs`` invokes, fewer for a slow model (about ``budget_ms`` of invokes per
    round, at least 10) so a mobile-scale variant cannot blow the notebook's time budget. A model
    that cannot be loaded or fed ``sample`` (:class:`~helpers.litert_runner.TFLiteModelError`) is
    left out of the result rather than stopping the dashboard.
    """
    from helpers.litert_runner import interleaved_latency

    if not paths:
        raise ReportError("No models to time: pass at least one {name: path}.")
    per_round = interleaved_latency(
        {k: Path(v) for k, v in paths.items()}, sample, num_threads, rounds=rounds, runs=runs, warmup=warmup,
        budget_ms=budget_ms, skip_unloadable=True,
    )
    return {name: float(per_round[name].median()) for name in per_round.columns}


# --------------------------------------------------------------------------------------------------
# Cross-check against the wheel's benchmark tool
# --------------------------------------------------------------------------------------------------

TOOL_RESOLUTION_MS = 0.01  # the tool prints and stores latencies rounded to 2 decimals of a ms


def benchmark_tool_path() -> Path:
    """``ai_edge_litert/tools/benchmark_litert_model.py`` of the installed wheel."""
    spec = importlib.util.find_spec("ai_edge_litert")
    if spec is None or not spec.submodule_search_locations:
        raise ReportError("ai_edge_litert is not installed; run `make install` (ai-edge-litert==2.3.0).")
    tool = Path(list(spec.submodule_search_locations)[0]) / "tools" / "benchmark_litert_model.py"
    if not tool.is_file():
        raise ReportError("This ai-edge-litert wheel ships no tools/benchmark_litert_model.py; install ai-edge-litert==2.3.0.")
    return tool


@dataclass(frozen=True)
class ToolRun:
    """What ``benchmark_litert_model.py`` reported (its ``--result_json``), in ms.

    ``mean_ms_precise`` is the tool's mean recomputed from its throughput figure (input bytes ÷
    mean time), which carries more digits than its 2-decimal ``avg_ms`` for a model this fast.
    """

    median_ms: float
    mean_ms: float
    mean_ms_precise: float | None
    p5_ms: float
    p95_ms: float
    num_runs: int
    num_threads: int
    fully_accelerated: bool
    accelerators: tuple[str, ...]
    command: str
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("raw")
        return d


def _input_bytes(model: Path) -> int:
    from helpers.litert_runner import LiteRTModel

    spec = LiteRTModel(model).input_spec
    return int(np.prod(spec.shape)) * np.dtype(spec.dtype).itemsize


def run_benchmark_tool(
    model: Path,
    result_json: Path,
    num_threads: int = 1,
    num_runs: int = 500,
    warmup_runs: int = 50,
    python: str = sys.executable,
    tool: Path | None = None,
    timeout: float = 120.0,
) -> ToolRun:
    """Run the wheel's benchmark tool as a subprocess on ``model`` (CPU, ``num_threads``) and parse the
    JSON it writes to ``result_json``. One :class:`ReportError` if the model is missing or the tool fails."""
    model, result_json = Path(model), Path(result_json)
    if not model.is_file():
        raise ReportError(f"No model file {model.name!r} to benchmark; run the notebook that writes it.")
    if num_threads < 1 or num_runs < 2 or warmup_runs < 0:
        raise ReportError(f"need num_threads >= 1, num_runs >= 2, warmup_runs >= 0 (got {num_threads}, {num_runs}, {warmup_runs}).")
    tool = Path(tool) if tool is not None else benchmark_tool_path()
    result_json.parent.mkdir(parents=True, exist_ok=True)
    result_json.unlink(missing_ok=True)
    # Run from the model's folder with a bare file name: the tool copies --model into its JSON, which
    # then carries no absolute path of this machine.
    args = [f"--model={model.name}", f"--num_threads={num_threads}", f"--num_runs={num_runs}",
            f"--warmup_runs={warmup_runs}", f"--result_json={result_json.resolve()}"]
    try:
        proc = subprocess.run([python, str(tool), *args], capture_output=True, text=True, timeout=timeout,
                              check=False, cwd=model.resolve().parent)
    except subprocess.TimeoutExpired as exc:
        raise ReportError(f"{tool.name} did not finish within {timeout:.0f} s on {model.name}; lower num_runs.") from exc
    if proc.returncode != 0 or not result_json.is_file():
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else "no output"
        raise ReportError(f"{tool.name} failed on {model.name} (exit {proc.returncode}): {last}")
    try:
        raw = json.loads(result_json.read_text(encoding="utf-8"))
        lat = raw["latency"]
        throughput = float(raw.get("throughput_mb_s") or 0.0)
        # throughput carries 2 decimals: >= 0.25 MB/s keeps the recomputed mean within 2 %
        precise = _input_bytes(model) / 2**20 / throughput * 1000 if throughput >= 0.25 else None
        return ToolRun(
            median_ms=float(lat["median_ms"]), mean_ms=float(lat["avg_ms"]), mean_ms_precise=precise,
            p5_ms=float(lat["p5_ms"]), p95_ms=float(lat["p95_ms"]), num_runs=int(lat["num_runs"]),
            num_threads=int(raw["num_threads"]), fully_accelerated=bool(raw["fully_accelerated"]),
            accelerators=tuple(raw.get("accelerators", ())),
            command=f"python {tool.name} " + " ".join(a if not a.startswith(("--model", "--result_json")) else
                                                      a.split("=")[0] + "=" + Path(a.split("=", 1)[1]).name for a in args),
            raw=raw,
        )
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise ReportError(f"{tool.name} wrote a result file this helper cannot read ({exc!r}); check the tool's version.") from exc


def agreement(ours_ms: float, tool_ms: float, tolerance: float = 0.10, resolution_ms: float = TOOL_RESOLUTION_MS) -> str:
    """Compare our median with the tool's (rounded to ``resolution_ms``): "agree", "agree within the
    tool's rounding" or "differ". The tool's printed value stands for any true value within half a
    rounding step, so that half-step widens the band."""
    if ours_ms <= 0 or tool_ms < 0:
        raise ReportError(f"latencies must be positive, got ours={ours_ms}, tool={tool_ms}.")
    gap = abs(ours_ms - tool_ms)
    if tool_ms > 0 and gap <= tolerance * tool_ms:
        return "agree"
    if gap <= tolerance * ours_ms + resolution_ms / 2:
        return "agree within the tool's rounding"
    return "differ"


def cross_check_table(rows: Sequence[Mapping[str, Any]], tolerance: float = 0.10) -> pd.DataFrame:
    """One row per thread count: our median vs the tool's, ratio and verdict.

    Each input row: ``threads``, ``ours_ms`` (our median), ``tool`` (:class:`ToolRun`) and optionally
    ``compiled_ms`` (an in-process median of ``CompiledModel.run_by_name``, the call the tool times).
    """
    out = []
    for r in rows:
        tool: ToolRun = r["tool"]
        row = {
            "threads": int(r["threads"]),
            "ours: Interpreter.invoke median (ms)": r["ours_ms"],
            "tool: CompiledModel.run median (ms)": tool.median_ms,
            "tool mean (ms, from throughput)": tool.mean_ms_precise,
            "ratio tool/ours": tool.median_ms / r["ours_ms"],
            "verdict (±{:.0%})".format(tolerance): agreement(r["ours_ms"], tool.median_ms, tolerance),
        }
        if "compiled_ms" in r:
            row["in-process CompiledModel median (ms)"] = r["compiled_ms"]
        out.append(row)
    return pd.DataFrame(out).set_index("threads")


def median_tool_run(runs: Sequence[ToolRun]) -> ToolRun:
    """Of several tool runs, the one with the median ``median_ms`` (the lower middle for an even count)."""
    if not runs:
        raise ReportError("No tool runs to summarise.")
    ordered = sorted(runs, key=lambda r: r.median_ms)
    return ordered[(len(ordered) - 1) // 2]


def explain_cross_check(table: pd.DataFrame, tolerance: float = 0.10) -> list[str]:
    """One sentence per thread count, chosen by the numbers in :func:`cross_check_table`'s output:
    agreement, or where the gap comes from. The in-process ``CompiledModel`` timing decides: if it
    sides with the tool, the two APIs differ; if it sides with the harness, the API is not the cause
    and the tool's separate run (another process, another moment, random input) is; if with neither,
    it is noise."""
    verdict_col = next(c for c in table.columns if c.startswith("verdict"))
    inproc = "in-process CompiledModel median (ms)"
    ours_col, tool_col = "ours: Interpreter.invoke median (ms)", "tool: CompiledModel.run median (ms)"
    lines = []
    for threads, row in table.iterrows():
        ours, tool = row[ours_col], row[tool_col]
        head = f"{threads} thread(s): ours {ours:.4f} ms, tool {tool:.2f} ms (printed to 0.01 ms)"
        if row[verdict_col] != "differ":
            lines.append(f"{head}: {row[verdict_col]}.")
            continue
        compiled = row.get(inproc, math.nan)
        if pd.isna(compiled):
            why = "time CompiledModel.run_by_name in-process (benchmark_compiled_model) to see whether the API or noise explains it"
        elif agreement(compiled, tool, tolerance) != "differ":
            why = (f"the same CompiledModel call timed in this process gives {compiled:.4f} ms, close to the tool, so the gap "
                   "is between the two APIs: the tool times CompiledModel.run_by_name (input/output TensorBuffer maps, "
                   "its own CPU accelerator set-up), the harness times Interpreter.invoke alone on a pre-set input")
            if threads > 1 and 1 in table.index and not pd.isna(table.at[1, inproc]):
                c1, o1 = table.at[1, inproc], table.at[1, ours_col]
                why += (f"; from 1 to {threads} threads the Interpreter goes from {o1:.4f} to {ours:.4f} ms and "
                        f"CompiledModel from {c1:.4f} to {compiled:.4f} ms")
                if ours < o1 * (1 - tolerance) and compiled >= c1 * (1 - tolerance):
                    why += ", so the extra threads pay off only in the Interpreter path here"
        elif abs(compiled - ours) <= tolerance * ours:
            why = (f"the same CompiledModel call timed in this process gives {compiled:.4f} ms, close to ours, so the API is "
                   "not the cause: the tool's own run (a separate, freshly started process, timed at another moment on a "
                   "shared machine, on random input) came out slower or faster; its mean and p95 in data/results/ show "
                   "how noisy that moment was")
        else:
            why = (f"the same CompiledModel call timed in this process gives {compiled:.4f} ms, which matches neither closely: "
                   "the spread is run-to-run noise on a loaded machine; rerun on an idle machine")
        lines.append(f"{head}: differ; {why}.")
    return lines


def benchmark_compiled_model(model: Path, num_threads: int = 1, runs: int = 500, warmup: int = 50) -> float:
    """Median ms of ``CompiledModel.run_by_name`` on CPU with ``num_threads``, in this process: the
    call the wheel's tool times, measured without its 2-decimal rounding (random input, as the tool)."""
    import gc
    import time

    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.environment import Environment, EnvironmentOptions
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.options import CpuOptions, Options

    from helpers.keras_setup import quiet_native_stderr

    model = Path(model)
    if not model.is_file():
        raise ReportError(f"No model file {model.name!r} to benchmark.")
    with quiet_native_stderr():  # the accelerator registry logs to fd 2 when created and destroyed
        with Environment.create(options=EnvironmentOptions()) as env:
            options = Options(hardware_accelerators=HardwareAccelerator(HardwareAccelerator.CPU),
                              cpu_options=CpuOptions(num_threads=num_threads))
            with CompiledModel.from_file(str(model), environment=env, options=options) as compiled:
                signature = list(compiled.get_signature_list())[0]
                details = compiled.get_input_tensor_details(signature)
                inputs = {n: compiled.create_input_buffer_by_name(signature, n) for n in details}
                outputs = {n: compiled.create_output_buffer_by_name(signature, n)
                           for n in compiled.get_output_tensor_details(signature)}
                rng = np.random.default_rng(0)
                for name, buffer in inputs.items():
                    d = details[name]
                    buffer.write(rng.uniform(-1, 1, d["shape"]).astype(d.get("dtype", "float32")))
                for _ in range(warmup):
                    compiled.run_by_name(signature, inputs, outputs)
                times = np.empty(runs)
                for i in range(runs):
                    t0 = time.perf_counter_ns()
                    compiled.run_by_name(signature, inputs, outputs)
                    times[i] = time.perf_counter_ns() - t0
                del inputs, outputs
        del compiled, env
        gc.collect()
    return float(np.median(times) / 1e6)


# --------------------------------------------------------------------------------------------------
# The report: Markdown + HTML, PNG plots beside them
# --------------------------------------------------------------------------------------------------


def _cell(value: Any, floatfmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"
    if isinstance(value, (float, np.floating)):
        return format(float(value), floatfmt)
    return str(value).replace("|", "\\|").replace("\n", " ")


def report_dir(data: Path, models: Path) -> Path:
    """Where the dashboard writes its report: ``<data>/results`` for the default dataset's models
    folder (``models``), ``<data>/results/<name>`` for ``models-<name>``, so reports of different
    datasets never overwrite each other. Created if missing."""
    from helpers.paths import results_dir

    name = Path(models).name
    out = results_dir(data) if name == "models" else results_dir(data) / name.removeprefix("models-")
    out.mkdir(parents=True, exist_ok=True)
    return out


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (index included); NaN shows as "—"."""
    frame = frame.reset_index()
    head = "| " + " | ".join(_cell(c, floatfmt) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_cell(v, floatfmt) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def export_report(
    out_dir: Path,
    variants: pd.DataFrame,
    claims: pd.DataFrame | None = None,
    cross_check: pd.DataFrame | None = None,
    figures: Mapping[str, Any] | None = None,
    title: str = "LiteRT optimization workbook: results",
    notes: Sequence[str] = (),
    stem: str = "report",
) -> dict[str, Path]:
    """Write ``<out_dir>/<stem>.md`` and ``<stem>.html`` (tables, notes, plots) and each figure as
    ``<out_dir>/<figure name>.png``; return ``{"md": path, "html": path, <figure>: path}``.

    Both open without Jupyter; images are referenced by relative file name. Raises
    :class:`ReportError` when ``variants`` is empty.
    """
    if variants is None or variants.empty:
        raise ReportError("Nothing to report: the variants table is empty (is the manifest empty?).")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, fig in (figures or {}).items():
        png = out_dir / f"{name}.png"
        tmp = out_dir / f".{name}.tmp.png"
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        tmp.replace(png)
        written[name] = png

    sections: list[tuple[str, pd.DataFrame | None, str]] = [
        (f"All variants ({len(variants)})", variants, ".4g"),
        ("Published claims vs this machine", claims, ".4g"),
        ("Latency harness vs the wheel's benchmark tool", cross_check, ".4g"),
    ]
    md = [f"# {title}", ""] + [f"- {n}" for n in notes] + ([""] if notes else [])
    parts = [f"<h1>{html.escape(title)}</h1>"] + (["<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>"] if notes else [])
    for heading, table, fmt in sections:
        if table is None:
            continue
        md += [f"## {heading}", "", markdown_table(table, fmt), ""]
        parts += [f"<h2>{html.escape(heading)}</h2>", table.to_html(na_rep="—", float_format=lambda v: format(v, fmt), border=0)]
    if written:
        md += ["## Plots", ""]
        parts.append("<h2>Plots</h2>")
        for name, png in written.items():
            md += [f"![{name}]({png.name})", ""]
            parts.append(f'<p><img src="{html.escape(png.name)}" alt="{html.escape(name)}" style="max-width:100%"></p>')
    style = "body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse;font-size:13px}td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}"
    written["md"] = atomic_write_text(out_dir / f"{stem}.md", "\n".join(md))
    written["html"] = atomic_write_text(
        out_dir / f"{stem}.html",
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head><body>"
        + "\n".join(parts) + "</body></html>\n",
    )
    return written
