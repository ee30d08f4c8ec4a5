"""Peak memory of running a ``.tflite`` variant, measured in a fresh process (never estimated).

An app that loads a model pays for more than the file: the interpreter, the tensor arena, the
XNNPACK delegate's packed weights, and the runtime code pages touched on first use. The honest way
to know is to run it and watch the process. :func:`measure_peak_memory` starts a fresh Python
subprocess that imports only ``numpy``, ``psutil`` and ``ai_edge_litert`` (no TensorFlow), records
the resident set size (RSS) after those imports, then loads the model, allocates tensors and invokes
it, sampling RSS with ``psutil`` after every stage. Where Linux lets the process reset its RSS
high-water mark (``/proc/self/clear_refs``), the kernel's ``VmHWM`` also catches transient peaks
between samples. The result is the peak RSS *growth* over the post-import baseline.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Runs in the child process. Keep it dependency-light: numpy, psutil, ai_edge_litert only.
_CHILD = r"""
import json, sys
import numpy as np
import psutil
from ai_edge_litert.interpreter import Interpreter, OpResolverType

path, threads, runs, xnnpack = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
proc = psutil.Process()

def hwm():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None

before = proc.memory_info().rss
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS counter to the current RSS
    hwm_reset = True
except OSError:
    hwm_reset = False
stages = {}
resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
try:
    interpreter = Interpreter(model_path=path, num_threads=threads, experimental_op_resolver_type=resolver)
    stages["load"] = proc.memory_info().rss
    interpreter.allocate_tensors()
    stages["allocate"] = proc.memory_info().rss
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], dtype=detail["dtype"]))
    peak_invoke = 0
    for _ in range(runs):
        interpreter.invoke()
        peak_invoke = max(peak_invoke, proc.memory_info().rss)
    stages["invoke"] = peak_invoke
except Exception as exc:
    print(json.dumps({"error": str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}))
    sys.exit(0)
kernel_peak = hwm() if hwm_reset else None
print(json.dumps({
    "before": before, "stages": stages, "kernel_peak": kernel_peak,
    "tensorflow_loaded": "tensorflow" in sys.modules,
}))
"""


class MemoryMeasurementError(RuntimeError):
    """The model could not be loaded or run in the measuring subprocess."""


@dataclass(frozen=True)
class MemoryReport:
    """RSS growth (bytes) over a fresh process's post-import baseline, per stage and at peak."""

    peak_growth_bytes: int
    load_growth_bytes: int
    allocate_growth_bytes: int
    invoke_growth_bytes: int
    baseline_rss_bytes: int
    method: str
    threads: int
    xnnpack: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_peak_memory(
    tflite: Path,
    num_threads: int = 1,
    runs: int = 20,
    use_xnnpack: bool = True,
    timeout: float = 120.0,
) -> MemoryReport:
    """Load, allocate and invoke ``tflite`` ``runs`` times in a fresh subprocess; return its RSS growth.

    The subprocess imports only ``ai_edge_litert`` (plus numpy and psutil), so the number is what an
    app process pays for this model and the runtime it touches, not TensorFlow's footprint.
    Raises :class:`MemoryMeasurementError` with one clear sentence for a missing or unloadable file.
    """
    tflite = Path(tflite)
    if not tflite.is_file():
        raise MemoryMeasurementError(f"No model file at {tflite.name!r}; check the path (or re-run the notebook that writes it).")
    if not isinstance(num_threads, int) or num_threads < 1 or runs < 1:
        raise ValueError(f"num_threads and runs must be positive ints, got {num_threads!r} and {runs!r}.")
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(tflite.resolve()), str(num_threads), str(runs), "1" if use_xnnpack else "0"],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise MemoryMeasurementError(f"measuring {tflite.name} took longer than {timeout:.0f} s; is the machine overloaded?") from exc
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise MemoryMeasurementError(f"the measuring process failed on {tflite.name} (exit {done.returncode}: {tail}).")
    result = json.loads(lines[-1])
    if "error" in result:
        raise MemoryMeasurementError(
            f"LiteRT could not load or run {tflite.name} ({result['error']}); the file is corrupt or not a "
            "TFLite model. Re-export it from its notebook."
        )
    if result["tensorflow_loaded"]:  # pragma: no cover - guards the claim in the docstring
        raise MemoryMeasurementError("TensorFlow was imported in the measuring process; the number would be wrong.")
    before, stages = result["before"], result["stages"]
    sampled = max(stages.values())
    peak, method = sampled, "psutil RSS samples"
    if result["kernel_peak"] is not None and result["kernel_peak"] > sampled:
        peak, method = result["kernel_peak"], "kernel VmHWM (peak between psutil samples)"
    elif result["kernel_peak"] is not None:
        method = "psutil RSS samples (VmHWM agrees)"
    return MemoryReport(
        peak_growth_bytes=max(0, peak - before),
        load_growth_bytes=max(0, stages["load"] - before),
        allocate_growth_bytes=max(0, stages["allocate"] - before),
        invoke_growth_bytes=max(0, stages["invoke"] - before),
        baseline_rss_bytes=before,
        method=method,
        threads=num_threads,
        xnnpack=use_xnnpack,
    )
