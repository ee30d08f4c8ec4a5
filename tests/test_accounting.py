from __future__ import annotations

import numpy as np
import pytest

from helpers import accounting
from helpers.litert_runner import TFLiteModelError


def test_dtype_table_shows_what_quantization_baked_in(tflite_files):
    fp32 = accounting.dtype_table(tflite_files["fp32"])
    int8 = accounting.dtype_table(tflite_files["int8"])
    assert fp32.index[0] == "float32" and fp32.loc["float32", "share"] > 0.99
    assert int8.index[0] == "int8" and "float32" not in int8.index
    assert abs(fp32["share"].sum() - 1) < 1e-9


def test_tensor_table_reads_quantization_params(tflite_files):
    t = accounting.tflite_tensors(tflite_files["int8"])
    weights = t[t["constant"] & (t["dtype"] == "int8")]
    assert not weights.empty and (weights["quant_scales"] >= 1).all()
    assert (accounting.tflite_tensors(tflite_files["fp32"])["quant_scales"] == 0).all()


def test_sizes_params_and_hash(tflite_files, tiny_keras):
    path = tflite_files["fp32"]
    assert accounting.file_size(path) == len(path.read_bytes())
    assert 0 < accounting.gzipped_size(path) < accounting.file_size(path)
    assert accounting.gzipped_size(b"\x00" * 10_000) < 100
    assert accounting.count_params(tiny_keras) == 64 * 32 + 32 + 32 * 10 + 10
    assert len(accounting.sha256(path)) == 64


def test_sparsity_from_keras_and_from_tflite(tiny_keras, tmp_path):
    from helpers.keras_setup import keras, tf

    assert accounting.keras_sparsity(tiny_keras) < 0.01
    clone = keras().models.clone_model(tiny_keras)
    weights = [np.where(np.arange(w.size).reshape(w.shape) % 4 == 0, w, 0) if w.ndim == 2 else w for w in tiny_keras.get_weights()]
    clone.set_weights(weights)
    assert accounting.keras_sparsity(clone) == pytest.approx(0.75, abs=0.01)
    path = tmp_path / "sparse.tflite"
    path.write_bytes(tf().lite.TFLiteConverter.from_keras_model(clone).convert())
    assert accounting.tflite_sparsity(path, min_elements=1000) == pytest.approx(0.75, abs=0.02)


@pytest.mark.parametrize(
    "content, match",
    [(b"not a model at all", "not a TFLite flatbuffer"), (b"1234TFL3" + b"\xff" * 40, "could not be parsed"),
     (b"\x00" * 4, "not a TFLite flatbuffer")],
)
def test_every_flatbuffer_reader_refuses_a_corrupt_file(tmp_path, content, match):
    from helpers import quantization, sparsity

    bad = tmp_path / "bad.tflite"
    bad.write_bytes(content)
    readers = [accounting.stored_tensors, accounting.tflite_tensors, accounting.dtype_table, sparsity.tflite_weights,
               sparsity.tflite_op_counts, quantization.tflite_ops, lambda s: quantization.quant_params(s, "x"),
               lambda s: quantization.stored_weights(s, "x")]
    for read in readers:
        with pytest.raises(TFLiteModelError, match=match):
            read(bad)
    with pytest.raises(TFLiteModelError, match="No model file"):
        quantization.stored_weights(tmp_path / "missing.tflite", "x")


def test_type_and_op_names_come_from_the_wheel_schema():
    from ai_edge_litert import schema_py_generated as schema

    for name, code in vars(schema.TensorType).items():
        if not name.startswith("_"):
            assert accounting.tensor_type_name(code) == name.lower()
    assert accounting.tensor_type_name(10_000) == "10000"
    assert accounting.numpy_dtype("int8") == np.int8 and accounting.numpy_dtype("float16") == np.float16
    assert accounting.numpy_dtype("string") is None and accounting.numpy_dtype("int4") is None


def test_stored_tensors_is_the_one_reader(tflite_files, tiny_keras):
    fp32 = accounting.stored_tensors(tflite_files["fp32"])
    kernels = {t.shape: t.values() for t in fp32 if t.constant and len(t.shape) == 2}
    for w in (tiny_keras.layers[-2].kernel.numpy(), tiny_keras.layers[-1].kernel.numpy()):
        np.testing.assert_array_equal(kernels[w.T.shape], w.T)  # the bytes the converter wrote, TFLite layout
    assert all(t.values() is None for t in fp32 if not t.constant), "activations have no stored values"
    int8 = [t for t in accounting.stored_tensors(tflite_files["int8"], subgraph=0) if t.dtype == "int8" and t.constant]
    assert int8 and all(t.values().dtype == np.int8 and len(t.quantization.scale) >= 1 for t in int8)
    table = accounting.tflite_tensors(tflite_files["fp32"])
    assert len(table) == len(fp32) and table["bytes"].sum() == sum(t.data.size for t in fp32)


def test_op_names_match_the_graph(tflite_files):
    model = accounting.read_flatbuffer(tflite_files["int8"])
    ops = [accounting.op_name(model, op) for op in model.subgraphs[0].operators]
    assert ops.count("FULLY_CONNECTED") == 2
