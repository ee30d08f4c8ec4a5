"""Calibration on the device: timings, accelerator fallback, golden outputs, damaged files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import accounting, calibrate, registry


@pytest.fixture(scope="module")
def calibrated_manifest(tmp_path_factory, tflite_files, digits) -> Path:
    """A models folder with fp32 + int8 registered (golden outputs recorded), a file whose bytes no
    longer match its hash, and a registered file LiteRT cannot load."""
    models = tmp_path_factory.mktemp("models")
    for name, src in tflite_files.items():
        path = registry.save_tflite(src.read_bytes(), models, name)
        registry.register_tflite(models, path, name, f"test_{name}", digits, runs=20)
        calibrate.record_golden(models, name, path, digits.x_test[:32])
    manifest = registry.manifest_path(models)
    fp32 = next(v for v in registry.load_manifest(manifest)["variants"] if v["name"] == "fp32")
    # changed after registration: the hash check refuses it
    changed = registry.save_tflite(tflite_files["fp32"].read_bytes(), models, "changed")
    registry.register_variant(manifest, dict(fp32, name="changed", path=changed.name), digits.name)
    changed.write_bytes(changed.read_bytes()[:-64])
    # registered with its own hash, but not a model LiteRT can load
    broken = models / "broken.tflite"
    broken.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(200))
    registry.register_variant(manifest, dict(fp32, name="broken", path=broken.name, size_bytes=broken.stat().st_size,
                                             sha256=accounting.sha256(broken)), digits.name)
    return manifest


def test_cli_calibrates_reports_damage_and_goes_on(calibrated_manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "device.json"
    proc = subprocess.run([sys.executable, "-m", "helpers.calibrate", "--manifest", str(calibrated_manifest),
                           "--threads", "1,2", "--runs", "30", "--budget-s", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    doc = calibrate.load_calibration(out)
    assert set(doc["variants"]) == {"fp32", "int8"}
    failed = {f["name"]: f["reason"] for f in doc["failed"]}
    assert set(failed) == {"changed", "broken"}
    assert "changed" in proc.stderr and "broken" in proc.stderr
    assert "sha256" in failed["changed"].lower() or "hash" in failed["changed"].lower()
    assert doc["made_on"]["threads"] == [1, 2] and doc["made_on"]["ai_edge_litert"]
    for name, v in doc["variants"].items():
        for t in ("1", "2"):
            assert v["backends"][t]["interpreter_xnnpack"]["runs"] >= 30, name
            assert 0 < v["latency_ms"][t] <= v["p95_ms"][t], name
            assert v["load_ms"][t] > 0 and v["first_inference_ms"][t] > 0
        assert v["peak_memory_bytes"] > 0
        # the same file on the same machine reproduces its golden outputs exactly
        assert v["golden"] == {"n": 32, "top1_agreement": 1.0, "max_abs_diff": 0.0}


def test_missing_accelerators_fall_back_to_cpu_with_a_reason(tflite_files) -> None:
    probe = calibrate.probe_accelerators(tflite_files["int8"])
    assert probe["status"]["cpu"] == "ok"
    assert probe["used"] == next(a for a in calibrate.ACCELERATORS if probe["status"][a] == "ok")
    for accelerator, status in probe["status"].items():
        assert status == "ok" or (status.startswith("failed: ") and len(status) > len("failed: ") + 5), status
    if probe["used"] == "cpu":  # no GPU or NPU here: the fallback is named, nothing crashed
        assert probe["fallback"] == "npu, gpu unavailable; ran on cpu"


def test_golden_agreement_catches_a_different_model(tmp_path: Path, tflite_files, digits) -> None:
    calibrate.record_golden(tmp_path, "m", tflite_files["fp32"], digits.x_test[:40])
    same = calibrate.golden_agreement(tmp_path, "m", tflite_files["fp32"])
    other = calibrate.golden_agreement(tmp_path, "m", tflite_files["int8"])  # as if the file were swapped
    assert same["top1_agreement"] == 1.0 and same["max_abs_diff"] == 0.0
    assert other["max_abs_diff"] > 0
    assert calibrate.golden_agreement(tmp_path, "never_recorded", tflite_files["fp32"]) is None


def test_time_calls_respects_min_runs_and_budget() -> None:
    import time

    times = calibrate.time_calls(lambda: None, min_runs=30, budget_s=0.5)
    assert 30 <= len(times) <= 300
    start = time.perf_counter()
    slow = calibrate.time_calls(lambda: time.sleep(0.05), min_runs=30, budget_s=0.3, warmup=0)
    assert len(slow) < 30 and time.perf_counter() - start < 1.0  # the budget wins over min_runs
    # a warm-up that eats the whole budget still leaves a few timed runs, never an empty measurement
    assert len(calibrate.time_calls(lambda: time.sleep(0.02), min_runs=30, budget_s=0.05, warmup=5)) == 3


def test_apply_calibration_replaces_only_the_same_file() -> None:
    variants = [{"name": "a", "sha256": "1" * 64, "latency_ms": {"1": 1.0}, "peak_memory_bytes": 10},
                {"name": "b", "sha256": "2" * 64, "latency_ms": {"1": 2.0}},
                {"name": "c", "sha256": "3" * 64, "latency_ms": {"1": 3.0}}]
    cal = {"variants": {"a": {"sha256": "1" * 64, "latency_ms": {"1": 5.0}, "p95_ms": {"1": 6.0},
                              "peak_memory_bytes": 99},
                        "b": {"sha256": "f" * 64, "latency_ms": {"1": 9.0}, "p95_ms": {"1": 9.5}}}}
    a, b, c = calibrate.apply_calibration(variants, cal)
    assert a["latency_ms"] == {"1": 5.0} and a["p95_ms"] == {"1": 6.0} and a["peak_memory_bytes"] == 99
    assert a["calibrated"] and not b["calibrated"] and not c["calibrated"]
    assert b["latency_ms"] == {"1": 2.0}  # another file under the same name keeps the manifest's numbers
    assert variants[0]["latency_ms"] == {"1": 1.0}  # inputs are not modified


def test_apply_calibration_of_larger_requests_drops_uncovered_entries() -> None:
    variants = [{"name": "a", "sha256": "1" * 64, "latency_ms": {"1": 1.0}},
                {"name": "b", "sha256": "2" * 64, "latency_ms": {"1": 2.0}}]
    cal = {"batch": 64, "variants": {"a": {"sha256": "1" * 64, "latency_ms": {"1": 50.0}, "p95_ms": {"1": 60.0}}}}
    assert [v["name"] for v in calibrate.apply_calibration(variants, cal)] == ["a"]


def test_batch_calibration_times_requests_of_that_size(tflite_files, tmp_path: Path, digits) -> None:
    entry = {"name": "fp32", "path": tflite_files["fp32"].name, "sha256": None}
    one = calibrate.calibrate_variant(tflite_files["fp32"].parent, entry, [1], runs=30, budget_s=1, memory=False)
    many = calibrate.calibrate_variant(tflite_files["fp32"].parent, entry, [1], runs=30, budget_s=1, memory=False,
                                       batch=64)
    assert many["latency_ms"]["1"] > one["latency_ms"]["1"]  # 64 inputs per call cost more than one
    assert "compiled_model_cpu" in one["backends"]["1"] and "compiled_model_cpu" not in many["backends"]["1"]


@pytest.mark.parametrize("content,words", [(None, "No calibration file"), ("{", "not valid JSON"),
                                           (json.dumps({"schema_version": 99, "variants": {}}), "version")])
def test_load_calibration_errors_are_one_line(tmp_path: Path, content, words) -> None:
    path = tmp_path / "device.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(calibrate.CalibrationError, match=words):
        calibrate.load_calibration(path)


@pytest.mark.parametrize("args", [["--threads", "0"], ["--threads", "a,b"], ["--runs", "0"], ["--budget-s", "0"]])
def test_cli_usage_errors_exit_2(tmp_path: Path, args) -> None:
    proc = subprocess.run([sys.executable, "-m", "helpers.calibrate", "--manifest", str(tmp_path / "m.json"),
                           "--out", str(tmp_path / "o.json"), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_cli_unknown_variant_is_a_usage_error(calibrated_manifest: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "helpers.calibrate", "--manifest", str(calibrated_manifest),
                           "--variants", "fp32", "nope", "--out", str(tmp_path / "o.json")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "nope" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_unusable_manifest_exits_3(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text("not json")
    proc = subprocess.run([sys.executable, "-m", "helpers.calibrate", "--manifest", str(tmp_path / "m.json"),
                           "--out", str(tmp_path / "o.json")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr and not (tmp_path / "o.json").exists()


def test_registration_records_golden_outputs(calibrated_manifest: Path) -> None:
    golden = calibrated_manifest.parent / "golden"
    assert {p.name for p in golden.iterdir()} >= {"inputs.npy", "fp32.npy", "int8.npy"}


def test_select_uses_calibrated_numbers(calibrated_manifest: Path, tmp_path: Path) -> None:
    doc = registry.load_manifest(calibrated_manifest)
    fp32 = next(v for v in doc["variants"] if v["name"] == "fp32")
    int8 = next(v for v in doc["variants"] if v["name"] == "int8")
    # a device where the int8 file is slow and the float one fast: the calibration must decide
    device = {"schema_version": 1, "batch": 1, "made_on": {"cpu": "test device", "date": "today"}, "variants": {
        "fp32": {"sha256": fp32["sha256"], "latency_ms": {"1": 1e-6}, "p95_ms": {"1": 2e-6}},
        "int8": {"sha256": int8["sha256"], "latency_ms": {"1": 5.0}, "p95_ms": {"1": 6.0}}}}
    cal = tmp_path / "device.json"
    cal.write_text(json.dumps(device))
    base = [sys.executable, "-m", "helpers.select", "--manifest", str(calibrated_manifest),
            "--objective", "fastest", "--threads", "1"]
    with_cal = subprocess.run(base + ["--calibration", str(cal)], capture_output=True, text=True, timeout=60)
    assert with_cal.returncode == 0 and with_cal.stdout.split()[0] == "fp32", with_cal.stderr
    assert "calibrated on test device" in with_cal.stderr
    slow = subprocess.run(base + ["--calibration", str(cal), "--max-latency-ms", "1e-7"],
                          capture_output=True, text=True, timeout=60)
    assert slow.returncode == 4
    missing = subprocess.run(base + ["--calibration", str(tmp_path / "none.json")], capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 3 and "No calibration file" in missing.stderr and "Traceback" not in missing.stderr


def test_cascade_entries_need_both_parts(tmp_path: Path, tflite_files, digits) -> None:
    from helpers.selection import load_verified

    models = tmp_path / "m"
    for name, src in tflite_files.items():
        path = registry.save_tflite(src.read_bytes(), models, name)
        registry.register_tflite(models, path, name, f"test_{name}", digits, runs=10)
    manifest = registry.manifest_path(models)
    small = next(v for v in registry.load_manifest(manifest)["variants"] if v["name"] == "int8")
    cascade = dict(small, name="casc", technique="cascade", small="int8", large="fp32", threshold=0.9)
    registry.register_variant(manifest, cascade, digits.name)
    registry.register_variant(manifest, dict(cascade, name="orphan", large="gone"), digits.name)
    registry.register_variant(manifest, dict(cascade, name="wrong_path", small="fp32"), digits.name)
    vm = load_verified(manifest)
    assert "casc" in vm.names()
    reasons = {s.name: s.reason for s in vm.skipped}
    assert "gone" in reasons["orphan"] and "small variant's file" in reasons["wrong_path"]
    (models / "fp32.tflite").unlink()  # the large part disappears: the cascade goes with it
    vm = load_verified(manifest)
    assert "casc" not in vm.names() and "casc" in {s.name for s in vm.skipped}
    # calibration leaves a cascade to its parts
    doc = calibrate.calibrate(manifest, threads=(1,), runs=5, budget_s=0.2, memory=False, log=lambda line: None)
    assert "casc" not in doc["variants"]
