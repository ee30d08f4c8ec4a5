"""Model accounting: sizes, parameters, sparsity, and what a ``.tflite`` file stores."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.litert_runner import ModelSource, TFLiteModelError, _read
from helpers.paths import sha256  # noqa: F401 (the manifest's one file hash, re-exported)


def file_size(path: Path) -> int:
    """Size of a file in bytes."""
    return Path(path).stat().st_size


def gzipped_size(source: ModelSource) -> int:
    """Bytes after gzip (level 9): what compression-friendly techniques (pruning, clustering) buy
    when the app ships or downloads the model compressed."""
    content = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    return len(gzip.compress(bytes(content), compresslevel=9, mtime=0))


def count_params(model: Any, trainable_only: bool = False) -> int:
    """Number of parameters of a Keras model."""
    weights = model.trainable_weights if trainable_only else model.weights
    return int(sum(int(np.prod(w.shape)) for w in weights))


def keras_sparsity(model: Any) -> float:
    """Fraction of exactly-zero values over the model's kernels (biases and norm statistics excluded)."""
    kernels = [w.numpy() for w in model.weights if "kernel" in w.name]
    total = sum(k.size for k in kernels)
    return float(sum(int(np.sum(k == 0)) for k in kernels) / total) if total else 0.0


# The flatbuffer's vocabulary comes from the LiteRT wheel itself (its schema module and
# flatbuffer_utils), so a type or operator added to the schema is named correctly here too.


def tensor_type_name(code: int) -> str:
    """``schema.TensorType`` code -> lower-case name (``9`` -> ``"int8"``), from the wheel's
    ``flatbuffer_utils.type_to_name``; an unknown code is returned as its number."""
    from ai_edge_litert.tools import flatbuffer_utils

    try:
        return flatbuffer_utils.type_to_name(int(code)).lower()
    except KeyError:
        return str(code)


def numpy_dtype(type_name: str) -> np.dtype | None:
    """The NumPy dtype of a flatbuffer tensor type name (``"int8"`` -> ``int8``), or ``None`` for a
    type NumPy has no dtype for (``string``, ``resource``, ``int4``...)."""
    try:
        dtype = np.dtype(type_name)
    except TypeError:
        return None
    return dtype if dtype.kind in "biuf" else None


def tensor_name(tensor: Any) -> str:
    """A flatbuffer tensor's name as ``str``."""
    return tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)


def op_name(model: Any, op: Any) -> str:
    """The builtin operator name (``"FULLY_CONNECTED"``) of ``op`` in a :func:`read_flatbuffer` model,
    from the wheel's ``flatbuffer_utils.opcode_to_name`` (custom ops: their custom code)."""
    from ai_edge_litert.tools import flatbuffer_utils

    name = flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
    if name is None or name == "CUSTOM":
        custom = model.operatorCodes[op.opcodeIndex].customCode
        if custom:
            return custom.decode() if isinstance(custom, bytes) else str(custom)
    return name if name is not None else str(flatbuffer_utils.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex]))


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


@dataclass(frozen=True)
class StoredTensor:
    """One tensor of a ``.tflite`` as the file stores it: where it is, its name, type and shape, its
    constant bytes (empty for an activation), its quantization parameters and whether its buffer is
    sparse-encoded (``Optimize.EXPERIMENTAL_SPARSITY``: the bytes are then not the dense tensor)."""

    subgraph: int
    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    data: np.ndarray = field(repr=False)
    quantization: Any = field(repr=False, default=None)
    sparse: bool = False

    @property
    def constant(self) -> bool:
        return bool(self.data.size)

    def values(self) -> np.ndarray | None:
        """The stored values with their dtype and shape (int8 stays int8), or ``None`` when they cannot
        be read densely: an activation, a sparse-encoded buffer, a type NumPy lacks, a size mismatch."""
        dtype = numpy_dtype(self.dtype)
        if not self.constant or self.sparse or dtype is None or self.data.size % dtype.itemsize:
            return None
        flat = self.data.view(dtype)
        return flat.reshape(self.shape) if flat.size == int(np.prod(self.shape, dtype=np.int64)) else None


def stored_tensors(source: ModelSource | Any, subgraph: int | None = None) -> list[StoredTensor]:
    """Every tensor of a ``.tflite`` (file, bytes, or a :func:`read_flatbuffer` model), with its
    constant bytes: the one reader behind the tensor, weight and quantization-parameter tables.
    ``subgraph`` limits it to one subgraph (0 is the main one)."""
    model = read_flatbuffer(source) if isinstance(source, (str, Path, bytes, bytearray)) else source
    out = []
    for sg_index, sg in enumerate(model.subgraphs):
        if subgraph is not None and sg_index != subgraph:
            continue
        for t_index, t in enumerate(sg.tensors):
            buf = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
            data = np.frombuffer(bytes(buf), dtype=np.uint8) if buf is not None and len(buf) else np.zeros(0, np.uint8)
            out.append(StoredTensor(
                subgraph=sg_index, index=t_index, name=tensor_name(t), dtype=tensor_type_name(t.type),
                shape=tuple(int(d) for d in (t.shape if t.shape is not None else [])), data=data,
                quantization=t.quantization, sparse=t.sparsity is not None,
            ))
    return out


def tflite_tensors(source: ModelSource) -> pd.DataFrame:
    """Every tensor of a ``.tflite`` file: name, dtype, shape, whether it is a constant (weights baked
    into the file), its bytes in the file, its zero fraction, and how many quantization scales it has.

    Read from the flatbuffer itself, so it shows exactly what a converter baked in.
    """
    rows = []
    for t in stored_tensors(source):
        q = t.quantization
        zero_frac = np.nan
        if t.constant:
            dtype = numpy_dtype(t.dtype)
            typed = t.data.view(dtype) if dtype is not None and t.data.size % dtype.itemsize == 0 else t.data
            zero_frac = float(np.mean(typed == 0))
        rows.append(
            {
                "subgraph": t.subgraph,
                "name": t.name,
                "dtype": t.dtype,
                "shape": t.shape,
                "constant": t.constant,
                "bytes": int(t.data.size),
                "zero_fraction": zero_frac,
                "quant_scales": 0 if q is None or q.scale is None else len(q.scale),
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
