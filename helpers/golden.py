"""Golden outputs: a fixed set of inputs and each variant's outputs on them, stored next to the
manifest when the variant is registered, so a device can check it runs the variant correctly.

``<models>/golden/inputs.npy`` holds the inputs (fixed by the first registration in the folder) and
``<models>/golden/<name>.npy`` each variant's float outputs on them. On the device,
:func:`golden_agreement` runs the variant again and reports top-1 agreement and the largest
absolute difference: a damaged file or a broken accelerator shows up there. No TensorFlow.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from helpers.paths import atomic_write_bytes

GOLDEN_DIR = "golden"
GOLDEN_INPUTS = 32  # how many test inputs registration stores


def record_golden(models: Path, name: str, tflite: Path, inputs: np.ndarray) -> Path:
    """Store ``inputs`` (once per models folder) and ``name``'s float outputs on them.

    The inputs are shared by every variant of the folder (the first call fixes them), so on the
    device each variant is checked against its own outputs from the machine that built it.
    """
    from helpers.litert_runner import LiteRTModel

    folder = Path(models) / GOLDEN_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stored = folder / "inputs.npy"
    if not stored.exists():
        atomic_write_bytes(stored, _npy_bytes(np.asarray(inputs, dtype=np.float32)))
    fixed = np.load(stored)
    outputs = LiteRTModel(Path(tflite)).predict(fixed)
    return atomic_write_bytes(folder / f"{name}.npy", _npy_bytes(outputs.astype(np.float32)))


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def golden_agreement(models: Path, name: str, tflite: Path) -> dict[str, Any] | None:
    """Top-1 agreement and max abs difference of ``tflite`` against ``name``'s golden outputs, or
    ``None`` when no golden outputs were recorded for it."""
    from helpers.litert_runner import LiteRTModel

    folder = Path(models) / GOLDEN_DIR
    if not (folder / "inputs.npy").exists() or not (folder / f"{name}.npy").exists():
        return None
    inputs, expected = np.load(folder / "inputs.npy"), np.load(folder / f"{name}.npy")
    got = LiteRTModel(Path(tflite)).predict(inputs)
    if got.shape != expected.shape:
        return {"n": int(len(inputs)), "top1_agreement": 0.0, "max_abs_diff": None,
                "error": f"output shape {got.shape} differs from the golden {expected.shape}"}
    return {"n": int(len(inputs)),
            "top1_agreement": round(float(np.mean(got.argmax(-1) == expected.argmax(-1))), 6),
            "max_abs_diff": float(np.max(np.abs(got - expected)))}
