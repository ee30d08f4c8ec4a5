"""Tests for helpers.benchmark_tool: the wheel's benchmark tool, the cross-check table and its explanations."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest

import helpers  # noqa: F401
from helpers import benchmark_tool
from helpers.results_table import ReportError


# ---- cross-check with the wheel's benchmark tool -------------------------------------------------


def test_benchmark_tool_runs_on_a_real_model(tflite_files, tmp_path):
    run = benchmark_tool.run_benchmark_tool(tflite_files["fp32"], tmp_path / "r.json", num_threads=1, num_runs=50, warmup_runs=5)
    assert run.num_threads == 1 and run.num_runs == 50 and "CPU" in run.accelerators
    assert run.median_ms >= 0 and run.p95_ms >= run.p5_ms
    assert str(tmp_path) not in run.command, "the command shown in outputs carries file names only"
    assert run.raw["model"] == tflite_files["fp32"].name, "the tool's JSON carries no absolute path"


def test_benchmark_tool_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ReportError, match="No model file"):
        benchmark_tool.run_benchmark_tool(tmp_path / "absent.tflite", tmp_path / "r.json")


def test_benchmark_tool_failure_is_a_clear_error(tflite_files, tmp_path):
    fake = tmp_path / "fake_tool.py"
    fake.write_text("import sys\nprint('boom: unsupported flag', file=sys.stderr)\nsys.exit(3)\n")
    with pytest.raises(ReportError, match=r"exit 3\): boom: unsupported flag"):
        benchmark_tool.run_benchmark_tool(tflite_files["fp32"], tmp_path / "r.json", tool=fake)


def test_benchmark_tool_unreadable_result_is_a_clear_error(tflite_files, tmp_path):
    fake = tmp_path / "fake_tool.py"
    fake.write_text(
        "import sys\nout=[a.split('=',1)[1] for a in sys.argv if a.startswith('--result_json=')][0]\n"
        "open(out,'w').write('{\"latency\": {}}')\n"
    )
    with pytest.raises(ReportError, match="cannot read"):
        benchmark_tool.run_benchmark_tool(tflite_files["fp32"], tmp_path / "r.json", tool=fake)


@pytest.mark.parametrize(
    "ours, tool, expected",
    [(0.050, 0.05, "agree"), (0.044, 0.05, "agree within the tool's rounding"), (0.030, 0.05, "differ")],
)
def test_agreement(ours, tool, expected):
    assert benchmark_tool.agreement(ours, tool) == expected


def _tool(median):
    return benchmark_tool.ToolRun(median, median, None, median, median, 100, 1, True, ("CPU",), "python tool")


def test_cross_check_explanations_follow_the_numbers():
    table = benchmark_tool.cross_check_table([
        {"threads": 1, "ours_ms": 0.050, "tool": _tool(0.05), "compiled_ms": 0.049},
        {"threads": 2, "ours_ms": 0.030, "tool": _tool(0.06), "compiled_ms": 0.058},
    ])
    lines = benchmark_tool.explain_cross_check(table)
    assert lines[0].endswith(": agree.")
    assert "differ" in lines[1] and "between the two APIs" in lines[1] and "Interpreter path" in lines[1]
    noisy = benchmark_tool.cross_check_table([{"threads": 1, "ours_ms": 0.030, "tool": _tool(0.06), "compiled_ms": 0.09}])
    assert "noise" in benchmark_tool.explain_cross_check(noisy)[0]
    tool_run = benchmark_tool.cross_check_table([{"threads": 1, "ours_ms": 0.047, "tool": _tool(0.06), "compiled_ms": 0.048}])
    assert "API is not the cause" in benchmark_tool.explain_cross_check(tool_run)[0]
    bare = benchmark_tool.cross_check_table([{"threads": 1, "ours_ms": 0.030, "tool": _tool(0.06)}])
    assert "benchmark_compiled_model" in benchmark_tool.explain_cross_check(bare)[0]


def test_median_tool_run():
    runs = [_tool(0.07), _tool(0.05), _tool(0.06)]
    assert benchmark_tool.median_tool_run(runs).median_ms == 0.06
    with pytest.raises(ReportError):
        benchmark_tool.median_tool_run([])


def test_compiled_model_benchmark_times_the_model_it_is_given(tflite_files, tmp_path, digits):
    from helpers.keras_setup import keras, tf

    k = keras()
    heavy = k.Sequential([k.layers.InputLayer(input_shape=digits.input_shape), k.layers.Flatten(),
                          *[k.layers.Dense(1024, activation="relu") for _ in range(3)], k.layers.Dense(10)])
    heavy_path = tmp_path / "heavy.tflite"
    heavy_path.write_bytes(tf().lite.TFLiteConverter.from_keras_model(heavy).convert())
    tiny_ms = benchmark_tool.benchmark_compiled_model(tflite_files["fp32"], num_threads=1, runs=50, warmup=5)
    heavy_ms = benchmark_tool.benchmark_compiled_model(heavy_path, num_threads=1, runs=50, warmup=5)
    assert heavy_ms > 3 * tiny_ms, "about 1000x the arithmetic must show in the median"
    with pytest.raises(ReportError, match="No model file"):
        benchmark_tool.benchmark_compiled_model(tmp_path / "absent.tflite")
