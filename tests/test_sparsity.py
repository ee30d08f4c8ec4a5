from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from helpers import sparsity
from helpers.keras_setup import keras, tf
from helpers.litert_runner import TFLiteModelError


# --------------------------------------------------------------------------- per-layer tables
def test_sparsity_table_counts_exact_zeros_per_layer_and_total():
    w = {"a": np.array([[0.0, 1.0], [0.0, 2.0]]), "b": np.array([0.0, 0.0, 0.0, 5.0])}
    t = sparsity.sparsity_table(w)
    assert t.loc["a", "zeros"] == 2 and t.loc["a", "sparsity"] == 0.5
    assert t.loc["b", "sparsity"] == 0.75
    assert t.loc["total", "params"] == 8 and t.loc["total", "zeros"] == 5
    assert t.loc["total", "sparsity"] == pytest.approx(5 / 8)
    assert t.loc["a", "shape"] == (2, 2)


def test_tiny_values_are_not_zeros():
    t = sparsity.sparsity_table({"a": np.array([1e-30, -1e-30, 0.0, 1.0])})
    assert t.loc["a", "zeros"] == 1


@pytest.mark.parametrize(
    "bad, match",
    [({}, "non-empty mapping"), ([np.zeros(3)], "non-empty mapping"), ({"a": np.array([])}, "non-empty numeric"),
     ({"a": np.array(["x", "y"])}, "numeric"), ({"a": np.array([1.0, np.nan])}, "NaN")],
)
def test_tables_refuse_bad_weights(bad, match):
    with pytest.raises(ValueError, match=match):
        sparsity.sparsity_table(bad)
    with pytest.raises(ValueError, match=match):
        sparsity.unique_values_table(bad)


def test_unique_values_whole_tensor_and_per_channel():
    # 2 channels (last axis): channel 0 uses {1, 2}, channel 1 uses {3, 4, 5}
    w = np.array([[1.0, 3.0], [2.0, 4.0], [1.0, 5.0]])
    t = sparsity.unique_values_table({"k": w})
    assert t.loc["k", "unique"] == 5 and t.loc["k", "max_unique_per_channel"] == 3
    t0 = sparsity.unique_values_table({"k": w.T}, channel_axis=0)  # TFLite layout: channel first
    assert t0.loc["k", "max_unique_per_channel"] == 3
    assert "max_unique_per_channel" not in sparsity.unique_values_table({"k": w}, channel_axis=None)


def test_kernel_weights_reads_a_keras_model_and_sees_through_pruning_wrappers():
    import tensorflow_model_optimization as tfmot

    k = keras()
    model = k.Sequential([k.layers.InputLayer(input_shape=(4, 4, 1)), k.layers.Conv2D(2, 3, name="c"),
                          k.layers.Flatten(), k.layers.Dense(3, name="d")])
    w = sparsity.kernel_weights(model)
    assert set(w) == {"c", "d"} and w["c"].shape == (3, 3, 1, 2) and w["d"].shape == (8, 3)
    wrapped = tfmot.sparsity.keras.prune_low_magnitude(model)
    assert set(sparsity.kernel_weights(wrapped)) == {"c", "d"}


def test_kernel_weights_refuses_non_models_and_models_without_kernels():
    with pytest.raises(TypeError, match="Keras model"):
        sparsity.kernel_weights(np.zeros(3))
    k = keras()
    no_kernels = k.Sequential([k.layers.InputLayer(input_shape=(4,)), k.layers.ReLU()])
    with pytest.raises(ValueError, match="no Conv2D/Dense kernels"):
        sparsity.kernel_weights(no_kernels)


# --------------------------------------------------------------------------- m:n
def test_tflite_layout_rows_matches_tfmot_rearrangement():
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_utils import weights_rearrange

    rng = np.random.default_rng(0)
    for shape in [(6, 5), (3, 3, 8, 4)]:
        w = rng.normal(size=shape).astype(np.float32)
        np.testing.assert_array_equal(sparsity.tflite_layout_rows(w), weights_rearrange(tf().constant(w)).numpy())
    with pytest.raises(ValueError, match="rank 2"):
        sparsity.tflite_layout_rows(np.zeros((2, 2, 2)))


def _two_of_four(rows: int, c_in: int, rng) -> np.ndarray:
    """A (C_IN, C_OUT) Dense kernel that follows 2:4 along C_IN."""
    tfl = rng.normal(size=(rows, c_in))
    for r in range(rows):
        for start in range(0, c_in, 4):
            block = tfl[r, start:start + 4]
            block[np.argsort(np.abs(block))[: max(len(block) - 2, 0)]] = 0
    return tfl.T


def test_m_by_n_blocks_accepts_the_pattern_and_counts_violations(rng):
    w = _two_of_four(8, 16, rng)
    ok = sparsity.m_by_n_blocks(w, 2, 4)
    assert ok["blocks"] == 8 * 4 and ok["violating"] == 0 and ok["compliant"] == 1.0
    w[0, 0] = w[1, 0] = w[2, 0] = 1.0  # output row 0, first block: 3 non-zeros now
    bad = sparsity.m_by_n_blocks(w, 2, 4)
    assert bad["violating"] == 1
    # the same tensor as a .tflite stores it (C_IN last) gives the same answer
    assert sparsity.m_by_n_blocks(w.T, 2, 4, layout="tflite")["violating"] == 1


def test_m_by_n_partial_last_block_is_padded_like_tfmot(rng):
    w = _two_of_four(4, 6, rng)  # blocks of 4 + a last block of 2 values, which may keep both
    assert sparsity.m_by_n_blocks(w, 2, 4)["violating"] == 0
    dense = np.ones((6, 4))
    assert sparsity.m_by_n_blocks(dense, 2, 4)["violating"] == 4  # the full blocks fail, the pairs pass


def test_m_by_n_agrees_with_tfmot_on_a_pruned_layer():
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_utils import is_pruned_m_by_n

    k = keras()
    model = k.Sequential([k.layers.InputLayer(input_shape=(4, 4, 8)), k.layers.Conv2D(4, 3, name="c"),
                          k.layers.Flatten(), k.layers.Dense(3, name="d")])
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, sparsity_m_by_n=(2, 4))
    pruned.compile("sgd", "mse")
    pruned.fit(np.ones((2, 4, 4, 8)), np.ones((2, 3)), epochs=1, verbose=0,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    table = sparsity.m_by_n_table(sparsity.kernel_weights(stripped), 2, 4)
    assert (table["violating"] == 0).all() and (table["sparsity"] >= 0.5).all()
    for w in sparsity.kernel_weights(stripped).values():
        assert is_pruned_m_by_n(tf().constant(w), m_by_n=(2, 4))


@pytest.mark.parametrize("m, n", [(2, 2), (4, 2), (0, 4), (2.0, 4), (True, 4)])
def test_m_by_n_refuses_impossible_patterns(m, n):
    with pytest.raises(ValueError, match="0 < m < n"):
        sparsity.m_by_n_blocks(np.ones((4, 4)), m, n)


def test_m_by_n_refuses_bad_layouts_and_ranks():
    with pytest.raises(ValueError, match="layout"):
        sparsity.m_by_n_blocks(np.ones((4, 4)), 2, 4, layout="nchw")
    with pytest.raises(ValueError, match="rank"):
        sparsity.m_by_n_blocks(np.ones(8), 2, 4, layout="tflite")
    with pytest.raises(ValueError, match="rank 2"):
        sparsity.m_by_n_blocks(np.ones(8), 2, 4)


def test_pattern_plot_draws_block_lines(rng):
    fig = sparsity.plot_m_by_n_pattern(_two_of_four(8, 16, rng), n=4, rows=8, cols=16)
    assert len(fig.axes[0].lines) == 3  # boundaries at 4, 8, 12
    with pytest.raises(ValueError, match="positive"):
        sparsity.plot_m_by_n_pattern(np.ones((4, 4)), rows=0)


# --------------------------------------------------------------------------- sizes, plots, files
def test_size_table_raw_gzip_and_ratios(tflite_files):
    zeros = b"TFL3" * 4 + bytes(10_000)
    t = sparsity.size_table({"model": tflite_files["fp32"], "zeros": zeros}, reference="model")
    assert t.loc["model", "raw_bytes"] == tflite_files["fp32"].stat().st_size
    assert t.loc["zeros", "raw_bytes"] == len(zeros) and t.loc["zeros", "gzip_bytes"] < 200
    assert t.loc["model", "gzip_x_smaller"] == 1.0 and t.loc["zeros", "gzip_x_smaller"] > 10


def test_size_table_bad_input(tmp_path):
    with pytest.raises(ValueError, match="non-empty"):
        sparsity.size_table({})
    with pytest.raises(ValueError, match="reference"):
        sparsity.size_table({"a": b"1234"}, reference="b")
    with pytest.raises(TFLiteModelError, match="No model file"):
        sparsity.size_table({"a": tmp_path / "missing.tflite"})


def test_sweep_plot_and_its_errors():
    frame = pd.DataFrame({"sparsity": [0.0, 0.5, 0.9], "accuracy": [0.99, 0.98, 0.9], "gzip_bytes": [9e5, 5e5, 1e5]})
    fig = sparsity.sweep_plot(frame, reference_accuracy=0.99)
    assert len(fig.axes) == 2  # accuracy and size share one figure
    with pytest.raises(ValueError, match="lacks the column"):
        sparsity.sweep_plot(frame.drop(columns="gzip_bytes"))
    with pytest.raises(ValueError, match="empty"):
        sparsity.sweep_plot(frame.iloc[:0])


def test_tflite_weights_and_op_counts_read_the_file(tflite_files, tiny_keras):
    fp32 = sparsity.tflite_weights(tflite_files["fp32"])
    kernels = [w for w in fp32.values() if w.ndim == 2]
    assert sorted(w.shape for w in kernels) == [(10, 32), (32, 64)]  # stored output-channel first
    by_shape = {w.shape: w for w in kernels}
    for k in sparsity.kernel_weights(tiny_keras).values():
        np.testing.assert_array_equal(by_shape[k.T.shape], k.T)  # the exact values the converter baked in
    int8 = sparsity.tflite_weights(tflite_files["int8"])
    assert any(w.dtype == np.int8 for w in int8.values())
    ops = sparsity.tflite_op_counts(tflite_files["fp32"])
    assert ops["FULLY_CONNECTED"] == 2


def test_sparse_encoding_is_visible_as_densify(tiny_keras):
    clone = keras().models.clone_model(tiny_keras)
    clone.set_weights([np.where(np.arange(w.size).reshape(w.shape) % 5, 0, w) if w.ndim == 2 else w
                       for w in tiny_keras.get_weights()])
    converter = tf().lite.TFLiteConverter.from_keras_model(clone)
    converter.optimizations = [tf().lite.Optimize.EXPERIMENTAL_SPARSITY]
    content = converter.convert()
    assert "DENSIFY" in sparsity.tflite_op_counts(content).index
    # sparse-encoded tensors are not dense buffers: tflite_weights leaves them out
    assert all(w.size != 64 * 32 for w in sparsity.tflite_weights(content).values())


# --------------------------------------------------------------------------- XNNPACK rule
@pytest.mark.parametrize(
    "machine, flags, expected",
    [("x86_64", {"sse4_2", "avx", "avx2"}, False), ("x86_64", {"sse4_2"}, True), ("aarch64", None, True),
     ("armv7l", None, True), ("riscv64", None, False)],
)
def test_xnnpack_sparse_rule(machine, flags, expected):
    ok, reason = sparsity.xnnpack_sparse_supported(machine, flags)
    assert ok is expected and isinstance(reason, str) and reason


@pytest.mark.parametrize(
    "machine, flags, words",
    [("x86_64", {"avx"}, ("AVX", "disables")), ("x86_64", {"sse4_2"}, ("without AVX", "SSE")),
     ("x86_64", None, ("unknown",)), ("aarch64", None, ("NEON",)), ("riscv64", None, ("no XNNPACK sparse",))],
)
def test_xnnpack_reason_names_the_deciding_feature(machine, flags, words, monkeypatch):
    monkeypatch.setattr(sparsity, "_cpu_flags", lambda: None)  # "unknown" when /proc/cpuinfo cannot be read
    _, reason = sparsity.xnnpack_sparse_supported(machine, flags)
    assert all(w in reason for w in words), reason


def test_xnnpack_rule_on_this_machine_follows_its_cpu_flags():
    import platform
    from pathlib import Path

    ok, _ = sparsity.xnnpack_sparse_supported()
    machine = platform.machine().lower()
    cpuinfo = Path("/proc/cpuinfo")
    if machine in ("x86_64", "amd64") and cpuinfo.is_file():
        flags = next((set(line.split(":", 1)[1].split()) for line in cpuinfo.read_text().splitlines()
                      if line.startswith("flags")), None)
        assert ok is (flags is not None and "avx" not in flags)
    elif machine.startswith(("arm", "aarch64")):
        assert ok is True
