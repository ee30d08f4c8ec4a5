"""The variant registry: ``data/models/manifest.json``, the contract between workbook and app.

The contract is a JSON Schema shipped beside this module, ``helpers/manifest.schema.json``
(:data:`SCHEMA_FILE`, :func:`manifest_schema`)::

    {"schema_version": 1, "dataset": "digits",
     "variants": [{"name", "technique", "path" (relative to the manifest), "size_bytes",
                   "gzip_bytes", "params", "sparsity", "accuracy",
                   "latency_ms": {"1": median_ms_at_1_thread, "2": ...},
                   "input": {"shape", "dtype", "scale", "zero_point"}, "sha256",
                   "peak_memory_bytes" (optional, an integer), ...}]}

Sizes are positive integers, latencies finite and > 0, accuracy and sparsity in [0, 1], ``shape``
a list of positive ints, ``dtype`` a known name, ``sha256`` 64 hex digits; other keys on a variant
are kept. The file is strict JSON: it never holds ``NaN`` or ``Infinity`` (Android's ``JSONObject``,
Gson and kotlinx.serialization reject them). Writes hold a file lock and are atomic (temp file +
rename); re-registering a name replaces that entry.

Two ways to read: :func:`load_manifest` is strict (writers and reports: any problem raises
:class:`ManifestError`, and a malformed manifest is never silently reset); :func:`read_manifest`
is what an app does: a malformed top level (or an unknown ``schema_version``) refuses the file,
while a malformed variant is skipped with its reason, like a variant whose file is missing.
"""

from __future__ import annotations

import functools
import json
import math
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, NamedTuple

from filelock import FileLock

from helpers.paths import atomic_write_bytes, atomic_write_text, dataset_key

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("manifest.schema.json")


class ManifestError(ValueError):
    """The manifest is missing, unreadable or does not follow the schema."""


class BadVariant(NamedTuple):
    """A manifest entry that breaks the schema: its name (or ``variants[i]``) and why."""

    name: str
    reason: str


@functools.cache
def manifest_schema() -> dict[str, Any]:
    """The manifest's JSON Schema (``helpers/manifest.schema.json``), parsed."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def _import_jsonschema() -> None:
    """Import ``jsonschema`` without its optional IRI format checker: ``rfc3987_syntax`` (installed
    with Jupyter) builds a grammar at import and takes seconds, and the manifest schema uses no
    ``format``. Only the first import in a process is affected; nothing stays blocked."""
    if "jsonschema" in sys.modules or "rfc3987_syntax" in sys.modules:
        return
    sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # -> ImportError, which jsonschema tolerates
    try:
        import jsonschema  # noqa: F401
    finally:
        del sys.modules["rfc3987_syntax"]


@functools.cache
def _validators() -> tuple[Any, Any]:
    """(top-level validator, variant validator); integers are strict (``1.0`` and ``True`` are not)."""
    _import_jsonschema()
    from jsonschema import Draft202012Validator, validators

    checker = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, x: isinstance(x, int) and not isinstance(x, bool)
    )
    strict = validators.extend(Draft202012Validator, type_checker=checker)
    schema = manifest_schema()
    strict.check_schema(schema)
    variant = {"$ref": "#/$defs/variant", "$defs": schema["$defs"]}
    return strict(schema), strict(variant)


@functools.cache
def _family_validator() -> Any:
    """Validator of one entry of a manifest family (``$defs/family_variant``)."""
    top = _validators()[0]
    schema = manifest_schema()
    return type(top)({"$ref": "#/$defs/family_variant", "$defs": schema["$defs"]})


REQUIRED: tuple[str, ...] = tuple(manifest_schema()["$defs"]["variant"]["required"])
_NAME_PATTERN = manifest_schema()["$defs"]["variant"]["properties"]["name"]["pattern"]
_DTYPES = manifest_schema()["$defs"]["variant"]["properties"]["input"]["properties"]["dtype"]["enum"]


def manifest_path(models: Path) -> Path:
    """``<models>/manifest.json``."""
    return Path(models) / MANIFEST_NAME


def _non_finite(value: Any, where: str = "") -> str | None:
    """The dotted path of the first NaN or infinite number inside ``value``, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where or "the value"
    if isinstance(value, dict):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


class _Short:
    """A value shown by a short ``repr`` (at most 60 characters) inside an error message."""

    def __init__(self, value: Any) -> None:
        self.text = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."

    def __repr__(self) -> str:
        return self.text


def _explain(error: Any) -> str:
    """One jsonschema error as a sentence that says what is wrong with which field."""
    field = ".".join(str(p) for p in error.absolute_path)[:80] or "the entry"
    kind, value = error.validator, _Short(error.instance)
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"lacks the key {missing!r}" if field == "the entry" else f"{field} lacks the key {missing!r}"
    if kind == "type":
        return f"has {field}={value!r} of the wrong type (expected {error.validator_value})"
    if field == "accuracy" or field == "sparsity":
        return f"{field} {value!r} is not in [0, 1] (a fraction: 0.95, not 95)"
    if field.startswith("latency_ms"):
        return "latency_ms must map thread counts ('1', '2', ...) to finite latencies in ms > 0"
    if field == "name":
        return f"name {value!r} must be letters, digits, '_', '-' or '.'"
    if field == "path":
        return f"path {value!r} must be relative to the manifest's folder ('/'-separated, no '..')"
    if field == "sha256":
        return f"sha256 {value!r} must be 64 hex digits"
    if field == "input.dtype":
        return f"input.dtype {value!r} is not a known dtype ({', '.join(_DTYPES)})"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[kind]
        return f"{field}={value!r} is out of range (must be {bound} {error.validator_value})"
    return f"{field}: {error.message[:160]}"


def variant_problem(entry: Any) -> str | None:
    """Why ``entry`` breaks the manifest schema (one sentence), or None when it is a valid variant."""
    if not isinstance(entry, dict):
        return f"a variant must be a JSON object, got {type(entry).__name__}"
    bad = _non_finite(entry)
    if bad:
        return f"{bad} is NaN or infinite (not JSON; measure it again)"
    validator = _validators()[1]
    from jsonschema.exceptions import best_match

    error = best_match(validator.iter_errors(entry), key=lambda e: (-len(e.absolute_path), 0))
    return None if error is None else _explain(error)


def validate_variant(entry: Any, where: str = "variant") -> dict[str, Any]:
    """Return ``entry`` if it follows the schema, else raise one clear :class:`ManifestError`."""
    problem = variant_problem(entry)
    if problem:
        name = entry.get("name", "?") if isinstance(entry, dict) else "?"
        raise ManifestError(f"{where}: variant {name!r}: {problem}.")
    return entry


def _check_top(doc: Any, where: str) -> None:
    if not isinstance(doc, dict) or not isinstance(doc.get("variants"), list) or not isinstance(doc.get("dataset"), str):
        raise ManifestError(f"{where}: expected an object with 'dataset' (string) and 'variants' (list).")
    version = doc.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise ManifestError(
            f"{where}: schema_version {version!r} is not one this reader knows ({SCHEMA_VERSION}); "
            "use the workbook version that wrote it, or re-run the notebooks to rewrite it."
        )
    error = next(iter(_validators()[0].iter_errors(doc)), None)
    if error is not None:
        raise ManifestError(f"{where}: {_explain(error)}.")


def split_variants(doc: Any, where: str = "manifest") -> tuple[dict[str, Any], list[BadVariant]]:
    """Check ``doc`` as an app reads it: a bad top level raises :class:`ManifestError`; otherwise
    return a copy holding only the valid variants, and the skipped ones with their reasons (a
    malformed entry, or a name used more than once: none of those entries is trusted)."""
    _check_top(doc, where)
    good: list[dict[str, Any]] = []
    bad: list[BadVariant] = []
    counts: dict[str, int] = {}
    for v in doc["variants"]:
        if isinstance(v, dict) and isinstance(v.get("name"), str):
            counts[v["name"]] = counts.get(v["name"], 0) + 1
    for i, v in enumerate(doc["variants"]):
        name = v.get("name") if isinstance(v, dict) and isinstance(v.get("name"), str) else f"variants[{i}]"
        problem = variant_problem(v)
        if problem is None and counts.get(name, 0) > 1:
            problem = f"its name appears {counts[name]} times in the manifest (no copy is trusted)"
        if problem:
            bad.append(BadVariant(name, problem))
        else:
            good.append(v)
    return {**doc, "variants": good}, bad


def validate_manifest(doc: Any, where: str = "manifest") -> dict[str, Any]:
    """Check a parsed manifest against the schema (strict); return it or raise :class:`ManifestError`."""
    _, bad = split_variants(doc, where)
    if bad:
        first = bad[0]
        raise ManifestError(
            f"{where}: variant {first.name!r}: {first.reason}"
            + (f" (and {len(bad) - 1} more malformed variant(s))" if len(bad) > 1 else "")
            + "; fix it or drop it with helpers.registry.remove_variant."
        )
    return doc


def _parse(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"No manifest at {path.name!r} in {path.parent.name or '.'}/; run notebook 01 first (or `make run`).")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ManifestError(
            f"{path.name} is not valid JSON ({str(exc)[:120]}); fix or delete it (it is rebuilt by re-running the notebooks)."
        ) from exc


def load_manifest(path: Path) -> dict[str, Any]:
    """Read and validate a manifest strictly; one clear :class:`ManifestError` for any problem."""
    return validate_manifest(_parse(path), Path(path).name)


def read_manifest(path: Path) -> tuple[dict[str, Any], list[BadVariant]]:
    """Read a manifest as an app does: the valid variants, and the malformed ones with reasons.

    A missing file, invalid JSON, a malformed top level or an unknown ``schema_version`` raises
    :class:`ManifestError`."""
    return split_variants(_parse(path), Path(path).name)


def dumps_manifest(doc: dict[str, Any]) -> str:
    """The manifest as strict JSON text (``allow_nan=False``: never ``NaN`` or ``Infinity``)."""
    try:
        return json.dumps(doc, indent=2, allow_nan=False) + "\n"
    except ValueError as exc:
        raise ManifestError(f"refusing to write a NaN or Infinity into the manifest ({exc}).") from exc


def manifest_lock(path: Path) -> FileLock:
    """The manifest's inter-process lock (``manifest.json.lock``), re-entrant in one thread: hold it
    around a check-then-write (``with registry.manifest_lock(path): ...``) and call the registry's
    writers inside; other processes and threads wait up to 60 s."""
    return FileLock(str(Path(path)) + ".lock", timeout=60, is_singleton=True)


_lock = manifest_lock


def register_variant(path: Path, entry: dict[str, Any], dataset: str) -> dict[str, Any]:
    """Add ``entry`` to the manifest at ``path`` (creating it), replacing a variant of the same name.

    Refuses (``ManifestError``) an entry measured on another dataset than the manifest's.
    """
    validate_variant(entry, "new entry")

    def replace(doc: dict[str, Any]) -> None:
        doc["variants"] = [v for v in doc["variants"] if v["name"] != entry["name"]] + [entry]

    _update_manifest(path, dataset, replace)
    return entry


def _update_manifest(path: Path, dataset: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Under the lock: load the manifest at ``path`` (or start one for ``dataset``), refuse one that
    holds another dataset, apply ``change`` to it and write it back atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock(path):
        dataset = dataset_key(dataset)  # a path to a user's .npz and the name it loads under are one dataset
        doc = load_manifest(path) if path.exists() else {"dataset": dataset, "variants": []}
        if dataset_key(doc["dataset"]) != dataset:
            raise ManifestError(
                f"{path.name} holds variants for '{doc['dataset']}', not '{dataset}'; use that dataset's "
                "models folder (helpers.paths.models_dir) or delete the manifest."
            )
        doc["schema_version"] = SCHEMA_VERSION
        change(doc)
        atomic_write_text(path, dumps_manifest(doc))


def update_variant(path: Path, name: str, expected_sha256: str, **keys: Any) -> dict[str, Any] | None:
    """Add or replace ``keys`` on the variant ``name`` (e.g. ``peak_memory_bytes``), under the lock.

    Only if the entry still has ``expected_sha256``: a measurement of an older file is never written
    onto a newer entry another notebook registered meanwhile. Returns the updated entry, or None when
    the variant is gone or its file changed. Schema keys cannot be changed this way, and the
    updated entry must still follow the schema (``peak_memory_bytes`` is one integer, for example).
    """
    clash = sorted(set(keys) & set(REQUIRED))
    if clash:
        raise ValueError(f"update_variant only adds extra keys; {clash} belong to the schema (use register_variant).")
    path = Path(path)
    with _lock(path):
        doc = load_manifest(path)
        for i, entry in enumerate(doc["variants"]):
            if entry["name"] == name and entry["sha256"] == expected_sha256:
                updated = validate_variant({**entry, **keys}, f"update of {name!r}")
                doc["variants"][i] = updated
                doc["schema_version"] = SCHEMA_VERSION
                atomic_write_text(path, dumps_manifest(doc))
                return updated
    return None


def remove_variant(path: Path, name: str) -> bool:
    """Drop a variant from the manifest (its file is left alone). True if it was there.

    Works on a manifest holding malformed variants too (that is how one drops a malformed entry);
    the top level must be valid."""
    with _lock(Path(path)):
        doc = _parse(path)
        _check_top(doc, Path(path).name)
        kept = [v for v in doc["variants"] if not (isinstance(v, dict) and v.get("name") == name)]
        if len(kept) == len(doc["variants"]):
            return False
        doc["variants"] = kept
        atomic_write_text(Path(path), dumps_manifest(doc))
    return True


def save_tflite(content: bytes, models: Path, name: str) -> Path:
    """Write a converted model to ``<models>/<name>.tflite`` atomically; return the path."""
    if not re.fullmatch(_NAME_PATTERN, name):
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
    from helpers.accounting import gzipped_size, sha256
    from helpers.litert_runner import LiteRTModel, benchmark_latency

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
    The variant's outputs on the first test inputs are stored as its golden outputs
    (:mod:`helpers.golden`), so a device can later check it runs the file correctly
    (``python -m helpers.calibrate``).
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
    registered = register_variant(manifest_path(models), entry, dataset.name)
    from helpers.golden import GOLDEN_INPUTS, record_golden

    record_golden(models, name, tflite, dataset.x_test[:GOLDEN_INPUTS])
    return registered


def variants_frame(doc: dict[str, Any]) -> pd.DataFrame:
    """The manifest's variants as a table: one row each, latency columns ``latency_ms@<threads>``."""
    import pandas as pd

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



def register_family(path: Path, family: str, entries: list[dict[str, Any]], dataset: str) -> list[dict[str, Any]]:
    """Replace the manifest's ``families[family]`` with ``entries`` (under the lock, creating the
    manifest if needed): models kept beside the variants an app chooses from, never selected (e.g.
    the latency lab's random-weight architectures). Each entry must match ``$defs/family_variant``."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", family):
        raise ManifestError(f"family name {family!r} must be lower-case letters, digits and '_'.")
    for entry in entries:
        error = next(iter(_family_validator().iter_errors(entry)), None)
        if error is not None:
            raise ManifestError(f"{family} entry {entry.get('name', '?')!r}: {_explain(error)}.")
    names = [e["name"] for e in entries]
    if len(set(names)) != len(names):
        raise ManifestError(f"{family}: entry names must be unique.")
    _update_manifest(path, dataset, lambda doc: doc.setdefault("families", {}).__setitem__(family, list(entries)))
    return list(entries)


def read_family(path: Path, family: str) -> tuple[list[dict[str, Any]], list[BadVariant]]:
    """The entries of ``families[family]`` in the manifest at ``path`` that match the schema, and the
    malformed ones with their reasons (skipped, as a malformed variant is). An absent family is empty."""
    doc = load_manifest(Path(path))
    items = (doc.get("families") or {}).get(family, [])
    good: list[dict[str, Any]] = []
    bad: list[BadVariant] = []
    for i, entry in enumerate(items):
        name = entry.get("name") if isinstance(entry, dict) and isinstance(entry.get("name"), str) else f"{family}[{i}]"
        error = next(iter(_family_validator().iter_errors(entry)), None)
        if error is not None:
            bad.append(BadVariant(name, _explain(error)))
        else:
            good.append(entry)
    return good, bad
