"""The Play for On-device AI export: RAM-keyed groups, one per phone profile, and the fallback."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from helpers import export_play, registry
from helpers.selection import constraints_for, load_verified, violations

NS = {"config": export_play.CONFIG_NS}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, tflite_files, digits) -> Path:
    """Three variants with hand-set accuracy and memory, so the profiles choose differently: a
    large accurate float file, its int8 version, and a tiny less accurate one."""
    models = tmp_path_factory.mktemp("models")
    for name, src in tflite_files.items():
        path = registry.save_tflite(src.read_bytes(), models, name)
        registry.register_tflite(models, path, name, f"test_{name}", digits, runs=20)
    path = registry.manifest_path(models)
    measured = {v["name"]: v for v in registry.load_manifest(path)["variants"]}
    fit = {"fp32": dict(accuracy=0.99, peak_memory_bytes=20_000_000, size_bytes=600_000),
           "int8": dict(accuracy=0.985, peak_memory_bytes=6_000_000)}
    for name, values in fit.items():
        registry.register_variant(path, dict(measured[name], **values), digits.name)
    return path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "helpers.export_play", *args], capture_output=True, text=True,
                          timeout=120)


def test_export_writes_one_group_per_phone_profile_and_a_fallback(manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "play"
    proc = run("--manifest", str(manifest), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    root = ET.parse(out / "device_targeting_configuration.xml").getroot()
    assert root.tag == f"{{{export_play.CONFIG_NS}}}device-targeting-config"
    groups = {g.get("name"): g.find("config:device-selector", NS) for g in root.findall("config:device-group", NS)}
    assert set(groups) == set(export_play.ADVERTISED_RAM_BYTES)
    # RAM bands: contiguous, non-overlapping, each below its class's advertised RAM by the shortfall
    bands = sorted((int(s.get("ram-min-bytes")), s.get("ram-max-bytes"), name) for name, s in groups.items())
    for (lo, hi, name), (next_lo, _, _) in zip(bands, bands[1:]):
        assert int(hi) == next_lo and lo < next_lo
    assert bands[-1][1] is None  # the largest band is open-ended
    for lo, _, name in bands:
        assert lo == export_play.ADVERTISED_RAM_BYTES[name] - export_play.REPORTED_RAM_SHORTFALL_BYTES
    assets = out / "models" / "src" / "main" / "assets"
    folders = {p.name for p in assets.iterdir()}
    assert folders == {f"model#group_{g}" for g in [*groups, "other"]}
    table = json.loads((out / "targeting.json").read_text())
    vm = load_verified(manifest)
    by_name = {v["name"]: v for v in vm.variants}
    for g in table["groups"]:
        # the variant is the selector CLI's choice for that profile, and it fits the profile's budgets
        cli = subprocess.run([sys.executable, "-m", "helpers.select", "--manifest", str(manifest),
                              "--profile", g["profile"]], capture_output=True, text=True, timeout=60)
        assert cli.returncode == 0 and cli.stdout.split()[0] == g["variant"], cli.stdout + cli.stderr
        constraints, _ = constraints_for(g["profile"])
        assert violations(by_name[g["variant"]], constraints) == []
        shipped = assets / f"model#group_{g['group']}" / "model.tflite"
        assert shipped.read_bytes() == (manifest.parent / g["path"]).read_bytes()
    low = next(g for g in table["groups"] if g["profile"] == "low_end_phone")
    assert table["other"]["variant"] == low["variant"] and table["other"]["ram_max_bytes"] == low["ram_min_bytes"]
    assert "#group_other" in (out / "targeting.md").read_text()


def test_a_second_export_leaves_no_stale_groups(manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "play"
    assert run("--manifest", str(manifest), "--out", str(out)).returncode == 0
    assert run("--manifest", str(manifest), "--out", str(out), "--profiles", "mid_range_phone").returncode == 0
    folders = {p.name for p in (out / "models" / "src" / "main" / "assets").iterdir()}
    assert folders == {"model#group_mid_range_phone", "model#group_other"}


@pytest.mark.parametrize("profiles,status,words", [
    (["microcontroller"], 2, "not a phone class"),
    (["pocket_calculator"], 2, "unknown profile"),
    (["low_end_phone", "low_end_phone"], 2, "repeat"),
])
def test_profiles_that_cannot_have_a_group(manifest: Path, tmp_path: Path, profiles, status, words) -> None:
    proc = run("--manifest", str(manifest), "--out", str(tmp_path / "p"), "--profiles", *profiles)
    assert proc.returncode == status and words in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "p").exists()


def test_a_profile_nothing_fits_exits_4(manifest: Path, tmp_path: Path, digits) -> None:
    only_big = tmp_path / "m"
    only_big.mkdir()
    doc = registry.load_manifest(manifest)
    fp32 = next(v for v in doc["variants"] if v["name"] == "fp32")
    (only_big / fp32["path"]).write_bytes((manifest.parent / fp32["path"]).read_bytes())
    registry.register_variant(registry.manifest_path(only_big), fp32, digits.name)
    proc = run("--manifest", str(registry.manifest_path(only_big)), "--out", str(tmp_path / "p"),
               "--profiles", "low_end_phone")
    assert proc.returncode == 4 and "low_end_phone" in proc.stderr and "Traceback" not in proc.stderr


def test_unusable_manifest_exits_3(tmp_path: Path) -> None:
    bad = tmp_path / "manifest.json"
    bad.write_text("{")
    proc = run("--manifest", str(bad), "--out", str(tmp_path / "p"))
    assert proc.returncode == 3 and "Traceback" not in proc.stderr


def test_ram_bands_are_ordered_by_advertised_ram() -> None:
    bands = export_play.ram_bands(["high_end_phone", "low_end_phone"])
    assert bands["low_end_phone"] == (3 * export_play.GB - export_play.REPORTED_RAM_SHORTFALL_BYTES,
                                      12 * export_play.GB - export_play.REPORTED_RAM_SHORTFALL_BYTES)
    assert bands["high_end_phone"][1] is None
