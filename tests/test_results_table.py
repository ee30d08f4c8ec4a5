"""Tests for helpers.results_table: every manifest variant in one table."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pytest

import helpers  # noqa: F401
from helpers import results_table
from helpers.registry import ManifestError, load_manifest
from helpers.results_table import ReportError
from manifest_entries import entry, manifest


# ---- variants table ------------------------------------------------------------------------------


def test_variants_table_lists_every_variant_and_handles_peak_memory_absent():
    doc = manifest(entry("baseline_fp32", "baseline", 4000, 0.98, 0.04), entry("ptq_int8", "ptq", 1000, 0.97, 0.03))
    t = results_table.variants_table(doc)
    assert list(t.index) == ["baseline_fp32", "ptq_int8"]
    assert "peak_memory_mb" not in t.columns
    assert t.at["ptq_int8", "size_kb"] == pytest.approx(1000 / 1024)


def test_variants_table_peak_memory_in_mb_where_measured():
    doc = manifest(
        entry("a", "baseline", 4000, 0.98, 0.04, peak_memory_bytes=2 * 2**20),
        entry("c", "ptq", 1000, 0.97, 0.03),
    )
    t = results_table.variants_table(doc)
    assert t.at["a", "peak_memory_mb"] == pytest.approx(2.0)
    assert math.isnan(t.at["c", "peak_memory_mb"])


def test_variants_table_missing_thread_count_is_nan():
    e = entry("a", "baseline", 4000, 0.98, 0.04)
    e["latency_ms"] = {"1": 0.04}
    assert math.isnan(results_table.variants_table(manifest(e)).at["a", "latency_ms@2"])


def test_empty_manifest_is_a_clear_error():
    with pytest.raises(ReportError, match="no variants"):
        results_table.variants_table(manifest())


@pytest.mark.parametrize(
    "doc", [{"variants": []}, {"dataset": "digits", "variants": [{"name": "x"}]}, ["not", "an", "object"]]
)
def test_malformed_manifest_is_a_clear_error(doc):
    with pytest.raises(ManifestError):
        results_table.variants_table(doc)


def test_malformed_manifest_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "manifest.json"
    bad.write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(bad)


def test_malformed_manifest_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "manifest.json"
    bad.write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(bad)
