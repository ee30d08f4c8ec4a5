"""Tests for helpers.report: the Markdown/HTML export and where it goes."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

import helpers  # noqa: F401
from helpers import claims, pareto, report, results_table
from helpers.results_table import ReportError
from helpers.paths import dataset_results_dir
from manifest_entries import claims_doc as _claims_doc


# ---- report export -------------------------------------------------------------------------------


def test_report_lists_every_manifest_variant(tmp_path):
    import matplotlib.pyplot as plt

    doc = _claims_doc()
    t = results_table.variants_table(doc)
    front = pareto.pareto_front(t)
    fig = pareto.pareto_plot(t, front)
    out = report.export_report(tmp_path, t.assign(pareto=front), claims=claims.claims_table(t),
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
    with pytest.raises(ReportError, match="empty"):
        report.export_report(tmp_path, pd.DataFrame())


def test_markdown_table_escapes_pipes_and_shows_missing_values():
    md = report.markdown_table(pd.DataFrame({"a": ["x|y"], "b": [math.nan]}, index=pd.Index(["r"], name="name")))
    assert md.splitlines()[0] == "| name | a | b |"
    assert md.splitlines()[2] == "| r | x\\|y | — |"


def test_dataset_results_dir_keeps_datasets_apart(tmp_path):
    assert dataset_results_dir(tmp_path, tmp_path / "models") == tmp_path / "results"
    other = dataset_results_dir(tmp_path, tmp_path / "models-fashion_mnist")
    assert other == tmp_path / "results" / "fashion_mnist" and other.is_dir()


def test_report_lists_the_sources_of_the_published_figures(tmp_path):
    t = results_table.variants_table(_claims_doc())
    defs = claims.default_claims()
    sources = claims.sources_table([c.key for c in defs] + ["tflite_uncompressed"])
    out = report.export_report(tmp_path, t, claims=claims.claims_table(t, claims=defs), sources=sources)
    md, page = out["md"].read_text(), out["html"].read_text()
    assert "## Sources of the published figures" in md and "<h2>Sources of the published figures</h2>" in page
    for figure_id, row in sources.iterrows():
        assert f"**{figure_id}**" in md and row.source in md
        if row.url:
            assert f"<{row.url}>" in md and f'href="{row.url}"' in page
    assert "noCompress" in md


def test_the_selection_cli_uses_the_one_dominance_test():
    import inspect

    from helpers import selection

    assert "from helpers.pareto import pareto_front" in inspect.getsource(selection.pareto_front)
