from __future__ import annotations

import json
import threading

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
    assert list(tmp_path.glob(".*tmp")) == []  # atomic writes leave no temp files
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
        ({"dataset": "digits", "variants": [_entry("a"), _entry("a")]}, "appears twice"),
        ({"dataset": "digits", "variants": [{k: v for k, v in _entry("a").items() if k != "sha256"}]}, "lacks the key 'sha256'"),
        ({"dataset": "digits", "variants": [_entry("a", accuracy="high")]}, "wrong type"),
        ({"dataset": "digits", "variants": [_entry("a", accuracy=97.0)]}, r"not in \[0, 1\]"),
        ({"dataset": "digits", "variants": [_entry("a", path="/abs/a.tflite")]}, "relative"),
        ({"dataset": "digits", "variants": [_entry("a", path="../a.tflite")]}, "relative"),
        ({"dataset": "digits", "variants": [_entry("a", latency_ms={"one": 1})]}, "latency_ms"),
        ({"dataset": "digits", "variants": [_entry("a b")]}, "name"),
        ({"dataset": "digits", "variants": [_entry("a", size_bytes=True)]}, "wrong type"),
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
