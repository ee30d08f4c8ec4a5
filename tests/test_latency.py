"""Tests for helpers.latency: one interleaved comparison table, and a verdict that respects the noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import helpers  # noqa: F401
from helpers import latency
from helpers.keras_setup import keras, tf


@pytest.fixture(scope="module")
def heavy_tflite(tmp_path_factory, digits):
    """A float model with about 1000x the arithmetic of the tiny fixture model (same input)."""
    k = keras()
    model = k.Sequential([k.layers.InputLayer(input_shape=digits.input_shape), k.layers.Flatten(),
                          k.layers.Dense(1024, activation="relu"), k.layers.Dense(1024, activation="relu"),
                          k.layers.Dense(1024, activation="relu"), k.layers.Dense(10)])
    path = tmp_path_factory.mktemp("heavy") / "heavy.tflite"
    path.write_bytes(tf().lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def test_compare_latency_table_columns_and_ratios(tflite_files, digits):
    t = latency.compare_latency({"a": tflite_files["fp32"], "b": tflite_files["int8"]}, digits.x_test, rounds=3, runs=20, warmup=2)
    assert list(t.index) == ["a", "b"] and t.index.name == "model"
    assert (t["round_min_ms"] <= t["median_ms"]).all() and (t["median_ms"] <= t["round_max_ms"]).all()
    assert t.loc["a", "vs_first"] == 1.0 and t.loc["b", "vs_first"] == pytest.approx(t.loc["b", "median_ms"] / t.loc["a", "median_ms"])
    assert t.loc["a", "speedup"] == 1.0 and (t["threads"] == 1).all()


def test_compare_latency_orders_a_model_with_1000x_the_work(tflite_files, heavy_tflite, digits):
    t = latency.compare_latency({"tiny": tflite_files["fp32"], "heavy": heavy_tflite}, digits.x_test, rounds=3, runs=20,
                                warmup=2, reference="heavy")
    assert t.loc["heavy", "speedup"] == 1.0
    assert t.loc["tiny", "speedup"] > 3, "the paired ratio says the tiny model is faster"
    assert t.loc["heavy", "round_min_ms"] > t.loc["tiny", "round_max_ms"]
    speedup, verdict = latency.latency_verdict(t, "heavy", "tiny")
    assert verdict == "faster" and speedup > 3


def test_compare_latency_skips_unloadable_models_when_asked(tflite_files, digits, tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a model")
    sources = {"fp32": tflite_files["fp32"], "broken": broken}
    t = latency.compare_latency(sources, digits.x_test[:1], rounds=2, runs=5, warmup=1, skip_unloadable=True, budget_ms=5.0)
    assert list(t.index) == ["fp32"]
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        latency.compare_latency(sources, digits.x_test[:1], rounds=1, runs=5)
    with pytest.raises(ValueError, match="none of the models"):
        latency.compare_latency({"broken": broken}, digits.x_test[:1], rounds=1, runs=5, skip_unloadable=True)


def test_compare_latency_bad_input(tflite_files, digits):
    with pytest.raises(ValueError, match="rounds"):
        latency.compare_latency({"a": tflite_files["fp32"]}, digits.x_test, rounds=0)
    with pytest.raises(ValueError, match="non-empty"):
        latency.compare_latency({}, digits.x_test)
    with pytest.raises(ValueError, match="reference 'c'"):
        latency.compare_latency({"a": tflite_files["fp32"]}, digits.x_test, reference="c")


def _lat(ref, cand):
    return pd.DataFrame([dict(zip(["model", "median_ms", "round_min_ms", "round_max_ms"], r)) for r in (ref, cand)]).set_index("model")


@pytest.mark.parametrize(
    "cand, expected",
    [(("b", 0.5, 0.45, 0.55), "faster"), (("b", 2.0, 1.9, 2.1), "slower"),
     (("b", 0.8, 0.6, 1.0), "no clear"),  # 1.25x but the ranges overlap: noise
     (("b", 0.95, 0.94, 0.96), "no clear")],
)
def test_latency_verdict(cand, expected):
    speedup, verdict = latency.latency_verdict(_lat(("a", 1.0, 0.98, 1.02), cand), "a", "b")
    assert verdict.startswith(expected) and speedup == pytest.approx(1.0 / cand[1])


def test_latency_verdict_bad_input():
    table = _lat(("a", 1.0, 0.9, 1.1), ("b", 1.0, 0.9, 1.1))
    with pytest.raises(ValueError, match="not in the latency table"):
        latency.latency_verdict(table, "a", "c")
    with pytest.raises(ValueError, match="lacks"):
        latency.latency_verdict(table.drop(columns="round_min_ms"), "a", "b")
    with pytest.raises(ValueError, match="margin"):
        latency.latency_verdict(table, "a", "b", margin=-1)
