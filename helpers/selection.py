"""Pick a model variant at run time: the manifest as the contract, device profiles, a selection policy.

The model itself is fixed before deployment; what an app *can* do at run time is choose, and switch,
among pre-optimized variants. This module is that choice, written the way an app needs it:

1. :func:`load_verified` reads ``manifest.json`` (validated against ``helpers/manifest.schema.json`` by
   :mod:`helpers.registry`) and checks every variant's file: a malformed entry, a missing file or a
   SHA-256 mismatch is *reported and skipped*, never a crash.
2. :class:`DeviceProfile` holds a device's budgets (model file size, peak memory, threads, latency,
   accuracy floor); :data:`PROFILES` has a low-end, mid-range and high-end phone and a
   microcontroller-class budget that no variant in this workbook fits.
3. :func:`constraints_for` turns a profile (plus any overrides) into its full budget: every constraint
   and the objective. The CLI, the profile table and notebook 07's widget all call it, so they agree.
4. :func:`select_variant` applies hard constraints, then an objective, with a deterministic tie-break.

Constraints (a variant must meet all of them):
    ``max_size_bytes``   file size (what the app ships or downloads, and maps into memory);
    ``max_memory_bytes`` measured peak RSS growth of running it (``peak_memory_bytes`` in the manifest, one
                         integer; a variant without that measurement fails this constraint: unknown is
                         not small);
    ``min_accuracy``     test accuracy in [0, 1];
    ``max_latency_ms``   median latency at ``threads``. If the manifest has no measurement at that thread
                         count, the nearest *lower* measured count is used (fewer threads is not faster on
                         the CPUs measured here, so this errs on the safe side); with none, the variant fails.

Objectives:
    ``"best_accuracy"`` highest accuracy; ties broken by lower latency, then smaller file, then name.
    ``"fastest"``       lowest latency; ties broken by higher accuracy, then smaller file, then name.
    (Use ``min_accuracy`` as the floor for ``"fastest"``.)

Fallback chain when no variant meets every constraint (the caller chooses):
    ``"refuse"``   raise :class:`NoVariantFits`, whose message names the constraint that ruled everything
                   out (constraints are applied in the order size, memory, accuracy, latency; the first one
                   that leaves nothing is named, with the best value still available);
    ``"smallest"`` serve the smallest verified variant (by file size, then name) and say which
                   constraints it breaks (``Selection.fallback`` is True).
    With no usable variant at all, both raise :class:`NoVariantFits`.

Latencies in the manifest are measured on the machine that ran the notebooks. A real app would
re-measure its variants on the device (on first launch) and select with those numbers; the policy
is the same.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, NamedTuple

from helpers.paths import sha256
from helpers.registry import ManifestError, read_manifest, variant_problem

Objective = Literal["best_accuracy", "fastest"]
Fallback = Literal["refuse", "smallest"]
OBJECTIVES: tuple[str, ...] = ("best_accuracy", "fastest")
FALLBACKS: tuple[str, ...] = ("refuse", "smallest")
CONSTRAINT_ORDER: tuple[str, ...] = ("max_size_bytes", "max_memory_bytes", "min_accuracy", "max_latency_ms")

__all__ = [
    "ManifestError", "NoVariantFits", "Skipped", "VerifiedManifest", "load_verified", "DeviceProfile",
    "PROFILES", "Constraints", "Budget", "constraints_for", "Selection", "measured_threads", "latency_at", "violations",
    "select_variant", "pareto_front",
]


class NoVariantFits(LookupError):
    """No variant meets the constraints (and the caller asked for a refusal), or none is usable at all.

    ``constraint`` names the constraint that ruled everything out (one of :data:`CONSTRAINT_ORDER`, or
    ``"available"`` when the manifest has no usable variant).
    """

    def __init__(self, message: str, constraint: str) -> None:
        super().__init__(message)
        self.constraint = constraint


@dataclass(frozen=True)
class Skipped:
    """A manifest variant that cannot be served, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class VerifiedManifest:
    """The usable variants of a manifest (file present, hash matches) and the ones skipped."""

    path: Path
    dataset: str
    variants: tuple[dict[str, Any], ...]
    skipped: tuple[Skipped, ...]

    def file_of(self, entry: dict[str, Any]) -> Path:
        """The variant's file, resolved against the manifest's folder."""
        return self.path.parent / entry["path"]

    def names(self) -> list[str]:
        return [v["name"] for v in self.variants]


def load_verified(manifest: Path, verify_hash: bool = True) -> VerifiedManifest:
    """Load and validate a manifest, then check each variant's file exists and matches its SHA-256.

    A missing manifest, invalid JSON, a malformed top level or an unknown ``schema_version`` raises
    :class:`~helpers.registry.ManifestError` (one clear sentence). A variant that breaks the schema,
    or whose file is missing, unreadable, or does not match its hash, is skipped and listed in
    ``skipped`` with the reason, so an app keeps serving the variants it can trust.
    """
    manifest = Path(manifest)
    doc, bad = read_manifest(manifest)
    usable: list[dict[str, Any]] = []
    skipped: list[Skipped] = [Skipped(b.name, f"malformed entry: {b.reason}") for b in bad]
    for entry in doc["variants"]:
        file = manifest.parent / entry["path"]
        if not file.is_file():
            skipped.append(Skipped(entry["name"], f"file {entry['path']!r} is missing"))
            continue
        if verify_hash:
            try:
                actual = sha256(file)
            except OSError as exc:
                skipped.append(Skipped(entry["name"], f"file {entry['path']!r} is unreadable ({exc.strerror})"))
                continue
            if actual != entry["sha256"].lower():
                skipped.append(
                    Skipped(entry["name"], f"file {entry['path']!r} does not match its sha256 (changed or corrupt; re-export it)")
                )
                continue
        usable.append(entry)
    usable, skipped = _check_cascades(usable, skipped)
    return VerifiedManifest(manifest, doc["dataset"], tuple(usable), tuple(skipped))


def _check_cascades(usable: list[dict[str, Any]], skipped: list[Skipped]) -> tuple[list[dict[str, Any]], list[Skipped]]:
    """A cascade entry (``technique: "cascade"``, notebook 07b) serves two variants: its ``small``
    one (whose file is the entry's ``path``) and its ``large`` one. It is usable only when both are
    usable variants of the same manifest, and never a part of another cascade."""
    by_name = {v["name"]: v for v in usable}
    kept: list[dict[str, Any]] = []
    for entry in usable:
        if entry.get("technique") != "cascade":
            kept.append(entry)
            continue
        parts = [entry.get("small"), entry.get("large")]
        missing = [p for p in parts if not isinstance(p, str) or p not in by_name]
        if missing:
            skipped.append(Skipped(entry["name"], f"cascade part(s) {missing} are not usable variants of this manifest"))
        elif any(by_name[p].get("technique") == "cascade" for p in parts):
            skipped.append(Skipped(entry["name"], "a cascade's parts must be single-file variants"))
        elif by_name[parts[0]]["path"] != entry["path"]:
            skipped.append(Skipped(entry["name"], f"its path {entry['path']!r} is not its small variant's file"))
        else:
            kept.append(entry)
    return kept, skipped


@dataclass(frozen=True)
class DeviceProfile:
    """A class of device and its budgets for one model.

    The phone budgets are scaled to this workbook's digit-sized models (hundreds of KB, tens of
    microseconds), so that the variants actually compete; a real app's numbers are larger, the policy
    is the same. Memory is measured peak RSS growth of loading and running the model (file, arena,
    delegate buffers, runtime pages touched). ``objective`` is the device's default: the low-end
    phone takes the fastest variant above its accuracy floor (its users feel latency first), the
    others the most accurate variant within budget.
    """

    name: str
    description: str
    threads: int
    max_size_bytes: int | None
    max_memory_bytes: int | None
    max_latency_ms: float | None
    min_accuracy: float | None
    objective: str = "best_accuracy"  # what this device optimises among variants that fit

    def constraints(self, **overrides: Any) -> "Constraints":
        """These budgets as :class:`Constraints`; keyword arguments override single fields."""
        base = Constraints(
            max_size_bytes=self.max_size_bytes, max_memory_bytes=self.max_memory_bytes,
            max_latency_ms=self.max_latency_ms, min_accuracy=self.min_accuracy, threads=self.threads,
        )
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})


KB, MB = 1024, 1024 * 1024
PROFILES: dict[str, DeviceProfile] = {
    p.name: p
    for p in (
        DeviceProfile("high_end_phone", "flagship: 4 big cores, memory to spare", threads=4,
                      max_size_bytes=8 * MB, max_memory_bytes=64 * MB, max_latency_ms=1.0, min_accuracy=0.95),
        DeviceProfile("mid_range_phone", "2 usable cores, a model under half a megabyte", threads=2,
                      max_size_bytes=512 * KB, max_memory_bytes=16 * MB, max_latency_ms=0.5, min_accuracy=0.95),
        DeviceProfile("low_end_phone", "1 core for ML, a quarter-megabyte model budget", threads=1,
                      max_size_bytes=256 * KB, max_memory_bytes=8 * MB, max_latency_ms=0.25, min_accuracy=0.90,
                      objective="fastest"),
        DeviceProfile("microcontroller", "Cortex-M class: 256 KB flash for the model, 128 KB of RAM", threads=1,
                      max_size_bytes=256 * KB, max_memory_bytes=128 * KB, max_latency_ms=5.0, min_accuracy=0.80),
    )
}


class Budget(NamedTuple):
    """Everything a selection needs from a device: the hard constraints and the objective."""

    constraints: "Constraints"
    objective: str


_OVERRIDABLE = ("max_size_bytes", "max_memory_bytes", "max_latency_ms", "min_accuracy", "threads")


def constraints_for(profile: "str | DeviceProfile | None" = None, objective: str | None = None, **overrides: Any) -> Budget:
    """A device profile's full budget: size, memory, latency and accuracy limits, threads, objective.

    ``profile`` is a name in :data:`PROFILES`, a :class:`DeviceProfile`, or None (no limits, 1 thread,
    ``best_accuracy``). ``overrides`` replace single fields (``max_size_bytes``, ``max_memory_bytes``,
    ``max_latency_ms``, ``min_accuracy``, ``threads``); a None override keeps the profile's value,
    ``math.inf`` removes that limit.
    The CLI, :func:`helpers.selection_report.profile_table` and a notebook widget all go through
    here, so the same profile means the same constraints everywhere::

        constraints, objective = constraints_for("low_end_phone", max_size_bytes=200 * KB)
        choice = select_variant(variants, constraints, objective)
    """
    unknown = sorted(set(overrides) - set(_OVERRIDABLE))
    if unknown:
        raise ValueError(f"unknown budget field(s) {unknown}; use {', '.join(_OVERRIDABLE)}.")
    if isinstance(profile, str):
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}.")
        profile = PROFILES[profile]
    unlimited = {k: None for k, v in overrides.items() if k != "threads" and isinstance(v, float) and v == math.inf}
    given = {k: v for k, v in overrides.items() if v is not None and k not in unlimited}
    if profile is None:
        constraints = Constraints(**given)
        goal = objective or "best_accuracy"
    else:
        constraints = replace(profile.constraints(**given), **unlimited)
        goal = objective or profile.objective
    if goal not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {goal!r}.")
    return Budget(constraints, goal)


@dataclass(frozen=True)
class Constraints:
    """Hard limits a variant must meet. ``None`` means no limit. ``threads`` picks the latency column."""

    max_size_bytes: float | None = None  # bytes; may be fractional (a sub-byte budget fits nothing)
    max_memory_bytes: float | None = None
    max_latency_ms: float | None = None
    min_accuracy: float | None = None
    threads: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.threads, int) or isinstance(self.threads, bool) or self.threads < 1:
            raise ValueError(f"threads must be a positive int, got {self.threads!r}.")
        for key in ("max_size_bytes", "max_memory_bytes", "max_latency_ms"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
                raise ValueError(f"{key} must be a positive number (or None for no limit), got {value!r}.")
        if self.min_accuracy is not None and (
            isinstance(self.min_accuracy, bool) or not isinstance(self.min_accuracy, (int, float))
            or not 0.0 <= self.min_accuracy <= 1.0
        ):
            raise ValueError(f"min_accuracy is a fraction in [0, 1], got {self.min_accuracy!r} (use 0.95, not 95).")

    def describe(self, key: str) -> str:
        """One constraint as a reader would say it, e.g. ``'max size 256 KB'``."""
        value = getattr(self, key)
        return {
            "max_size_bytes": lambda: f"max size {value / KB:g} KB",
            "max_memory_bytes": lambda: f"max peak memory {value / KB:g} KB",
            "min_accuracy": lambda: f"min accuracy {value:g}",
            "max_latency_ms": lambda: f"max latency {value:g} ms at {self.threads} thread(s)",
        }[key]()


def measured_threads(entry: dict[str, Any], threads: int) -> int | None:
    """The thread count whose latency stands in for ``threads``: itself, or the nearest lower measured one."""
    usable = [int(t) for t in entry["latency_ms"] if int(t) <= threads]
    return max(usable) if usable else None


def latency_at(entry: dict[str, Any], threads: int) -> float | None:
    """Median latency (ms) of a variant at ``threads``, or at the nearest lower measured count; None if none."""
    t = measured_threads(entry, threads)
    return None if t is None else float(entry["latency_ms"][str(t)])


def _value(entry: dict[str, Any], key: str, threads: int) -> float | None:
    if key == "max_size_bytes":
        return float(entry["size_bytes"])
    if key == "max_memory_bytes":
        mem = entry.get("peak_memory_bytes")
        return None if mem is None else float(mem)
    if key == "min_accuracy":
        return float(entry["accuracy"])
    return latency_at(entry, threads)


def _meets(entry: dict[str, Any], c: Constraints, key: str) -> bool:
    limit = getattr(c, key)
    if limit is None:
        return True
    value = _value(entry, key, c.threads)
    if value is None:  # not measured: cannot be shown to fit
        return False
    return value >= limit if key == "min_accuracy" else value <= limit


def violations(entry: dict[str, Any], constraints: Constraints) -> list[str]:
    """The constraints (described) that ``entry`` breaks; empty when it fits."""
    return [constraints.describe(k) for k in CONSTRAINT_ORDER if not _meets(entry, constraints, k)]


@dataclass(frozen=True)
class Selection:
    """The chosen variant, how it was chosen, and what happened to the others."""

    variant: dict[str, Any]
    objective: str
    constraints: Constraints
    fallback: bool
    candidates: tuple[str, ...]
    rejected: dict[str, list[str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.variant["name"]

    @property
    def latency_ms(self) -> float | None:
        return latency_at(self.variant, self.constraints.threads)


def _sort_key(entry: dict[str, Any], objective: str, threads: int) -> tuple:
    lat = latency_at(entry, threads)
    lat = float("inf") if lat is None else lat
    if objective == "best_accuracy":
        return (-float(entry["accuracy"]), lat, int(entry["size_bytes"]), entry["name"])
    return (lat, -float(entry["accuracy"]), int(entry["size_bytes"]), entry["name"])


def _best_left(entries: list[dict[str, Any]], key: str, threads: int) -> str:
    """What the best remaining variant offers for ``key`` (for the refusal message)."""
    measured = [(v, _value(v, key, threads)) for v in entries]
    known = [(v, x) for v, x in measured if x is not None]
    if not known:
        if key == "max_memory_bytes":
            return "none of them has a measured peak_memory_bytes; measure it with helpers.memory, as notebook 07 does"
        return f"none of them has a latency measured at <= {threads} thread(s)"
    sign = -1.0 if key == "min_accuracy" else 1.0  # best = highest accuracy, else lowest value; ties by name
    v, x = min(known, key=lambda vx: (sign * vx[1], vx[0]["name"]))
    shown = {
        "max_size_bytes": f"{x / KB:.1f} KB", "max_memory_bytes": f"{x / KB:.0f} KB",
        "min_accuracy": f"{x:.4f}", "max_latency_ms": f"{x:.4g} ms",
    }[key]
    best = "most accurate" if key == "min_accuracy" else {"max_size_bytes": "smallest", "max_memory_bytes": "leanest",
                                                           "max_latency_ms": "fastest"}[key]
    return f"the {best} is {v['name']} at {shown}"


def select_variant(
    variants: Iterable[dict[str, Any]] | VerifiedManifest,
    constraints: Constraints,
    objective: Objective = "best_accuracy",
    fallback: Fallback = "refuse",
) -> Selection:
    """Choose a variant: meet every constraint, then optimise ``objective``; see the module docstring.

    ``variants`` are manifest entries (pass :func:`load_verified`'s result so unverified files are
    never served). Deterministic: the same inputs always give the same choice.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}.")
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}.")
    if isinstance(variants, VerifiedManifest):
        entries = list(variants.variants)
    else:
        entries = list(variants)
        for v in entries:  # entries that did not come through load_verified: check them here
            problem = variant_problem(v)
            if problem:
                name = v.get("name", "?") if isinstance(v, dict) else "?"
                raise ManifestError(f"variant {name!r} {problem}; pass load_verified(...) to skip malformed entries.")
    if not entries:
        raise NoVariantFits("the manifest has no usable variant (all missing or corrupt); re-run the notebooks that export them.", "available")
    rejected = {v["name"]: violations(v, constraints) for v in entries}
    fits = [v for v in entries if not rejected[v["name"]]]
    if fits:
        best = min(fits, key=lambda v: _sort_key(v, objective, constraints.threads))
        return Selection(best, objective, constraints, False, tuple(v["name"] for v in fits),
                         {n: r for n, r in rejected.items() if r})
    if fallback == "smallest":
        smallest = min(entries, key=lambda v: (int(v["size_bytes"]), v["name"]))
        return Selection(smallest, objective, constraints, True, (), {n: r for n, r in rejected.items() if r})
    left, applied = entries, []
    for key in CONSTRAINT_ORDER:
        if getattr(constraints, key) is None:
            continue
        kept = [v for v in left if _meets(v, constraints, key)]
        if not kept:
            after = f" left after {', '.join(applied)}" if applied else ""
            raise NoVariantFits(
                f"{constraints.describe(key)} rules out every variant{after} ({_best_left(left, key, constraints.threads)}); "
                "relax that limit or ask for the smallest-model fallback.",
                key,
            )
        applied.append(constraints.describe(key))
        left = kept
    raise AssertionError("unreachable: some constraint must have emptied the candidate set")  # pragma: no cover


def pareto_front(entries: Iterable[dict[str, Any]], threads: int) -> list[str]:
    """Names of the variants no other variant beats on both accuracy (higher) and latency at
    ``threads`` (lower); variants without that latency are left out. The dominance test is
    :func:`helpers.pareto.pareto_front`'s (imported here only when called: the CLI stays light)."""
    import pandas as pd

    from helpers.pareto import pareto_front as _front

    points = [(v["name"], float(v["accuracy"]), latency_at(v, threads)) for v in entries]
    frame = pd.DataFrame(
        [(n, a, lat) for n, a, lat in points if lat is not None], columns=["name", "accuracy", "latency"]
    ).set_index("name")
    if frame.empty:
        return []
    optimal = _front(frame, {"accuracy": "max", "latency": "min"})
    return sorted(optimal.index[optimal])


# --------------------------------------------------------------------------------------------------
# Calibrated numbers (python -m helpers.calibrate) in place of the manifest's
# --------------------------------------------------------------------------------------------------

CALIBRATION_SCHEMA_VERSION = 1


class CalibrationError(ValueError):
    """A calibration that cannot be made or used: a malformed or missing calibration file, or a
    request the manifest cannot answer (``status`` 2 for a usage error such as an unknown variant
    name, 3 for an unusable file)."""

    def __init__(self, message: str, status: int = 3) -> None:
        super().__init__(message)
        self.status = status


def load_calibration(path: Path) -> dict[str, Any]:
    """Read a calibration file, or raise :class:`CalibrationError` with one clear line."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise CalibrationError(f"No calibration file at {path}; make one with `python -m helpers.calibrate`.") from None
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"{path.name} is not valid JSON ({exc}); re-run `python -m helpers.calibrate`.") from None
    if not isinstance(doc, dict) or doc.get("schema_version") != CALIBRATION_SCHEMA_VERSION or not isinstance(doc.get("variants"), dict):
        raise CalibrationError(f"{path.name} is not a calibration file of version {CALIBRATION_SCHEMA_VERSION}; "
                               "re-run `python -m helpers.calibrate`.")
    return doc


def apply_calibration(variants: Iterable[Mapping[str, Any]], calibration: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Manifest entries with their latency (p50 and p95 per thread count) and peak memory replaced by
    the calibrated numbers, where the calibrated file is the same file (same SHA-256).

    With a single-input calibration (``batch`` 1, the manifest's own unit), entries it does not
    cover keep the manifest's numbers and get ``calibrated: False``. A calibration of larger requests
    measures another unit, so uncovered entries are left out rather than compared across units."""
    batch = int(calibration.get("batch", 1))
    out = []
    for entry in variants:
        entry = dict(entry)
        measured = calibration["variants"].get(entry["name"])
        if measured and measured.get("sha256") == entry.get("sha256"):
            entry["latency_ms"] = dict(measured["latency_ms"])
            entry["p95_ms"] = dict(measured["p95_ms"])
            if measured.get("peak_memory_bytes"):
                entry["peak_memory_bytes"] = measured["peak_memory_bytes"]
            entry["calibrated"] = True
        elif batch != 1:
            continue
        else:
            entry["calibrated"] = False
        out.append(entry)
    return out
