"""Cross-check of the workbook's latency harness against the benchmark tool that ships inside the
``ai-edge-litert`` wheel (``ai_edge_litert/tools/benchmark_litert_model.py``), and an in-process timing
of the call that tool makes (``CompiledModel.run_by_name``)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from helpers.results_table import ReportError

TOOL_RESOLUTION_MS = 0.01  # the tool prints and stores latencies rounded to 2 decimals of a ms


def benchmark_tool_path() -> Path:
    """``ai_edge_litert/tools/benchmark_litert_model.py`` of the installed wheel."""
    spec = importlib.util.find_spec("ai_edge_litert")
    if spec is None or not spec.submodule_search_locations:
        raise ReportError("ai_edge_litert is not installed; run `make install` (ai-edge-litert==2.3.0).")
    tool = Path(list(spec.submodule_search_locations)[0]) / "tools" / "benchmark_litert_model.py"
    if not tool.is_file():
        raise ReportError("This ai-edge-litert wheel ships no tools/benchmark_litert_model.py; install ai-edge-litert==2.3.0.")
    return tool


@dataclass(frozen=True)
class ToolRun:
    """What ``benchmark_litert_model.py`` reported (its ``--result_json``), in ms.

    ``mean_ms_precise`` is the tool's mean recomputed from its throughput figure (input bytes ÷
    mean time), which carries more digits than its 2-decimal ``avg_ms`` for a model this fast.
    """

    median_ms: float
    mean_ms: float
    mean_ms_precise: float | None
    p5_ms: float
    p95_ms: float
    num_runs: int
    num_threads: int
    fully_accelerated: bool
    accelerators: tuple[str, ...]
    command: str
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("raw")
        return d


def _input_bytes(model: Path) -> int:
    from helpers.litert_runner import LiteRTModel

    spec = LiteRTModel(model).input_spec
    return int(np.prod(spec.shape)) * np.dtype(spec.dtype).itemsize


def run_benchmark_tool(
    model: Path,
    result_json: Path,
    num_threads: int = 1,
    num_runs: int = 500,
    warmup_runs: int = 50,
    python: str = sys.executable,
    tool: Path | None = None,
    timeout: float = 120.0,
) -> ToolRun:
    """Run the wheel's benchmark tool as a subprocess on ``model`` (CPU, ``num_threads``) and parse the
    JSON it writes to ``result_json``. One :class:`ReportError` if the model is missing or the tool fails."""
    model, result_json = Path(model), Path(result_json)
    if not model.is_file():
        raise ReportError(f"No model file {model.name!r} to benchmark; run the notebook that writes it.")
    if num_threads < 1 or num_runs < 2 or warmup_runs < 0:
        raise ReportError(f"need num_threads >= 1, num_runs >= 2, warmup_runs >= 0 (got {num_threads}, {num_runs}, {warmup_runs}).")
    tool = Path(tool) if tool is not None else benchmark_tool_path()
    result_json.parent.mkdir(parents=True, exist_ok=True)
    result_json.unlink(missing_ok=True)
    # Run from the model's folder with a bare file name: the tool copies --model into its JSON, which
    # then carries no absolute path of this machine.
    args = [f"--model={model.name}", f"--num_threads={num_threads}", f"--num_runs={num_runs}",
            f"--warmup_runs={warmup_runs}", f"--result_json={result_json.resolve()}"]
    try:
        proc = subprocess.run([python, str(tool), *args], capture_output=True, text=True, timeout=timeout,
                              check=False, cwd=model.resolve().parent)
    except subprocess.TimeoutExpired as exc:
        raise ReportError(f"{tool.name} did not finish within {timeout:.0f} s on {model.name}; lower num_runs.") from exc
    if proc.returncode != 0 or not result_json.is_file():
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else "no output"
        raise ReportError(f"{tool.name} failed on {model.name} (exit {proc.returncode}): {last}")
    try:
        raw = json.loads(result_json.read_text(encoding="utf-8"))
        lat = raw["latency"]
        throughput = float(raw.get("throughput_mb_s") or 0.0)
        # throughput carries 2 decimals: >= 0.25 MB/s keeps the recomputed mean within 2 %
        precise = _input_bytes(model) / 2**20 / throughput * 1000 if throughput >= 0.25 else None
        return ToolRun(
            median_ms=float(lat["median_ms"]), mean_ms=float(lat["avg_ms"]), mean_ms_precise=precise,
            p5_ms=float(lat["p5_ms"]), p95_ms=float(lat["p95_ms"]), num_runs=int(lat["num_runs"]),
            num_threads=int(raw["num_threads"]), fully_accelerated=bool(raw["fully_accelerated"]),
            accelerators=tuple(raw.get("accelerators", ())),
            command=f"python {tool.name} " + " ".join(a if not a.startswith(("--model", "--result_json")) else
                                                      a.split("=")[0] + "=" + Path(a.split("=", 1)[1]).name for a in args),
            raw=raw,
        )
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise ReportError(f"{tool.name} wrote a result file this helper cannot read ({exc!r}); check the tool's version.") from exc


def agreement(ours_ms: float, tool_ms: float, tolerance: float = 0.10, resolution_ms: float = TOOL_RESOLUTION_MS) -> str:
    """Compare our median with the tool's (rounded to ``resolution_ms``): "agree", "agree within the
    tool's rounding" or "differ". The tool's printed value stands for any true value within half a
    rounding step, so that half-step widens the band."""
    if ours_ms <= 0 or tool_ms < 0:
        raise ReportError(f"latencies must be positive, got ours={ours_ms}, tool={tool_ms}.")
    gap = abs(ours_ms - tool_ms)
    if tool_ms > 0 and gap <= tolerance * tool_ms:
        return "agree"
    if gap <= tolerance * ours_ms + resolution_ms / 2:
        return "agree within the tool's rounding"
    return "differ"


def cross_check_table(rows: Sequence[Mapping[str, Any]], tolerance: float = 0.10) -> pd.DataFrame:
    """One row per thread count: our median vs the tool's, ratio and verdict.

    Each input row: ``threads``, ``ours_ms`` (our median), ``tool`` (:class:`ToolRun`) and optionally
    ``compiled_ms`` (an in-process median of ``CompiledModel.run_by_name``, the call the tool times).
    """
    out = []
    for r in rows:
        tool: ToolRun = r["tool"]
        row = {
            "threads": int(r["threads"]),
            "ours: Interpreter.invoke median (ms)": r["ours_ms"],
            "tool: CompiledModel.run median (ms)": tool.median_ms,
            "tool mean (ms, from throughput)": tool.mean_ms_precise,
            "ratio tool/ours": tool.median_ms / r["ours_ms"],
            "verdict (±{:.0%})".format(tolerance): agreement(r["ours_ms"], tool.median_ms, tolerance),
        }
        if "compiled_ms" in r:
            row["in-process CompiledModel median (ms)"] = r["compiled_ms"]
        out.append(row)
    return pd.DataFrame(out).set_index("threads")


def median_tool_run(runs: Sequence[ToolRun]) -> ToolRun:
    """Of several tool runs, the one with the median ``median_ms`` (the lower middle for an even count)."""
    if not runs:
        raise ReportError("No tool runs to summarise.")
    ordered = sorted(runs, key=lambda r: r.median_ms)
    return ordered[(len(ordered) - 1) // 2]


def explain_cross_check(table: pd.DataFrame, tolerance: float = 0.10) -> list[str]:
    """One sentence per thread count, chosen by the numbers in :func:`cross_check_table`'s output:
    agreement, or where the gap comes from. The in-process ``CompiledModel`` timing decides: if it
    sides with the tool, the two APIs differ; if it sides with the harness, the API is not the cause
    and the tool's separate run (another process, another moment, random input) is; if with neither,
    it is noise."""
    verdict_col = next(c for c in table.columns if c.startswith("verdict"))
    inproc = "in-process CompiledModel median (ms)"
    ours_col, tool_col = "ours: Interpreter.invoke median (ms)", "tool: CompiledModel.run median (ms)"
    lines = []
    for threads, row in table.iterrows():
        ours, tool = row[ours_col], row[tool_col]
        head = f"{threads} thread(s): ours {ours:.4f} ms, tool {tool:.2f} ms (printed to 0.01 ms)"
        if row[verdict_col] != "differ":
            lines.append(f"{head}: {row[verdict_col]}.")
            continue
        compiled = row.get(inproc, math.nan)
        if pd.isna(compiled):
            why = "time CompiledModel.run_by_name in-process (benchmark_compiled_model) to see whether the API or noise explains it"
        elif agreement(compiled, tool, tolerance) != "differ":
            why = (f"the same CompiledModel call timed in this process gives {compiled:.4f} ms, close to the tool, so the gap "
                   "is between the two APIs: the tool times CompiledModel.run_by_name (input/output TensorBuffer maps, "
                   "its own CPU accelerator set-up), the harness times Interpreter.invoke alone on a pre-set input")
            if threads > 1 and 1 in table.index and not pd.isna(table.at[1, inproc]):
                c1, o1 = table.at[1, inproc], table.at[1, ours_col]
                why += (f"; from 1 to {threads} threads the Interpreter goes from {o1:.4f} to {ours:.4f} ms and "
                        f"CompiledModel from {c1:.4f} to {compiled:.4f} ms")
                if ours < o1 * (1 - tolerance) and compiled >= c1 * (1 - tolerance):
                    why += ", so the extra threads pay off only in the Interpreter path here"
        elif abs(compiled - ours) <= tolerance * ours:
            why = (f"the same CompiledModel call timed in this process gives {compiled:.4f} ms, close to ours, so the API is "
                   "not the cause: the tool's own run (a separate, freshly started process, timed at another moment on a "
                   "shared machine, on random input) came out slower or faster; its mean and p95 in data/results/ show "
                   "how noisy that moment was")
        else:
            why = (f"the same CompiledModel call timed in this process gives {compiled:.4f} ms, which matches neither closely: "
                   "the spread is run-to-run noise on a loaded machine; rerun on an idle machine")
        lines.append(f"{head}: differ; {why}.")
    return lines


def benchmark_compiled_model(model: Path, num_threads: int = 1, runs: int = 500, warmup: int = 50) -> float:
    """Median ms of ``CompiledModel.run_by_name`` on CPU with ``num_threads``, in this process: the
    call the wheel's tool times, measured without its 2-decimal rounding (random input, as the tool)."""
    import time

    from helpers.litert_runner import compiled_model, compiled_runner

    model = Path(model)
    if not model.is_file():
        raise ReportError(f"No model file {model.name!r} to benchmark.")
    with compiled_model(model, "cpu", num_threads) as compiled:
        run = compiled_runner(compiled, np.random.default_rng(0))
        for _ in range(warmup):
            run()
        times = np.empty(runs)
        for i in range(runs):
            t0 = time.perf_counter_ns()
            run()
            times[i] = time.perf_counter_ns() - t0
        del run
    return float(np.median(times) / 1e6)

