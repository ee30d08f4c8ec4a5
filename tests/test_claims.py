"""Tests for helpers.claims: published figures (as data) vs measured, verdicts, explanations."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pytest

import helpers  # noqa: F401
from helpers import claims, results_table
from helpers.results_table import ReportError
from manifest_entries import claims_doc as _claims_doc, entry, manifest


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
    claim = claims.Claim("k", "t", "c", "size_ratio", kind, low, "src", high=high)
    assert claims.verdict(measured, claim) == expected


def test_claim_rejects_unknown_kind_and_metric():
    with pytest.raises(ReportError, match="kind"):
        claims.Claim("k", "t", "c", "size_ratio", "roughly", 1.0, "src")
    with pytest.raises(ReportError, match="metric"):
        claims.Claim("k", "t", "c", "speed", "about", 1.0, "src")
    with pytest.raises(ReportError, match="high"):
        claims.Claim("k", "t", "c", "size_ratio", "range", 2.0, "src")


def test_claims_table_ratios_verdicts_and_not_measured_rows():
    t = results_table.variants_table(_claims_doc())
    c = claims.claims_table(t, context={"base_ms": 0.04, "pp_per_image": 0.22}).reset_index().set_index("published")
    size = c.loc["4x smaller (≈ 4x)"]
    int8_size = size[size.technique == "PTQ full integer int8"].iloc[0]
    assert int8_size.variant == "ptq_int8", "the other-architecture variant must not be compared with the baseline"
    assert int8_size.value == pytest.approx(4.0) and int8_size.verdict == "agrees"
    speed = c.loc["3x+ speedup (≥ 3x)"]
    assert speed.value == pytest.approx(0.040 / 0.036) and speed.verdict == "falls short"
    assert "0.040 ms" in speed["why (where this machine disagrees)"], "explanation filled from measured context"
    pruning = c.loc["3x smaller from pruning (≈ 3x)"]
    assert pruning.variant == "pruned_80" and pruning.value == pytest.approx(3600 / 1100), "accurate variants first"
    assert pruning["accuracy vs baseline (pp)"] == pytest.approx(-0.5)
    assert pruning["why (where this machine disagrees)"] == "", "no explanation when the claim holds"
    fp16 = c.loc["2x smaller (≈ 2x)"]
    assert fp16.verdict == "not measured" and fp16.measured == "not measured"
    distill = c[c.technique == "Knowledge distillation"].iloc[0]
    assert distill.variant == "student_distilled vs student_scratch"
    assert distill.value == pytest.approx(0.44, abs=1e-6) and distill.verdict == "agrees"


def test_claims_table_uses_same_run_latency_and_extra_values():
    t = results_table.variants_table(_claims_doc())
    c = claims.claims_table(t, latency_1t={"baseline_fp32": 0.09, "ptq_int8": 0.03}, extra={"xnnpack_speed": 2.2})
    rows = c.reset_index().set_index("published")
    assert rows.loc["3x+ speedup (≥ 3x)", "value"] == pytest.approx(3.0)
    assert rows.loc["3x+ speedup (≥ 3x)", "verdict"] == "agrees"
    assert rows.loc["2.3x average speedup of float inference (≈ 2.3x)", "verdict"] == "agrees"


def test_claims_table_needs_the_baseline():
    t = results_table.variants_table(manifest(entry("ptq_int8", "ptq", 1000, 0.97, 0.03)))
    with pytest.raises(ReportError, match="baseline_fp32"):
        claims.claims_table(t)


def test_claims_with_only_the_baseline_are_all_not_measured():
    t = results_table.variants_table(manifest(entry("baseline_fp32", "baseline", 4000, 0.98, 0.04)))
    c = claims.claims_table(t)
    assert set(c.verdict) == {"not measured"}
    assert len(c) == len(claims.default_claims())


def test_claims_explain_where_the_machine_exceeds_the_figure():
    t = results_table.variants_table(_claims_doc())
    c = claims.claims_table(t, extra={"xnnpack_speed": 4.0}, context={"pp_per_image": 0.22})
    row = c.loc["XNNPACK delegate (fp32)"]
    assert row.verdict == "exceeds" and "SIMD" in row["why (where this machine disagrees)"]
    for claim in claims.default_claims():
        if claim.kind != "context":
            assert claim.why and claim.why_exceeds, f"{claim.key} needs both explanations"


def test_ptq_claims_ignore_other_techniques_with_a_ptq_technique_string():
    doc = manifest(
        entry("baseline_fp32", "baseline", 4000, 0.98, 0.040, params=1000),
        entry("pruned_80_int8", "ptq_int8", 300, 0.97, 0.030, params=1000),
    )
    c = claims.claims_table(results_table.variants_table(doc))
    assert c.loc["PTQ full integer int8"].verdict.eq("not measured").all()
    assert c.loc["Pruning + int8 quantization (gzipped)", "variant"] == "pruned_80_int8"


def test_claims_fall_back_to_the_best_variant_when_none_is_accurate_enough():
    doc = manifest(
        entry("baseline_fp32", "baseline", 4000, 0.98, 0.040, gzip=3600, params=1000),
        entry("pruned_95", "pruning", 4000, 0.90, 0.040, gzip=500, params=1000),
        entry("pruned_97", "pruning", 4000, 0.85, 0.040, gzip=400, params=1000),
    )
    row = claims.claims_table(results_table.variants_table(doc)).loc["Pruning (stripped, gzipped)"]
    assert row.variant == "pruned_97" and row["accuracy vs baseline (pp)"] == pytest.approx(-13.0)


def test_claims_plot_draws_measured_ratio_claims_only():
    import matplotlib.pyplot as plt

    t = results_table.variants_table(_claims_doc())
    c = claims.claims_table(t, extra={"xnnpack_speed": 3.0})
    fig = claims.claims_plot(c)
    labels = [tick.get_text() for tick in fig.axes[0].get_yticklabels()]
    assert "XNNPACK delegate (fp32): speed" in labels and "PTQ full integer int8: size" in labels
    assert not any(label.startswith("Knowledge distillation") for label in labels)
    plt.close(fig)
    empty = claims.claims_plot(claims.claims_table(results_table.variants_table(manifest(entry("baseline_fp32", "b", 4000, 0.98, 0.04)))))
    plt.close(empty)
    with pytest.raises(ReportError, match="same claims"):
        claims.claims_plot(c, claims.default_claims()[:2])


def test_claims_prefer_name_matches_over_technique_matches():
    doc = manifest(
        entry("baseline_fp32", "baseline", 4000, 0.98, 0.040, params=1000),
        entry("ptq_dynamic", "ptq_dynamic_range", 1000, 0.98, 0.020, params=1000),
        entry("lq_dynamic_int8", "litert_quantizer_dynamic_int8", 990, 0.98, 0.010, params=1000),
        entry("ptq_int8_selective", "ptq_int8_selective", 1000, 0.98, 0.005, params=1000),
    )
    c = claims.claims_table(results_table.variants_table(doc))
    assert set(c.loc["PTQ dynamic range", "variant"]) == {"ptq_dynamic"}, "the converter's variant, named as such"
    assert set(c.loc["PTQ full integer int8", "verdict"]) == {"not measured"}, "selective keeps layers in float"
    only_lq = manifest(doc["variants"][0], doc["variants"][2])
    c = claims.claims_table(results_table.variants_table(only_lq))
    assert set(c.loc["PTQ dynamic range", "variant"]) == {"lq_dynamic_int8"}, "technique match when no name matches"


def test_claims_skip_variants_without_a_timing():
    e = entry("ptq_int8", "ptq_full_int8", 1000, 0.98, 0.02, params=1000)
    e["latency_ms"] = {"2": 0.02}
    doc = manifest(entry("baseline_fp32", "baseline", 4000, 0.98, 0.040, params=1000), e)
    c = claims.claims_table(results_table.variants_table(doc), claims=iter(claims.default_claims()))
    rows = c.loc["PTQ full integer int8"].set_index("published")
    assert rows.loc["3x+ speedup (≥ 3x)", "verdict"] == "not measured"
    assert rows.loc["4x smaller (≈ 4x)", "verdict"] == "agrees"


# ---- published figures as data -------------------------------------------------------------------

FIGURES_HEADER = "figure_id,topic,figure,kind,low,high,unit,source,section,url\n"


def test_every_claim_reads_its_figure_and_source_from_the_data_file():
    figures = claims.load_references()
    for claim in claims.default_claims():
        row = figures.loc[claim.key]
        assert claim.claim == row.figure and claim.kind == row.kind and claim.technique == row.topic
        assert claim.source.startswith(row.source) and (row.section in claim.source)
        if claim.kind != "context":
            assert claim.low == row.low
    assert set(claims.RULES) <= set(figures.index)


def test_a_figure_changed_in_the_file_changes_the_verdict(tmp_path):
    text = claims.FIGURES_FILE.read_text(encoding="utf-8")
    t = results_table.variants_table(_claims_doc())
    assert claims.claims_table(t).loc["PTQ full integer int8"].set_index("published").verdict.iloc[0] == "agrees"
    changed = tmp_path / "figures.csv"
    changed.write_text(text.replace("ptq_int8_size,PTQ full integer int8,4x smaller,about,4,",
                                    "ptq_int8_size,PTQ full integer int8,8x smaller,about,8,"), encoding="utf-8")
    defs = claims.claims_from_figures(claims.load_references(changed))
    row = claims.claims_table(t, claims=defs).reset_index().set_index("published").loc["8x smaller (≈ 8x)"]
    assert row.value == pytest.approx(4.0) and row.verdict == "falls short"


@pytest.mark.parametrize(
    "row, message",
    [
        ("a,t,f,roughly,1,,x,src,sec,\n", "kind must be one of"),
        ("a,t,f,about,,,x,src,sec,\n", "needs a number"),
        ("a,t,f,about,four,,x,src,sec,\n", "must be a number"),
        ("a,t,f,range,3,2,x,src,sec,\n", "high >= low"),
        ("a,t,f,about,1,,x,,sec,\n", "source document"),
        ("a,t,f,about,1,,x,src,,\n", "section or URL"),
        ("a,t,f,about,1,,x,src,sec,\na,t,g,about,2,,x,src,sec,\n", "unique figure_id"),
    ],
)
def test_malformed_figures_file_is_one_clear_error(tmp_path, row, message):
    bad = tmp_path / "figures.csv"
    bad.write_text(FIGURES_HEADER + row, encoding="utf-8")
    with pytest.raises(ReportError, match=message):
        claims.load_references(bad)


def test_missing_figures_file_or_column_is_a_clear_error(tmp_path):
    with pytest.raises(ReportError, match="No published-figures file"):
        claims.load_references(tmp_path / "absent.csv")
    bad = tmp_path / "figures.csv"
    bad.write_text("figure_id,figure\na,b\n", encoding="utf-8")
    with pytest.raises(ReportError, match="lacks the column"):
        claims.load_references(bad)
    with pytest.raises(ReportError, match="no row 'ptq_dynamic_size'"):
        claims.claims_from_figures(claims.load_references(claims.FIGURES_FILE).drop(index="ptq_dynamic_size"))


def test_cite_and_sources_table():
    assert claims.cite("xnnpack_fp16_arm", url=False) == (
        "TensorFlow repository, tensorflow/lite/delegates/xnnpack/README.md, Floating-Point (IEEE FP16) Operators")
    assert claims.cite("ptq_int8_size").endswith("(https://ai.google.dev/edge/litert/models/post_training_quantization)")
    table = claims.sources_table(["ptq_int8_size", "ptq_int8_size", "tflite_uncompressed"])
    assert list(table.index) == ["ptq_int8_size", "tflite_uncompressed"] and "noCompress" in table.loc["tflite_uncompressed", "figure"]
    with pytest.raises(ReportError, match="No published figure"):
        claims.cite("nope")


def test_fp16_rows_tell_x86_from_arm():
    doc = manifest(entry("baseline_fp32", "baseline", 4000, 0.98, 0.040, params=1000),
                   entry("ptq_fp16", "ptq_float16", 2000, 0.98, 0.041, params=1000))
    c = claims.claims_table(results_table.variants_table(doc), context={"machine": "x86_64"})
    cpu = c.loc["PTQ float16 on an x86 CPU"]
    assert cpu.variant == "ptq_fp16" and cpu.value == pytest.approx(0.040 / 0.041) and cpu.verdict == "agrees"
    arm = c.loc["PTQ float16 on ARMv8.2+ phone CPUs"]
    assert arm.verdict == "not measured" and arm.measured.endswith("this CPU is x86_64")
    assert "reduced_precision_support" in arm.published and "README.md" in arm.source
    slower = claims.claims_table(results_table.variants_table(manifest(doc["variants"][0], entry(
        "ptq_fp16", "ptq_float16", 2000, 0.98, 0.080, params=1000))), context={"machine": "x86_64"})
    row = slower.loc["PTQ float16 on an x86 CPU"]
    assert row.verdict == "falls short" and "x86_64" in row["why (where this machine disagrees)"]


def test_gzip_rows_show_the_raw_ratio_beside_the_gzip_ratio():
    c = claims.claims_table(results_table.variants_table(_claims_doc()))
    pruning = c.loc["Pruning (stripped, gzipped)"]
    assert pruning.value == pytest.approx(3600 / 1100) and pruning[claims.RAW_RATIO] == pytest.approx(1.0)
    int8 = c.loc["PTQ full integer int8"].set_index("published").loc["4x smaller (≈ 4x)"]
    assert int8[claims.RAW_RATIO] == pytest.approx(4.0)
    assert math.isnan(c.loc["XNNPACK delegate (fp32)", claims.RAW_RATIO])
    short = claims.claims_table(results_table.variants_table(manifest(
        entry("baseline_fp32", "baseline", 4000, 0.98, 0.040, gzip=3600, params=1000),
        entry("pruned_50", "pruning", 4000, 0.98, 0.040, gzip=2400, params=1000))))
    assert "storage and RAM pay the raw size" in short.loc["Pruning (stripped, gzipped)", "why (where this machine disagrees)"]
