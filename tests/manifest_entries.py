"""Small manifest documents for the dashboard's tests (results table, Pareto front, claims, report)."""

from __future__ import annotations

import pandas as pd


def entry(name, technique, size, acc, lat1, lat2=None, gzip=None, params=1000, **extra):
    return {
        "name": name, "technique": technique, "path": f"{name}.tflite", "size_bytes": int(size),
        "gzip_bytes": int(gzip if gzip is not None else size), "params": params, "sparsity": 0.0,
        "accuracy": acc, "latency_ms": {"1": lat1, "2": lat2 if lat2 is not None else lat1},
        "input": {"shape": [1, 8, 8, 1], "dtype": "float32", "scale": 0.0, "zero_point": 0},
        "sha256": "0" * 64, **extra,
    }


def manifest(*entries):
    return {"dataset": "digits", "variants": list(entries), "schema_version": 1}


def frame(rows):
    """A table with the three default objectives, indexed by name: rows = {name: (acc, size, lat)}."""
    return pd.DataFrame(
        [{"name": n, "accuracy": a, "size_kb": s, "latency_ms@1": l} for n, (a, s, l) in rows.items()]
    ).set_index("name")


def claims_doc():
    """A baseline and variants that test several published claims (one of another architecture)."""
    return manifest(
        entry("baseline_fp32", "baseline", 4000, 0.98, 0.040, gzip=3600, params=1000),
        entry("ptq_int8", "ptq_int8", 1000, 0.978, 0.036, gzip=900, params=1000),
        entry("ptq_int8_mobile", "ptq_int8", 500, 0.90, 0.010, params=50000),  # other architecture
        entry("pruned_80", "pruning", 4000, 0.975, 0.040, gzip=1100, params=1000),
        entry("pruned_95", "pruning", 4000, 0.90, 0.040, gzip=500, params=1000),  # smaller but 8 pp worse
        entry("pruned_50", "pruning", 4000, 0.98, 0.040, gzip=2000, params=1000),
        entry("student_scratch", "student", 800, 0.960, 0.01, params=100),
        entry("student_distilled", "distillation", 800, 0.9644, 0.01, params=100),
    )
