"""Tests for helpers.latency_lab (notebook 02c's bookkeeping) and the manifest's families."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from helpers import latency_lab, registry, selection
from helpers.keras_setup import keras
from helpers.latency_lab import LabError


def test_count_macs_matches_the_formula_for_each_layer_kind():
    k = keras()
    inputs = k.Input((8, 8, 3))
    x = k.layers.Conv2D(4, 3, padding="same")(inputs)          # 8*8 * 3*3*3 * 4   = 6912
    x = k.layers.DepthwiseConv2D(3, padding="valid")(x)        # 6*6 * 3*3 * 4     = 1296
    x = k.layers.Conv2D(6, 1, strides=2)(x)                    # 3*3 * 1*1*4 * 6   = 216
    x = k.layers.Dense(5)(x)                                   # 3*3 positions * 6 * 5 = 270
    x = k.layers.Flatten()(x)
    outputs = k.layers.Dense(2)(x)                             # 45 * 2            = 90
    model = k.Model(inputs, outputs)
    assert latency_lab.count_macs(model) == 6912 + 1296 + 216 + 270 + 90


def test_count_macs_of_mobilenet_v2_is_the_published_300_million():
    model = keras().applications.MobileNetV2(input_shape=(224, 224, 3), weights=None)
    assert abs(latency_lab.count_macs(model) / 1e6 / 300 - 1) < 0.02


def test_count_macs_refuses_an_unknown_spatial_size():
    k = keras()
    model = k.Sequential([k.Input((None, None, 3)), k.layers.Conv2D(2, 3)])
    with pytest.raises(LabError, match="fixed input_shape"):
        latency_lab.count_macs(model)


def test_cached_tflite_converts_once_then_reuses_until_the_key_or_bytes_change(tmp_path, tflite_files):
    content = tflite_files["fp32"].read_bytes()
    calls = []

    def convert():
        calls.append(1)
        return content

    path = tmp_path / "m.tflite"
    p, seconds = latency_lab.cached_tflite(path, "k1", convert)
    assert p == path and seconds is not None and path.read_bytes() == content and len(calls) == 1
    assert latency_lab.cached_tflite(path, "k1", convert) == (path, None) and len(calls) == 1
    latency_lab.cached_tflite(path, "k2", convert)  # other settings: converted again
    assert len(calls) == 2
    path.write_bytes(content[:-1] + b"\x00")  # tampered: converted again
    latency_lab.cached_tflite(path, "k2", convert)
    assert len(calls) == 3 and path.read_bytes() == content


def test_cached_tflite_refuses_a_conversion_that_is_not_a_flatbuffer(tmp_path):
    with pytest.raises(LabError, match="not return a .tflite"):
        latency_lab.cached_tflite(tmp_path / "m.tflite", "k", lambda: b"not a model")
    assert not (tmp_path / "m.tflite").exists()


def test_time_group_times_each_file_at_its_own_thread_count(tflite_files, digits):
    files = {"fp32@1": tflite_files["fp32"], "fp32@2": tflite_files["fp32"], "int8@1": tflite_files["int8"]}
    summary, per_round = latency_lab.time_group(files, digits.x_test[:1], {"fp32@1": 1, "fp32@2": 2, "int8@1": 1},
                                                rounds=2, budget_ms=2.0, runs=20)
    assert list(per_round.columns) == list(files) and len(per_round) == 2
    assert set(summary.index) == set(files)
    assert (summary["calls"] >= 20).all()  # 2 rounds x at least 10 calls
    assert (summary["p90_ms"] >= summary["p50_ms"]).all() and (summary["p50_ms"] > 0).all()
    ratio = latency_lab.round_ratio(per_round, "fp32@1", "fp32@2")
    assert math.isfinite(ratio) and ratio > 0
    with pytest.raises(LabError, match="was not timed"):
        latency_lab.round_ratio(per_round, "fp32@1", "missing")


def test_interleaved_latency_records_every_call_and_honours_xnnpack_per_name(tflite_files, digits):
    from helpers.litert_runner import interleaved_latency

    calls: dict[str, list[float]] = {}
    lat = interleaved_latency({"on": tflite_files["fp32"], "off": tflite_files["fp32"]}, digits.x_test[:1], rounds=2,
                              runs=7, warmup=1, use_xnnpack={"on": True, "off": False}, samples=calls)
    assert list(lat.columns) == ["on", "off"] and {len(v) for v in calls.values()} == {14}


def _row(**over):
    row = {"arch": "a", "resolution": 96, "recipe": "fp32", "threads": 1, "xnnpack": True, "p50_ms": 1.0, "p90_ms": 1.5, "calls": 10}
    row.update(over)
    return row


def _check(**over):
    row = {"arch": "a", "resolution": 96, "recipe": "fp32", "threads": 1, "harness_p50_ms": 1.0, "tool_p50_ms": 1.1}
    row.update(over)
    return row


def test_results_round_trip_and_refuse_bad_rows(tmp_path):
    path = tmp_path / "latency_lab.json"
    latency_lab.write_results(path, [_row(p50_ms=np.float64(2.0))], [_check()], rounds=5)
    doc = latency_lab.read_results(path)
    assert doc["rows"][0]["p50_ms"] == 2.0 and doc["crosscheck"][0]["tool_p50_ms"] == 1.1 and doc["meta"]["rounds"] == 5
    for bad in (_row(p50_ms=float("nan")), _row(p90_ms=0.0), {k: v for k, v in _row().items() if k != "threads"}):
        with pytest.raises(LabError):
            latency_lab.write_results(path, [bad], [])
    with pytest.raises(LabError, match="lacks"):
        latency_lab.write_results(path, [], [{"arch": "a"}])
    path.write_text("{not json")
    with pytest.raises(LabError, match="not valid JSON"):
        latency_lab.read_results(path)
    with pytest.raises(LabError, match="run notebook 02c"):
        latency_lab.read_results(tmp_path / "absent.json")


def _family_entry(tmp_path, tflite_files, name="lab_a_96_fp32"):
    models = tmp_path / "models"
    lab = models / "latency_lab"
    lab.mkdir(parents=True, exist_ok=True)
    path = lab / f"{name}.tflite"
    path.write_bytes(tflite_files["fp32"].read_bytes())
    return models, latency_lab.family_entry(
        name, path, models, arch="a", resolution=96, recipe="fp32", params=10, macs=100,
        latency={1: {"p50_ms": 1.0, "p90_ms": 1.2}, 2: {"p50_ms": 0.7, "p90_ms": 0.9}},
        input_spec={"shape": [1, 8, 8, 1], "dtype": "float32"})


def test_a_family_lives_beside_the_variants_and_is_never_selected(tmp_path, tflite_files, digits):
    models, entry = _family_entry(tmp_path, tflite_files)
    manifest = registry.manifest_path(models)
    assert entry["path"] == "latency_lab/lab_a_96_fp32.tflite" and entry["latency_ms"] == {"1": 1.0, "2": 0.7}
    registry.register_family(manifest, "latency_lab", [entry], "digits")
    # a task variant registered afterwards keeps the family
    variant = {"name": "v", "technique": "t", "path": "latency_lab/lab_a_96_fp32.tflite", "size_bytes": 10, "gzip_bytes": 9,
               "params": 1, "sparsity": None, "accuracy": 0.9, "latency_ms": {"1": 0.01}, "input": {"shape": [1, 8, 8, 1], "dtype": "float32"},
               "sha256": entry["sha256"]}
    registry.register_variant(manifest, variant, "digits")
    kept, bad = registry.read_family(manifest, "latency_lab")
    assert [e["name"] for e in kept] == ["lab_a_96_fp32"] and bad == []
    assert selection.load_verified(manifest).names() == ["v"]
    assert registry.read_family(manifest, "other") == ([], [])


def test_a_malformed_family_entry_is_refused_on_write_and_skipped_on_read(tmp_path, tflite_files):
    models, entry = _family_entry(tmp_path, tflite_files)
    manifest = registry.manifest_path(models)
    with pytest.raises(registry.ManifestError, match="latency_lab entry"):
        registry.register_family(manifest, "latency_lab", [{**entry, "size_bytes": -1}], "digits")
    with pytest.raises(registry.ManifestError, match="family name"):
        registry.register_family(manifest, "Latency Lab", [entry], "digits")
    with pytest.raises(registry.ManifestError, match="unique"):
        registry.register_family(manifest, "latency_lab", [entry, entry], "digits")
    registry.register_family(manifest, "latency_lab", [entry], "digits")
    doc = json.loads(manifest.read_text())
    doc["families"]["latency_lab"].append({**entry, "name": "broken", "latency_ms": {"1": -1}})
    manifest.write_text(json.dumps(doc))
    kept, bad = registry.read_family(manifest, "latency_lab")
    assert [e["name"] for e in kept] == ["lab_a_96_fp32"] and [b.name for b in bad] == ["broken"]
    with pytest.raises(registry.ManifestError, match="not 'mnist'"):
        registry.register_family(manifest, "latency_lab", [entry], "mnist")


def test_other_load_sees_a_busy_neighbour_and_not_its_own_work():
    import subprocess
    import sys
    import time

    with latency_lab.other_load() as own:
        end = time.perf_counter() + 0.6
        while time.perf_counter() < end:  # this process keeps one core busy
            pass
    spinner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 3\nwhile time.time() < end: pass"])
    try:
        time.sleep(0.3)
        with latency_lab.other_load() as other:
            time.sleep(0.8)
    finally:
        spinner.wait()
    assert own["seconds"] >= 0.6 and 0.0 <= own["share"] <= 1.0
    # the neighbour keeps one core of the machine busy: its share is at least most of 1/cores above ours
    import psutil
    assert other["share"] >= own["share"] + 0.5 / psutil.cpu_count()


def test_cpu_simd_names_int8_dot_product_instructions():
    avx2 = {"AVX": True, "FMA3": True, "AVX2": True, "AVX512VNNI": False}
    got = latency_lab.cpu_simd(avx2, cpuinfo_flags=["fma", "avx", "avx2"])
    assert got["features"] == ["AVX", "FMA3", "AVX2"] and got["int8_dot"] is False
    assert latency_lab.cpu_simd(avx2, cpuinfo_flags=["avx2", "avx_vnni"])["int8_dot"] is True  # AVX-VNNI: cpuinfo only
    assert latency_lab.cpu_simd({**avx2, "AVX512F": True, "AVX512VNNI": True}, cpuinfo_flags=[])["int8_dot"] is True
    assert latency_lab.cpu_simd({"NEON": True, "ASIMD": True, "ASIMDDP": True}, cpuinfo_flags=[])["int8_dot"] is True
    assert latency_lab.cpu_simd({"NEON": True, "ASIMD": True}, cpuinfo_flags=["asimd"])["int8_dot"] is False
    here = latency_lab.cpu_simd()  # this machine: whatever numpy detected
    assert isinstance(here["int8_dot"], bool) and set(here["features"]) <= set(latency_lab.SIMD_SHOWN)
