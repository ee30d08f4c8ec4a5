"""Calibrate a manifest on the machine that will run it: what each variant really costs *here*.

    python -m helpers.calibrate --manifest data/models/manifest.json --threads 1,2 --out device.json
    python -m helpers.select --manifest data/models/manifest.json --calibration device.json --profile mid_range_phone

The manifest's latencies and memory were measured once, on the machine that built the variants.
An app's device differs. For every variant, on the machine it runs on, this measures:

- load time (interpreter created + tensors allocated) and first-inference time;
- p50 and p95 latency over at least ``--runs`` timed calls after warm-up, per thread count, with
  the Interpreter (XNNPACK on and off) and with ``CompiledModel`` on the CPU accelerator;
- which accelerators compile the model (``CompiledModel`` with CPU, GPU, NPU, each alone): the one
  an app would get by the fixed NPU > GPU > CPU priority, and why the others failed;
- peak memory, in a fresh process (:func:`helpers.memory.measure_peak_memory`);
- agreement with golden outputs recorded when the variant was built (:func:`record_golden`):
  top-1 agreement and max abs difference, which catches a damaged file or a broken accelerator.

Each (variant, thread count) gets at most ``--budget-s`` seconds of timing. A damaged or unloadable
file is reported in the output file and on stderr, and calibration goes on. Nothing here imports
TensorFlow.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from helpers.golden import GOLDEN_DIR, golden_agreement, record_golden  # noqa: F401 (re-exported)
from helpers.litert_runner import compiled_model, compiled_runner
from helpers.paths import atomic_write_text
# what the selector reads back from a calibration file lives with the selector (no numpy needed)
from helpers.selection import (  # noqa: F401 (re-exported)
    CALIBRATION_SCHEMA_VERSION as SCHEMA_VERSION, CalibrationError, apply_calibration, load_calibration,
)

ACCELERATORS = ("npu", "gpu", "cpu")  # CompiledModel's fixed priority: first that compiles wins


# ------------------------------------------------------------------------------------------------
# Timing
# ------------------------------------------------------------------------------------------------

MIN_TIMED_RUNS = 3  # a median of fewer is no measurement


def time_calls(call: Callable[[], None], min_runs: int, budget_s: float, warmup: int = 5) -> np.ndarray:
    """Milliseconds of ``call`` over at least ``min_runs`` timed runs after ``warmup``; more runs
    while time is left in ``budget_s`` (warm-up included), up to 10x ``min_runs``. Stops at the
    budget even below ``min_runs``, but never before :data:`MIN_TIMED_RUNS` (the caller sees how
    many ran)."""
    deadline = time.perf_counter() + budget_s
    for _ in range(warmup):
        call()
    times: list[float] = []
    while len(times) < 10 * min_runs:
        if len(times) >= min_runs and time.perf_counter() > deadline - budget_s / 2:
            break
        if len(times) >= MIN_TIMED_RUNS and time.perf_counter() > deadline:
            break
        t0 = time.perf_counter_ns()
        call()
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return np.asarray(times)


def _stats(times: np.ndarray) -> dict[str, Any]:
    return {"p50_ms": round(float(np.median(times)), 5), "p95_ms": round(float(np.percentile(times, 95)), 5),
            "runs": int(len(times))}


def _interpreter_call(path: Path, threads: int, xnnpack: bool, batch: int = 1) -> tuple[Callable[[], None], float, float]:
    """An ``invoke`` closure on a zero input of ``batch`` rows, with the load (including the resize to
    ``batch``) and first-inference times in ms."""
    from helpers.litert_runner import make_interpreter

    t0 = time.perf_counter()
    interpreter = make_interpreter(path, num_threads=threads, use_xnnpack=xnnpack)
    if batch != 1:
        detail = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
        interpreter.allocate_tensors()
    load_ms = (time.perf_counter() - t0) * 1e3
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], dtype=detail["dtype"]))
    t0 = time.perf_counter()
    interpreter.invoke()
    first_ms = (time.perf_counter() - t0) * 1e3
    return interpreter.invoke, load_ms, first_ms


# Runs in one child process per model: a failing GPU/NPU driver can't take the caller down, and
# LiteRT's own log (stderr) says why an accelerator failed, which its exception often does not.
# A marker line on stderr before each attempt attributes the log lines to the accelerator.
_PROBE = r"""
import os, sys
from ai_edge_litert.compiled_model import CompiledModel
from ai_edge_litert.hardware_accelerator import HardwareAccelerator
from ai_edge_litert.options import CpuOptions, Options
from helpers.litert_runner import compiled_runner
path, threads = sys.argv[1], int(sys.argv[2])
for accelerator in sys.argv[3:]:
    os.write(2, f"@@probe {accelerator}\n".encode())
    flag = getattr(HardwareAccelerator, accelerator.upper())
    options = Options(hardware_accelerators=HardwareAccelerator(flag), cpu_options=CpuOptions(num_threads=threads))
    try:
        compiled_runner(CompiledModel.from_file(path, options=options))()
        print(accelerator, "OK", flush=True)
    except Exception as exc:
        print(accelerator, "FAILED", type(exc).__name__, " ".join(str(exc).split()), flush=True)
os.write(2, b"@@probe end\n")
"""
_REASON = re.compile(r"(No adapters found|Failed to initialize|not accelerated|could not be loaded|"
                     r"cannot open shared object|not supported|Unsupported)", re.I)
_LOG_PREFIX = re.compile(r"^(INFO|ERROR|WARNING|E\d+ [\d:.]+ +\d+)[: ]*(\[?[\w./]+:\d+\]? ?)?")


def _reason(log: list[str], said: str) -> str:
    telling = [line for line in log if _REASON.search(line) and "openvino" not in line.lower()]
    line = telling[0] if telling else said  # the first telling line names the root cause
    return _LOG_PREFIX.sub("", line.strip(" └")).strip()[:300]


def probe_accelerators(path: Path, threads: int = 1, timeout_s: float = 60.0) -> dict[str, Any]:
    """Compile and run ``path`` with each accelerator alone (``CompiledModel``, in a child process);
    report which worked, which failed and why (the telling line of LiteRT's log), and which one an
    app gets by the NPU > GPU > CPU priority (``used``)."""
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE, str(path), str(threads), *ACCELERATORS],
                              capture_output=True, text=True, timeout=timeout_s)
        said = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
        logs: dict[str, list[str]] = {}
        current = None
        for line in proc.stderr.splitlines():
            if line.startswith("@@probe "):
                current = line.split(" ", 1)[1]
                continue
            if current:
                logs.setdefault(current, []).append(line)
        status = {}
        for a in ACCELERATORS:
            answer = said.get(a)
            if answer == "OK":
                status[a] = "ok"
            else:
                fallback = answer or f"the probe process ended early (exit status {proc.returncode})"
                status[a] = "failed: " + _reason(logs.get(a, []), fallback)
    except subprocess.TimeoutExpired:
        status = {a: f"failed: no answer within {timeout_s:.0f} s" for a in ACCELERATORS}
    used = next((a for a in ACCELERATORS if status[a] == "ok"), None)
    fell_back = list(ACCELERATORS[: ACCELERATORS.index(used)]) if used else list(ACCELERATORS)
    return {"status": status, "used": used,
            "fallback": None if not fell_back else
            f"{', '.join(fell_back)} unavailable; ran on {used or 'nothing'}"}


def _first_line(exc: BaseException) -> str:
    """The informative line of a LiteRT error (its messages are stacks of source locations)."""
    lines = [line.strip(" └") for line in str(exc).splitlines() if line.strip(" └")]
    useful = [line for line in lines if not line.startswith("ERROR: [")]
    if useful:
        return f"{type(exc).__name__}: {useful[-1]}"[:300]
    where = lines[-1] if lines else ""
    return f"{type(exc).__name__} with no reason given by LiteRT ({where})"[:300]


# ------------------------------------------------------------------------------------------------
# Calibration
# ------------------------------------------------------------------------------------------------

def machine_info(threads: Iterable[int]) -> dict[str, Any]:
    """Where a calibration was made: machine, CPU, runtime version, date, thread counts."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        runtime = version("ai-edge-litert")
    except PackageNotFoundError:
        runtime = None
    cpu = platform.processor() or None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return {"machine": platform.machine(), "system": platform.system(), "cpu": cpu,
            "cores": os.cpu_count(), "python": platform.python_version(), "ai_edge_litert": runtime,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "threads": sorted(set(threads))}


def calibrate_variant(models: Path, entry: Mapping[str, Any], threads: Iterable[int], runs: int = 30,
                      budget_s: float = 5.0, memory: bool = True, batch: int = 1) -> dict[str, Any]:
    """Everything :mod:`helpers.calibrate` measures for one manifest entry (see the module doc)."""
    path = Path(models) / entry["path"]
    start = time.perf_counter()
    result: dict[str, Any] = {"path": entry["path"], "sha256": entry.get("sha256"), "latency_ms": {},
                              "p95_ms": {}, "backends": {}}
    for t in threads:
        # the app's default path: Interpreter + XNNPACK. Half the budget; the rest for the others.
        call, load_ms, first_ms = _interpreter_call(path, t, xnnpack=True, batch=batch)
        stats = _stats(time_calls(call, runs, budget_s / 2))
        result["latency_ms"][str(t)], result["p95_ms"][str(t)] = stats["p50_ms"], stats["p95_ms"]
        result.setdefault("load_ms", {})[str(t)] = round(load_ms, 3)
        result.setdefault("first_inference_ms", {})[str(t)] = round(first_ms, 3)
        backends = {"interpreter_xnnpack": stats}
        call, _, _ = _interpreter_call(path, t, xnnpack=False, batch=batch)
        backends["interpreter_builtin"] = _stats(time_calls(call, runs, budget_s / 4))
        if batch == 1:  # CompiledModel is timed with the model's own input shape
            with compiled_model(path, "cpu", t) as compiled:
                backends["compiled_model_cpu"] = _stats(time_calls(compiled_runner(compiled), runs, budget_s / 4))
        result["backends"][str(t)] = backends
    result["accelerators"] = probe_accelerators(path, min(threads))
    if memory:
        from helpers.memory import measure_peak_memory

        result["peak_memory_bytes"] = int(measure_peak_memory(path).peak_growth_bytes)
    result["golden"] = golden_agreement(models, entry["name"], path)
    result["calibration_s"] = round(time.perf_counter() - start, 2)
    return result


def calibrate(manifest: Path, threads: Iterable[int] = (1, 2), runs: int = 30, budget_s: float = 5.0,
              memory: bool = True, log: Callable[[str], None] | None = None, batch: int = 1,
              variants: Iterable[str] | None = None) -> dict[str, Any]:
    """Calibrate every variant of ``manifest`` (or only those named in ``variants``); damaged or
    unloadable files land in ``failed``.

    ``batch`` is the number of inputs per request the app sends: latencies are per request of that
    size (the manifest's are per single input, ``batch=1``)."""
    from helpers.accounting import sha256
    from helpers.selection import load_verified

    threads = sorted(set(int(t) for t in threads))
    if not isinstance(batch, int) or batch < 1:
        raise CalibrationError(f"batch must be a positive integer, got {batch!r}.", status=2)
    if not threads or threads[0] < 1:
        raise CalibrationError(f"thread counts must be positive integers, got {threads}.", status=2)
    manifest = Path(manifest)
    verified = load_verified(manifest)
    say = log or (lambda line: print(line, file=sys.stderr))
    doc: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "manifest": manifest.name,
                           "manifest_sha256": sha256(manifest), "made_on": machine_info(threads),
                           "runs": runs, "batch": batch, "budget_s_per_thread_count": budget_s, "variants": {}, "failed": []}
    wanted = None if variants is None else set(variants)
    if wanted is not None:
        unknown = wanted - {v["name"] for v in verified.variants} - {s.name for s in verified.skipped}
        if unknown:
            raise CalibrationError(f"no variant named {', '.join(sorted(unknown))} in {manifest.name}; "
                                   f"choose from {', '.join(sorted(v['name'] for v in verified.variants))}.", status=2)
    for skipped in verified.skipped:
        if wanted is not None and skipped.name not in wanted:
            continue
        doc["failed"].append({"name": skipped.name, "reason": skipped.reason})
        say(f"calibrate: {skipped.name}: {skipped.reason}; skipped")
    for entry in verified.variants:
        if wanted is not None and entry["name"] not in wanted:
            continue
        if entry.get("technique") == "cascade":  # two files per request: its parts are calibrated
            doc.setdefault("not_calibrated", []).append(
                {"name": entry["name"], "reason": f"a cascade of {entry['small']} and {entry['large']}: calibrate its parts"})
            continue
        try:
            doc["variants"][entry["name"]] = calibrate_variant(manifest.parent, entry, threads, runs, budget_s, memory, batch)
        except Exception as exc:  # noqa: BLE001 - report and go on: one bad file must not stop the rest
            reason = _first_line(exc)
            doc["failed"].append({"name": entry["name"], "reason": reason})
            say(f"calibrate: {entry['name']}: could not be calibrated ({reason}); skipped")
    return doc


def _quiet_shutdown() -> None:
    """LiteRT's accelerator registry logs "DestroyAccelerator" lines to fd 2 when the process exits;
    once the results are written, send fd 2 to /dev/null so the console ends with the summary."""
    import atexit
    import os

    def silence() -> None:
        sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)

    atexit.register(silence)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.calibrate", description=__doc__.splitlines()[0],
        epilog="exit status: 0 calibrated (failed variants are listed in the file), 2 usage, 3 manifest unusable")
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--runs", type=int, default=30, help="timed runs at least, after warm-up (default 30)")
    parser.add_argument("--batch", type=int, default=1, help="inputs per request, as the app sends them (default 1)")
    parser.add_argument("--budget-s", type=float, default=5.0, help="seconds of timing per variant and thread count")
    parser.add_argument("--variants", nargs="+", metavar="NAME", help="calibrate only these variants")
    parser.add_argument("--no-memory", action="store_true", help="skip the fresh-process peak-memory measurement")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        parser.error(f"--threads must be comma-separated integers, got {args.threads!r}")
    if not threads or min(threads) < 1 or args.runs < 1 or args.batch < 1 or not 0 < args.budget_s < 3600:
        parser.error("--threads and --batch must be positive, --runs >= 1, and 0 < --budget-s < 3600")
    from helpers.registry import ManifestError

    try:
        doc = calibrate(args.manifest, threads, args.runs, args.budget_s, memory=not args.no_memory, batch=args.batch, variants=args.variants,
                        log=lambda line: print(line, file=sys.stderr))
    except (ManifestError, CalibrationError, OSError) as exc:
        print(f"calibrate: {exc}", file=sys.stderr)
        return getattr(exc, "status", 3)
    atomic_write_text(args.out, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    _quiet_shutdown()
    for name, v in doc["variants"].items():
        lat = ", ".join(f"{t} thr p50 {v['latency_ms'][t]:.4f} / p95 {v['p95_ms'][t]:.4f} ms" for t in v["latency_ms"])
        print(f"{name}: {lat}; runs on {v['accelerators']['used']}; {v['calibration_s']:.1f} s")
    print(f"{len(doc['variants'])} calibrated, {len(doc['failed'])} failed -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
