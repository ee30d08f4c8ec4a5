"""Bookkeeping for the latency lab (notebook 02c): multiply-accumulate counts of a Keras model, a
cache of converted files under ``data/``, interleaved timing of a group of files with percentiles,
and the lab's results file and manifest family.

The lab's teaching code (building the architectures, the converter settings, the calls that time a
model) stays in the notebook; these functions take everything as arguments.
"""

from __future__ import annotations

import json
import math
import platform
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from helpers.paths import atomic_write_bytes, atomic_write_text, sha256

LAB_FAMILY = "latency_lab"
RECIPES: tuple[str, ...] = ("fp32", "float16", "dynamic", "int8")
ROW_KEYS = ("arch", "resolution", "recipe", "threads", "xnnpack", "p50_ms", "p90_ms", "calls")
CROSSCHECK_KEYS = ("arch", "resolution", "recipe", "threads", "harness_p50_ms", "tool_p50_ms")


class LabError(ValueError):
    """A problem with the lab's inputs or cache, in one sentence that says what to do."""


# --------------------------------------------------------------------------------------------------
# Cost of a model
# --------------------------------------------------------------------------------------------------


def _layers(model: Any) -> Iterable[Any]:
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:  # a nested Model or Sequential
            yield from _layers(layer)
        else:
            yield layer


def count_macs(model: Any) -> int:
    """Multiply-accumulates of one forward pass at batch 1: convolutions, depthwise convolutions and
    dense layers (the layers that hold nearly all the arithmetic of a mobile CNN). Element-wise ops,
    pooling and activations are not counted, as in the MAC tables published for these networks."""
    total = 0
    for layer in _layers(model):
        kind = type(layer).__name__
        if kind not in ("Conv2D", "DepthwiseConv2D", "Dense"):
            continue
        out_shape = layer.output_shape
        in_shape = layer.input_shape
        if any(d is None for d in out_shape[1:]) or any(d is None for d in in_shape[1:]):
            raise LabError(f"layer {layer.name!r} has an unknown spatial size; build the model with a fixed input_shape.")
        if kind == "Dense":
            positions = math.prod(out_shape[1:-1]) if len(out_shape) > 2 else 1
            total += positions * int(in_shape[-1]) * int(out_shape[-1])
            continue
        kh, kw = layer.kernel_size
        h, w = int(out_shape[1]), int(out_shape[2])
        cin = int(in_shape[-1])
        if kind == "DepthwiseConv2D":
            total += h * w * kh * kw * cin * int(layer.depth_multiplier)
        else:
            groups = int(getattr(layer, "groups", 1) or 1)
            total += h * w * kh * kw * (cin // groups) * int(out_shape[-1])
    return int(total)


# --------------------------------------------------------------------------------------------------
# A cache of converted files
# --------------------------------------------------------------------------------------------------


def cached_tflite(path: Path, key: str, convert: Callable[[], bytes]) -> tuple[Path, float | None]:
    """``path`` if it already holds a conversion made with the same ``key`` (e.g. the TensorFlow
    version and the converter settings) and its bytes still match; otherwise ``convert()`` it and
    write it atomically with a ``.json`` stamp beside it. Returns the path and the seconds the
    conversion took (None when the cached file was used)."""
    path = Path(path)
    stamp = path.with_name(path.name + ".json")
    if path.is_file() and stamp.is_file():
        try:
            meta = json.loads(stamp.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        if meta.get("key") == key and meta.get("sha256") == sha256(path):
            return path, None
    start = time.perf_counter()
    content = convert()
    seconds = time.perf_counter() - start
    if not isinstance(content, (bytes, bytearray)) or content[4:8] != b"TFL3":
        raise LabError(f"the conversion for {path.name} did not return a .tflite flatbuffer; check the converter call.")
    atomic_write_bytes(path, bytes(content))
    atomic_write_text(stamp, json.dumps({"key": key, "sha256": sha256(path), "convert_s": round(seconds, 2)}) + "\n")
    return path, seconds


# --------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------


def time_group(
    files: Mapping[str, Path],
    sample: np.ndarray,
    threads: "int | Mapping[str, int]",
    use_xnnpack: "bool | Mapping[str, bool]" = True,
    rounds: int = 3,
    budget_ms: float = 60.0,
    runs: int = 200,
    warmup: int = 3,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Time a group of files fed the same ``sample`` in interleaved rounds
    (:func:`helpers.litert_runner.interleaved_latency`): each round gives every file about
    ``budget_ms`` of timed ``invoke()`` calls (at least 10) after ``warmup`` untimed ones.
    ``threads`` and ``use_xnnpack`` are one setting for all, or one per name.

    Returns a per-file summary (``p50_ms``, ``p90_ms`` over every timed call, ``calls``) and the
    per-round medians (one column per file) for same-run ratios.
    """
    from helpers.litert_runner import interleaved_latency

    if not files:
        raise LabError("no files to time.")
    calls: dict[str, list[float]] = {}
    per_round = interleaved_latency(dict(files), sample, num_threads=threads, rounds=rounds, runs=runs, warmup=warmup,
                                    seed=seed, budget_ms=budget_ms, use_xnnpack=use_xnnpack, samples=calls)
    summary = pd.DataFrame(
        {name: {"p50_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)), "calls": len(ms)}
         for name, ms in calls.items()}
    ).T
    summary["calls"] = summary["calls"].astype(int)
    return summary, per_round


@contextmanager
def other_load() -> Iterator[dict[str, float]]:
    """Measure, over the block, the share of the machine's CPU time that *other* processes used
    (0 = nothing else ran, 1 = every core was busy with something else): all CPU time the system
    spent minus this process's own, over wall time x cores. The dict gets ``share`` and ``seconds``
    when the block ends. A timing taken while the share is high measures the neighbours too."""
    import psutil

    me = psutil.Process()

    def system_busy() -> float:
        t = psutil.cpu_times()
        return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))

    def mine() -> float:
        t = me.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    out: dict[str, float] = {}
    busy0, mine0, wall0 = system_busy(), mine(), time.perf_counter()
    try:
        yield out
    finally:
        wall = max(time.perf_counter() - wall0, 1e-9)
        others = (system_busy() - busy0) - (mine() - mine0)
        out["seconds"] = wall
        out["share"] = min(1.0, max(0.0, others / (wall * (psutil.cpu_count() or 1))))


# x86 and ARM instructions that multiply-add 8-bit integers straight into 32-bit sums, several per
# lane (what makes XNNPACK's int8 kernels outrun its float32 ones): numpy's names, and /proc/cpuinfo's.
INT8_DOT = ("AVX512VNNI", "ASIMDDP")
INT8_DOT_CPUINFO = ("avx512_vnni", "avx_vnni", "asimddp")
SIMD_SHOWN = ("SSE41", "AVX", "FMA3", "AVX2", "AVX512F", "AVX512BW", "AVX512VNNI", "NEON", "ASIMD", "ASIMDDP")


def cpu_simd(features: Mapping[str, bool] | None = None, cpuinfo_flags: Iterable[str] | None = None) -> dict[str, Any]:
    """The vector instructions this CPU has, as numpy detected them at import.

    Returns ``machine``, ``features`` (the relevant ones present, e.g. ``["AVX", "FMA3", "AVX2"]``)
    and ``int8_dot``: True when the CPU has an int8 dot-product instruction (AVX512-VNNI or AVX-VNNI
    on x86, the dot-product extension on ARM). Without one, an int8 multiply-add goes through 16-bit
    lanes (AVX2 ``vpmaddwd``), no more per instruction than float32's fused multiply-add, so int8 kernels
    gain little speed over float32 ones. ``features`` and ``cpuinfo_flags`` are for testing."""
    if features is None:
        try:
            from numpy._core._multiarray_umath import __cpu_features__ as features  # numpy 2
        except ImportError:  # numpy 1.x
            from numpy.core._multiarray_umath import __cpu_features__ as features
    if cpuinfo_flags is None:  # Linux's flags name AVX-VNNI, which numpy does not
        from helpers.sparsity import _cpu_flags

        cpuinfo_flags = _cpu_flags() or set()
    present = [name for name in SIMD_SHOWN if features.get(name)]
    dot = any(features.get(name) for name in INT8_DOT) or bool(set(cpuinfo_flags) & set(INT8_DOT_CPUINFO))
    return {"machine": platform.machine(), "features": present, "int8_dot": dot}


def round_ratio(per_round: pd.DataFrame, numerator: str, denominator: str) -> float:
    """Median over rounds of ``numerator time / denominator time`` (both timed in the same rounds)."""
    for name in (numerator, denominator):
        if name not in per_round.columns:
            raise LabError(f"{name!r} was not timed in these rounds (columns: {list(per_round.columns)}).")
    return float(np.median(per_round[numerator].to_numpy() / per_round[denominator].to_numpy()))


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


def _check_rows(rows: Sequence[Mapping[str, Any]], keys: Sequence[str], what: str) -> list[dict[str, Any]]:
    out = []
    for i, row in enumerate(rows):
        missing = [k for k in keys if k not in row]
        if missing:
            raise LabError(f"{what}[{i}] lacks {missing}.")
        for k in keys:
            v = row[k]
            if k.endswith("_ms") and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise LabError(f"{what}[{i}].{k} must be a finite time > 0 ms, got {v!r}.")
        out.append({k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()})
    return out


def write_results(path: Path, rows: Sequence[Mapping[str, Any]], crosscheck: Sequence[Mapping[str, Any]],
                  **meta: Any) -> dict[str, Any]:
    """Write the lab's JSON (``rows``, ``crosscheck`` and ``meta``) atomically, as strict JSON."""
    doc = {
        "rows": _check_rows(rows, ROW_KEYS, "rows"),
        "crosscheck": _check_rows(crosscheck, CROSSCHECK_KEYS, "crosscheck"),
        "meta": {"machine": platform.machine(), "processor": platform.processor() or None, **meta},
    }
    atomic_write_text(Path(path), json.dumps(doc, indent=1, allow_nan=False) + "\n")
    return doc


def read_results(path: Path) -> dict[str, Any]:
    """The lab's JSON, checked; one :class:`LabError` if it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise LabError(f"no {path.name}; run notebook 02c_latency_lab first.")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LabError(f"{path.name} is not valid JSON ({exc}); re-run notebook 02c_latency_lab.") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list) or not isinstance(doc.get("crosscheck"), list):
        raise LabError(f"{path.name} needs 'rows' and 'crosscheck' lists; re-run notebook 02c_latency_lab.")
    _check_rows(doc["rows"], ROW_KEYS, "rows")
    _check_rows(doc["crosscheck"], CROSSCHECK_KEYS, "crosscheck")
    return doc


def family_entry(name: str, path: Path, models: Path, *, arch: str, resolution: int, recipe: str,
                 params: int, macs: int, latency: Mapping[int, Mapping[str, float]], input_spec: Mapping[str, Any]) -> dict[str, Any]:
    """A manifest entry of the lab family: the file (relative path, size, SHA-256), what it is, and its
    p50 and p90 per thread count (``latency[threads] = {"p50_ms": ..., "p90_ms": ...}``)."""
    path = Path(path)
    return {
        "name": name,
        "technique": f"latency_lab_{recipe}",
        "path": path.resolve().relative_to(Path(models).resolve()).as_posix(),
        "size_bytes": path.stat().st_size,
        "params": int(params),
        "macs": int(macs),
        "arch": arch,
        "resolution": int(resolution),
        "recipe": recipe,
        "weights": "random",
        "latency_ms": {str(t): round(float(v["p50_ms"]), 5) for t, v in sorted(latency.items())},
        "p90_ms": {str(t): round(float(v["p90_ms"]), 5) for t, v in sorted(latency.items())},
        "input": dict(input_spec),
        "sha256": sha256(path),
    }
