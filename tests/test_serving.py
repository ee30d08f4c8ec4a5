"""Hot-swap serving's per-request timing, and the selection plots' readability (log axis, labels)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers.selection import KB, Constraints, pareto_front, select_variant
from helpers.serving import HotSwapServer


def test_every_request_logs_its_invoke_time_inside_its_whole_time(tflite_files, digits):
    server = HotSwapServer("int8", tflite_files["int8"], threads=1)
    for i in range(30):
        served = server.serve(digits.x_test[i])
        assert served.invoke_ms > 0 and served.latency_ms >= served.invoke_ms
        assert math.isclose(served.overhead_ms, served.latency_ms - served.invoke_ms)
    predictions = [s.prediction for s in server.log]
    assert np.mean(np.array(predictions) == digits.y_test[:30]) > 0.7  # int8 input quantized correctly


def test_a_swapped_in_model_is_warmed_up_and_answers(tflite_files, digits):
    server = HotSwapServer("fp32", tflite_files["fp32"], threads=1)
    server.swap_to("int8", tflite_files["int8"], 1)
    server.finish()
    served = server.serve(digits.x_test[0])
    assert served.variant == "int8" and server.swaps[0].load_ms > 0 and not math.isnan(served.invoke_ms)


def _variant(name, acc, ms, kb):
    return {"name": name, "technique": "test", "path": f"{name}.tflite", "size_bytes": int(kb * KB),
            "gzip_bytes": int(kb * KB), "params": 1, "sparsity": 0.0, "accuracy": acc, "latency_ms": {"1": ms},
            "input": {"shape": [1, 8, 8, 1], "dtype": "float32", "scale": 0.0, "zero_point": 0},
            "sha256": "0" * 64, "peak_memory_bytes": 1}


VARIANTS = [
    _variant("baseline_fp32", 0.99, 0.05, 600), _variant("ptq_int8", 0.985, 0.01, 160),
    _variant("student_scratch_fp32", 0.97, 0.003, 20), _variant("pruned_50_fp32", 0.98, 0.06, 600),
    _variant("mobile_fp32", 0.95, 2.0, 9000), _variant("mystery", 0.5, 0.5, 10),
]


def test_family_names_each_technique_and_falls_back_to_other():
    from helpers.selection_report import family

    assert family("ptq_int8") == family("lq_static_int8") == "post-training quantization"
    assert family("pruned_mobile_xnnpack_sparse_fp32") == family("mobile_fp32") == "mobile-scale"
    assert family("pruned_80_int8") == "pruning" and family("cqat_16_int8") == "clustering"
    assert family("qat_int8") == "quantization-aware training" and family("student_distilled_int8") == "distillation"
    assert family("mystery") == "other" and family("ptqx") == "other"


def test_pareto_plot_uses_a_log_axis_and_labels_only_the_front():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from helpers.selection_report import pareto_plot

    c = Constraints(max_size_bytes=200 * KB)
    ax = pareto_plot(VARIANTS, c, select_variant(VARIANTS, c))
    assert ax.get_xscale() == "log"
    front = pareto_front(VARIANTS, threads=1)
    numbers = [t.get_text() for t in ax.texts if t.get_text().isdigit()]
    assert numbers == [str(k) for k in range(1, len(front) + 1)]  # one number per Pareto-optimal variant
    key = next(t.get_text() for t in ax.texts if t.get_text().startswith("Pareto front"))
    assert all(name in key for name in front) and "pruned_50_fp32" not in key  # dominated: not labelled
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "chosen: ptq_int8" in legend and "post-training quantization" in legend and "other" in legend
    plt.close("all")


def test_batch_requests_are_answered_by_a_model_resized_once(tflite_files, digits):
    from helpers.litert_runner import LiteRTModel

    server = HotSwapServer("fp32", tflite_files["fp32"], threads=1, batch=16)
    x = digits.x_test[:32]
    first, second = server.serve(x[:16]), server.serve(x[16:])
    expected = LiteRTModel(tflite_files["fp32"]).predict(x).argmax(-1)
    assert list(first.predictions + second.predictions) == expected.tolist()
    assert first.prediction == expected[0] and 0 < first.invoke_ms <= first.latency_ms
    server.swap_to("int8", tflite_files["int8"], threads=1)
    server.finish()
    swapped = server.serve(x[:16])
    assert swapped.variant == "int8" and len(swapped.predictions) == 16
    with pytest.raises(ValueError, match="requests of 16"):
        server.serve(x[:8])
    with pytest.raises(ValueError, match="batch"):
        HotSwapServer("fp32", tflite_files["fp32"], threads=1, batch=0)
