"""The variant registry: ``data/models/manifest.json``, the contract between workbook and app.

Schema::

    {"dataset": "digits",
     "variants": [{"name", "technique", "path" (relative to the manifest), "size_bytes",
                   "gzip_bytes", "params", "sparsity", "accuracy",
                   "latency_ms": {"1": median_ms_at_1_thread, "2": ...},
                   "input": {"shape", "dtype", "scale", "zero_point"}, "sha256", ...}]}

Extra keys on a variant (e.g. ``peak_memory_bytes``) are kept. Writes hold a file lock and are
atomic (temp file + rename); re-registering a name replaces that entry; a malformed manifest raises
:class:`ManifestError` and is never silently reset.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
from filelock import FileLock

from helpers.accounting import gzipped_size, sha256
from helpers.litert_runner import LiteRTModel, benchmark_latency
from helpers.paths import atomic_write_bytes, atomic_write_text

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

REQUIRED: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "technique": str,
    "path": str,
    "size_bytes": int,
    "gzip_bytes": int,
    "params": (int, type(None)),
    "sparsity": (int, float, type(None)),
    "accuracy": (int, float),
    "latency_ms": dict,
    "input": dict,
    "sha256": str,
}


class ManifestError(ValueError):
    """The manifest is missing, unreadable or does not follow the schema."""


def manifest_path(models: Path) -> Path:
    """``<models>/manifest.json``."""
    return Path(models) / MANIFEST_NAME


def _check_variant(v: Any, where: str) -> None:
    if not isinstance(v, dict):
        raise ManifestError(f"{where}: a variant must be a JSON object, got {type(v).__name__}.")
    for key, types in REQUIRED.items():
        if key not in v:
            raise ManifestError(f"{where}: variant {v.get('name', '?')!r} lacks the key {key!r}.")
        if isinstance(v[key], bool) or not isinstance(v[key], types):
            raise ManifestError(f"{where}: variant {v['name']!r} has {key}={v[key]!r} of the wrong type.")
    if not _NAME.match(v["name"]):
        raise ManifestError(f"{where}: variant name {v['name']!r} must be letters, digits, '_', '-' or '.'.")
    p = Path(v["path"])
    if p.is_absolute() or ".." in p.parts:
        raise ManifestError(f"{where}: variant {v['name']!r} path {v['path']!r} must be relative to the manifest.")
    if not 0.0 <= float(v["accuracy"]) <= 1.0:
        raise ManifestError(f"{where}: variant {v['name']!r} accuracy {v['accuracy']} is not in [0, 1].")
    for threads, ms in v["latency_ms"].items():
        if not str(threads).isdigit() or isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms <= 0:
            raise ManifestError(f"{where}: variant {v['name']!r} latency_ms must map thread counts to positive ms.")
    for key in ("shape", "dtype"):
        if key not in v["input"]:
            raise ManifestError(f"{where}: variant {v['name']!r} input lacks {key!r}.")


def validate_manifest(doc: Any, where: str = "manifest") -> dict[str, Any]:
    """Check a parsed manifest against the schema; return it or raise :class:`ManifestError`."""
    if not isinstance(doc, dict) or not isinstance(doc.get("variants"), list) or not isinstance(doc.get("dataset"), str):
        raise ManifestError(f"{where}: expected an object with 'dataset' (string) and 'variants' (list).")
    names = set()
    for i, v in enumerate(doc["variants"]):
        _check_variant(v, f"{where} variants[{i}]")
        if v["name"] in names:
            raise ManifestError(f"{where}: the variant name {v['name']!r} appears twice.")
        names.add(v["name"])
    return doc


def load_manifest(path: Path) -> dict[str, Any]:
    """Read and validate a manifest; one clear :class:`ManifestError` for any problem."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"No manifest at {path.name!r} in {path.parent.name or '.'}/; run notebook 01 first (or `make run`).")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(
            f"{path.name} is not valid JSON ({exc}); fix or delete it (it is rebuilt by re-running the notebooks)."
        ) from exc
    return validate_manifest(doc, path.name)


def _lock(path: Path) -> FileLock:
    return FileLock(str(path) + ".lock", timeout=60)


def register_variant(path: Path, entry: dict[str, Any], dataset: str) -> dict[str, Any]:
    """Add ``entry`` to the manifest at ``path`` (creating it), replacing a variant of the same name.

    Refuses (``ManifestError``) an entry measured on another dataset than the manifest's.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _check_variant(entry, "new entry")
    with _lock(path):
        doc = load_manifest(path) if path.exists() else {"dataset": dataset, "variants": []}
        if doc["dataset"] != dataset:
            raise ManifestError(
                f"{path.name} holds variants for '{doc['dataset']}', not '{dataset}'; use that dataset's "
                "models folder (helpers.paths.models_dir) or delete the manifest."
            )
        doc["schema_version"] = SCHEMA_VERSION
        doc["variants"] = [v for v in doc["variants"] if v["name"] != entry["name"]] + [entry]
        atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    return entry


def update_variant(path: Path, name: str, expected_sha256: str, **keys: Any) -> dict[str, Any] | None:
    """Add or replace ``keys`` on the variant ``name`` (e.g. ``peak_memory_bytes``), under the lock.

    Only if the entry still has ``expected_sha256``: a measurement of an older file is never written
    onto a newer entry another notebook registered meanwhile. Returns the updated entry, or None when
    the variant is gone or its file changed. Schema keys cannot be changed this way.
    """
    clash = sorted(set(keys) & set(REQUIRED))
    if clash:
        raise ValueError(f"update_variant only adds extra keys; {clash} belong to the schema (use register_variant).")
    path = Path(path)
    with _lock(path):
        doc = load_manifest(path)
        for entry in doc["variants"]:
            if entry["name"] == name and entry["sha256"] == expected_sha256:
                entry.update(keys)
                atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
                return entry
    return None


def remove_variant(path: Path, name: str) -> bool:
    """Drop a variant from the manifest (its file is left alone). True if it was there."""
    with _lock(Path(path)):
        doc = load_manifest(path)
        kept = [v for v in doc["variants"] if v["name"] != name]
        if len(kept) == len(doc["variants"]):
            return False
        doc["variants"] = kept
        atomic_write_text(Path(path), json.dumps(doc, indent=2) + "\n")
    return True


def save_tflite(content: bytes, models: Path, name: str) -> Path:
    """Write a converted model to ``<models>/<name>.tflite`` atomically; return the path."""
    if not _NAME.match(name):
        raise ValueError(f"variant name {name!r} must be letters, digits, '_', '-' or '.'.")
    return atomic_write_bytes(Path(models) / f"{name}.tflite", bytes(content))


def measure_tflite(
    tflite: Path,
    x_test: np.ndarray,
    y_test: np.ndarray,
    threads: Iterable[int] = (1, 2),
    runs: int = 200,
    warmup: int = 20,
) -> dict[str, Any]:
    """Size, gzipped size, accuracy, median latency per thread count, input spec and hash of a file."""
    tflite = Path(tflite)
    model = LiteRTModel(tflite)
    latency = {
        str(t): round(benchmark_latency(tflite, x_test[:1], num_threads=t, runs=runs, warmup=warmup).median_ms, 5)
        for t in threads
    }
    return {
        "size_bytes": tflite.stat().st_size,
        "gzip_bytes": gzipped_size(tflite),
        "accuracy": round(model.evaluate(x_test, y_test), 6),
        "latency_ms": latency,
        "input": model.input_spec.as_dict(),
        "sha256": sha256(tflite),
    }


def register_tflite(
    models: Path,
    tflite: Path,
    name: str,
    technique: str,
    dataset: Any,
    params: int | None = None,
    sparsity: float | None = None,
    threads: Iterable[int] = (1, 2),
    runs: int = 200,
    measure_memory: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """Measure a ``.tflite`` on the dataset's test split and register it in ``<models>/manifest.json``.

    ``extra`` keys (e.g. ``notes``, ``peak_memory_bytes``) are stored on the entry as they are.
    ``measure_memory=True`` also stores ``peak_memory_bytes``: the peak RSS growth of loading and
    invoking the file at 1 thread in a fresh process (:func:`helpers.memory.measure_peak_memory`).
    """
    if measure_memory and "peak_memory_bytes" not in extra:
        from helpers.memory import measure_peak_memory

        extra["peak_memory_bytes"] = measure_peak_memory(Path(tflite)).peak_growth_bytes
    tflite = Path(tflite)
    rel = tflite.resolve().relative_to(Path(models).resolve()).as_posix()
    entry = {
        "name": name,
        "technique": technique,
        "path": rel,
        "params": None if params is None else int(params),
        "sparsity": None if sparsity is None else round(float(sparsity), 6),
        **measure_tflite(tflite, dataset.x_test, dataset.y_test, threads, runs),
        **extra,
    }
    return register_variant(manifest_path(models), entry, dataset.name)


def variants_frame(doc: dict[str, Any]) -> pd.DataFrame:
    """The manifest's variants as a table: one row each, latency columns ``latency_ms@<threads>``."""
    rows = []
    for v in doc["variants"]:
        row = {k: v[k] for k in ("name", "technique", "size_bytes", "gzip_bytes", "params", "sparsity", "accuracy")}
        row.update({f"latency_ms@{t}": ms for t, ms in sorted(v["latency_ms"].items(), key=lambda kv: int(kv[0]))})
        row["input_dtype"] = v["input"]["dtype"]
        row.update({k: v[k] for k in v if k not in REQUIRED and k not in row})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.set_index("name")
    return frame

