"""Every registered variant in one table (the dashboard's first view), read from a validated manifest."""

from __future__ import annotations

import math
from typing import Any, Mapping

import pandas as pd


class ReportError(ValueError):
    """Input the dashboard cannot work with: an empty manifest, a missing column, a failed tool run."""


BASELINE = "baseline_fp32"
TABLE_COLUMNS = ["technique", "size_kb", "gzip_kb", "params", "sparsity", "accuracy", "latency_ms@1", "latency_ms@2"]


def variants_table(doc: Mapping[str, Any]) -> pd.DataFrame:
    """Every variant of a validated manifest in one table, indexed by name.

    Columns: technique, size and gzipped size in KB, params, sparsity, accuracy, median latency (ms)
    at 1 and 2 threads (NaN where a variant was not measured at that count) and ``peak_memory_mb``
    when at least one entry carries ``peak_memory_bytes``. Raises :class:`ReportError` for a manifest
    without variants.
    """
    from helpers.registry import validate_manifest

    validate_manifest(doc)
    if not doc["variants"]:
        raise ReportError("The manifest lists no variants; run notebook 01 (or `make run`) to register baseline_fp32.")
    rows = []
    for v in doc["variants"]:
        row: dict[str, Any] = {
            "name": v["name"],
            "technique": v["technique"],
            "size_kb": v["size_bytes"] / 1024,
            "gzip_kb": v["gzip_bytes"] / 1024,
            "params": v["params"],
            "sparsity": v["sparsity"],
            "accuracy": float(v["accuracy"]),
        }
        for threads in ("1", "2"):
            row[f"latency_ms@{threads}"] = float(v["latency_ms"].get(threads, math.nan))
        if "peak_memory_bytes" in v:
            row["peak_memory_mb"] = float(v["peak_memory_bytes"]) / 2**20
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("name")
    frame["params"] = frame["params"].astype("Int64")
    frame["sparsity"] = frame["sparsity"].astype(float)
    columns = TABLE_COLUMNS + (["peak_memory_mb"] if "peak_memory_mb" in frame else [])
    return frame[columns]

