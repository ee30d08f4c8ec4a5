"""Tests for helpers.report: Pareto front, claims vs measured, the report exporter, the tool cross-check."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

import helpers  # noqa: F401
from helpers import report
from helpers.registry import ManifestError, load_manifest


def entry(name, technique, size, acc, lat1, lat2=None, gzip=None, params=1000, **extra):
    return {
        "name": name, "technique": technique, "path": f"{name}.tflite", "size_bytes": int(size),
        "gzip_bytes": int(gzip if gzip is not None else size), "params": params, "sparsity": 0.0,
        "accuracy": acc, "latency_ms": {"1": lat1, "2": lat2 if lat2 is not None else lat1},
        "input": {"shape": [1, 8, 8, 1], "dtype": "float32", "scale": 0.0, "zero_point": 0},
        "sha256": "0" * 64, **extra,
    }


def manifest(*entries):
    return {"dataset": "digits", "variants": list(entries), "schema_version": 1}


def frame(rows):
    """A table with the three default objectives, indexed by name: rows = {name: (acc, size, lat)}."""
    return pd.DataFrame(
        [{"name": n, "accuracy": a, "size_kb": s, "latency_ms@1": l} for n, (a, s, l) in rows.items()]
    ).set_index("name")


# ---- Pareto front --------------------------------------------------------------------------------


def test_pareto_marks_dominated_and_tradeoffs():
    t = frame({"a": (0.98, 100, 1.0), "b": (0.97, 200, 2.0), "c": (0.99, 400, 3.0), "d": (0.90, 50, 5.0)})
    front = report.pareto_front(t)
    assert front.to_dict() == {"a": True, "b": False, "c": True, "d": True}
    assert report.dominated_by(t, front).to_dict() == {"a": "", "b": "a", "c": "", "d": ""}


def test_pareto_ties_stay_on_the_front_together():
    t = frame({"a": (0.98, 100, 1.0), "twin": (0.98, 100, 1.0), "worse": (0.98, 100, 1.5)})
    front = report.pareto_front(t)
    assert front["a"] and front["twin"], "identical variants do not dominate each other"
    assert not front["worse"], "equal on two objectives and worse on one is dominated"


def test_pareto_single_variant_is_optimal():
    front = report.pareto_front(frame({"only": (0.5, 10, 1.0)}))
    assert front.to_dict() == {"only": True}


def test_pareto_respects_direction_of_each_objective():
    t = frame({"acc_hi": (0.99, 100, 1.0), "acc_lo": (0.90, 100, 1.0)})
    assert report.pareto_front(t).to_dict() == {"acc_hi": True, "acc_lo": False}
    flipped = report.pareto_front(t, {"accuracy": "min"})
    assert flipped.to_dict() == {"acc_hi": False, "acc_lo": True}


def test_pareto_missing_value_is_neither_optimal_nor_dominating():
    t = frame({"a": (0.98, 100, 1.0), "nan": (1.0, 1, math.nan), "b": (0.97, 200, 2.0)})
    front = report.pareto_front(t)
    assert front.to_dict() == {"a": True, "nan": False, "b": False}


@pytest.mark.parametrize(
    "table, objectives, message",
    [
        (pd.DataFrame(columns=["accuracy", "size_kb", "latency_ms@1"]), None, "empty"),
        (frame({"a": (0.9, 1, 1)}), {"peak_memory_mb": "min"}, "not a column"),
        (frame({"a": (0.9, 1, 1)}), {"accuracy": "up"}, "'max' or 'min'"),
        (frame({"a": (0.9, 1, 1)}), {}, "at least one objective"),
    ],
)
def test_pareto_bad_input_is_one_clear_error(table, objectives, message):
    with pytest.raises(report.ReportError, match=message):
        report.pareto_front(table, objectives)


# ---- variants table ------------------------------------------------------------------------------


def test_variants_table_lists_every_variant_and_handles_peak_memory_absent():
    doc = manifest(entry("baseline_fp32", "baseline", 4000, 0.98, 0.04), entry("ptq_int8", "ptq", 1000, 0.97, 0.03))
    t = report.variants_table(doc)
    assert list(t.index) == ["baseline_fp32", "ptq_int8"]
    assert "peak_memory_mb" not in t.columns
    assert t.at["ptq_int8", "size_kb"] == pytest.approx(1000 / 1024)


def test_variants_table_peak_memory_number_or_mapping():
    doc = manifest(
        entry("a", "baseline", 4000, 0.98, 0.04, peak_memory_bytes=2 * 2**20),
        entry("b", "ptq", 1000, 0.97, 0.03, peak_memory_bytes={"1": 2**20, "2": 3 * 2**20}),
        entry("c", "ptq", 1000, 0.97, 0.03),
    )
    t = report.variants_table(doc)
    assert t.at["a", "peak_memory_mb"] == pytest.approx(2.0)
    assert t.at["b", "peak_memory_mb"] == pytest.approx(3.0)
    assert math.isnan(t.at["c", "peak_memory_mb"])


def test_variants_table_missing_thread_count_is_nan():
    e = entry("a", "baseline", 4000, 0.98, 0.04)
    e["latency_ms"] = {"1": 0.04}
    assert math.isnan(report.variants_table(manifest(e)).at["a", "latency_ms@2"])


def test_empty_manifest_is_a_clear_error():
    with pytest.raises(report.ReportError, match="no variants"):
        report.variants_table(manifest())


@pytest.mark.parametrize(
    "doc", [{"variants": []}, {"dataset": "digits", "variants": [{"name": "x"}]}, ["not", "an", "object"]]
)
def test_malformed_manifest_is_a_clear_error(doc):
    with pytest.raises(ManifestError):
        report.variants_table(doc)


def test_malformed_manifest_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "manifest.json"
    bad.write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(bad)


# ---- claims vs measured --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, low, high, measured, expected",
    [
        ("about", 4.0, None, 3.9, "agrees"),
        ("about", 4.0, None, 2.0, "falls short"),
        ("about", 4.0, None, 6.0, "exceeds"),
        ("at_least", 3.0, None, 1.1, "falls short"),
        ("at_least", 3.0, None, 9.0, "agrees"),
        ("range", 2.0, 3.0, 2.5, "agrees"),
        ("range", 2.0, 3.0, 1.0, "falls short"),
        ("range", 2.0, 3.0, 4.0, "exceeds"),
        ("up_to", 5.0, None, 5.0, "agrees"),
        ("up_to", 5.0, None, 2.0, "within the 'up to' bound"),
        ("up_to", 5.0, None, 8.0, "exceeds"),
        ("about", 4.0, None, None, "not measured"),
        ("about", 4.0, None, math.nan, "not measured"),
    ],
)
def test_verdict_is_computed_from_the_number(kind, low, high, measured, expected):
    claim = report.Claim("k", "t", "c", "size_ratio", kind, low, "src", high=high)
    assert report.verdict(measured, claim) == expected


def test_claim_rejects_unknown_kind_and_metric():
    with pytest.raises(report.ReportError, match="kind"):
        report.Claim("k", "t", "c", "size_ratio", "roughly", 1.0, "src")
    with pytest.raises(report.ReportError, match="metric"):
        report.Claim("k", "t", "c", "speed", "about", 1.0, "src")
    with pytest.raises(report.ReportError, match="high"):
        report.Claim("k", "t", "c", "size_ratio", "range", 2.0, "src")


def _claims_doc():
    return manifest(
        entry("baseline_fp32", "baseline", 4000, 0.98, 0.040, gzip=3600, params=1000),
        entry("ptq_int8", "ptq_int8", 1000, 0.978, 0.036, gzip=900, params=1000),
        entry("ptq_int8_mobile", "ptq_int8", 500, 0.90, 0.010, params=50000),  # other architecture
        entry("pruned_80", "pruning", 4000, 0.975, 0.040, gzip=1100, params=1000),
        entry("pruned_95", "pruning", 4000, 0.90, 0.040, gzip=500, params=1000),  # smaller but 8 pp worse
        entry("pruned_50", "pruning", 4000, 0.98, 0.040, gzip=2000, params=1000),
        entry("student_scratch", "student", 800, 0.960, 0.01, params=100),
        entry("student_distilled", "distillation", 800, 0.9644, 0.01, params=100),
    )


def test_claims_table_ratios_verdicts_and_not_measured_rows():
    t = report.variants_table(_claims_doc())
    c = report.claims_table(t, context={"base_ms": 0.04, "pp_per_image": 0.22}).reset_index().set_index("published")
    size = c.loc["4x smaller (≈ 4x)"]
    int8_size = size[size.technique == "PTQ full integer int8"].iloc[0]
    assert int8_size.variant == "ptq_int8", "the other-architecture variant must not be compared with the baseline"
    assert int8_size.value == pytest.approx(4.0) and int8_size.verdict == "agrees"
    speed = c.loc["3x+ faster (≥ 3x)"]
    assert speed.value == pytest.approx(0.040 / 0.036) and speed.verdict == "falls short"
    assert "0.040 ms" in speed["why (where this machine disagrees)"], "explanation filled from measured context"
    pruning = c.loc["3x smaller (≈ 3x)"]
    assert pruning.variant == "pruned_80" and pruning.value == pytest.approx(3600 / 1100), "accurate variants first"
    assert pruning["accuracy vs baseline (pp)"] == pytest.approx(-0.5)
    assert pruning["why (where this machine disagrees)"] == "", "no explanation when the claim holds"
    fp16 = c.loc["2x smaller (≈ 2x)"]
    assert fp16.verdict == "not measured" and fp16.measured == "not measured"
    distill = c[c.technique == "Knowledge distillation"].iloc[0]
    assert distill.variant == "student_distilled vs student_scratch"
    assert distill.value == pytest.approx(0.44, abs=1e-6) and distill.verdict == "agrees"


def test_claims_table_uses_same_run_latency_and_extra_values():
    t = report.variants_table(_claims_doc())
    c = report.claims_table(t, latency_1t={"baseline_fp32": 0.09, "ptq_int8": 0.03}, extra={"xnnpack_speed": 2.2})
    rows = c.reset_index().set_index("published")
    assert rows.loc["3x+ faster (≥ 3x)", "value"] == pytest.approx(3.0)
    assert rows.loc["3x+ faster (≥ 3x)", "verdict"] == "agrees"
    assert rows.loc["2.3x average speedup (≈ 2.3x)", "verdict"] == "agrees"


def test_claims_table_needs_the_baseline():
    t = report.variants_table(manifest(entry("ptq_int8", "ptq", 1000, 0.97, 0.03)))
    with pytest.raises(report.ReportError, match="baseline_fp32"):
        report.claims_table(t)


def test_claims_with_only_the_baseline_are_all_not_measured():
    t = report.variants_table(manifest(entry("baseline_fp32", "baseline", 4000, 0.98, 0.04)))
    c = report.claims_table(t)
    assert set(c.verdict) == {"not measured"}
    assert len(c) == len(report.CLAIMS)


# ---- report export -------------------------------------------------------------------------------


def test_report_lists_every_manifest_variant(tmp_path):
    import matplotlib.pyplot as plt

    doc = _claims_doc()
    t = report.variants_table(doc)
    front = report.pareto_front(t)
    fig = report.pareto_plot(t, front)
    out = report.export_report(tmp_path, t.assign(pareto=front), claims=report.claims_table(t),
                               figures={"pareto": fig}, notes=["a | note"])
    plt.close(fig)
    md, page = out["md"].read_text(), out["html"].read_text()
    for v in doc["variants"]:
        assert f"| {v['name']} |" in md, v["name"]
        assert f"<th>{v['name']}</th>" in page, v["name"]
    assert out["pareto"].is_file() and out["pareto"].read_bytes()[:4] == b"\x89PNG"
    assert "![pareto](pareto.png)" in md and 'src="pareto.png"' in page
    assert str(tmp_path) not in md and str(tmp_path) not in page, "no absolute paths in the report"


def test_report_refuses_an_empty_table(tmp_path):
    with pytest.raises(report.ReportError, match="empty"):
        report.export_report(tmp_path, pd.DataFrame())


def test_markdown_table_escapes_pipes_and_shows_missing_values():
    md = report.markdown_table(pd.DataFrame({"a": ["x|y"], "b": [math.nan]}, index=pd.Index(["r"], name="name")))
    assert md.splitlines()[0] == "| name | a | b |"
    assert md.splitlines()[2] == "| r | x\\|y | — |"


# ---- cross-check with the wheel's benchmark tool -------------------------------------------------


def test_benchmark_tool_runs_on_a_real_model(tflite_files, tmp_path):
    run = report.run_benchmark_tool(tflite_files["fp32"], tmp_path / "r.json", num_threads=1, num_runs=50, warmup_runs=5)
    assert run.num_threads == 1 and run.num_runs == 50 and "CPU" in run.accelerators
    assert run.median_ms >= 0 and run.p95_ms >= run.p5_ms
    assert str(tmp_path) not in run.command, "the command shown in outputs carries file names only"
    assert run.raw["model"] == tflite_files["fp32"].name, "the tool's JSON carries no absolute path"


def test_benchmark_tool_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(report.ReportError, match="No model file"):
        report.run_benchmark_tool(tmp_path / "absent.tflite", tmp_path / "r.json")


def test_benchmark_tool_failure_is_a_clear_error(tflite_files, tmp_path):
    fake = tmp_path / "fake_tool.py"
    fake.write_text("import sys\nprint('boom: unsupported flag', file=sys.stderr)\nsys.exit(3)\n")
    with pytest.raises(report.ReportError, match=r"exit 3\): boom: unsupported flag"):
        report.run_benchmark_tool(tflite_files["fp32"], tmp_path / "r.json", tool=fake)


def test_benchmark_tool_unreadable_result_is_a_clear_error(tflite_files, tmp_path):
    fake = tmp_path / "fake_tool.py"
    fake.write_text(
        "import sys\nout=[a.split('=',1)[1] for a in sys.argv if a.startswith('--result_json=')][0]\n"
        "open(out,'w').write('{\"latency\": {}}')\n"
    )
    with pytest.raises(report.ReportError, match="cannot read"):
        report.run_benchmark_tool(tflite_files["fp32"], tmp_path / "r.json", tool=fake)


@pytest.mark.parametrize(
    "ours, tool, expected",
    [(0.050, 0.05, "agree"), (0.044, 0.05, "agree within the tool's rounding"), (0.030, 0.05, "differ")],
)
def test_agreement(ours, tool, expected):
    assert report.agreement(ours, tool) == expected


def _tool(median):
    return report.ToolRun(median, median, None, median, median, 100, 1, True, ("CPU",), "python tool")


def test_cross_check_explanations_follow_the_numbers():
    table = report.cross_check_table([
        {"threads": 1, "ours_ms": 0.050, "tool": _tool(0.05), "compiled_ms": 0.049},
        {"threads": 2, "ours_ms": 0.030, "tool": _tool(0.06), "compiled_ms": 0.058},
    ])
    lines = report.explain_cross_check(table)
    assert lines[0].endswith(": agree.")
    assert "differ" in lines[1] and "between the two APIs" in lines[1] and "Interpreter path" in lines[1]
    noisy = report.cross_check_table([{"threads": 1, "ours_ms": 0.030, "tool": _tool(0.06), "compiled_ms": 0.09}])
    assert "noise" in report.explain_cross_check(noisy)[0]
    tool_run = report.cross_check_table([{"threads": 1, "ours_ms": 0.047, "tool": _tool(0.06), "compiled_ms": 0.048}])
    assert "API is not the cause" in report.explain_cross_check(tool_run)[0]
    bare = report.cross_check_table([{"threads": 1, "ours_ms": 0.030, "tool": _tool(0.06)}])
    assert "benchmark_compiled_model" in report.explain_cross_check(bare)[0]


def test_median_tool_run():
    runs = [_tool(0.07), _tool(0.05), _tool(0.06)]
    assert report.median_tool_run(runs).median_ms == 0.06
    with pytest.raises(report.ReportError):
        report.median_tool_run([])


def test_compiled_model_benchmark_runs(tflite_files):
    ms = report.benchmark_compiled_model(tflite_files["fp32"], num_threads=1, runs=20, warmup=2)
    assert ms > 0


def test_remeasure_latency_times_every_loadable_model_and_skips_broken_ones(tflite_files, tmp_path, digits):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a model")
    ms = report.remeasure_latency({"fp32": tflite_files["fp32"], "int8": tflite_files["int8"], "broken": broken},
                                  digits.x_test[:1], rounds=2, runs=20, warmup=2)
    assert set(ms) == {"fp32", "int8"} and all(v > 0 for v in ms.values())
    with pytest.raises(report.ReportError, match="No models"):
        report.remeasure_latency({}, digits.x_test[:1])


def test_claims_explain_where_the_machine_exceeds_the_figure():
    t = report.variants_table(_claims_doc())
    c = report.claims_table(t, extra={"xnnpack_speed": 4.0}, context={"pp_per_image": 0.22})
    row = c.loc["XNNPACK delegate (fp32)"]
    assert row.verdict == "exceeds" and "SIMD" in row["why (where this machine disagrees)"]
    for claim in report.CLAIMS:
        assert claim.why and claim.why_exceeds, f"{claim.key} needs both explanations"


def test_ptq_claims_ignore_other_techniques_with_a_ptq_technique_string():
    doc = manifest(
        entry("baseline_fp32", "baseline", 4000, 0.98, 0.040, params=1000),
        entry("pruned_80_int8", "ptq_int8", 300, 0.97, 0.030, params=1000),
    )
    c = report.claims_table(report.variants_table(doc))
    assert c.loc["PTQ full integer int8"].verdict.eq("not measured").all()
    assert c.loc["Pruning + int8 quantization (gzipped)", "variant"] == "pruned_80_int8"


def test_claims_fall_back_to_the_best_variant_when_none_is_accurate_enough():
    doc = manifest(
        entry("baseline_fp32", "baseline", 4000, 0.98, 0.040, gzip=3600, params=1000),
        entry("pruned_95", "pruning", 4000, 0.90, 0.040, gzip=500, params=1000),
        entry("pruned_97", "pruning", 4000, 0.85, 0.040, gzip=400, params=1000),
    )
    row = report.claims_table(report.variants_table(doc)).loc["Pruning (stripped, gzipped)"]
    assert row.variant == "pruned_97" and row["accuracy vs baseline (pp)"] == pytest.approx(-13.0)


def test_claims_plot_draws_measured_ratio_claims_only():
    import matplotlib.pyplot as plt

    t = report.variants_table(_claims_doc())
    c = report.claims_table(t, extra={"xnnpack_speed": 3.0})
    fig = report.claims_plot(c)
    labels = [tick.get_text() for tick in fig.axes[0].get_yticklabels()]
    assert "XNNPACK delegate (fp32): speed" in labels and "PTQ full integer int8: size" in labels
    assert not any(label.startswith("Knowledge distillation") for label in labels)
    plt.close(fig)
    empty = report.claims_plot(report.claims_table(report.variants_table(manifest(entry("baseline_fp32", "b", 4000, 0.98, 0.04)))))
    plt.close(empty)
    with pytest.raises(report.ReportError, match="same claims"):
        report.claims_plot(c, report.CLAIMS[:2])


def test_claims_prefer_name_matches_over_technique_matches():
    doc = manifest(
        entry("baseline_fp32", "baseline", 4000, 0.98, 0.040, params=1000),
        entry("ptq_dynamic", "ptq_dynamic_range", 1000, 0.98, 0.020, params=1000),
        entry("lq_dynamic_int8", "litert_quantizer_dynamic_int8", 990, 0.98, 0.010, params=1000),
        entry("ptq_int8_selective", "ptq_int8_selective", 1000, 0.98, 0.005, params=1000),
    )
    c = report.claims_table(report.variants_table(doc))
    assert set(c.loc["PTQ dynamic range", "variant"]) == {"ptq_dynamic"}, "the converter's variant, named as such"
    assert set(c.loc["PTQ full integer int8", "verdict"]) == {"not measured"}, "selective keeps layers in float"
    only_lq = manifest(doc["variants"][0], doc["variants"][2])
    c = report.claims_table(report.variants_table(only_lq))
    assert set(c.loc["PTQ dynamic range", "variant"]) == {"lq_dynamic_int8"}, "technique match when no name matches"


@pytest.mark.parametrize(
    "name, technique, family",
    [
        ("baseline_fp32", "baseline", "baseline fp32"),
        ("ptq_int8", "ptq_full_int8", "post-training quantization"),
        ("lq_dynamic_int8", "litert_quantizer_dynamic_int8", "post-training quantization"),
        ("pcqat_16_int8", "pruning + clustering + PCQAT int8", "pruning (+ quantization)"),
        ("cqat_16_int8", "clustering + CQAT int8", "clustering (+ quantization)"),
        ("qat_int8", "qat", "quantization-aware training"),
        ("student_distilled_int8", "distillation+ptq_int8", "distillation / student"),
        ("mobile_ptq_int8", "mobile_ptq_full_int8", "mobile-scale model"),
        ("mystery", "something", "other"),
    ],
)
def test_technique_family(name, technique, family):
    assert report.technique_family(name, technique) == family


def test_claims_skip_variants_without_a_timing():
    e = entry("ptq_int8", "ptq_full_int8", 1000, 0.98, 0.02, params=1000)
    e["latency_ms"] = {"2": 0.02}
    doc = manifest(entry("baseline_fp32", "baseline", 4000, 0.98, 0.040, params=1000), e)
    c = report.claims_table(report.variants_table(doc), claims=iter(report.CLAIMS))
    rows = c.loc["PTQ full integer int8"].set_index("published")
    assert rows.loc["3x+ faster (≥ 3x)", "verdict"] == "not measured"
    assert rows.loc["4x smaller (≈ 4x)", "verdict"] == "agrees"


def test_report_dir_keeps_datasets_apart(tmp_path):
    assert report.report_dir(tmp_path, tmp_path / "models") == tmp_path / "results"
    other = report.report_dir(tmp_path, tmp_path / "models-fashion_mnist")
    assert other == tmp_path / "results" / "fashion_mnist" and other.is_dir()
