"""Tests for helpers.pareto: the front, its dominance witnesses, technique families."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

import helpers  # noqa: F401
from helpers import pareto
from helpers.results_table import ReportError
from manifest_entries import frame


# ---- Pareto front --------------------------------------------------------------------------------


def test_pareto_marks_dominated_and_tradeoffs():
    t = frame({"a": (0.98, 100, 1.0), "b": (0.97, 200, 2.0), "c": (0.99, 400, 3.0), "d": (0.90, 50, 5.0)})
    front = pareto.pareto_front(t)
    assert front.to_dict() == {"a": True, "b": False, "c": True, "d": True}
    assert pareto.dominated_by(t, front).to_dict() == {"a": "", "b": "a", "c": "", "d": ""}


def test_pareto_ties_stay_on_the_front_together():
    t = frame({"a": (0.98, 100, 1.0), "twin": (0.98, 100, 1.0), "worse": (0.98, 100, 1.5)})
    front = pareto.pareto_front(t)
    assert front["a"] and front["twin"], "identical variants do not dominate each other"
    assert not front["worse"], "equal on two objectives and worse on one is dominated"


def test_pareto_single_variant_is_optimal():
    front = pareto.pareto_front(frame({"only": (0.5, 10, 1.0)}))
    assert front.to_dict() == {"only": True}


def test_pareto_respects_direction_of_each_objective():
    t = frame({"acc_hi": (0.99, 100, 1.0), "acc_lo": (0.90, 100, 1.0)})
    assert pareto.pareto_front(t).to_dict() == {"acc_hi": True, "acc_lo": False}
    flipped = pareto.pareto_front(t, {"accuracy": "min"})
    assert flipped.to_dict() == {"acc_hi": False, "acc_lo": True}


def test_pareto_missing_value_is_neither_optimal_nor_dominating():
    t = frame({"a": (0.98, 100, 1.0), "nan": (1.0, 1, math.nan), "b": (0.97, 200, 2.0)})
    front = pareto.pareto_front(t)
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
    with pytest.raises(ReportError, match=message):
        pareto.pareto_front(table, objectives)


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
    assert pareto.technique_family(name, technique) == family
