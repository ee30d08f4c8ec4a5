"""Run ``.tflite`` models with the LiteRT interpreter (``ai_edge_litert``): predictions, accuracy
and an honest latency benchmark.

Integer models are handled transparently: float inputs are quantized with the input tensor's scale
and zero-point, integer outputs are dequantized, so the same call works for every variant.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from helpers.keras_setup import quiet_native_stderr


class TFLiteModelError(ValueError):
    """A ``.tflite`` file or buffer that cannot be loaded, or input that does not fit the model."""


ModelSource = str | Path | bytes | bytearray


def _read(source: ModelSource) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), "<in-memory model>"
    path = Path(source)
    if not path.is_file():
        raise TFLiteModelError(f"No model file at {path.name!r}; check the path (or re-run the notebook that writes it).")
    return path.read_bytes(), path.name


def make_interpreter(source: ModelSource, num_threads: int = 1, use_xnnpack: bool = True) -> Any:
    """A LiteRT ``Interpreter`` with tensors allocated, or one clear error for a bad model.

    ``use_xnnpack=False`` selects the built-in kernels without the default XNNPACK delegate.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    content, label = _read(source)
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise TFLiteModelError(
            f"{label} is not a TFLite flatbuffer ({len(content)} bytes, no 'TFL3' identifier): "
            "the file is truncated or corrupt. Re-export it from its notebook."
        )
    if not isinstance(num_threads, int) or num_threads < 1:
        raise TFLiteModelError(f"num_threads must be a positive int, got {num_threads!r}.")
    resolver = OpResolverType.AUTO if use_xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        with quiet_native_stderr():  # the one-time "Created XNNPACK delegate" banner
            interpreter = Interpreter(
                model_content=content, num_threads=num_threads, experimental_op_resolver_type=resolver
            )
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise TFLiteModelError(
            f"LiteRT could not load {label} ({str(exc).strip().splitlines()[0]}). The file is corrupt "
            "or uses ops this runtime lacks; re-export it from its notebook."
        ) from exc
    return interpreter


@dataclass(frozen=True)
class TensorSpec:
    """What an app must feed or read: shape, dtype and (for integer tensors) quantization."""

    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int

    def as_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype, "scale": self.scale, "zero_point": self.zero_point}


def _spec(detail: dict) -> TensorSpec:
    scale, zero_point = detail["quantization"]
    return TensorSpec(
        tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"]).name, float(scale), int(zero_point)
    )


class LiteRTModel:
    """One ``.tflite`` model loaded in a LiteRT interpreter, with batch predict and evaluate."""

    def __init__(self, source: ModelSource, num_threads: int = 1, use_xnnpack: bool = True) -> None:
        self.interpreter = make_interpreter(source, num_threads, use_xnnpack)
        self.num_threads = num_threads
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]
        self._batch = int(self._in["shape"][0])

    @property
    def input_spec(self) -> TensorSpec:
        return _spec(self._in)

    @property
    def output_spec(self) -> TensorSpec:
        return _spec(self._out)

    def prepare_input(self, x: np.ndarray) -> np.ndarray:
        """Check ``x`` against the model's input and convert it (quantize for integer models)."""
        x = np.asarray(x)
        want = tuple(int(d) for d in self._in["shape"][1:])
        if x.shape[1:] != want:
            raise TFLiteModelError(
                f"input has shape {x.shape}, the model expects (batch, {', '.join(map(str, want))}); "
                "reshape or resize the input to match."
            )
        dtype = np.dtype(self._in["dtype"])
        if not np.issubdtype(x.dtype, np.floating):
            if x.dtype == dtype:
                return x  # already in the model's integer domain
            raise TFLiteModelError(
                f"input dtype is {x.dtype}, the model expects {dtype.name}; pass float32 images "
                "scaled like the training data (the helper quantizes them for integer models)."
            )
        if np.issubdtype(dtype, np.integer):
            scale, zero_point = self._in["quantization"]
            info = np.iinfo(dtype)
            q = np.round(x.astype(np.float32) / scale + zero_point)
            return np.clip(q, info.min, info.max).astype(dtype)
        return x.astype(dtype)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if np.issubdtype(y.dtype, np.integer):
            scale, zero_point = self._out["quantization"]
            return (y.astype(np.float32) - zero_point) * scale
        return y.astype(np.float32)

    def _run(self, xq: np.ndarray) -> np.ndarray:
        it = self.interpreter
        if xq.shape[0] != self._batch:
            it.resize_tensor_input(self._in["index"], list(xq.shape))
            it.allocate_tensors()
            self._batch = xq.shape[0]
        it.set_tensor(self._in["index"], xq)
        it.invoke()
        return it.get_tensor(self._out["index"])

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Float outputs (logits or scores) for ``x``, run in batches of ``batch_size``."""
        xq = self.prepare_input(x)
        outs = [self._dequantize(self._run(xq[i : i + batch_size])) for i in range(0, len(xq), batch_size)]
        return np.concatenate(outs, axis=0)

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
        """Top-1 accuracy on ``x, y``."""
        return float(np.mean(np.argmax(self.predict(x, batch_size), axis=-1) == np.asarray(y)))


@dataclass(frozen=True)
class Latency:
    """Single-sample latency of ``invoke()``: median and p90 over ``runs`` after ``warmup``."""

    median_ms: float
    p90_ms: float
    mean_ms: float
    threads: int
    runs: int
    warmup: int
    xnnpack: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def benchmark_latency(
    source: ModelSource,
    sample: np.ndarray,
    num_threads: int = 1,
    runs: int = 200,
    warmup: int = 20,
    use_xnnpack: bool = True,
) -> Latency:
    """Time ``invoke()`` on one sample (batch 1): ``warmup`` untimed runs, then ``runs`` timed ones.

    Only ``invoke()`` is timed (input copy excluded), so the number is the model's compute. Absolute
    values depend on the machine; compare variants by ratios measured in the same run.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}.")
    model = LiteRTModel(source, num_threads, use_xnnpack)
    x = model.prepare_input(np.asarray(sample)[:1])
    it = model.interpreter
    if model._batch != 1:
        it.resize_tensor_input(model._in["index"], list(x.shape))
        it.allocate_tensors()
    it.set_tensor(model._in["index"], x)
    for _ in range(warmup):
        it.invoke()
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter_ns()
        it.invoke()
        times[i] = time.perf_counter_ns() - t0
    ms = times / 1e6
    return Latency(
        float(np.median(ms)), float(np.percentile(ms, 90)), float(ms.mean()), num_threads, runs, warmup, use_xnnpack
    )


def interleaved_latency(
    sources: dict[str, ModelSource],
    sample: np.ndarray,
    num_threads: int = 1,
    rounds: int = 5,
    runs: int = 100,
    warmup: int = 10,
    seed: int = 0,
    budget_ms: float | None = None,
    skip_unloadable: bool = False,
) -> "pd.DataFrame":
    """Median single-sample ``invoke()`` time (ms) of several models, timed in ``rounds``
    interleaved rounds (a new random order each round): one row per round, one column per model.

    Each model is loaded once; per round it gets ``warmup`` untimed and ``runs`` timed calls (with
    ``budget_ms``, fewer for a slow model: about that many ms per round, at least 10 calls). Because
    the models alternate, a slow spell of a shared machine hits all of them, so the ratio of two
    columns in the same row is a fair comparison (:func:`paired_speedup`). With
    ``skip_unloadable``, a model that cannot be loaded or fed ``sample`` is left out instead of
    raising :class:`TFLiteModelError`.
    """
    import pandas as pd

    if not sources:
        raise ValueError("pass at least one {name: model} to time.")
    if rounds < 1 or runs < 1 or warmup < 0:
        raise ValueError(f"rounds and runs must be >= 1 and warmup >= 0, got {rounds}, {runs}, {warmup}.")
    loaded: dict[str, Any] = {}
    calls: dict[str, int] = {}
    for name, src in sources.items():
        try:
            model = LiteRTModel(src, num_threads=num_threads)
            x = model.prepare_input(np.asarray(sample)[:1])
        except TFLiteModelError:
            if skip_unloadable:
                continue
            raise
        it = model.interpreter
        if model._batch != 1:
            it.resize_tensor_input(model._in["index"], list(x.shape))
            it.allocate_tensors()
        it.set_tensor(model._in["index"], x)
        loaded[name], calls[name] = it, runs
        if budget_ms is not None:
            t0 = time.perf_counter_ns()
            for _ in range(3):
                it.invoke()
            pilot_ms = max((time.perf_counter_ns() - t0) / 3e6, 1e-6)
            calls[name] = int(min(runs, max(10, budget_ms / pilot_ms)))
    rng = np.random.default_rng(seed)
    names = list(loaded)
    rows = []
    for _ in range(rounds):
        row = {}
        for i in rng.permutation(len(names)):
            it = loaded[names[i]]
            for _ in range(warmup):
                it.invoke()
            times = np.empty(calls[names[i]])
            for j in range(len(times)):
                t0 = time.perf_counter_ns()
                it.invoke()
                times[j] = time.perf_counter_ns() - t0
            row[names[i]] = float(np.median(times)) / 1e6
        rows.append({n: row[n] for n in names})
    return pd.DataFrame(rows, columns=names, index=pd.RangeIndex(1, rounds + 1, name="round"))


def paired_speedup(latency: "pd.DataFrame", reference: str) -> "pd.Series":
    """Per model, the median over rounds of ``reference time / model time`` from
    :func:`interleaved_latency` (> 1 means faster than the reference)."""
    import pandas as pd

    if reference not in latency.columns:
        raise ValueError(f"reference {reference!r} was not timed (columns: {list(latency.columns)}).")
    ratios = latency[[reference]].to_numpy() / latency.to_numpy()
    return pd.Series(np.median(ratios, axis=0), index=latency.columns, name="speedup")
