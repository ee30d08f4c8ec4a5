"""The workshop's quick path builds what notebooks 07 and 08 need, and is idempotent."""

from __future__ import annotations

from pathlib import Path

from helpers import quick_variants, registry
from helpers.paths import models_dir
from helpers.selection import load_verified


def test_quick_variants_builds_the_selection_set_once(tmp_path: Path) -> None:
    lines: list[str] = []
    built = quick_variants.build(tmp_path, seed=0, log=lines.append)
    assert built == ["ptq_dynamic", "ptq_fp16", "ptq_int8", "student_scratch_fp32"]
    models = models_dir(tmp_path, "digits")
    vm = load_verified(registry.manifest_path(models))
    assert set(vm.names()) == {"baseline_fp32", *built} and not vm.skipped
    by_name = {v["name"]: v for v in vm.variants}
    base = by_name["baseline_fp32"]
    # the quantized files are what notebook 02 teaches: about 4x / 2x smaller, accuracy within 2 pp
    assert by_name["ptq_int8"]["size_bytes"] < 0.3 * base["size_bytes"]
    assert by_name["ptq_fp16"]["size_bytes"] < 0.55 * base["size_bytes"]
    for name in ("ptq_dynamic", "ptq_fp16", "ptq_int8"):
        assert by_name[name]["accuracy"] >= base["accuracy"] - 0.02, name
        assert by_name[name]["peak_memory_bytes"], name
    assert by_name["student_scratch_fp32"]["params"] < base["params"] / 5
    # a second run finds everything registered and intact, and builds nothing
    assert quick_variants.build(tmp_path, seed=0, log=lines.append) == []
