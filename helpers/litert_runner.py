"""Run ``.tflite`` models with the LiteRT interpreter (``ai_edge_litert``): predictions, accuracy
and an honest latency benchmark.

Integer models are handled transparently: float inputs are quantized with the input tensor's scale
and zero-point, integer outputs are dequantized, so the same call works for every variant. Bad input
gets one clear :class:`TFLiteModelError`: a wrong shape or dtype, an empty batch, NaN or infinite
values, 0..255 floats fed to an integer model that expects [0, 1], or integer arrays not marked
``quantized=True``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping

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

    def prepare_input(self, x: np.ndarray, *, quantized: bool = False, allow_nonfinite: bool = False) -> np.ndarray:
        """Check ``x`` against the model's input and convert it (quantize for integer models).

        Refused with one :class:`TFLiteModelError`: a wrong shape, an empty batch, NaN or infinite
        values (``allow_nonfinite=True`` runs them anyway), floats far outside what an integer
        model's input can represent (0..255 images fed to a model trained on [0, 1]), and integer
        arrays unless ``quantized=True`` says they already are in the model's quantized domain.
        """
        x = np.asarray(x)
        want = tuple(int(d) for d in self._in["shape"][1:])
        if x.shape[1:] != want:
            raise TFLiteModelError(
                f"input has shape {x.shape}, the model expects (batch, {', '.join(map(str, want))}); "
                "reshape or resize the input to match."
            )
        if x.shape[0] == 0:
            raise TFLiteModelError("the input batch is empty (0 images); pass at least one image.")
        dtype = np.dtype(self._in["dtype"])
        if not np.issubdtype(x.dtype, np.floating):
            if x.dtype == dtype and quantized:
                return x  # the caller says it is already in the model's integer domain
            if x.dtype == dtype and np.issubdtype(dtype, np.integer):
                raise TFLiteModelError(
                    f"input is {x.dtype} like the model's input; if it is already quantized (scale "
                    f"{self._in['quantization'][0]:.6g}, zero point {self._in['quantization'][1]}), pass quantized=True; "
                    "otherwise pass float32 images scaled like the training data (the helper quantizes them)."
                )
            raise TFLiteModelError(
                f"input dtype is {x.dtype}, the model expects {dtype.name}; pass float32 images "
                "scaled like the training data (the helper quantizes them for integer models)."
            )
        if quantized:
            raise TFLiteModelError(f"quantized=True needs {dtype.name} input, got {x.dtype}.")
        if not allow_nonfinite:
            finite = np.isfinite(x)
            if not finite.all():
                raise TFLiteModelError(
                    f"the input holds {int(x.size - finite.sum())} NaN or infinite value(s); clean the input "
                    "(or pass allow_nonfinite=True to run it anyway)."
                )
        if np.issubdtype(dtype, np.integer):
            scale, zero_point = self._in["quantization"]
            info = np.iinfo(dtype)
            if scale > 0:
                lo, hi = (info.min - zero_point) * scale, (info.max - zero_point) * scale
                width = hi - lo
                finite = x[np.isfinite(x)]  # with allow_nonfinite, judge the scale by the finite values
                x_lo, x_hi = (float(finite.min()), float(finite.max())) if finite.size else (lo, hi)
                if x_hi > hi + width or x_lo < lo - width:
                    raise TFLiteModelError(
                        f"input values span [{x_lo:.4g}, {x_hi:.4g}] but this {dtype.name} model's input represents "
                        f"only [{lo:.4g}, {hi:.4g}]; scale the input like the training data (e.g. divide 0..255 "
                        "pixels by 255), or pass already-quantized integers with quantized=True."
                    )
            with np.errstate(invalid="ignore"):
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

    def predict(
        self, x: np.ndarray, batch_size: int = 256, *, quantized: bool = False, allow_nonfinite: bool = False
    ) -> np.ndarray:
        """Float outputs (logits or scores) for ``x``, run in batches of ``batch_size``.

        ``quantized`` and ``allow_nonfinite`` as in :meth:`prepare_input`."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise TFLiteModelError(f"batch_size must be a positive int, got {batch_size!r}.")
        xq = self.prepare_input(x, quantized=quantized, allow_nonfinite=allow_nonfinite)
        outs = [self._dequantize(self._run(xq[i : i + batch_size])) for i in range(0, len(xq), batch_size)]
        return np.concatenate(outs, axis=0)

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 256, *, quantized: bool = False) -> float:
        """Top-1 accuracy on ``x, y`` (NaN or infinite inputs are refused)."""
        y = np.asarray(y)
        if len(y) != len(x):
            raise TFLiteModelError(f"x has {len(x)} images but y has {len(y)} labels; pass one label per image.")
        return float(np.mean(np.argmax(self.predict(x, batch_size, quantized=quantized), axis=-1) == y))


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
    num_threads: "int | Mapping[str, int]" = 1,
    rounds: int = 5,
    runs: int = 100,
    warmup: int = 10,
    seed: int = 0,
    budget_ms: float | None = None,
    skip_unloadable: bool = False,
    use_xnnpack: "bool | Mapping[str, bool]" = True,
    samples: dict[str, list[float]] | None = None,
) -> "pd.DataFrame":
    """Median single-sample ``invoke()`` time (ms) of several models, timed in ``rounds``
    interleaved rounds (a new random order each round): one row per round, one column per model.

    Each model is loaded once; per round it gets ``warmup`` untimed and ``runs`` timed calls (with
    ``budget_ms``, fewer for a slow model: about that many ms per round, at least 10 calls). Because
    the models alternate, a slow spell of a shared machine hits all of them, so the ratio of two
    columns in the same row is a fair comparison (:func:`paired_speedup`). With
    ``skip_unloadable``, a model that cannot be loaded or fed ``sample`` is left out instead of
    raising :class:`TFLiteModelError`. ``use_xnnpack=False`` times the built-in kernels; ``num_threads``
    and ``use_xnnpack`` may also map each name to its own setting (one file timed at 1 and 2 threads,
    or with and without XNNPACK, in the same rounds). Pass a dict
    as ``samples`` to receive every timed call (ms) per model, for percentiles over all rounds.
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
            model = LiteRTModel(src, num_threads=num_threads[name] if isinstance(num_threads, Mapping) else num_threads,
                                use_xnnpack=use_xnnpack[name] if isinstance(use_xnnpack, Mapping) else use_xnnpack)
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
            if samples is not None:
                samples.setdefault(names[i], []).extend((times / 1e6).tolist())
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


# --------------------------------------------------------------------------------------------------
# CompiledModel (the newer LiteRT API, with accelerator options)
# --------------------------------------------------------------------------------------------------

@contextmanager
def compiled_model(path: Path, accelerator: str, threads: int) -> Iterator[Any]:
    """A ``CompiledModel`` for one accelerator alone, in its own LiteRT environment, released (with
    the environment's accelerator registry, which logs to fd 2) before the context ends."""
    import gc

    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.environment import Environment, EnvironmentOptions
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.options import CpuOptions, Options

    flag = {"cpu": HardwareAccelerator.CPU, "gpu": HardwareAccelerator.GPU, "npu": HardwareAccelerator.NPU}[accelerator]
    options = Options(hardware_accelerators=HardwareAccelerator(flag), cpu_options=CpuOptions(num_threads=threads))
    runtime = str(Path(__import__("ai_edge_litert").__file__).parent)
    with quiet_native_stderr():
        env = Environment.create(options=EnvironmentOptions(runtime_path=runtime))
        try:
            with CompiledModel.from_file(str(path), environment=env, options=options) as compiled:
                yield compiled
        finally:
            env.close()
            del env
            gc.collect()


def compiled_runner(compiled: Any, rng: np.random.Generator | None = None) -> Callable[[], None]:
    """A no-argument call that runs ``compiled``'s first signature on buffers made once: zeros, or
    uniform values in [-1, 1) from ``rng`` (what the wheel's benchmark tool feeds)."""
    signature = list(compiled.get_signature_list())[0]
    details = compiled.get_input_tensor_details(signature)
    inputs = {n: compiled.create_input_buffer_by_name(signature, n) for n in details}
    outputs = {n: compiled.create_output_buffer_by_name(signature, n)
               for n in compiled.get_output_tensor_details(signature)}
    for name, buffer in inputs.items():
        d = details[name]
        dtype = d.get("dtype", "float32")
        value = np.zeros(d["shape"]) if rng is None else rng.uniform(-1, 1, d["shape"])
        buffer.write(value.astype(dtype))
    return lambda: compiled.run_by_name(signature, inputs, outputs)
