"""Shared fixtures: small real models converted to real ``.tflite`` files (fp32 and int8)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

import helpers  # noqa: F401  (legacy Keras before TensorFlow)

# hypothesis keeps no example database and no cache in the checkout
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "workbook-hypothesis"))
settings.register_profile("workbook", database=None)
settings.load_profile("workbook")

from helpers import data
from helpers.keras_setup import keras, tf
from helpers.repro import set_seed


@pytest.fixture(scope="session")
def digits() -> data.Dataset:
    return data.load_digits(seed=0)


@pytest.fixture(scope="session")
def tiny_keras(digits):
    """A small dense classifier trained for a few epochs on digits (about 90 % accurate)."""
    set_seed(0)
    k = keras()
    model = k.Sequential(
        [k.layers.InputLayer(input_shape=digits.input_shape), k.layers.Flatten(), k.layers.Dense(32, activation="relu"), k.layers.Dense(10)]
    )
    model.compile("adam", k.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
    model.fit(digits.x_train, digits.y_train, epochs=5, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="session")
def tflite_files(tmp_path_factory, tiny_keras, digits) -> dict[str, Path]:
    """``{"fp32": path, "int8": path}``: the tiny model converted without and with full-int8 PTQ."""
    out = tmp_path_factory.mktemp("tflite")
    converter = tf().lite.TFLiteConverter.from_keras_model(tiny_keras)
    fp32 = out / "fp32.tflite"
    fp32.write_bytes(converter.convert())

    converter = tf().lite.TFLiteConverter.from_keras_model(tiny_keras)
    converter.optimizations = [tf().lite.Optimize.DEFAULT]
    converter.representative_dataset = data.representative_batches(digits.x_train, 100, seed=0)
    converter.target_spec.supported_ops = [tf().lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf().int8
    converter.inference_output_type = tf().int8
    int8 = out / "int8.tflite"
    int8.write_bytes(converter.convert())
    return {"fp32": fp32, "int8": int8}


@pytest.fixture(scope="session")
def big_tflite(tmp_path_factory) -> tuple[Path, int]:
    """A float32 dense model with ~2.2 M parameters (~8.9 MB of weights) on 8x8 inputs, and its
    parameter count: a known, much larger amount of work and memory than ``tflite_files``."""
    set_seed(0)
    k = keras()
    big = k.Sequential([k.layers.InputLayer(input_shape=(8, 8, 1)), k.layers.Flatten(), k.layers.Dense(2048),
                        k.layers.Dense(1024), k.layers.Dense(10)])
    path = tmp_path_factory.mktemp("big") / "big.tflite"
    path.write_bytes(tf().lite.TFLiteConverter.from_keras_model(big).convert())
    return path, big.count_params()


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
