"""Unit tests for helpers.quantization, on real converted models (conftest's tiny fp32 / int8 files)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from helpers import data, quantization
from helpers.keras_setup import keras, tf
from helpers.quantization import QuantizationError


# ---------------------------------------------------------------- converting


def test_convert_and_full_int8_recipe(tiny_keras, digits):
    converter = tf().lite.TFLiteConverter.from_keras_model(tiny_keras)
    quantization.set_full_int8(converter, data.representative_batches(digits.x_train, 20, seed=0))
    assert converter.inference_input_type == tf().int8
    content = quantization.convert(converter)
    assert content[4:8] == b"TFL3"
    ops = quantization.tflite_ops(content)
    assert set(ops.op) >= {"FULLY_CONNECTED"} and ops.inputs.str.contains("int8").all()


def test_set_full_int8_rejects_non_callable_dataset(tiny_keras, digits):
    converter = tf().lite.TFLiteConverter.from_keras_model(tiny_keras)
    with pytest.raises(QuantizationError, match="representative"):
        quantization.set_full_int8(converter, digits.x_train[:10])


def test_convert_failure_is_one_clear_error(tiny_keras):
    converter = tf().lite.TFLiteConverter.from_keras_model(tiny_keras)
    converter.optimizations = [tf().lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf().lite.OpsSet.TFLITE_BUILTINS_INT8]  # int8 without data
    with pytest.raises(QuantizationError, match="conversion failed"):
        quantization.convert(converter)


def test_serving_function_converts_and_checks_shape(tiny_keras, digits):
    fn = quantization.serving_function(tiny_keras, digits.input_shape)
    content = quantization.convert(tf().lite.TFLiteConverter.from_concrete_functions([fn]))
    from helpers.litert_runner import LiteRTModel

    keras_pred = tiny_keras.predict(digits.x_test[:50], verbose=0).argmax(1)
    assert (LiteRTModel(content).predict(digits.x_test[:50]).argmax(1) == keras_pred).all()
    with pytest.raises(QuantizationError, match="input_shape"):
        quantization.serving_function(tiny_keras, (0, 8))


# ---------------------------------------------------------------- reading files


def test_quant_params_per_channel_int8(tflite_files):
    p = quantization.quant_params(tflite_files["int8"], "MatMul")
    assert p["dtype"] == "int8" and p["scales"].size == p["shape"][0] and p["quantized_dimension"] == 0
    assert not p["zero_points"].any()  # symmetric weights
    inp = quantization.quant_params(tflite_files["int8"], "serving_default", constant=False)
    assert inp["dtype"] == "int8" and inp["scales"].size == 1


def test_stored_weights_round_trip_within_half_step(tflite_files, tiny_keras):
    stored, deq = quantization.stored_weights(tflite_files["int8"], "MatMul")
    assert stored.dtype == np.int8
    candidates = [w.T for w in tiny_keras.get_weights() if w.ndim == 2]
    float_w = next(w for w in candidates if w.shape == stored.shape)
    scales = quantization.quant_params(tflite_files["int8"], "MatMul")["scales"][:, None]
    assert np.all(np.abs(deq - float_w) <= scales / 2 * 1.001)
    f_stored, f_deq = quantization.stored_weights(tflite_files["fp32"], "MatMul")
    assert f_stored.dtype == np.float32 and np.array_equal(f_stored, f_deq)


def test_unknown_tensor_name_lists_names(tflite_files):
    with pytest.raises(QuantizationError, match="no constant tensor.*'nope'"):
        quantization.quant_params(tflite_files["int8"], "nope")


def test_ops_table_of_float_model(tflite_files):
    ops = quantization.tflite_ops(tflite_files["fp32"])
    assert list(ops.columns) == ["op", "inputs", "outputs", "output_name"]
    assert not ops.inputs.str.contains("int8").any()


# ---------------------------------------------------------------- debugger table


def _stats_csv() -> pd.DataFrame:
    text = (
        "op_name,tensor_idx,num_elements,stddev,mean_error,max_abs_error,mean_squared_error,scale,zero_point,tensor_name\n"
        "CONV_2D,1,10,0.1,0.0,0.1,0.0001,0.01,0,a/conv;x\n"
        "FULLY_CONNECTED,2,10,0.1,0.0,0.1,0.01,0.01,0,b/dense\n"
        "RESHAPE,3,10,0.0,0.0,0.0,0.0,0.01,0,c/flat\n"
    )
    return pd.read_csv(io.StringIO(text))


def test_summarize_layer_stats_ranks_worst_first():
    s = quantization.summarize_layer_stats(_stats_csv())
    assert s.loc[0, "layer"] == "b/dense" and s.loc[0, "rmse/scale"] == pytest.approx(10.0)
    assert s.loc[1, "rmse/scale"] == pytest.approx(1.0)
    assert quantization.worst_layers(s, 1) == ["b/dense"]
    assert quantization.worst_layers(s, 5, ops=("CONV_2D",)) == ["a/conv;x"]


def test_layer_stats_bad_input():
    with pytest.raises(QuantizationError, match="lack the columns"):
        quantization.summarize_layer_stats(pd.DataFrame({"op_name": ["X"]}))
    with pytest.raises(QuantizationError, match="empty"):
        quantization.summarize_layer_stats(_stats_csv().iloc[:0])
    s = quantization.summarize_layer_stats(_stats_csv())
    with pytest.raises(QuantizationError, match="count"):
        quantization.worst_layers(s, 0)
    with pytest.raises(QuantizationError, match="no layer of the types"):
        quantization.worst_layers(s, 1, ops=("DEPTHWISE_CONV_2D",))


def test_debugger_summary_needs_run():
    class NotRun:
        layer_statistics = None

    with pytest.raises(QuantizationError, match=r"debugger.run\(\)"):
        quantization.debugger_summary(NotRun())


def test_debugger_summary_on_real_debugger(tiny_keras, digits):
    converter = tf().lite.TFLiteConverter.from_keras_model(tiny_keras)
    converter.optimizations = [tf().lite.Optimize.DEFAULT]
    converter.representative_dataset = data.representative_batches(digits.x_train, 20, seed=0)
    with quantization.quiet_tools():
        debugger = tf().lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=data.representative_batches(digits.x_val, 10, seed=1)
        )
        debugger.run()
    s = quantization.debugger_summary(debugger)
    assert "FULLY_CONNECTED" in set(s.op_name) and s["rmse/scale"].notna().any()
    assert s["rmse/scale"].is_monotonic_decreasing or s["rmse/scale"].isna().any()


# ---------------------------------------------------------------- LiteRT Quantizer data


def test_calibration_data_shape_and_seed(digits):
    cal = quantization.calibration_data(digits.x_train, "image", count=5, seed=3)
    (key, samples), = cal.items()
    assert key == "serving_default" and len(samples) == 5
    assert samples[0]["image"].shape == (1, *digits.input_shape) and samples[0]["image"].dtype == np.float32
    again = quantization.calibration_data(digits.x_train, "image", count=5, seed=3)
    assert all(np.array_equal(a["image"], b["image"]) for a, b in zip(samples, again["serving_default"]))


def test_calibration_data_bad_input(digits):
    with pytest.raises(QuantizationError, match="count"):
        quantization.calibration_data(digits.x_train, "image", count=0)
    with pytest.raises(QuantizationError, match="float"):
        quantization.calibration_data((digits.x_train * 255).astype(np.uint8), "image", count=2)
    with pytest.raises(QuantizationError, match="non-empty"):
        quantization.calibration_data(np.zeros((0, 8, 8, 1), np.float32), "image", count=2)


def test_litert_quantizer_static_int8_with_calibration_data(tflite_files, digits):
    from litert_quantizer import quantizer, recipe

    qt = quantizer.Quantizer(tflite_files["fp32"].read_bytes())
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    with quantization.quiet_tools():
        qsvs = qt.calibrate(quantization.calibration_data(digits.x_train, _input_name(tflite_files["fp32"]), 20))
    out = bytes(qt.quantize(qsvs, enable_progress_report=False).quantized_model)
    assert quantization.quant_params(out, "MatMul")["dtype"] == "int8"


def _input_name(path) -> str:
    from ai_edge_litert.interpreter import Interpreter

    sigs = Interpreter(model_path=str(path)).get_signature_list()
    return next(iter(sigs.values()))["inputs"][0]


# ---------------------------------------------------------------- comparisons and sweeps


def test_variant_table(tflite_files, digits):
    variants = {k: p.read_bytes() for k, p in tflite_files.items()}
    t = quantization.variant_table(variants, digits.x_test, digits.y_test, reference="fp32")
    assert t.loc["fp32", "size_ratio"] == 1.0 and t.loc["int8", "size_ratio"] < 0.5
    assert t.loc["fp32", "delta_pp"] == 0.0 and t.loc["int8", "input"] == "int8"
    with pytest.raises(QuantizationError, match="reference"):
        quantization.variant_table(variants, digits.x_test, digits.y_test, reference="nope")
    with pytest.raises(QuantizationError, match="rows"):
        quantization.variant_table(variants, digits.x_test, digits.y_test[:3], reference="fp32")


def test_compare_predictions():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[0.9, 0.1], [0.6, 0.4]])
    r = quantization.compare_predictions(a, b)
    assert r["top1_agreement"] == 0.5 and r["max_abs_diff"] == pytest.approx(0.6)
    with pytest.raises(QuantizationError, match="same shape"):
        quantization.compare_predictions(a, b[:1])


def test_mean_sd_and_seed_summary():
    assert quantization.mean_sd([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    with pytest.raises(QuantizationError, match="at least two"):
        quantization.mean_sd([1.0])
    with pytest.raises(QuantizationError, match="finite"):
        quantization.mean_sd([1.0, float("nan")])
    frame = pd.DataFrame({"method": ["a", "a", "b", "b"], "accuracy": [0.9, 1.0, 0.8, 0.8]})
    s = quantization.seed_summary(frame, "accuracy", "method")
    assert s.loc["a", "mean"] == pytest.approx(0.95) and s.loc["b", "sd"] == 0.0 and s.loc["a", "n"] == 2
    with pytest.raises(QuantizationError, match="column"):
        quantization.seed_summary(frame, "acc", "method")


# ---------------------------------------------------------------- plots and training


def test_plots_return_figures():
    import matplotlib

    matplotlib.use("Agg")
    fig = quantization.weight_histograms({"a": np.random.default_rng(0).normal(size=100), "b": np.arange(10)})
    assert len(fig.axes) == 2
    frame = pd.DataFrame({"size_bytes": [1000, 250], "accuracy": [0.9, 0.89], "family": ["x", "x"]}, index=["fp32", "int8"])
    assert quantization.size_accuracy_plot(frame, references={"x": "fp32"}).axes
    with pytest.raises(QuantizationError):
        quantization.weight_histograms({})
    with pytest.raises(QuantizationError, match="size_bytes"):
        quantization.size_accuracy_plot(frame.drop(columns="size_bytes"))


def test_set_batchnorm_momentum_reaches_nested_layers():
    k = keras()
    inner = k.Sequential([k.layers.InputLayer(input_shape=(4,)), k.layers.Dense(3), k.layers.BatchNormalization()])
    outer = k.Sequential([k.layers.InputLayer(input_shape=(4,)), inner, k.layers.BatchNormalization()])
    assert quantization.set_batchnorm_momentum(outer, 0.9) == 2
    assert all(l.momentum == 0.9 for l in [inner.layers[-1], outer.layers[-1]])
    with pytest.raises(QuantizationError, match="momentum"):
        quantization.set_batchnorm_momentum(outer, 1.0)


def test_importing_quantization_leaves_the_warning_filters_alone():
    import subprocess
    import sys

    code = ("import warnings, helpers, helpers.keras_setup, helpers.accounting, helpers.litert_runner\n"
            "before = list(warnings.filters)\n"
            "import helpers.quantization\n"
            "assert warnings.filters == before, 'import added a process-wide warnings filter'\n"
            "with helpers.quantization.quiet_tools():\n"
            "    inside = list(warnings.filters)\n"
            "assert inside != before and warnings.filters == before, 'quiet_tools filters only inside its block'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-800:]
