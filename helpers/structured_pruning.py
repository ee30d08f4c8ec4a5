"""Bookkeeping for structured (channel) pruning, notebook 04b: how much work each layer does, a
zeroed-filter copy to check a narrowed model against, the magnitude-pruned variants that fit an
accuracy budget, and the mobile-style net the notebook prunes.

The lesson itself (ranking filters by L1 norm, building the narrower model, copying the kept
weights, fine-tuning, converting) is written in the notebook's cells.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from helpers.keras_setup import keras

# The layers whose work a channel cut removes.
_COUNTED = ("Conv2D", "DepthwiseConv2D", "Dense")


def layer_work(model: Any) -> pd.DataFrame:
    """Parameters and multiply-accumulates (MACs) per ``Conv2D``, ``DepthwiseConv2D`` and ``Dense``
    layer of a built Keras model, for one input image; nested models are walked.

    One row per layer (index ``layer``): ``type``, ``params``, ``macs``, and a ``total`` row. A
    convolution's MACs are its kernel size times its output's spatial positions (a depthwise kernel
    has one input channel per output channel); a dense layer's are its kernel size.
    """
    if not getattr(model, "built", False):
        raise ValueError("the model is not built: call it on an input (or give it an Input layer) first.")
    rows = []
    for layer in _walk(model):
        kind = type(layer).__name__
        if kind not in _COUNTED or not layer.weights:
            continue
        kernel = layer.weights[0].shape
        params = int(sum(int(np.prod(w.shape)) for w in layer.weights))
        if kind == "Dense":
            macs = int(np.prod(kernel))
        else:
            out = layer.output_shape
            spatial = int(np.prod(out[1:-1]))
            macs = int(np.prod(kernel)) * spatial
        rows.append({"layer": layer.name, "type": kind, "params": params, "macs": macs})
    if not rows:
        raise ValueError("the model has no Conv2D, DepthwiseConv2D or Dense layer to count.")
    frame = pd.DataFrame(rows).set_index("layer")
    frame.loc["total"] = ["", frame["params"].sum(), frame["macs"].sum()]
    return frame.astype({"params": int, "macs": int})


def _walk(model: Any):
    for layer in getattr(model, "layers", []):
        if getattr(layer, "layers", None):
            yield from _walk(layer)
        else:
            yield layer


def zeroed_copy(model: Any, keep: Mapping[str, Sequence[int]]) -> Any:
    """A copy of ``model`` (same architecture and weights) in which, for every ``layer name ->
    kept output channels`` in ``keep``, all *other* output channels have a zero kernel and bias.

    A narrowed model that drops those channels must compute what this copy computes: a check that
    the weights were copied into the narrow model correctly.
    """
    k = keras()
    clone = k.models.clone_model(model)
    clone.set_weights(model.get_weights())
    names = {layer.name for layer in _walk(clone)}
    unknown = sorted(set(keep) - names)
    if unknown:
        raise ValueError(f"no layer named {unknown} in {model.name!r}; layers: {sorted(names)}.")
    for layer in _walk(clone):
        if layer.name not in keep:
            continue
        weights = layer.get_weights()
        width = weights[0].shape[-1]
        kept = np.asarray(keep[layer.name], dtype=int)
        if kept.size == 0 or kept.min() < 0 or kept.max() >= width or len(set(kept.tolist())) != kept.size:
            raise ValueError(f"{layer.name}: kept channels must be distinct indices in [0, {width}), got {kept.tolist()}.")
        dropped = np.setdiff1d(np.arange(width), kept)
        for w in weights:  # the kernel's last axis and the bias are output channels
            w[..., dropped] = 0.0
        layer.set_weights(weights)
    return clone


def within_budget(
    frame: pd.DataFrame,
    reference_accuracy: float,
    budget_points: float,
    include: Sequence[str] = ("pruned_*",),
    exclude: Sequence[str] = ("*mobile*",),
) -> pd.DataFrame:
    """The rows of a manifest table (:func:`helpers.registry.variants_frame`) whose name matches one
    of ``include`` and none of ``exclude`` (shell patterns), and whose accuracy is at most
    ``budget_points`` percentage points below ``reference_accuracy``; smallest gzipped first."""
    if not 0.0 <= reference_accuracy <= 1.0:
        raise ValueError(f"reference_accuracy must be in [0, 1], got {reference_accuracy}.")
    if not budget_points >= 0:
        raise ValueError(f"budget_points must be >= 0 (points of accuracy), got {budget_points}.")
    names = [n for n in frame.index
             if any(fnmatch.fnmatch(n, p) for p in include) and not any(fnmatch.fnmatch(n, p) for p in exclude)]
    picked = frame.loc[names]
    picked = picked[picked["accuracy"] >= reference_accuracy - budget_points / 100 - 1e-9]
    return picked.sort_values("gzip_bytes")


def build_inverted_residual_net(
    input_shape: tuple[int, ...],
    num_classes: int,
    expansions: Sequence[int] = (96, 96, 144, 144, 192),
    outputs: Sequence[int] = (16, 24, 24, 32, 32),
    strides: Sequence[int] = (1, 2, 1, 2, 1),
    resolution: int | None = None,
    stem: int = 16,
) -> Any:
    """A small MobileNetV2-style classifier: a 3x3 stem, then one inverted-residual block per entry
    of ``expansions`` (1x1 expand -> BN -> ReLU6 -> 3x3 depthwise -> BN -> ReLU6 -> 1x1 project ->
    BN, plus the input when the shapes match), global average pooling and a ``logits`` layer.

    ``expansions`` sets each block's inner width, the channels structured pruning removes; the
    blocks' ``outputs`` stay as they are, so the residual additions never change. The layers do not
    depend on the input size: ``resolution`` (default: the input's own) resizes inside the graph,
    so the same weights fit a model built for a larger input. Layer names are ``block<i>_expand``,
    ``block<i>_expand_bn``, ``block<i>_depthwise``, ``block<i>_depthwise_bn``, ``block<i>_project``.
    """
    if not (len(expansions) == len(outputs) == len(strides)) or not expansions:
        raise ValueError(f"expansions, outputs and strides need one entry per block, got "
                         f"{len(expansions)}, {len(outputs)}, {len(strides)}.")
    if min(expansions) < 1 or min(outputs) < 1:
        raise ValueError(f"every block needs at least one channel, got expansions {list(expansions)}.")
    k = keras()
    layers = k.layers
    inputs = k.Input(shape=input_shape, name="image")
    x = inputs
    if resolution is not None and resolution != input_shape[0]:
        x = layers.Resizing(resolution, resolution, name="resize")(x)
    x = layers.Conv2D(stem, 3, padding="same", use_bias=False, name="stem")(x)
    x = layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    for i, (expand, out, stride) in enumerate(zip(expansions, outputs, strides)):
        y = layers.Conv2D(int(expand), 1, use_bias=False, name=f"block{i}_expand")(x)
        y = layers.BatchNormalization(momentum=0.9, name=f"block{i}_expand_bn")(y)
        y = layers.ReLU(6.0, name=f"block{i}_expand_relu")(y)
        y = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"block{i}_depthwise")(y)
        y = layers.BatchNormalization(momentum=0.9, name=f"block{i}_depthwise_bn")(y)
        y = layers.ReLU(6.0, name=f"block{i}_depthwise_relu")(y)
        y = layers.Conv2D(int(out), 1, use_bias=False, name=f"block{i}_project")(y)
        y = layers.BatchNormalization(momentum=0.9, name=f"block{i}_project_bn")(y)
        if stride == 1 and x.shape[-1] == out:
            y = layers.Add(name=f"block{i}_add")([x, y])
        x = y
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return k.Model(inputs, layers.Dense(num_classes, name="logits")(x), name="inverted_residual_net")


def ensure_magnitude_pruned(models: Any, dataset: Any, baseline: Any, seed: int = 0) -> list[str]:
    """Make sure the manifest holds notebook 04's 80 % magnitude-pruned float model
    (``pruned_80_fp32``), the comparison point of notebook 04b; rebuild it with 04's recipe
    (``PolynomialDecay`` 0 -> 80 % over two thirds of 3 epochs, Adam 5e-4, batches of 64 from one
    seeded pipeline) when it is missing. Returns the names it had to build (empty when 04 ran).
    """
    from pathlib import Path

    import tensorflow_model_optimization as tfmot

    from helpers import accounting, registry
    from helpers.keras_setup import quiet_native_stderr, tf
    from helpers.models import compile_classifier
    from helpers.training import EpochLine, budget, steps_per_epoch

    manifest = registry.manifest_path(Path(models))
    present = {v["name"] for v in registry.load_manifest(manifest)["variants"]} if manifest.exists() else set()
    if "pruned_80_fp32" in present and (Path(models) / "pruned_80_fp32.tflite").exists():
        return []
    print("pruned_80_fp32 is not registered: pruning the baseline to 80 % as notebook 04 does ...")
    k, t = keras(), tf()
    recipe = budget({"epochs": 3, "batch_size": 64}, len(dataset.y_train), full_pass=True)  # notebook 04's FINETUNE
    epochs, per_epoch = recipe["epochs"], steps_per_epoch(recipe, len(dataset.y_train))
    data = (t.data.Dataset.from_tensor_slices((dataset.x_train, dataset.y_train))
            .shuffle(len(dataset.x_train), seed=seed).batch(64))
    steps = per_epoch * epochs
    copy = k.models.clone_model(baseline)
    copy.set_weights(baseline.get_weights())
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, 0.80, begin_step=0, end_step=int(steps * 2 / 3), frequency=4)
    wrapped = compile_classifier(tfmot.sparsity.keras.prune_low_magnitude(copy, pruning_schedule=schedule), 5e-4)
    wrapped.fit(data, epochs=epochs, steps_per_epoch=recipe.get("steps_per_epoch"), verbose=0,
                callbacks=[tfmot.sparsity.keras.UpdatePruningStep(), EpochLine(epochs, every=epochs)])
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    with quiet_native_stderr():
        content = t.lite.TFLiteConverter.from_keras_model(stripped).convert()
    path = registry.save_tflite(content, Path(models), "pruned_80_fp32")
    registry.register_tflite(Path(models), path, "pruned_80_fp32", "pruning", dataset,
                             params=accounting.count_params(baseline), sparsity=accounting.tflite_sparsity(path))
    return ["pruned_80_fp32"]
