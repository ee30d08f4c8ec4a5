"""The confidence cascade: confidence scores, the threshold sweep, and serving with two models."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import cascade
from helpers.litert_runner import LiteRTModel


def test_confidence_top1_and_margin() -> None:
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]]))
    np.testing.assert_allclose(cascade.confidence(logits, "top1"), [0.7, 0.4])
    np.testing.assert_allclose(cascade.confidence(logits, "margin"), [0.5, 0.05])
    with pytest.raises(ValueError, match="score"):
        cascade.confidence(logits, "entropy")


def test_cascade_predictions_take_the_large_answer_only_below_threshold() -> None:
    small = np.log(np.array([[0.9, 0.1], [0.55, 0.45], [0.2, 0.8]]))
    large = np.log(np.array([[0.1, 0.9], [0.1, 0.9], [0.9, 0.1]]))
    pred, esc = cascade.cascade_predictions(small, large, threshold=0.6)
    assert esc.tolist() == [False, True, False]
    assert pred.tolist() == [0, 1, 1]
    table = cascade.sweep(small, large, np.array([0, 1, 1]), [0.0, 0.6, 1.01])
    assert table["escalation_rate"].tolist() == pytest.approx([0.0, 1 / 3, 1.0])
    assert table["accuracy"].tolist() == pytest.approx([2 / 3, 1.0, 1 / 3])


def test_cascade_serving_matches_the_offline_sweep(tflite_files, digits) -> None:
    small, large = LiteRTModel(tflite_files["int8"]), LiteRTModel(tflite_files["fp32"])
    x, y = digits.x_test[:128], digits.y_test[:128]
    offline = cascade.sweep(small.predict(x), large.predict(x), y, [0.8]).iloc[0]
    served = cascade.Cascade(small, large, threshold=0.8)
    pred, esc = served.predict(x)
    assert np.mean(esc) == pytest.approx(offline["escalation_rate"])
    assert np.mean(pred == y) == pytest.approx(offline["accuracy"])
    # threshold 0 never escalates: exactly the small model; 1.0 always does: exactly the large one
    assert np.array_equal(cascade.Cascade(small, large, 0.0).predict(x)[0], small.predict(x).argmax(-1))
    assert np.array_equal(cascade.Cascade(small, large, 1.0).predict(x)[0], large.predict(x).argmax(-1))
    with pytest.raises(ValueError, match="threshold"):
        cascade.Cascade(small, large, 1.5)


def test_time_requests_counts_every_request(tflite_files, digits) -> None:
    model = LiteRTModel(tflite_files["fp32"])
    timing = cascade.time_requests(model.predict, digits.x_test[:64], batch=16, repeats=2, warmup=2)
    assert timing.requests == 8 and 0 < timing.p50_ms <= timing.p95_ms
    with pytest.raises(ValueError, match="batch"):
        cascade.time_requests(model.predict, digits.x_test[:4], batch=8)
