"""Selection policy, manifest verification, peak-memory measurement and hot-swap serving."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest

from helpers import registry
from helpers.memory import MemoryMeasurementError, measure_peak_memory
from helpers.registry import ManifestError
from helpers.selection import (
    KB, PROFILES, Constraints, NoVariantFits, constraints_for, latency_at, load_verified, pareto_front, select_variant,
    violations,
)
from helpers.serving import HotSwapServer


def _entry(name: str, content: bytes = b"", **over) -> dict:
    e = {
        "name": name, "technique": "test", "path": f"{name}.tflite", "size_bytes": 1000, "gzip_bytes": 900,
        "params": 250, "sparsity": 0.0, "accuracy": 0.9, "latency_ms": {"1": 0.05, "2": 0.04},
        "input": {"shape": [1, 8, 8, 1], "dtype": "float32", "scale": 0.0, "zero_point": 0},
        "sha256": hashlib.sha256(content or name.encode()).hexdigest(), "peak_memory_bytes": 4 * 1024 * 1024,
    }
    e.update(over)
    return e


def _manifest(tmp_path, entries: list[dict], write_files: bool = True):
    path = registry.manifest_path(tmp_path)
    for e in entries:
        if write_files:
            (tmp_path / e["path"]).write_bytes(e["name"].encode())
        registry.register_variant(path, e, "digits")
    return path


# ---------------------------------------------------------------- manifest verification
def test_missing_and_corrupt_files_are_skipped_not_fatal(tmp_path):
    path = _manifest(tmp_path, [_entry("good"), _entry("gone"), _entry("tampered")])
    (tmp_path / "gone.tflite").unlink()
    (tmp_path / "tampered.tflite").write_bytes(b"tampered!")
    vm = load_verified(path)
    assert vm.names() == ["good"] and vm.dataset == "digits"
    reasons = {s.name: s.reason for s in vm.skipped}
    assert "missing" in reasons["gone"] and "sha256" in reasons["tampered"]
    assert vm.file_of(vm.variants[0]) == tmp_path / "good.tflite"
    assert load_verified(path, verify_hash=False).names() == ["good", "tampered"]  # hash check can be skipped
    assert select_variant(vm, Constraints()).name == "good"  # the app keeps serving what it can trust


def test_malformed_or_missing_manifest_raises_one_clear_error(tmp_path):
    with pytest.raises(ManifestError, match="No manifest"):
        load_verified(tmp_path / "manifest.json")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_verified(tmp_path / "manifest.json")


def test_no_usable_variant_is_a_clear_refusal_even_with_fallback(tmp_path):
    path = _manifest(tmp_path, [_entry("a")], write_files=False)
    vm = load_verified(path)
    assert [s.name for s in vm.skipped] == ["a"]
    for fallback in ("refuse", "smallest"):
        with pytest.raises(NoVariantFits, match="no usable variant") as info:
            select_variant(vm, Constraints(), fallback=fallback)
        assert info.value.constraint == "available"


# ---------------------------------------------------------------- policy and ties
VARIANTS = [
    _entry("fp32", size_bytes=600 * KB, accuracy=0.99, latency_ms={"1": 0.050, "2": 0.030}, peak_memory_bytes=5 * 2**20),
    _entry("fp16", size_bytes=300 * KB, accuracy=0.99, latency_ms={"1": 0.050, "2": 0.030}, peak_memory_bytes=5 * 2**20),
    _entry("int8", size_bytes=150 * KB, accuracy=0.97, latency_ms={"1": 0.020, "2": 0.025}, peak_memory_bytes=4 * 2**20),
    _entry("tiny", size_bytes=20 * KB, accuracy=0.80, latency_ms={"1": 0.010}, peak_memory_bytes=3 * 2**20),
]


def test_best_accuracy_tie_goes_to_faster_then_smaller_then_name():
    assert select_variant(VARIANTS, Constraints()).name == "fp16"  # same accuracy and latency as fp32, smaller
    twins = [_entry("b", accuracy=0.9), _entry("a", accuracy=0.9)]
    assert select_variant(twins, Constraints()).name == "a"  # everything equal: by name, whatever the order
    assert select_variant(list(reversed(twins)), Constraints()).name == "a"
    faster = [_entry("slow", accuracy=0.9, size_bytes=10), _entry("quick", accuracy=0.9, latency_ms={"1": 0.01})]
    assert select_variant(faster, Constraints()).name == "quick"  # latency breaks an accuracy tie before size


def test_fastest_above_a_floor_and_its_ties():
    assert select_variant(VARIANTS, Constraints(), objective="fastest").name == "tiny"
    assert select_variant(VARIANTS, Constraints(min_accuracy=0.95), objective="fastest").name == "int8"
    # at 2 threads int8 (0.025) is slower than fp32/fp16 (0.030)? no: 0.025 < 0.030, still int8
    assert select_variant(VARIANTS, Constraints(min_accuracy=0.95, threads=2), objective="fastest").name == "int8"
    # equal latency: higher accuracy wins, then smaller file
    tie = [_entry("x", accuracy=0.91, latency_ms={"1": 0.02}), _entry("y", accuracy=0.95, latency_ms={"1": 0.02}),
           _entry("z", accuracy=0.95, latency_ms={"1": 0.02}, size_bytes=10)]
    assert select_variant(tie, Constraints(), objective="fastest").name == "z"


def test_each_constraint_binds():
    assert select_variant(VARIANTS, Constraints(max_size_bytes=200 * KB)).name == "int8"
    assert select_variant(VARIANTS, Constraints(max_memory_bytes=int(4.5 * 2**20))).name == "int8"
    assert select_variant(VARIANTS, Constraints(max_latency_ms=0.03)).name == "int8"
    assert select_variant(VARIANTS, Constraints(max_latency_ms=0.03, threads=2)).name == "fp16"
    sel = select_variant(VARIANTS, Constraints(max_size_bytes=200 * KB, min_accuracy=0.9))
    assert sel.candidates == ("int8",) and not sel.fallback
    assert sel.rejected["fp32"] == ["max size 200 KB"] and sel.rejected["tiny"] == ["min accuracy 0.9"]


@pytest.mark.parametrize(
    ("constraints", "named", "message"),
    [
        (Constraints(max_size_bytes=10 * KB), "max_size_bytes", r"max size 10 KB rules out every variant \(the smallest is tiny at 20.0 KB\)"),
        (Constraints(max_memory_bytes=128 * KB), "max_memory_bytes", r"max peak memory 128 KB .*the leanest is tiny"),
        (Constraints(min_accuracy=0.995), "min_accuracy", r"min accuracy 0.995 .*the most accurate is fp16"),
        (Constraints(max_latency_ms=0.001), "max_latency_ms", r"max latency 0.001 ms at 1 thread\(s\) .*the fastest is tiny"),
        (Constraints(max_size_bytes=200 * KB, min_accuracy=0.98), "min_accuracy", r"left after max size 200 KB"),
        (Constraints(min_accuracy=0.95, max_latency_ms=0.015), "max_latency_ms", r"left after min accuracy 0.95 \(the fastest is int8"),
    ],
)
def test_impossible_budgets_name_the_constraint(constraints, named, message):
    with pytest.raises(NoVariantFits, match=message) as info:
        select_variant(VARIANTS, constraints)
    assert info.value.constraint == named
    assert "\n" not in str(info.value)


def test_smallest_fallback_says_what_it_breaks():
    sel = select_variant(VARIANTS, Constraints(max_size_bytes=10 * KB, min_accuracy=0.9), fallback="smallest")
    assert sel.fallback and sel.name == "tiny" and sel.candidates == ()
    assert sel.rejected["tiny"] == ["max size 10 KB", "min accuracy 0.9"]


def test_unmeasured_memory_or_latency_cannot_fit():
    no_mem = {k: v for k, v in _entry("m").items() if k != "peak_memory_bytes"}
    assert violations(no_mem, Constraints(max_memory_bytes=10**9)) == ["max peak memory 976562 KB"]
    with pytest.raises(NoVariantFits, match="measured peak_memory_bytes"):
        select_variant([no_mem], Constraints(max_memory_bytes=10**9))
    assert violations(no_mem, Constraints()) == []  # no memory limit, no problem
    only_two = _entry("two", latency_ms={"2": 0.01})
    assert latency_at(only_two, 1) is None and latency_at(only_two, 4) == 0.01
    with pytest.raises(NoVariantFits, match="no.*latency measured at <= 1"):
        select_variant([only_two], Constraints(max_latency_ms=1.0, threads=1))


def test_latency_uses_nearest_lower_thread_count():
    e = _entry("e", latency_ms={"1": 0.05, "2": 0.03})
    assert latency_at(e, 1) == 0.05 and latency_at(e, 2) == 0.03 and latency_at(e, 8) == 0.03


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"threads": 0}, "threads"), ({"max_size_bytes": -1}, "max_size_bytes"), ({"max_latency_ms": 0}, "max_latency_ms"),
     ({"min_accuracy": 95}, "fraction"), ({"threads": True}, "threads"), ({"max_size_bytes": math.nan}, "max_size_bytes"),
     ({"min_accuracy": math.nan}, "fraction"), ({"max_memory_bytes": "1 MB"}, "max_memory_bytes"), ({"threads": 1.0}, "threads")],
)
def test_bad_constraints_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Constraints(**kwargs)


def test_bad_objective_or_fallback_is_refused():
    with pytest.raises(ValueError, match="objective"):
        select_variant(VARIANTS, Constraints(), objective="cheapest")
    with pytest.raises(ValueError, match="fallback"):
        select_variant(VARIANTS, Constraints(), fallback="largest")


def test_profiles_and_overrides():
    assert {"low_end_phone", "mid_range_phone", "high_end_phone", "microcontroller"} <= set(PROFILES)
    c = PROFILES["low_end_phone"].constraints(max_latency_ms=9.0)
    assert c.max_latency_ms == 9.0 and c.threads == 1 and c.max_size_bytes == PROFILES["low_end_phone"].max_size_bytes
    assert select_variant(VARIANTS, PROFILES["high_end_phone"].constraints()).name == "fp16"
    assert select_variant(VARIANTS, PROFILES["low_end_phone"].constraints()).name == "int8"
    assert PROFILES["low_end_phone"].objective == "fastest" and PROFILES["high_end_phone"].objective == "best_accuracy"
    with pytest.raises(NoVariantFits) as info:  # MB-scale runtime memory never fits a 128 KB MCU
        select_variant(VARIANTS, PROFILES["microcontroller"].constraints())
    assert info.value.constraint == "max_memory_bytes"


def test_constraints_for_gives_a_profile_every_limit_and_its_objective():
    for name, p in PROFILES.items():
        c, objective = constraints_for(name)
        assert (c.max_size_bytes, c.max_memory_bytes, c.max_latency_ms, c.min_accuracy, c.threads) == (
            p.max_size_bytes, p.max_memory_bytes, p.max_latency_ms, p.min_accuracy, p.threads)
        assert objective == p.objective and constraints_for(p) == (c, objective)
    budget = constraints_for("low_end_phone", max_size_bytes=200 * KB, objective="best_accuracy")
    assert budget.constraints.max_size_bytes == 200 * KB and budget.objective == "best_accuracy"
    assert budget.constraints.max_memory_bytes == PROFILES["low_end_phone"].max_memory_bytes  # kept
    assert constraints_for("microcontroller", max_memory_bytes=math.inf).constraints.max_memory_bytes is None
    assert constraints_for() == (Constraints(), "best_accuracy")
    assert constraints_for(None, threads=2, max_latency_ms=0.5).constraints == Constraints(max_latency_ms=0.5, threads=2)
    with pytest.raises(ValueError, match="unknown profile 'toaster'"):
        constraints_for("toaster")
    with pytest.raises(ValueError, match="unknown budget field"):
        constraints_for("low_end_phone", max_size_kb=3)
    with pytest.raises(ValueError, match="objective"):
        constraints_for("low_end_phone", objective="cheapest")


def test_every_profile_applies_its_memory_budget():
    lean = _entry("lean", peak_memory_bytes=64 * KB, size_bytes=10 * KB, accuracy=0.99, latency_ms={"1": 0.01})
    for name, p in PROFILES.items():
        heavy = _entry("heavy", peak_memory_bytes=p.max_memory_bytes + 1, size_bytes=10 * KB, accuracy=1.0,
                       latency_ms={"1": 0.001})
        c, objective = constraints_for(name)
        assert select_variant([heavy, lean], c, objective).name == "lean", name  # heavy wins on everything else
        unmeasured = {k: v for k, v in heavy.items() if k != "peak_memory_bytes"}
        assert select_variant([unmeasured, lean], c, objective).name == "lean", name


def test_malformed_entries_passed_directly_are_refused_clearly():
    for bad in (_entry("m", peak_memory_bytes={"1": 100}), _entry("n", latency_ms={"1": math.nan}),
                _entry("s", size_bytes=-1), _entry("i", input={"shape": "eight", "dtype": "float32"})):
        with pytest.raises(ManifestError, match="load_verified"):
            select_variant([_entry("ok"), bad], Constraints(max_memory_bytes=10**9))


def test_a_nan_latency_can_no_longer_make_the_choice_depend_on_order(tmp_path):
    entries = [_entry("a", latency_ms={"1": 0.02}), _entry("b", latency_ms={"1": 0.03}), _entry("c", latency_ms={"1": 0.01})]
    path = _manifest(tmp_path, entries)
    doc = json.loads(path.read_text())
    doc["variants"][2]["latency_ms"]["1"] = math.nan
    for order in (doc["variants"], doc["variants"][::-1]):
        path.write_text(json.dumps({**doc, "variants": order}))  # json writes a bare NaN token here
        vm = load_verified(path)
        assert [s.name for s in vm.skipped] == ["c"] and "NaN" in vm.skipped[0].reason
        assert select_variant(vm, Constraints(), "fastest").name == "a"


def test_pareto_front():
    assert pareto_front(VARIANTS, threads=1) == ["fp16", "fp32", "int8", "tiny"]  # fp16/fp32 tie: neither dominates
    dominated = VARIANTS + [_entry("bad", accuracy=0.85, latency_ms={"1": 0.06})]
    assert "bad" not in pareto_front(dominated, threads=1)


# ---------------------------------------------------------------- registry.update_variant
def test_update_variant_only_onto_the_same_file(tmp_path):
    path = _manifest(tmp_path, [_entry("a")])
    sha = registry.load_manifest(path)["variants"][0]["sha256"]
    assert registry.update_variant(path, "a", sha, peak_memory_bytes=123)["peak_memory_bytes"] == 123
    assert registry.update_variant(path, "a", "f" * 64, peak_memory_bytes=999) is None  # file changed meanwhile
    assert registry.update_variant(path, "nope", sha, peak_memory_bytes=1) is None
    assert registry.load_manifest(path)["variants"][0]["peak_memory_bytes"] == 123
    with pytest.raises(ValueError, match="schema"):
        registry.update_variant(path, "a", sha, accuracy=1.0)


# ---------------------------------------------------------------- measured memory (real files)
def test_peak_memory_grows_with_the_weights_a_model_touches(tflite_files, big_tflite):
    """A model whose invoke() reads ~8.9 MB more float32 weights must measure several MB more peak
    memory than the tiny one: checks the measurement against a known quantity, not against itself."""
    path, params = big_tflite
    tiny, large = measure_peak_memory(tflite_files["fp32"], runs=5), measure_peak_memory(path, runs=5)
    assert tiny.baseline_rss_bytes > 0 and tiny.threads == 1 and tiny.xnnpack
    assert large.peak_growth_bytes - tiny.peak_growth_bytes > 0.5 * 4 * params, (large, tiny, params)


def test_peak_memory_errors_are_clear(tmp_path):
    with pytest.raises(MemoryMeasurementError, match="No model file"):
        measure_peak_memory(tmp_path / "none.tflite")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00\x00\x00\x00TFL3" + b"\x00" * 64)
    with pytest.raises(MemoryMeasurementError, match="corrupt"):
        measure_peak_memory(bad)
    with pytest.raises(ValueError, match="positive"):
        measure_peak_memory(bad, num_threads=0)


def test_register_tflite_can_store_peak_memory(tmp_path, tflite_files, digits):
    dest = registry.save_tflite(tflite_files["int8"].read_bytes(), tmp_path, "tiny_int8")
    entry = registry.register_tflite(tmp_path, dest, "tiny_int8", "ptq_int8", digits, runs=5, measure_memory=True)
    assert entry["peak_memory_bytes"] > 0
    assert json.loads(registry.manifest_path(tmp_path).read_text())["variants"][0]["peak_memory_bytes"] == entry["peak_memory_bytes"]


# ---------------------------------------------------------------- hot-swap serving
def _serve_until(server, digits, variant, cap=5000):
    while server.current[0] != variant and len(server.log) < cap:
        server.serve(digits.x_test[len(server.log) % len(digits.x_test)])


def test_hot_swap_answers_every_request(tflite_files, digits):
    server = HotSwapServer("fp32", tflite_files["fp32"], threads=1)
    assert not server.swap_to("fp32", tflite_files["fp32"], 1)  # already serving it
    for i in range(20):
        server.serve(digits.x_test[i])
    assert server.swap_to("int8", tflite_files["int8"], 1)
    assert server.target == ("int8", 1) and server.current == ("fp32", 1)  # still serving the old one
    _serve_until(server, digits, "int8")
    server.swap_to("fp32", tflite_files["fp32"], 2)
    _serve_until(server, digits, "fp32")
    n = len(server.log)
    assert server.current == ("fp32", 2) and n < 5000
    assert [s.index for s in server.log] == list(range(n))  # nothing dropped, nothing doubled
    assert [(s.old, s.new) for s in server.swaps] == [("fp32", "int8"), ("int8", "fp32")]
    assert server.swaps[0].requested_at == 20 and server.swaps[0].live_at >= 20 and server.swaps[0].load_ms > 0
    assert {s.variant for s in server.log[:20]} == {"fp32"}
    y = digits.y_test[np.arange(n) % len(digits.y_test)]
    assert np.mean([s.prediction for s in server.log] == y) > 0.7


def test_a_newer_decision_supersedes_a_load_in_flight(tflite_files, digits):
    server = HotSwapServer("fp32", tflite_files["fp32"], threads=1)
    server.swap_to("int8", tflite_files["int8"], 1)
    server.swap_to("fp32_2", tflite_files["fp32"], 2)
    server.finish()
    server.serve(digits.x_test[0])
    assert server.current == ("fp32_2", 2) and server.superseded == ["int8"]
    assert [s.new for s in server.swaps] == ["fp32_2"]


def test_failed_swap_keeps_serving_the_old_model(tmp_path, tflite_files, digits):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"garbage")
    server = HotSwapServer("fp32", tflite_files["fp32"], threads=1)
    server.swap_to("bad", bad, 1)
    server.finish()
    server.serve(digits.x_test[0])
    assert server.current == ("fp32", 1) and server.failed_swaps and server.failed_swaps[0][0] == "bad"
    assert len(server.log) == 1 and server.swaps == []


# ---------------------------------------------------------------- report tables and plots
def test_profile_table_and_plots():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from helpers import selection_report

    table = selection_report.profile_table(VARIANTS, PROFILES.values())
    assert table.loc["low_end_phone", "chosen"] == "int8" and table.loc["high_end_phone", "measured at threads"] == 2
    assert table.loc["low_end_phone", "objective"] == "fastest"
    loose = [dict(v, accuracy=max(v["accuracy"], 0.95)) for v in VARIANTS]  # now "tiny" clears every floor
    assert selection_report.profile_table(loose, [PROFILES["low_end_phone"]]).loc["low_end_phone", "chosen"] == "tiny"
    accurate = selection_report.profile_table(loose, [PROFILES["low_end_phone"]], objective="best_accuracy")
    assert accurate.loc["low_end_phone", "chosen"] == "int8"  # the override beats the profile's objective
    assert table.loc["microcontroller", "chosen"] == "(refused)"
    assert table.loc["microcontroller", "ruled out by"] == "max_memory_bytes"
    c = Constraints(max_size_bytes=200 * KB)
    ax = selection_report.pareto_plot(VARIANTS, c, select_variant(VARIANTS, c))
    assert "chosen: int8" in [t.get_text() for t in ax.get_legend().get_texts()]
    log = pd.DataFrame({"index": range(6), "variant": ["a"] * 3 + ["b"] * 3, "latency_ms": [0.1] * 6})
    phases = pd.DataFrame({"condition": ["x", "y"], "start": [0, 3], "stop": [3, 6]})
    ax = selection_report.timeline_plot(log, phases, pd.DataFrame({"live_at": [3], "new": ["b"]}))
    assert ax.get_yscale() == "log"
    plt.close("all")
