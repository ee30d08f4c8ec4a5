"""Quantization boilerplate for notebooks 02 (post-training) and 03 (quantization-aware training).

The converter and tfmot calls that teach stay in the notebooks; this module holds what would
otherwise be pasted around them: a quiet ``convert()``, the full-int8 settings for sweeps (after the
notebook has shown them once), reading ops, weights and quantization parameters out of a
``.tflite``, the quantization debugger's per-layer table, calibration data for the LiteRT Quantizer,
weight histograms, and mean ± sd summaries for seed sweeps.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from helpers.keras_setup import keras, quiet_native_stderr, tf
from helpers.accounting import StoredTensor, op_name, read_flatbuffer, stored_tensors, tensor_name, tensor_type_name
from helpers.litert_runner import ModelSource


class QuantizationError(ValueError):
    """Bad input to a quantization helper (wrong shapes, unknown tensor, too few values...)."""


# --------------------------------------------------------------------------------------------------
# Converting quietly


@contextlib.contextmanager
def quiet_tools() -> Iterator[None]:
    """Silence the progress bars, banners and known warnings that conversion / calibration tools
    print (native ``fully_quantize: 0 ...`` lines, the LiteRT Quantizer's calibration bar and size
    report, the debug interpreter's XNNPACK banner). Exceptions still propagate."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*experimental_preserve_all_tensors.*")
        warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        with quiet_native_stderr(), contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            yield


def convert(converter: Any) -> bytes:
    """``converter.convert()`` with the converter's native log lines silenced; one clear error if it
    fails."""
    try:
        with quiet_tools():
            return bytes(converter.convert())
    except Exception as exc:  # ConverterError, ValueError, RuntimeError from MLIR
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QuantizationError(
            f"TFLite conversion failed ({type(exc).__name__}: {first}). Check the converter settings "
            "(a representative_dataset is required for int8 / 16x8) and the model's ops."
        ) from exc


def set_full_int8(converter: Any, representative: Callable[[], Iterable], int8_io: bool = True) -> Any:
    """Apply the full-integer recipe that notebook 02 shows cell by cell, and return the converter:
    ``Optimize.DEFAULT``, a representative dataset, int8-only builtins and (``int8_io``) int8 input
    and output. For sweeps, after the recipe has been shown once."""
    if not callable(representative):
        raise QuantizationError(
            "representative must be a function yielding [sample] batches "
            "(helpers.data.representative_batches(x, count, seed))."
        )
    t = tf()
    converter.optimizations = [t.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [t.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        converter.inference_input_type = t.int8
        converter.inference_output_type = t.int8
    return converter


def serving_function(model: Any, input_shape: Sequence[int]) -> Any:
    """A concrete ``tf.function`` of ``model`` in inference mode, batch dimension left open.

    ``TFLiteConverter.from_concrete_functions([fn])`` on it skips the SavedModel export that
    ``from_keras_model`` performs, which is slow for deep Keras graphs such as MobileNetV2.
    """
    shape = tuple(int(d) for d in input_shape)
    if not shape or any(d < 1 for d in shape):
        raise QuantizationError(f"input_shape must be positive sizes without the batch axis, got {input_shape!r}.")
    t = tf()
    fn = t.function(lambda x: model(x, training=False))
    return fn.get_concrete_function(t.TensorSpec([None, *shape], t.float32))


# --------------------------------------------------------------------------------------------------
# Reading what a .tflite stores


def tflite_ops(source: ModelSource) -> pd.DataFrame:
    """The operators of a ``.tflite`` (main subgraph) in execution order, with the dtypes of their
    inputs and outputs: shows where a model computes in float, in integers, or converts between them
    (``QUANTIZE`` / ``DEQUANTIZE``)."""
    model = read_flatbuffer(source)
    sg = model.subgraphs[0]
    rows = []
    for op in sg.operators:
        ins = [int(i) for i in (op.inputs if op.inputs is not None else []) if i >= 0]
        outs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
        rows.append(
            {
                "op": op_name(model, op),
                "inputs": ", ".join(tensor_type_name(sg.tensors[i].type) for i in ins),
                "outputs": ", ".join(tensor_type_name(sg.tensors[i].type) for i in outs),
                "output_name": _short(tensor_name(sg.tensors[outs[0]])) if outs else "",
            }
        )
    return pd.DataFrame(rows)


def _short(name: str, width: int = 48) -> str:
    first = name.split(";")[0]
    return first if len(first) <= width else "..." + first[-(width - 3):]


def _find_tensor(source: ModelSource | Any, name_contains: str, constant: bool = True) -> StoredTensor:
    """The largest tensor of the main subgraph whose name contains ``name_contains`` (a constant, or
    an activation with ``constant=False``): the weight, since a bias or shape constant can share the
    layer's name."""
    tensors = stored_tensors(source, subgraph=0)
    matches = [t for t in tensors if t.constant == constant and name_contains in t.name]
    if not matches:
        kind = "constant" if constant else "activation"
        available = sorted({_short(t.name) for t in tensors})[:12]
        raise QuantizationError(
            f"no {kind} tensor whose name contains {name_contains!r}; some tensor names: {available}."
        )
    return max(matches, key=lambda t: t.data.size)


def quant_params(source: ModelSource, name_contains: str, constant: bool = True) -> dict[str, Any]:
    """The quantization parameters of one tensor (the largest constant whose name contains
    ``name_contains``, or an activation with ``constant=False``): dtype, shape, scales, zero points
    and the axis they run along (per-channel) - what the converter baked into the file."""
    t = _find_tensor(source, name_contains, constant)
    q = t.quantization
    scales = np.asarray(q.scale if q is not None and q.scale is not None else [], dtype=np.float64)
    zeros = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [], dtype=np.int64)
    return {
        "name": _short(t.name),
        "dtype": t.dtype,
        "shape": t.shape,
        "scales": scales,
        "zero_points": zeros,
        "quantized_dimension": int(q.quantizedDimension) if q is not None and len(scales) > 1 else None,
    }


def stored_weights(source: ModelSource, name_contains: str) -> tuple[np.ndarray, np.ndarray]:
    """``(stored, dequantized)`` values of a constant tensor: ``stored`` as the file keeps them
    (int8, float16, float32), ``dequantized`` as float32 (``(q - zero_point) * scale``, per channel
    when the tensor has several scales)."""
    model = read_flatbuffer(source)
    t = _find_tensor(model, name_contains, constant=True)
    stored = t.values()
    if stored is None:
        raise QuantizationError(f"tensor {_short(t.name)!r} ({t.dtype}, sparse={t.sparse}) cannot be read as a dense array.")
    if not np.issubdtype(stored.dtype, np.integer):
        return stored, stored.astype(np.float32)
    p = quant_params(model, name_contains)
    scales, zeros = p["scales"], p["zero_points"]
    if scales.size == 0:
        raise QuantizationError(f"integer tensor {p['name']!r} has no quantization scale to dequantize with.")
    if scales.size > 1:
        axis = p["quantized_dimension"] or 0
        bshape = [1] * stored.ndim
        bshape[axis] = scales.size
        scales, zeros = scales.reshape(bshape), zeros.reshape(bshape)
    return stored, ((stored.astype(np.float64) - zeros) * scales).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Per-layer sensitivity (tf.lite.experimental.QuantizationDebugger)


def debugger_summary(debugger: Any) -> pd.DataFrame:
    """The quantization debugger's per-layer statistics as a table, worst layer first.

    Adds ``rmse/scale``: the root-mean-square error between float and quantized activations in units
    of the layer's quantization step (about 0.29 for pure rounding error; much larger means the
    layer's range is poorly represented by 8 bits). Call ``debugger.run()`` first.
    """
    if not getattr(debugger, "layer_statistics", None):
        raise QuantizationError("the debugger has no layer statistics: call debugger.run() first.")
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    buf.seek(0)
    frame = pd.read_csv(buf)
    return summarize_layer_stats(frame)


def summarize_layer_stats(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``rmse/scale`` and a short layer name to the debugger's CSV columns; sort worst first."""
    need = {"op_name", "tensor_name", "mean_squared_error", "scale"}
    missing = need - set(frame.columns)
    if missing:
        raise QuantizationError(f"layer statistics lack the columns {sorted(missing)}; pass the debugger's dump.")
    if frame.empty:
        raise QuantizationError("layer statistics are empty: the debug dataset produced no samples.")
    out = frame.copy()
    out["layer"] = [_short(n, 40) for n in out["tensor_name"]]
    scale = out["scale"].astype(float).replace(0.0, np.nan)
    out["rmse/scale"] = np.sqrt(out["mean_squared_error"].astype(float)) / scale
    cols = ["layer", "op_name", "mean_error", "mean_squared_error", "scale", "rmse/scale", "tensor_name"]
    out = out[[c for c in cols if c in out.columns]]
    return out.sort_values("rmse/scale", ascending=False, na_position="last").reset_index(drop=True)


def worst_layers(summary: pd.DataFrame, count: int, ops: Sequence[str] | None = None) -> list[str]:
    """The full tensor names of the ``count`` layers with the highest ``rmse/scale`` (optionally only
    among ``ops`` such as ``("CONV_2D", "FULLY_CONNECTED")``): the names
    ``QuantizationDebugOptions(denylisted_nodes=...)`` expects."""
    if count < 1:
        raise QuantizationError(f"count must be >= 1, got {count}.")
    rows = summary if ops is None else summary[summary["op_name"].isin(ops)]
    if rows.empty:
        raise QuantizationError(f"no layer of the types {list(ops or [])} in the summary.")
    return list(rows.sort_values("rmse/scale", ascending=False)["tensor_name"].head(count))


# --------------------------------------------------------------------------------------------------
# LiteRT Quantizer


def calibration_data(
    x: np.ndarray, input_name: str, count: int, seed: int = 0, signature_key: str = "serving_default"
) -> dict[str, list[dict[str, np.ndarray]]]:
    """Calibration samples in the form ``litert_quantizer.Quantizer.calibrate`` expects:
    ``{signature_key: [{input_name: one-sample batch}, ...]}``, ``count`` samples drawn without
    replacement with ``seed``."""
    x = np.asarray(x)
    if x.ndim < 2 or len(x) == 0:
        raise QuantizationError(f"x must be a non-empty batch of samples, got shape {x.shape}.")
    if not np.issubdtype(x.dtype, np.floating):
        raise QuantizationError(f"x must be float images (as the float model expects), got {x.dtype}.")
    if count < 1:
        raise QuantizationError(f"count must be >= 1, got {count}.")
    idx = np.random.default_rng(seed).permutation(len(x))[: min(count, len(x))]
    return {signature_key: [{input_name: x[i : i + 1].astype(np.float32)} for i in idx]}


# --------------------------------------------------------------------------------------------------
# Comparing outputs and summarising sweeps


def variant_table(variants: dict[str, bytes], x: np.ndarray, y: np.ndarray, reference: str) -> pd.DataFrame:
    """A quick look at in-memory ``.tflite`` variants: bytes, size ratio and accuracy against the
    ``reference`` variant (``delta_pp`` in percentage points), and the input dtype an app must feed.
    Evaluated with the LiteRT interpreter on ``x, y``."""
    from helpers.litert_runner import LiteRTModel

    if reference not in variants:
        raise QuantizationError(f"reference {reference!r} is not among the variants {list(variants)}.")
    if len(x) != len(y):
        raise QuantizationError(f"x has {len(x)} rows but y has {len(y)}.")
    rows = []
    for name, content in variants.items():
        model = LiteRTModel(content)
        rows.append({"variant": name, "bytes": len(content), "accuracy": model.evaluate(x, y), "input": model.input_spec.dtype})
    table = pd.DataFrame(rows).set_index("variant")
    table.insert(1, "size_ratio", table["bytes"] / table.loc[reference, "bytes"])
    table["delta_pp"] = 100 * (table["accuracy"] - table.loc[reference, "accuracy"])
    return table


def compare_predictions(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """How two models' outputs on the same inputs agree: fraction of equal top-1 predictions and the
    largest absolute difference."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise QuantizationError(f"expected two (samples, classes) arrays of the same shape, got {a.shape} and {b.shape}.")
    return {
        "top1_agreement": float(np.mean(a.argmax(1) == b.argmax(1))),
        "max_abs_diff": float(np.abs(a - b).max()),
    }


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) of at least two values."""
    v = np.asarray(list(values), dtype=float)
    if v.size < 2 or not np.all(np.isfinite(v)):
        raise QuantizationError(f"need at least two finite values for a mean ± sd, got {list(v)}.")
    return float(v.mean()), float(v.std(ddof=1))


def seed_summary(frame: pd.DataFrame, value: str, by: str) -> pd.DataFrame:
    """``mean``, ``sd`` and ``n`` of ``value`` per group ``by`` (e.g. accuracy per method over seeds)."""
    for col in (value, by):
        if col not in frame.columns:
            raise QuantizationError(f"column {col!r} not in the frame (columns: {list(frame.columns)}).")
    rows = []
    for key, group in frame.groupby(by, sort=False):
        m, s = mean_sd(group[value])
        rows.append({by: key, "mean": m, "sd": s, "n": len(group)})
    return pd.DataFrame(rows).set_index(by)


# --------------------------------------------------------------------------------------------------
# Plots


def weight_histograms(
    panels: dict[str, np.ndarray], bins: int = 80, title: str | None = None, sharex: bool = False
) -> Any:
    """One seaborn histogram per named weight array (e.g. float, float16, dequantized int8, stored
    int8), side by side, each titled with its number of distinct values. Returns the figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if not panels:
        raise QuantizationError("pass at least one {label: weights} panel.")
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 2.9), sharex=sharex)
    axes = np.atleast_1d(axes)
    for ax, (label, w) in zip(axes, panels.items()):
        values = np.asarray(w).ravel()
        sns.histplot(values.astype(np.float32), bins=bins, ax=ax, element="step")
        ax.set_title(f"{label}\n{len(np.unique(values)):,} distinct values", fontsize=9)
        ax.set_xlabel("stored integer" if np.issubdtype(values.dtype, np.integer) else "weight value", fontsize=8)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def size_accuracy_plot(frame: pd.DataFrame, references: dict[str, str] | None = None) -> Any:
    """File size (kB) against test accuracy, one marker per variant (index = variant name; needs
    ``size_bytes`` and ``accuracy``). With a ``family`` column, one panel per family (each network
    has its own accuracy scale); ``references`` maps a family to its float variant, drawn as a
    dotted accuracy line. Returns the figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    for col in ("size_bytes", "accuracy"):
        if col not in frame.columns:
            raise QuantizationError(f"the variants table needs a {col!r} column.")
    data = frame.assign(size_kb=frame["size_bytes"] / 1024, variant=[str(i) for i in frame.index])
    if "family" not in data.columns:
        data["family"] = "variants"
    families = list(dict.fromkeys(data["family"]))
    fig, axes = plt.subplots(1, len(families), figsize=(6.2 * len(families), 3.8), squeeze=False)
    markers = ["o", "s", "D", "^", "v", "P", "X", "*", "<", ">", "p", "h"]
    for ax, family in zip(axes[0], families):
        part = data[data["family"] == family]
        sns.scatterplot(data=part, x="size_kb", y="accuracy", hue="variant", style="variant",
                        markers=markers[: len(part)] if len(part) <= len(markers) else True, s=70, ax=ax)
        ref = (references or {}).get(family)
        if ref in part.index:
            ax.axhline(part.loc[ref, "accuracy"], ls=":", c="grey", lw=1)
        pad = max(0.005, 0.2 * float(part["accuracy"].max() - part["accuracy"].min()))
        ax.set_ylim(part["accuracy"].min() - pad, part["accuracy"].max() + pad)
        ax.set_title(f"{family}: size vs accuracy", fontsize=10)
        ax.set_xlabel("file size (kB)")
        ax.set_ylabel("test accuracy")
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# Training a mobile model briefly


def set_batchnorm_momentum(model: Any, momentum: float) -> int:
    """Set ``momentum`` on every ``BatchNormalization`` layer (nested models included); return how
    many were changed. Call before ``compile``/``fit``.

    Keras' MobileNetV2 uses 0.999, which needs thousands of steps before the moving statistics used
    at inference match the data; a short training run needs a faster average (e.g. 0.9).
    """
    if not 0.0 <= momentum < 1.0:
        raise QuantizationError(f"momentum must be in [0, 1), got {momentum}.")
    k = keras()

    def walk(layer: Any) -> Iterator[Any]:
        for sub in getattr(layer, "layers", []):
            yield sub
            yield from walk(sub)

    changed = 0
    for layer in walk(model):
        if isinstance(layer, k.layers.BatchNormalization):
            layer.momentum = float(momentum)
            changed += 1
    return changed
