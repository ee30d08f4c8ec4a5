"""What pruning and clustering did to the weights, read from the weights themselves.

Per-layer sparsity and unique-value counts (from a Keras model or from a ``.tflite`` file), the
m:n (e.g. 2:4) structured-sparsity check in the layout TFLite stores, raw-vs-gzipped size tables,
the sparsity-sweep plot, and XNNPACK's rule for when its sparse kernels can run at all.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.accounting import file_size, gzipped_size, op_name, read_flatbuffer, stored_tensors
from helpers.litert_runner import ModelSource, _read

WeightMap = Mapping[str, np.ndarray]


# --------------------------------------------------------------------------- weights of a Keras model
def kernel_weights(model: Any) -> dict[str, np.ndarray]:
    """The kernels of a Keras model, by layer name: ``Conv2D``/``Dense`` kernels and depthwise kernels.

    tfmot wrappers (``prune_low_magnitude``) are looked through, and nested models are walked.
    Biases and normalization statistics are left out: pruning and clustering act on kernels.
    """
    if not hasattr(model, "layers"):
        raise TypeError(f"expected a Keras model with .layers, got {type(model).__name__}.")
    out: dict[str, np.ndarray] = {}

    def visit(layer: Any) -> None:
        if hasattr(layer, "layers") and not hasattr(layer, "kernel"):
            for sub in layer.layers:
                visit(sub)
            return
        inner = getattr(layer, "layer", layer)  # tfmot wrappers keep the wrapped layer in .layer
        for attr in ("kernel", "depthwise_kernel"):
            var = getattr(inner, attr, None)
            if var is not None and hasattr(var, "numpy"):
                out[inner.name] = np.asarray(var.numpy())
                return

    for layer in model.layers:
        visit(layer)
    if not out:
        raise ValueError(f"model {getattr(model, 'name', '?')!r} has no Conv2D/Dense kernels to inspect.")
    return out


def _check_weights(weights: WeightMap) -> dict[str, np.ndarray]:
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError("weights must be a non-empty mapping {layer name: array} (see kernel_weights).")
    arrays = {}
    for name, w in weights.items():
        a = np.asarray(w)
        if a.size == 0 or not np.issubdtype(a.dtype, np.number):
            raise ValueError(f"weights[{name!r}] must be a non-empty numeric array, got dtype {a.dtype} size {a.size}.")
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            raise ValueError(f"weights[{name!r}] holds NaN or inf: the model diverged; retrain it.")
        arrays[str(name)] = a
    return arrays


def sparsity_table(weights: WeightMap) -> pd.DataFrame:
    """One row per layer: shape, parameters, exact zeros and their fraction, plus a ``total`` row."""
    arrays = _check_weights(weights)
    rows = [
        {"layer": n, "shape": tuple(a.shape), "params": int(a.size), "zeros": int(np.sum(a == 0))}
        for n, a in arrays.items()
    ]
    frame = pd.DataFrame(rows).set_index("layer")
    frame.loc["total"] = [None, int(frame["params"].sum()), int(frame["zeros"].sum())]
    frame["params"] = frame["params"].astype(int)
    frame["zeros"] = frame["zeros"].astype(int)
    frame["sparsity"] = frame["zeros"] / frame["params"]
    return frame


def unique_values_table(weights: WeightMap, channel_axis: int | None = -1) -> pd.DataFrame:
    """One row per layer: shape, parameters, distinct values in the whole tensor and, when
    ``channel_axis`` is given, the largest number of distinct values within one channel (what
    per-channel quantization scales keep of a clustered kernel)."""
    arrays = _check_weights(weights)
    rows = []
    for n, a in arrays.items():
        row = {"layer": n, "shape": tuple(a.shape), "params": int(a.size), "unique": int(np.unique(a).size)}
        if channel_axis is not None:
            moved = np.moveaxis(a, channel_axis, 0).reshape(a.shape[channel_axis], -1)
            row["max_unique_per_channel"] = int(max(np.unique(c).size for c in moved))
        rows.append(row)
    return pd.DataFrame(rows).set_index("layer")


# --------------------------------------------------------------------------- m:n structured sparsity
def tflite_layout_rows(kernel: np.ndarray) -> np.ndarray:
    """A Keras kernel as the 2-D ``(rows, C_IN)`` matrix TFLite stores: Dense ``(C_IN, C_OUT)`` →
    ``(C_OUT, C_IN)``; Conv2D ``(H, W, C_IN, C_OUT)`` → ``(C_OUT*H*W, C_IN)``. m:n blocks run along C_IN."""
    w = np.asarray(kernel)
    if w.ndim == 2:
        return w.T
    if w.ndim == 4:
        return np.transpose(w, (3, 0, 1, 2)).reshape(-1, w.shape[2])
    raise ValueError(f"kernel must be rank 2 (Dense) or 4 (Conv2D), got shape {w.shape}.")


def _check_m_n(m: int, n: int) -> None:
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (m, n)) or not 0 < m < n:
        raise ValueError(f"need integers 0 < m < n for m:n sparsity (m zeros in every n values), got m={m!r}, n={n!r}.")


def m_by_n_blocks(kernel: np.ndarray, m: int = 2, n: int = 4, layout: str = "keras") -> pd.Series:
    """Check the m:n pattern of one kernel: every run of ``n`` consecutive C_IN values (TFLite layout)
    holds at least ``m`` zeros. A last, shorter run may keep at most ``n - m`` non-zeros, as tfmot pads it.

    ``layout="keras"`` takes a Keras kernel (C_IN before C_OUT); ``layout="tflite"`` takes a tensor as a
    ``.tflite`` stores it (C_IN last, see :func:`tflite_weights`).
    Returns ``blocks``, ``violating`` (blocks with too many non-zeros) and ``compliant`` (fraction).
    """
    _check_m_n(m, n)
    if layout == "keras":
        rows = tflite_layout_rows(kernel)
    elif layout == "tflite":
        w = np.asarray(kernel)
        if w.ndim < 2:
            raise ValueError(f"a stored kernel has rank >= 2, got shape {w.shape}.")
        rows = w.reshape(-1, w.shape[-1])
    else:
        raise ValueError(f"layout must be 'keras' or 'tflite', got {layout!r}.")
    if rows.size == 0:
        raise ValueError("kernel is empty.")
    c_in = rows.shape[1]
    pad = (-c_in) % n
    nonzero = np.pad(rows != 0, ((0, 0), (0, pad)))
    per_block = nonzero.reshape(rows.shape[0], -1, n).sum(axis=2)
    blocks = int(per_block.size)
    violating = int(np.sum(per_block > n - m))
    return pd.Series({"blocks": blocks, "violating": violating, "compliant": 1 - violating / blocks})


def m_by_n_table(weights: WeightMap, m: int = 2, n: int = 4) -> pd.DataFrame:
    """:func:`m_by_n_blocks` for every layer, with its C_IN (layers whose C_IN < n cannot hold the pattern)."""
    arrays = _check_weights(weights)
    rows = []
    for name, a in arrays.items():
        r = m_by_n_blocks(a, m, n)
        rows.append({"layer": name, "c_in": int(tflite_layout_rows(a).shape[1]), "sparsity": float(np.mean(a == 0)), **r})
    frame = pd.DataFrame(rows).set_index("layer")
    frame[["blocks", "violating"]] = frame[["blocks", "violating"]].astype(int)
    return frame


def plot_m_by_n_pattern(kernel: np.ndarray, n: int = 4, rows: int = 16, cols: int = 32, title: str = "") -> plt.Figure:
    """The non-zero mask of the top-left ``rows x cols`` corner of a kernel in TFLite layout, with a
    vertical line every ``n`` columns so each m:n block is visible."""
    if rows < 1 or cols < 1 or n < 1:
        raise ValueError(f"rows, cols and n must be positive, got {rows}, {cols}, {n}.")
    mask = tflite_layout_rows(kernel)[:rows, :cols] != 0
    fig, ax = plt.subplots(figsize=(min(0.25 * mask.shape[1] + 1, 10), 0.25 * mask.shape[0] + 0.8))
    ax.imshow(mask, cmap="Greys", vmin=0, vmax=1, interpolation="nearest", aspect="equal")
    for x in range(n, mask.shape[1], n):
        ax.axvline(x - 0.5, color="tab:red", lw=0.8)
    ax.set_xlabel("input channel (C_IN) — red lines every %d values" % n)
    ax.set_ylabel("output row")
    ax.set_title(title or "non-zero weights (black)")
    ax.grid(False)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- sizes and the sweep plot
def size_table(sources: Mapping[str, ModelSource], reference: str | None = None) -> pd.DataFrame:
    """Raw and gzipped bytes of each model (file path or bytes), and each as a ratio of ``reference``
    (``x smaller`` = reference bytes / these bytes)."""
    if not isinstance(sources, Mapping) or not sources:
        raise ValueError("sources must be a non-empty mapping {label: path or bytes}.")
    rows = []
    for label, src in sources.items():
        content, _ = _read(src)  # one clear TFLiteModelError for a missing file
        raw = len(content) if isinstance(src, (bytes, bytearray)) else file_size(Path(src))
        rows.append({"model": label, "raw_bytes": raw, "gzip_bytes": gzipped_size(content)})
    frame = pd.DataFrame(rows).set_index("model")
    frame["gzip/raw"] = frame["gzip_bytes"] / frame["raw_bytes"]
    if reference is not None:
        if reference not in frame.index:
            raise ValueError(f"reference {reference!r} is not one of {list(frame.index)}.")
        frame["raw_x_smaller"] = frame.loc[reference, "raw_bytes"] / frame["raw_bytes"]
        frame["gzip_x_smaller"] = frame.loc[reference, "gzip_bytes"] / frame["gzip_bytes"]
    return frame


def sweep_plot(
    frame: pd.DataFrame,
    x: str = "sparsity",
    accuracy: str = "accuracy",
    size: str = "gzip_bytes",
    reference_accuracy: float | None = None,
    title: str = "",
) -> plt.Figure:
    """Accuracy (left axis) and gzipped size (right axis) against ``x``, in one figure."""
    missing = [c for c in (x, accuracy, size) if c not in frame.columns]
    if missing:
        raise ValueError(f"sweep frame lacks the column(s) {missing}; it has {list(frame.columns)}.")
    if frame.empty:
        raise ValueError("sweep frame is empty: run at least one sweep point.")
    data = frame.sort_values(x)
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.plot(data[x], data[accuracy], "o-", color="tab:blue", label="test accuracy")
    if reference_accuracy is not None:
        ax.axhline(reference_accuracy, color="tab:blue", ls=":", lw=1, label="baseline accuracy")
    ax.set_xlabel(x)
    ax.set_ylabel("test accuracy", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(data[x], data[size] / 1024, "s--", color="tab:orange", label="gzipped size")
    ax2.set_ylabel("gzipped size (KiB)", color="tab:orange")
    ax2.set_ylim(bottom=0)
    ax2.grid(False)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="lower left", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- what a .tflite stores
def tflite_op_counts(source: ModelSource) -> pd.Series:
    """How many times each builtin operator appears in a ``.tflite`` (e.g. ``DENSIFY`` for sparse weights)."""
    model = read_flatbuffer(source)
    ops = [op_name(model, op) for sg in model.subgraphs for op in sg.operators]
    return pd.Series(ops, dtype=str).value_counts().rename("count")


def tflite_weights(source: ModelSource, min_elements: int = 64) -> dict[str, np.ndarray]:
    """The constant float/int8 tensors with at least ``min_elements`` values stored densely in a
    ``.tflite``, shaped as stored (TFLite layout: output channel first). Sparse-encoded tensors (from
    ``Optimize.EXPERIMENTAL_SPARSITY``) are left out: their buffer is not the dense tensor. Integer
    index tensors (int32 / int64 shapes and biases) are left out too."""
    out: dict[str, np.ndarray] = {}
    for t in stored_tensors(source):
        values = t.values()
        if values is None or values.dtype in (np.int32, np.int64) or values.size < min_elements:
            continue
        out[t.name] = values
    return out


# --------------------------------------------------------------------------- XNNPACK sparse inference
def xnnpack_sparse_supported(machine: str | None = None, cpu_flags: set[str] | None = None) -> tuple[bool, str]:
    """Whether XNNPACK will even consider its sparse (NCHW) kernels on this CPU, and why.

    XNNPACK's rule (``xnn_is_chw_compatible_config``): on x86 the sparse microkernels target SSE
    only and are switched off when the CPU has AVX, because dense AVX kernels are expected to be
    faster; on ARM they are available. ``machine`` and ``cpu_flags`` default to this machine's.
    """
    machine = (machine or platform.machine()).lower()
    if machine in ("x86_64", "amd64", "i386", "i686", "x86"):
        if cpu_flags is None:
            cpu_flags = _cpu_flags()
        if cpu_flags is None:
            return False, "x86 CPU with unknown features: XNNPACK disables sparse kernels when AVX is present."
        if "avx" in cpu_flags:
            return False, "x86 CPU with AVX: XNNPACK disables its sparse kernels (dense AVX kernels are expected to be faster)."
        return True, "x86 CPU without AVX: XNNPACK may use its SSE sparse kernels."
    if machine.startswith(("arm", "aarch64")):
        return True, f"{machine} CPU: XNNPACK's NEON sparse kernels are available."
    return False, f"{machine} CPU: no XNNPACK sparse kernels for this architecture are known to this helper."


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags from Linux's /proc/cpuinfo (x86 ``flags``, ARM ``Features``); None elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.lower().startswith(("flags", "features")):
            return set(line.split(":", 1)[1].split())
    return None

