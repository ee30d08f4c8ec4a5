from __future__ import annotations

import numpy as np
import pytest

import pandas as pd

from helpers.litert_runner import (
    LiteRTModel,
    TFLiteModelError,
    benchmark_latency,
    interleaved_latency,
    make_interpreter,
    paired_speedup,
)


def test_fp32_matches_keras(tflite_files, tiny_keras, digits):
    lite = LiteRTModel(tflite_files["fp32"])
    keras_logits = tiny_keras.predict(digits.x_test, verbose=0)
    np.testing.assert_allclose(lite.predict(digits.x_test, batch_size=64), keras_logits, atol=1e-4)
    assert lite.input_spec.dtype == "float32" and lite.input_spec.shape[1:] == (8, 8, 1)


def test_int8_model_is_quantized_transparently(tflite_files, tiny_keras, digits):
    lite8 = LiteRTModel(tflite_files["int8"])
    assert lite8.input_spec.dtype == "int8" and lite8.input_spec.scale > 0
    acc8 = lite8.evaluate(digits.x_test, digits.y_test)
    acc32 = LiteRTModel(tflite_files["fp32"]).evaluate(digits.x_test, digits.y_test)
    assert acc32 > 0.8 and abs(acc8 - acc32) < 0.03
    # already-quantized input is passed through unchanged, when the caller says so
    xq = lite8.prepare_input(digits.x_test[:5])
    assert xq.dtype == np.int8
    np.testing.assert_array_equal(lite8.predict(xq, quantized=True), lite8.predict(digits.x_test[:5]))
    with pytest.raises(TFLiteModelError, match="pass quantized=True"):
        lite8.predict(xq)  # an int8 array is not assumed to be quantized
    with pytest.raises(TFLiteModelError, match="quantized=True needs int8"):
        lite8.predict(digits.x_test[:5], quantized=True)


def test_batching_does_not_change_results(tflite_files, digits):
    lite = LiteRTModel(tflite_files["fp32"])
    np.testing.assert_allclose(lite.predict(digits.x_test[:50], 7), lite.predict(digits.x_test[:50], 50), atol=1e-6)


def test_corrupt_truncated_and_missing_files_give_clear_errors(tmp_path, tflite_files):
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(TFLiteModelError, match="not a TFLite flatbuffer"):
        LiteRTModel(garbage)
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(tflite_files["fp32"].read_bytes()[:600])
    with pytest.raises(TFLiteModelError, match="truncated.tflite"):
        LiteRTModel(truncated)
    with pytest.raises(TFLiteModelError, match="No model file"):
        LiteRTModel(tmp_path / "absent.tflite")
    with pytest.raises(TFLiteModelError, match="not a TFLite flatbuffer"):
        LiteRTModel(b"")


def test_wrong_shape_and_dtype_are_refused(tflite_files):
    lite = LiteRTModel(tflite_files["fp32"])
    with pytest.raises(TFLiteModelError, match=r"shape \(2, 28, 28, 1\).*\(batch, 8, 8, 1\)"):
        lite.predict(np.zeros((2, 28, 28, 1), np.float32))
    with pytest.raises(TFLiteModelError, match="dtype is uint8"):
        lite.predict(np.zeros((2, 8, 8, 1), np.uint8))


def test_bad_thread_count(tflite_files):
    with pytest.raises(TFLiteModelError, match="num_threads"):
        make_interpreter(tflite_files["fp32"], num_threads=0)


@pytest.mark.parametrize("xnnpack", [True, False])
def test_benchmark_numbers_agree_with_the_wall_clock_and_the_work(tflite_files, big_tflite, digits, xnnpack):
    """Checks against independent quantities, not against themselves: the wall time of the whole
    call bounds the median (at least half the timed runs take >= the median), and a model doing
    ~1000x more multiply-adds measures slower by far more than any load spike (a 5x margin)."""
    import time

    runs = 50
    t0 = time.perf_counter()
    lat = benchmark_latency(tflite_files["int8"], digits.x_test, num_threads=2, runs=runs, warmup=5, use_xnnpack=xnnpack)
    wall_ms = (time.perf_counter() - t0) * 1e3
    assert lat.threads == 2 and lat.runs == runs and lat.xnnpack is xnnpack
    assert 0 < lat.median_ms and runs / 2 * lat.median_ms <= wall_ms  # units: ms, not us or s
    big = benchmark_latency(big_tflite[0], digits.x_test, num_threads=1, runs=20, warmup=2, use_xnnpack=xnnpack)
    tiny = benchmark_latency(tflite_files["fp32"], digits.x_test, num_threads=1, runs=20, warmup=2, use_xnnpack=xnnpack)
    assert big.median_ms > 5 * tiny.median_ms, (big, tiny)
    with pytest.raises(ValueError):
        benchmark_latency(tflite_files["int8"], digits.x_test, runs=0)


@pytest.mark.parametrize("kind", ["fp32", "int8"])
def test_nan_or_inf_input_is_refused_unless_allowed(tflite_files, digits, kind):
    lite = LiteRTModel(tflite_files[kind])
    x = digits.x_test[:10].copy()
    x[3, 2, 2, 0] = np.nan
    x[5, 0, 0, 0] = np.inf
    for call in (lambda: lite.predict(x), lambda: lite.evaluate(x, digits.y_test[:10]),
                 lambda: benchmark_latency(tflite_files[kind], x[3:4], runs=1, warmup=0)):
        with pytest.raises(TFLiteModelError, match=r"[12] NaN or infinite value"):
            call()
    with np.errstate(invalid="ignore"):
        out = lite.predict(x, allow_nonfinite=True)  # the explicit opt-out runs it
    assert out.shape == (10, 10)


def test_0_255_floats_into_an_int8_model_are_refused(tflite_files, digits):
    lite8 = LiteRTModel(tflite_files["int8"])
    with pytest.raises(TFLiteModelError, match=r"span \[0, 255\].*represents only \[0, 1\].*divide 0..255"):
        lite8.predict(np.round(digits.x_test[:10] * 255))
    # a little outside the calibrated range is normal (clipped, as the converter intends)
    assert lite8.predict(np.clip(digits.x_test[:10] * 1.05, 0, None)).shape == (10, 10)


def test_empty_batch_and_bad_batch_size_are_clear(tflite_files, digits):
    lite = LiteRTModel(tflite_files["fp32"])
    empty = np.zeros((0, 8, 8, 1), np.float32)
    for call in (lambda: lite.predict(empty), lambda: lite.evaluate(empty, np.zeros(0)),
                 lambda: benchmark_latency(tflite_files["fp32"], empty)):
        with pytest.raises(TFLiteModelError, match="batch is empty"):
            call()
    for size in (0, -1, 2.5, True, None):
        with pytest.raises(TFLiteModelError, match="batch_size must be a positive int"):
            lite.predict(digits.x_test[:4], batch_size=size)
    with pytest.raises(TFLiteModelError, match="10 images but y has 9 labels"):
        lite.evaluate(digits.x_test[:10], digits.y_test[:9])


def test_interleaved_latency_and_paired_speedup(tflite_files, digits):
    lat = interleaved_latency(dict(tflite_files), digits.x_test[:1], num_threads=1, rounds=3, runs=5, warmup=1)
    assert list(lat.columns) == ["fp32", "int8"] and len(lat) == 3 and (lat.to_numpy() > 0).all()
    speed = paired_speedup(lat, "fp32")
    assert speed["fp32"] == 1.0 and speed["int8"] > 0


def test_interleaved_latency_budget_and_unloadable_models(tflite_files, digits, tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a model")
    sources = {"fp32": tflite_files["fp32"], "broken": broken}
    with pytest.raises(TFLiteModelError):
        interleaved_latency(sources, digits.x_test[:1], rounds=1, runs=5)
    lat = interleaved_latency(sources, digits.x_test[:1], rounds=2, runs=5, budget_ms=1.0, skip_unloadable=True)
    assert list(lat.columns) == ["fp32"]


def test_interleaved_latency_bad_input(tflite_files, digits):
    with pytest.raises(ValueError, match="at least one"):
        interleaved_latency({}, digits.x_test[:1])
    with pytest.raises(ValueError, match="rounds"):
        interleaved_latency({"a": tflite_files["fp32"]}, digits.x_test[:1], rounds=0)
    with pytest.raises(TFLiteModelError, match="shape"):
        interleaved_latency({"a": tflite_files["fp32"]}, np.zeros((1, 5, 5, 1), np.float32))
    with pytest.raises(ValueError, match="reference"):
        paired_speedup(pd.DataFrame({"a": [1.0, 2.0]}), "b")
