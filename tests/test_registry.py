from __future__ import annotations

import json
import math
import multiprocessing
import threading
from pathlib import Path

import pytest

from helpers import registry
from helpers.registry import ManifestError


def _entry(name: str, **over) -> dict:
    e = {
        "name": name, "technique": "baseline", "path": f"{name}.tflite", "size_bytes": 1000, "gzip_bytes": 900,
        "params": 250, "sparsity": 0.0, "accuracy": 0.9, "latency_ms": {"1": 0.05, "2": 0.04},
        "input": {"shape": [1, 8, 8, 1], "dtype": "float32", "scale": 0.0, "zero_point": 0}, "sha256": "0" * 64,
    }
    e.update(over)
    return e


def test_register_creates_and_replaces_by_name(tmp_path):
    path = registry.manifest_path(tmp_path)
    registry.register_variant(path, _entry("a"), "digits")
    registry.register_variant(path, _entry("b"), "digits")
    registry.register_variant(path, _entry("a", accuracy=0.95), "digits")
    doc = registry.load_manifest(path)
    assert [v["name"] for v in doc["variants"]] == ["b", "a"]
    assert doc["variants"][1]["accuracy"] == 0.95 and doc["dataset"] == "digits"
    assert list(tmp_path.glob(".*.tmp*")) == []  # atomic writes leave no temp files
    assert registry.remove_variant(path, "b") and not registry.remove_variant(path, "b")


def test_extra_keys_survive(tmp_path):
    path = registry.manifest_path(tmp_path)
    registry.register_variant(path, _entry("a", peak_memory_bytes=12345), "digits")
    assert registry.load_manifest(path)["variants"][0]["peak_memory_bytes"] == 12345
    assert registry.variants_frame(registry.load_manifest(path)).loc["a", "peak_memory_bytes"] == 12345


def test_malformed_manifest_is_reported_never_reset(tmp_path):
    path = registry.manifest_path(tmp_path)
    path.write_text('{"dataset": "digits", "variants": [')
    with pytest.raises(ManifestError, match="not valid JSON"):
        registry.load_manifest(path)
    with pytest.raises(ManifestError):
        registry.register_variant(path, _entry("a"), "digits")
    assert path.read_text() == '{"dataset": "digits", "variants": ['  # untouched


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "expected an object"),
        ({"dataset": "digits"}, "expected an object"),
        ({"dataset": "digits", "variants": [_entry("a"), _entry("a")]}, "appears 2 times"),
        ({"dataset": "digits", "variants": [{k: v for k, v in _entry("a").items() if k != "sha256"}]}, "lacks the key 'sha256'"),
        ({"dataset": "digits", "variants": [_entry("a", accuracy="high")]}, "wrong type"),
        ({"dataset": "digits", "variants": [_entry("a", accuracy=97.0)]}, r"not in \[0, 1\]"),
        ({"dataset": "digits", "variants": [_entry("a", path="/abs/a.tflite")]}, "relative"),
        ({"dataset": "digits", "variants": [_entry("a", path="../a.tflite")]}, "relative"),
        ({"dataset": "digits", "variants": [_entry("a", latency_ms={"one": 1})]}, "latency_ms"),
        ({"dataset": "digits", "variants": [_entry("a b")]}, "name"),
        ({"dataset": "digits", "variants": [_entry("a", size_bytes=True)]}, "wrong type"),
        ({"dataset": "digits", "variants": [_entry("a", size_bytes=-5)]}, "size_bytes=-5 is out of range"),
        ({"dataset": "digits", "variants": [_entry("a", size_bytes=1000.0)]}, "wrong type"),
        ({"dataset": "digits", "variants": [_entry("a", latency_ms={})]}, "latency_ms"),
        ({"dataset": "digits", "variants": [_entry("a", latency_ms={"1": 0})]}, "latency_ms"),
        ({"dataset": "digits", "variants": [_entry("a", input={"shape": "eight", "dtype": "float32"})]}, "input.shape"),
        ({"dataset": "digits", "variants": [_entry("a", input={"shape": [1, 8], "dtype": "float"})]}, "not a known dtype"),
        ({"dataset": "digits", "variants": [_entry("a", sha256="abc")]}, "64 hex digits"),
        ({"dataset": "digits", "variants": [_entry("a", peak_memory_bytes={"1": 5})]}, "peak_memory_bytes"),
        ({"dataset": "digits", "variants": [_entry("a", peak_memory_bytes="5 MB")]}, "peak_memory_bytes"),
        ({"dataset": "digits", "variants": ["a"]}, "JSON object"),
        ({"dataset": "digits", "variants": [], "schema_version": 2}, "schema_version 2"),
        ({"dataset": "digits", "variants": [], "schema_version": "1"}, "schema_version"),
        ({"dataset": "", "variants": []}, "dataset"),
    ],
)
def test_schema_violations_are_named(tmp_path, doc, message):
    path = registry.manifest_path(tmp_path)
    path.write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match=message):
        registry.load_manifest(path)


def test_missing_manifest_says_what_to_do(tmp_path):
    with pytest.raises(ManifestError, match="run notebook 01"):
        registry.load_manifest(tmp_path / "manifest.json")


def test_other_dataset_is_refused(tmp_path):
    path = registry.manifest_path(tmp_path)
    registry.register_variant(path, _entry("a"), "digits")
    with pytest.raises(ManifestError, match="'digits', not 'mnist'"):
        registry.register_variant(path, _entry("b"), "mnist")


def test_npz_path_and_its_dataset_name_are_one_dataset(tmp_path):
    from helpers.paths import npz_dataset_name

    npz = tmp_path / "own.npz"  # a notebook may pass WORKBOOK_DATASET's path, another the name it loads under
    path = registry.manifest_path(tmp_path / "models")
    registry.register_variant(path, _entry("a"), npz_dataset_name(npz))
    registry.register_family(path, "lab", [], str(npz))
    registry.register_variant(path, _entry("b"), str(npz))
    doc = registry.load_manifest(path)
    assert doc["dataset"] == npz_dataset_name(npz) and [v["name"] for v in doc["variants"]] == ["a", "b"]
    with pytest.raises(ManifestError, match="not 'npz-other-"):
        registry.register_variant(path, _entry("c"), str(tmp_path / "other.npz"))


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_refused(tmp_path, bad):
    path = registry.manifest_path(tmp_path)
    path.write_text(json.dumps({"dataset": "digits", "variants": [_entry("a")]}).replace('"1": 0.05', f'"1": {bad}'))
    with pytest.raises(ManifestError, match="latency_ms.1 is NaN or infinite"):
        registry.load_manifest(path)
    with pytest.raises(ManifestError, match="NaN or infinite"):
        registry.register_variant(path, _entry("b", accuracy=math.nan), "digits")


def test_manifest_is_strict_json_and_matches_its_schema(tmp_path):
    from jsonschema import Draft202012Validator

    path = registry.manifest_path(tmp_path)
    registry.register_variant(path, _entry("a", peak_memory_bytes=4096), "digits")
    text = path.read_text()
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert doc["schema_version"] == registry.SCHEMA_VERSION
    Draft202012Validator(registry.manifest_schema()).validate(doc)
    assert not list(Draft202012Validator({"$ref": "#/$defs/variant", "$defs": registry.manifest_schema()["$defs"]}).iter_errors(doc["variants"][0]))
    with pytest.raises(ManifestError, match="NaN or Infinity"):
        registry.dumps_manifest({"dataset": "digits", "variants": [{"x": math.inf}]})


def test_read_manifest_skips_a_malformed_variant_and_keeps_the_rest(tmp_path):
    path = registry.manifest_path(tmp_path)
    doc = {"dataset": "digits", "variants": [_entry("good"), _entry("neg", size_bytes=-1), _entry("twice"), _entry("twice"), 7]}
    path.write_text(json.dumps(doc))
    kept, bad = registry.read_manifest(path)
    assert [v["name"] for v in kept["variants"]] == ["good"]
    reasons = dict(bad)
    assert set(reasons) == {"neg", "twice", "variants[4]"}
    assert "size_bytes=-1" in reasons["neg"] and "2 times" in reasons["twice"] and "JSON object" in reasons["variants[4]"]
    with pytest.raises(ManifestError, match="neg"):  # the strict reader refuses it, naming the entry
        registry.load_manifest(path)
    assert registry.remove_variant(path, "neg")  # and a malformed entry can be dropped
    assert [b.name for b in registry.read_manifest(path)[1]] == ["twice", "twice", "variants[3]"]


def test_a_bad_top_level_refuses_the_file_even_for_the_lenient_reader(tmp_path):
    path = registry.manifest_path(tmp_path)
    for doc in ([], {"dataset": "digits", "variants": {}}, {"dataset": 3, "variants": []},
                {"dataset": "digits", "variants": [], "schema_version": 99}):
        path.write_text(json.dumps(doc))
        with pytest.raises(ManifestError):
            registry.read_manifest(path)


def test_update_variant_keeps_the_schema(tmp_path):
    path = registry.manifest_path(tmp_path)
    registry.register_variant(path, _entry("a"), "digits")
    with pytest.raises(ManifestError, match="peak_memory_bytes"):
        registry.update_variant(path, "a", "0" * 64, peak_memory_bytes={"1": 4096})
    assert registry.update_variant(path, "a", "0" * 64, peak_memory_bytes=4096)["peak_memory_bytes"] == 4096
    assert registry.update_variant(path, "a", "1" * 64, peak_memory_bytes=1) is None  # another file: untouched
    with pytest.raises(ValueError, match="belong to the schema"):
        registry.update_variant(path, "a", "0" * 64, accuracy=0.5)


def _register_many(path: str, worker: int, count: int) -> None:
    for i in range(count):
        registry.register_variant(Path(path), _entry(f"p{worker}_{i}"), "digits")


def test_two_processes_registering_lose_nothing(tmp_path):
    path = registry.manifest_path(tmp_path)
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no lock state shared through fork
    procs = [ctx.Process(target=_register_many, args=(str(path), w, 20)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    doc = json.loads(path.read_text())  # valid JSON ...
    registry.validate_manifest(doc)  # ... that follows the schema
    assert sorted(v["name"] for v in doc["variants"]) == sorted(f"p{w}_{i}" for w in range(2) for i in range(20))
    assert list(tmp_path.glob(".*.tmp*")) == []


def test_manifest_lock_is_reentrant_in_one_thread(tmp_path):
    path = registry.manifest_path(tmp_path)
    with registry.manifest_lock(path):  # e.g. models.ensure_baseline_fp32 holds it around its rebuild
        registry.register_variant(path, _entry("a"), "digits")
    assert registry.load_manifest(path)["variants"][0]["name"] == "a"


def test_concurrent_registrations_lose_nothing(tmp_path):
    path = registry.manifest_path(tmp_path)
    threads = [threading.Thread(target=registry.register_variant, args=(path, _entry(f"v{i}"), "digits")) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(v["name"] for v in registry.load_manifest(path)["variants"]) == sorted(f"v{i}" for i in range(12))


def test_register_tflite_measures_a_real_file(tmp_path, tflite_files, digits):
    dest = registry.save_tflite(tflite_files["int8"].read_bytes(), tmp_path, "tiny_int8")
    entry = registry.register_tflite(tmp_path, dest, "tiny_int8", "ptq_int8", digits, params=2410, runs=20, notes="test")
    assert entry["path"] == "tiny_int8.tflite" and entry["size_bytes"] == dest.stat().st_size
    assert entry["input"]["dtype"] == "int8" and set(entry["latency_ms"]) == {"1", "2"}
    assert 0.8 < entry["accuracy"] <= 1 and entry["notes"] == "test"
    frame = registry.variants_frame(registry.load_manifest(registry.manifest_path(tmp_path)))
    assert frame.loc["tiny_int8", "input_dtype"] == "int8"
    with pytest.raises(ValueError, match="variant name"):
        registry.save_tflite(b"x", tmp_path, "../escape")
