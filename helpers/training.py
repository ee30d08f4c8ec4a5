"""Training with compact progress, strategy-aware so the same code scales past one device."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

from helpers.findings import to_console
from helpers.keras_setup import keras, tf


def make_strategy() -> Any:
    """``MirroredStrategy`` over all GPUs when there are several, else the default strategy.

    Build and compile the model inside ``with strategy.scope():``; :func:`fit` scales the batch.
    """
    gpus = tf().config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf().distribute.MirroredStrategy()
    return tf().distribute.get_strategy()


CONSOLE_PROGRESS_ENV = "WORKBOOK_CONSOLE_PROGRESS"


class EpochLine(keras().callbacks.Callback):
    """Prints one short line every ``every`` epochs (and the last), never per-batch logs.

    With ``$WORKBOOK_CONSOLE_PROGRESS=1`` inside a notebook kernel (``helpers.run_notebooks`` sets
    it), every epoch's line also goes to the kernel's own stdout (the console that started a headless
    run), so a long training cell shows its epochs there, not only in the saved notebook.
    ``show=False`` keeps the notebook output empty and prints to that console only.
    """

    def __init__(self, epochs: int, every: int = 1, show: bool = True, label: str = "") -> None:
        super().__init__()
        self.epochs, self.every, self.show, self.label = epochs, max(1, every), show, label
        self._start = 0.0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        n = epoch + 1
        shown = "  ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items() if k != "lr")
        line = f"{self.label}epoch {n:>3}/{self.epochs}  {shown}  ({time.perf_counter() - self._start:.0f} s)"
        if self.show and (n % self.every == 0 or n == self.epochs):
            print(line)
        if os.environ.get(CONSOLE_PROGRESS_ENV) == "1":
            to_console(f"    {line}\n")


# Training images in the default dataset's split (digits: 1,077). Recipes are written for it.
REFERENCE_TRAIN_IMAGES = 1077


def scaled_epochs(epochs: int, batch_size: int, train_images: int,
                  reference_images: int = REFERENCE_TRAIN_IMAGES) -> int:
    """Epochs that give about the optimizer steps ``epochs`` give on the default dataset.

    A recipe's budget is ``epochs x ceil(reference_images / batch_size)`` steps; a larger training
    set reaches it in fewer epochs (never fewer than 1, never more than ``epochs``). On the default
    dataset, or anything no larger, the recipe is unchanged: 30 epochs on digits stay 30; on 54,000
    images they become 1.
    """
    if epochs < 1 or batch_size < 1 or train_images < 1 or reference_images < 1:
        raise ValueError(f"epochs, batch_size and the image counts must be >= 1; got epochs={epochs}, "
                         f"batch_size={batch_size}, train_images={train_images}, reference_images={reference_images}.")
    steps = epochs * -(-reference_images // batch_size)
    per_epoch = -(-train_images // batch_size)
    return max(1, min(epochs, round(steps / per_epoch)))


def budget(recipe: dict[str, Any], train_images: int,
           reference_images: int = REFERENCE_TRAIN_IMAGES, *, full_pass: bool = False) -> dict[str, Any]:
    """A copy of ``recipe`` (``epochs``, ``batch_size``, ...) that takes about the optimizer steps it
    takes on the default dataset: ``budget(models.BASELINE_RECIPE, len(ds.y_train))``.

    The budget is ``epochs x ceil(reference_images / batch_size)`` steps. A larger training set gets
    fewer epochs (:func:`scaled_epochs`); when even one pass over it is longer than the whole budget,
    the copy says ``epochs: 1`` and adds ``steps_per_epoch`` (the budget's steps, each a batch of a
    freshly shuffled order), for ``model.fit(..., steps_per_epoch=recipe.get("steps_per_epoch"))``:
    ``None``, Keras's default, is one full pass. ``full_pass=True`` never cuts that pass short:
    such a recipe gets at least one full epoch. Use it for a network trained from its initial
    weights (on a 54,000-image 28x28 set, notebook 02b's MobileNetV2 scored 0.12 after its 170
    steps and 0.84 after one 1,688-step pass) and for pruning, which has to relearn what the zeroed
    weights held (on that set, notebook 04's 80 % pruning scored 0.34 after 51 steps and 0.9608 after
    one 844-step pass, against the baseline's 0.9599). The default dataset's recipe, or that of anything
    smaller, comes back as is.
    """
    missing = {"epochs", "batch_size"} - set(recipe)
    if missing:
        raise ValueError(f"a recipe needs epochs and batch_size; this one lacks {', '.join(sorted(missing))}.")
    epochs, batch_size, images = int(recipe["epochs"]), int(recipe["batch_size"]), int(train_images)
    scaled = scaled_epochs(epochs, batch_size, images, reference_images)
    steps = epochs * -(-reference_images // batch_size)
    copy = {k: v for k, v in recipe.items() if k != "steps_per_epoch"}
    if not full_pass and steps < -(-images // batch_size):  # one pass is more than the budget: stop part-way
        return {**copy, "epochs": 1, "steps_per_epoch": steps}
    return {**copy, "epochs": scaled}


def steps_per_epoch(recipe: dict[str, Any], train_images: int) -> int:
    """Optimizer steps in one of ``recipe``'s epochs on ``train_images`` images: its
    ``steps_per_epoch`` if :func:`budget` set one, else one full pass. For schedules that count steps
    (pruning, cosine decay)."""
    return int(recipe.get("steps_per_epoch") or -(-int(train_images) // int(recipe["batch_size"])))


def batches(x: np.ndarray, targets: Any, batch_size: int, seed: int = 0, shuffle: bool = True) -> Any:
    """``tf.data`` pipeline of ``(x, targets)`` batches, reshuffled each epoch from ``seed``.

    ``targets`` may be an array or a tuple of arrays (e.g. labels and cached teacher logits). Every
    training loop in the workbook batches through here, so two runs with one seed see the same
    batches in the same order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    data = tf().data.Dataset.from_tensor_slices((x, targets))
    if shuffle:
        data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return data.batch(batch_size)


def fit(
    model: Any,
    x_train: np.ndarray,
    y_train: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    epochs: int = 10,
    batch_size: int = 32,
    seed: int = 0,
    strategy: Any | None = None,
    every: int = 1,
    callbacks: list | None = None,
    steps_per_epoch: int | None = None,
) -> pd.DataFrame:
    """Train a compiled model; return the history as a DataFrame (one row per epoch).

    ``batch_size`` is per replica: under a multi-device ``strategy`` the global batch grows with the
    number of replicas. Shuffling uses ``seed``, so two runs with the same seed match.
    ``steps_per_epoch`` (from :func:`budget` on a large dataset) stops an epoch part-way; ``None``
    is one full pass.
    """
    if len(x_train) != len(y_train):
        raise ValueError(f"x_train has {len(x_train)} rows but y_train has {len(y_train)}.")
    strategy = strategy or tf().distribute.get_strategy()
    global_batch = batch_size * strategy.num_replicas_in_sync
    data = batches(x_train, y_train, global_batch, seed)
    val = None
    if validation is not None:
        val = tf().data.Dataset.from_tensor_slices(validation).batch(global_batch)
    history = model.fit(
        data,
        validation_data=val,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        verbose=0,
        callbacks=[EpochLine(epochs, every), *(callbacks or [])],
    )
    frame = pd.DataFrame(history.history)
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="epoch")
    return frame


def evaluate_keras(model: Any, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy of a Keras classifier (logits or probabilities) on ``x, y``."""
    logits = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(y)))
