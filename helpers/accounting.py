"""Model accounting: sizes, parameters, sparsity, and what a ``.tflite`` file stores."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.litert_runner import ModelSource, TFLiteModelError, _read


def file_size(path: Path) -> int:
    """Size of a file in bytes."""
    return Path(path).stat().st_size


def gzipped_size(source: ModelSource) -> int:
    """Bytes after gzip (level 9): what compression-friendly techniques (pruning, clustering) buy
    when the app ships or downloads the model compressed."""
    content = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    return len(gzip.compress(bytes(content), compresslevel=9, mtime=0))


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (the manifest stores it so an app can verify a
    download)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def count_params(model: Any, trainable_only: bool = False) -> int:
    """Number of parameters of a Keras model."""
    weights = model.trainable_weights if trainable_only else model.weights
    return int(sum(int(np.prod(w.shape)) for w in weights))


def keras_sparsity(model: Any) -> float:
    """Fraction of exactly-zero values over the model's kernels (biases and norm statistics excluded)."""
    kernels = [w.numpy() for w in model.weights if "kernel" in w.name]
    total = sum(k.size for k in kernels)
    return float(sum(int(np.sum(k == 0)) for k in kernels) / total) if total else 0.0


# The flatbuffer's vocabulary, shared by every helper that reads a .tflite.
NUMPY_DTYPES: dict[str, type] = {
    "float32": np.float32, "float16": np.float16, "int8": np.int8, "uint8": np.uint8,
    "int16": np.int16, "int32": np.int32, "int64": np.int64,
}
_TYPE_NAMES: dict[int, str] = {}
_OP_NAMES: dict[int, str] = {}


def tensor_type_name(code: int) -> str:
    """``schema.TensorType`` code -> lower-case name (``9`` -> ``"int8"``)."""
    from ai_edge_litert import schema_py_generated as schema

    if not _TYPE_NAMES:
        _TYPE_NAMES.update({v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")})
    return _TYPE_NAMES.get(code, str(code))


def tensor_name(tensor: Any) -> str:
    """A flatbuffer tensor's name as ``str``."""
    return tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)


def op_name(model: Any, op: Any) -> str:
    """The builtin operator name (``"FULLY_CONNECTED"``) of ``op`` in a :func:`read_flatbuffer` model."""
    from ai_edge_litert import schema_py_generated as schema

    if not _OP_NAMES:
        _OP_NAMES.update({v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")})
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    return _OP_NAMES.get(builtin, str(builtin))


def read_flatbuffer(source: ModelSource) -> Any:
    """The ``.tflite`` flatbuffer as an object tree (``schema_py_generated.ModelT``): subgraphs,
    tensors, buffers, operators. One clear :class:`TFLiteModelError` for a corrupt file."""
    from ai_edge_litert.tools import flatbuffer_utils

    content, label = _read(source)
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise TFLiteModelError(f"{label} is not a TFLite flatbuffer (truncated or corrupt); re-export it.")
    try:
        return flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    except Exception as exc:  # flatbuffers raise assorted errors on garbage
        raise TFLiteModelError(f"{label} could not be parsed as a TFLite model ({exc}).") from exc


def tflite_tensors(source: ModelSource) -> pd.DataFrame:
    """Every tensor of a ``.tflite`` file: name, dtype, shape, whether it is a constant (weights baked
    into the file), its bytes in the file, its zero fraction, and how many quantization scales it has.

    Read from the flatbuffer itself, so it shows exactly what a converter baked in.
    """
    model = read_flatbuffer(source)
    rows = []
    for sg_index, subgraph in enumerate(model.subgraphs):
        for t in subgraph.tensors:
            buf = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
            data = np.asarray(buf, dtype=np.uint8) if buf is not None else np.zeros(0, np.uint8)
            q = t.quantization
            n_scales = 0 if q is None or q.scale is None else len(q.scale)
            name = tensor_name(t)
            dtype = tensor_type_name(t.type)
            zero_frac = np.nan
            if data.size:
                try:
                    zero_frac = float(np.mean(data.view(NUMPY_DTYPES.get(dtype, np.uint8)) == 0))
                except ValueError:
                    zero_frac = np.nan
            rows.append(
                {
                    "subgraph": sg_index,
                    "name": name,
                    "dtype": dtype,
                    "shape": tuple(int(d) for d in (t.shape if t.shape is not None else [])),
                    "constant": bool(data.size),
                    "bytes": int(data.size),
                    "zero_fraction": zero_frac,
                    "quant_scales": n_scales,
                }
            )
    return pd.DataFrame(rows)


def dtype_table(source: ModelSource) -> pd.DataFrame:
    """Constant (weight) bytes per dtype in a ``.tflite``: the one table that shows what quantization
    baked in. Columns: tensors, bytes, share of all constant bytes."""
    t = tflite_tensors(source)
    const = t[t["constant"]]
    table = const.groupby("dtype").agg(tensors=("name", "size"), bytes=("bytes", "sum"))
    table["share"] = table["bytes"] / max(int(table["bytes"].sum()), 1)
    return table.sort_values("bytes", ascending=False)


def tflite_sparsity(source: ModelSource, min_elements: int = 1024) -> float:
    """Zero fraction over the large constant tensors (weights) stored in a ``.tflite``.

    Tensors with fewer than ``min_elements`` bytes (biases, shapes) are left out.
    """
    t = tflite_tensors(source)
    big = t[t["constant"] & (t["bytes"] >= min_elements) & t["zero_fraction"].notna()]
    if big.empty:
        return 0.0
    weights = big["bytes"]
    return float(np.average(big["zero_fraction"], weights=weights))
