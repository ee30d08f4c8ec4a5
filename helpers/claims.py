"""Published figures held against what this workbook measured, with a computed verdict.

The figures live in ``helpers/references.csv``, one row per figure with its source (document and
section, or URL); this module reads them, pairs each claim with the matching rule that finds the variant
testing it in the manifest, computes the ratio against ``baseline_fp32`` and a verdict, and fills a
prose explanation from the measured numbers where this machine disagrees. Nothing here hard-codes a
result or a published number.
"""

from __future__ import annotations

import fnmatch
import functools
import math
import platform
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from helpers.results_table import BASELINE, ReportError

FIGURES_FILE = Path(__file__).with_name("references.csv")
FIGURE_COLUMNS = ("figure_id", "topic", "figure", "kind", "low", "high", "unit", "source", "section", "url")
KINDS = ("about", "at_least", "range", "up_to")
FIGURE_KINDS = (*KINDS, "context")  # "context": quoted for what it says, not tested by a number here
METRICS = ("size_ratio", "gzip_ratio", "speedup@1", "acc_gain_pp", "extra")
VERDICTS = ("agrees", "exceeds", "within the 'up to' bound", "falls short", "not measured")
RAW_RATIO = "raw size ratio (storage, RAM)"


# --------------------------------------------------------------------------------------------------
# The published figures, as data
# --------------------------------------------------------------------------------------------------


def load_references(path: Path | None = None) -> pd.DataFrame:
    """The published-figures table (default: ``helpers/references.csv``), indexed by ``figure_id``.

    Columns: topic, figure (the words of the source), kind (``about`` / ``at_least`` / ``range`` /
    ``up_to`` for a number this workbook tests, ``context`` for one it only quotes), low, high (floats,
    NaN where empty), unit, source, section, url. Every row names its source and a section or URL.
    One :class:`~helpers.results_table.ReportError` for a missing file or a malformed row.
    """
    path = FIGURES_FILE if path is None else Path(path)
    if not path.is_file():
        raise ReportError(f"No published-figures file {path.name!r}; restore helpers/references.csv from git.")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in FIGURE_COLUMNS if c not in table.columns]
    if missing:
        raise ReportError(f"{path.name} lacks the column(s) {missing}; its header must be {','.join(FIGURE_COLUMNS)}.")
    table = table[list(FIGURE_COLUMNS)].apply(lambda col: col.str.strip())
    duplicated = sorted(set(table.figure_id[table.figure_id.duplicated()]))
    if duplicated or (table.figure_id == "").any():
        raise ReportError(f"{path.name}: every row needs a unique figure_id (repeated: {duplicated}).")
    for _, row in table.iterrows():
        fid = row.figure_id
        if row.kind not in FIGURE_KINDS:
            raise ReportError(f"{path.name}, {fid}: kind must be one of {FIGURE_KINDS}, got {row.kind!r}.")
        if not row.source or not (row.section or row.url):
            raise ReportError(f"{path.name}, {fid}: give the source document and a section or URL.")
        for col in ("low", "high"):
            if row[col] and pd.isna(pd.to_numeric(row[col], errors="coerce")):
                raise ReportError(f"{path.name}, {fid}: {col} must be a number or empty, got {row[col]!r}.")
        if row.kind in KINDS and not row.low:
            raise ReportError(f"{path.name}, {fid}: a {row.kind!r} figure needs a number in 'low'.")
        if row.kind == "range" and (not row.high or float(row.high) < float(row.low)):
            raise ReportError(f"{path.name}, {fid}: a range needs high >= low.")
    for col in ("low", "high"):
        table[col] = pd.to_numeric(table[col].replace("", None), errors="coerce").astype(float)
    return table.set_index("figure_id")


def cite(figure_id: str, figures: pd.DataFrame | None = None, url: bool = True) -> str:
    """Where a published figure comes from: ``"<source>, <section> (<url>)"``."""
    figures = load_references() if figures is None else figures
    if figure_id not in figures.index:
        raise ReportError(f"No published figure {figure_id!r}; known: {sorted(figures.index)}.")
    row = figures.loc[figure_id]
    text = ", ".join(p for p in (row.source, row.section) if p)
    return f"{text} ({row.url})" if url and row.url else text


def sources_table(figure_ids: Iterable[str], figures: pd.DataFrame | None = None) -> pd.DataFrame:
    """The sources of the given figures (each once, in order): topic, figure, source, section, url."""
    figures = load_references() if figures is None else figures
    ids = list(dict.fromkeys(figure_ids))
    unknown = [i for i in ids if i not in figures.index]
    if unknown:
        raise ReportError(f"No published figure(s) {unknown}; known: {sorted(figures.index)}.")
    return figures.loc[ids, ["topic", "figure", "source", "section", "url"]]


# --------------------------------------------------------------------------------------------------
# Claims: a published figure plus the rule that finds the variant testing it
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """One published figure and how to find the variant(s) that test it.

    ``metric``: ``size_ratio`` / ``gzip_ratio`` (baseline bytes ÷ variant bytes), ``speedup@1``
    (baseline latency ÷ variant latency at 1 thread), ``acc_gain_pp`` (accuracy of the best
    matching variant minus the best ``reference`` variant, in percentage points) or ``extra`` (a
    value the notebook measured itself, passed under ``key``). ``kind`` says how the figure is
    meant: ``about`` (≈ low), ``at_least`` (≥ low), ``range`` (low–high), ``up_to`` (≤ low), or
    ``context`` (quoted, not tested by a number here: always "not measured", with ``note`` saying why).
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
    unit: str = "x"
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
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in FIGURE_KINDS:
            raise ReportError(f"claim {self.key!r}: kind must be one of {FIGURE_KINDS}, got {self.kind!r}.")
        if self.metric not in METRICS:
            raise ReportError(f"claim {self.key!r}: metric must be one of {METRICS}, got {self.metric!r}.")
        if self.kind == "range" and (self.high is None or not self.high >= self.low):
            raise ReportError(f"claim {self.key!r}: a range needs high >= low.")
        if self.kind == "context" and self.metric != "extra":
            raise ReportError(f"claim {self.key!r}: a context figure is quoted, not matched to variants; use metric 'extra'.")


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
    "(MNIST / ImageNet) and settings. Only a download pays the gzipped size: an app keeps the .tflite "
    "uncompressed to memory-map it, so storage and RAM pay the raw size (the raw ratio column)."
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
_WHY_FP16_CPU = (
    "The float16 file stores its weights in float16 with DEQUANTIZE ops in front of them; on this {machine} CPU "
    "they are turned back into float32 and the arithmetic stays float32, so float32 speed is the best it can do. "
    "A lower ratio on a {base_ms:.3f} ms invoke is that extra work or timing noise."
)
_EXCEEDS_FP16_CPU = (
    "Faster float16 arithmetic needs a CPU with FP16 support (XNNPACK uses it on ARMv8.2+ when the model allows "
    "reduced precision); on this {machine} CPU a gap this size on a {base_ms:.3f} ms invoke is timing noise or a "
    "difference in fixed per-invoke work."
)

# Variants of other techniques that may also carry a PTQ-like technique string (e.g. a pruned model
# quantized with the int8 recipe), or that keep part of the model in float on purpose (selective):
# PTQ claims are tested on plain post-training variants only.
_NOT_PLAIN_PTQ = ("*mobile*", "prun*", "clust*", "*qat*", "student*", "*distill*", "*selective*")
_PTQ_DYNAMIC = dict(names=("ptq_dynamic*", "ptq_dr*", "*dynamic_range*"), techniques=("*dynamic*",), exclude=_NOT_PLAIN_PTQ)
_PTQ_INT8 = dict(names=("ptq_int8*", "ptq_full_int8*", "ptq_full_integer*"), techniques=("*full*int*", "ptq_int8", "ptq-int8"),
                 exclude=(*_NOT_PLAIN_PTQ, "*16x8*", "*int16*", "*fallback*"))
_PTQ_FP16 = dict(names=("ptq_fp16*", "ptq_float16*"), techniques=("*float16*", "*fp16*"), exclude=_NOT_PLAIN_PTQ)
_QAT = dict(names=("qat_int8*", "qat*"), techniques=("qat*", "*quantization-aware*", "*quantization_aware*"),
            exclude=("*mobile*", "*pqat*", "*cqat*", "*pcqat*", "prun*", "clust*", "*selective*"))

# figure_id in references.csv -> how this workbook tests it. The numbers come from the file.
RULES: dict[str, dict[str, Any]] = {
    "ptq_dynamic_size": dict(metric="size_ratio", **_PTQ_DYNAMIC, why=_WHY_SIZE, why_exceeds=_EXCEEDS_SIZE),
    "ptq_dynamic_speed": dict(metric="speedup@1", **_PTQ_DYNAMIC, why=_WHY_DYNAMIC, why_exceeds=_EXCEEDS_SPEED),
    "ptq_int8_size": dict(metric="size_ratio", **_PTQ_INT8, why=_WHY_SIZE, why_exceeds=_EXCEEDS_SIZE),
    "ptq_int8_speed": dict(metric="speedup@1", **_PTQ_INT8, why=_WHY_SPEED, why_exceeds=_EXCEEDS_SPEED),
    "ptq_fp16_size": dict(metric="size_ratio", **_PTQ_FP16, why=_WHY_SIZE, why_exceeds=_EXCEEDS_SIZE),
    "ptq_fp16_cpu_speed": dict(metric="speedup@1", **_PTQ_FP16, why=_WHY_FP16_CPU, why_exceeds=_EXCEEDS_FP16_CPU),
    "xnnpack_fp16_arm": dict(metric="extra", note="needs an ARMv8.2+ CPU with FP16 arithmetic; this CPU is {machine}"),
    "ptq_int16x8_size": dict(metric="size_ratio", names=("ptq_int16x8*", "ptq_16x8*", "*16x8*"), techniques=("*16x8*",),
                             exclude=_NOT_PLAIN_PTQ, why=_WHY_SIZE, why_exceeds=_EXCEEDS_SIZE),
    "qat_size": dict(metric="size_ratio", **_QAT, why=_WHY_SIZE, why_exceeds=_EXCEEDS_SIZE),
    "qat_speed": dict(metric="speedup@1", **_QAT, why=_WHY_SPEED, why_exceeds=_EXCEEDS_SPEED),
    "pruning_gzip": dict(metric="gzip_ratio", names=("pruned*", "prune_*"), techniques=("*prun*",),
                         exclude=("*int8*", "*qat*", "*quant*", "*int16*", "*fp16*", "*float16*", "*mobile*"),
                         why=_WHY_GZIP, why_exceeds=_EXCEEDS_SIZE),
    "pruning_quant_gzip": dict(metric="gzip_ratio", names=("prun*int8*", "prun*quant*", "*pqat*"),
                               techniques=("*prun*int8*", "*prun*quant*", "*pqat*"), exclude=("*mobile*", "*pcqat*"),
                               why=_WHY_GZIP, why_exceeds=_EXCEEDS_SIZE),
    "clustering_gzip": dict(metric="gzip_ratio", names=("clustered*", "cluster_*"), techniques=("*cluster*",),
                            exclude=("*int8*", "*cqat*", "*quant*", "*mobile*", "*prun*"), why=_WHY_GZIP, why_exceeds=_EXCEEDS_SIZE),
    "distillation_gain": dict(metric="acc_gain_pp", names=("student_distilled*", "*distill*"), techniques=("*distill*",),
                              exclude=("*int8*", "*quant*"), reference_names=("student_scratch*", "student_alone*", "*scratch*"),
                              reference_techniques=("*scratch*",), tol=0.0, abs_tol=0.25, why=_WHY_DISTILL,
                              why_exceeds=_EXCEEDS_DISTILL),
    "xnnpack_speed": dict(metric="extra", why=_WHY_XNNPACK, why_exceeds=_EXCEEDS_XNNPACK),
}


def claims_from_figures(figures: pd.DataFrame | None = None, rules: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[Claim, ...]:
    """One :class:`Claim` per rule (default :data:`RULES`), its figure, kind, numbers, unit and source
    read from the published-figures table (default: :func:`load_references`)."""
    figures = load_references() if figures is None else figures
    rules = RULES if rules is None else rules
    out = []
    for figure_id, rule in rules.items():
        if figure_id not in figures.index:
            raise ReportError(f"The published-figures table has no row {figure_id!r}; add it with its source.")
        row = figures.loc[figure_id]
        out.append(Claim(
            key=figure_id, technique=row.topic, claim=row.figure, kind=row.kind,
            low=float(row.low), high=None if pd.isna(row.high) else float(row.high),
            unit=row.unit or "x", source=cite(figure_id, figures, url=False), **dict(rule),
        ))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def default_claims() -> tuple[Claim, ...]:
    """The workbook's claims, from ``helpers/references.csv`` (read once, when first asked for)."""
    return claims_from_figures()


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


def claim_variants(frame: pd.DataFrame, claims: Iterable[Claim] | None = None) -> dict[str, list[str]]:
    """The manifest variants each claim would be tested on (``{claim.key: [names]}``)."""
    out = {}
    for c in default_claims() if claims is None else claims:
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


def _unit(claim: Claim) -> str:
    return "x" if claim.unit in ("", "x") else f" {claim.unit}"


def _figure(claim: Claim) -> str:
    unit = _unit(claim)
    if claim.kind == "context":
        return claim.claim
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
    claims: Iterable[Claim] | None = None,
    latency_1t: Mapping[str, float] | None = None,
    extra: Mapping[str, float] | None = None,
    context: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Published claims next to what this workbook measured, with a computed verdict.

    ``frame`` is :func:`helpers.results_table.variants_table` output and must hold ``baseline_fp32``;
    ``claims`` defaults to :func:`default_claims` (the figures of ``references.csv``). ``latency_1t``
    (name → ms) overrides the manifest's 1-thread latencies with values measured in one run, so speed
    ratios compare like with like; ``extra`` (claim key → value) carries numbers the notebook measured
    itself; ``context`` fills the explanation templates (e.g. ``base_ms``, ``pp_per_image``; ``machine``
    defaults to this CPU's architecture). A claim whose variant is absent gets "not measured" (a
    ``context`` claim always does, with its ``note``). For size claims the table also gives the raw
    size ratio (what storage and RAM pay) beside a gzipped one (what a download pays). The explanation (``why`` or ``why_exceeds`` of the
    claim) is filled in only when the verdict is "falls short" or "exceeds": where this machine disagrees.
    """
    if BASELINE not in frame.index:
        raise ReportError(f"The table has no {BASELINE!r} row; claims are ratios against it. Run notebook 01 first.")
    claims = list(default_claims() if claims is None else claims)
    latency_1t = dict(latency_1t or {})
    extra = dict(extra or {})
    base = frame.loc[BASELINE]
    matches = claim_variants(frame, claims)

    def lat(name: str) -> float:
        return float(latency_1t.get(name, frame.at[name, "latency_ms@1"]))

    ctx = {"base_ms": lat(BASELINE), "machine": platform.machine() or "unknown", **(context or {})}

    rows = []
    for c in claims:
        names = matches[c.key]
        value: float | None = None
        variant = ""
        unit = _unit(c)
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
            refs = _match(frame, c.reference_names, c.reference_techniques, c.exclude)
            if refs:
                ref = max(refs, key=lambda n: frame.at[n, "accuracy"])
                scores = {n: 100 * (frame.at[n, "accuracy"] - frame.at[ref, "accuracy"]) for n in names}
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
        drop = raw = math.nan
        if c.metric in ("size_ratio", "gzip_ratio", "speedup@1") and variant:
            drop = 100 * (float(frame.at[variant, "accuracy"]) - float(base["accuracy"]))
        if c.metric in ("size_ratio", "gzip_ratio") and variant:
            raw = float(base["size_kb"]) / float(frame.at[variant, "size_kb"])
        v = verdict(value, c)
        template = {"falls short": c.why, "exceeds": c.why_exceeds}.get(v, "")
        why = _Fill().format(template, **ctx)
        rows.append({
            "technique": c.technique,
            "published": c.claim if c.kind == "context" else f"{c.claim} ({_figure(c)})",
            "source": c.source,
            "variant": variant or "—",
            "measured": (_Fill().format(c.note, **ctx) if c.note else "not measured") if value is None else f"{value:.2f}{unit}",
            RAW_RATIO: raw,
            "accuracy vs baseline (pp)": drop,
            "value": math.nan if value is None else value,
            "verdict": v,
            "why (where this machine disagrees)": why,
        })
    return pd.DataFrame(rows).set_index("technique")


def claims_plot(claims: pd.DataFrame, claim_defs: Iterable[Claim] | None = None) -> Any:
    """Measured ratio (bar, coloured by verdict) against the published figure (black tick; a grey band
    for a range) for every measured ratio claim (``x`` units; the accuracy-gain row is left to the table).
    ``claims`` is :func:`claims_table` output built from the same ``claim_defs`` (default
    :func:`default_claims`). Returns the Figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    defs = list(default_claims() if claim_defs is None else claim_defs)
    if len(defs) != len(claims):
        raise ReportError("claims and claim_defs differ in length; build the table from the same claims.")
    rows = []
    for (technique, row), c in zip(claims.iterrows(), defs):
        if c.metric == "acc_gain_pp" or c.kind == "context" or pd.isna(row["value"]):
            continue
        aspect = {"size_ratio": "size", "gzip_ratio": "gzipped size"}.get(c.metric, "speed")
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

