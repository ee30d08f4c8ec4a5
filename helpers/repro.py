"""Reproducibility: one explicit seed for Python, NumPy and TensorFlow."""

from __future__ import annotations

from helpers.keras_setup import keras, tf


def set_seed(seed: int, deterministic_ops: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow, and (by default) turn on deterministic TF ops.

    Call once in a notebook's Setup; running the notebook twice then gives the same accuracies.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    keras().utils.set_random_seed(seed)  # python `random`, numpy and tf in one call
    if deterministic_ops:
        tf().config.experimental.enable_op_determinism()
