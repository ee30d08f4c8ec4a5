"""Plots the notebooks share (seaborn/matplotlib). Each returns its ``Figure``.

Importing this module changes no global style: each function draws inside :func:`style` (seaborn's
``whitegrid`` style, ``notebook`` context, ``deep`` palette). Wrap your own plots in
``with plots.style():`` for the same look.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterator, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns



@contextlib.contextmanager
def style() -> Iterator[None]:
    """The workbook's plot style for the block only (what ``sns.set_theme(context="notebook",
    style="whitegrid")`` would set for the whole process)."""
    from cycler import cycler

    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook"),
          "axes.prop_cycle": cycler(color=sns.color_palette("deep"))}
    with plt.rc_context(rc):
        yield


def styled(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: run a plotting function inside :func:`style`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with style():
            return func(*args, **kwargs)

    return wrapper


@styled
def show_samples(x: np.ndarray, y: np.ndarray, class_names: Sequence[str], n: int = 10, seed: int = 0) -> plt.Figure:
    """A row of ``n`` random images with their labels."""
    idx = np.random.default_rng(seed).choice(len(x), size=min(n, len(x)), replace=False)
    fig, axes = plt.subplots(1, len(idx), figsize=(1.2 * len(idx), 1.6))
    for ax, i in zip(np.atleast_1d(axes), idx):
        img = x[i]
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray_r" if img.shape[-1] == 1 else None)
        ax.set_title(class_names[int(y[i])], fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


@styled
def class_balance(splits: dict[str, np.ndarray], class_names: Sequence[str]) -> plt.Figure:
    """Counts per class for each split (e.g. ``{"train": y_train, "test": y_test}``)."""
    frame = pd.concat(
        [pd.DataFrame({"class": [class_names[int(c)] for c in y], "split": s}) for s, y in splits.items()]
    )
    fig, ax = plt.subplots(figsize=(7, 2.6))
    sns.countplot(data=frame, x="class", hue="split", ax=ax, order=list(class_names))
    ax.set_ylabel("images")
    fig.tight_layout()
    return fig


@styled
def training_curves(history: pd.DataFrame) -> plt.Figure:
    """Loss and accuracy per epoch, training vs validation, from :func:`helpers.training.fit`."""
    long = history.reset_index().melt(id_vars="epoch", var_name="series", value_name="value")
    long["metric"] = np.where(long["series"].str.contains("loss"), "loss", "accuracy")
    long["split"] = np.where(long["series"].str.startswith("val_"), "validation", "train")
    grid = sns.relplot(
        data=long, x="epoch", y="value", hue="split", col="metric", kind="line",
        facet_kws={"sharey": False}, height=2.8, aspect=1.4,
    )
    return grid.figure


@styled
def confusion(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> plt.Figure:
    """Confusion matrix heatmap (counts), true classes on rows."""
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(y_true, y_pred, labels=range(len(class_names)))
    fig, ax = plt.subplots(figsize=(4.6, 3.8))
    sns.heatmap(cm, annot=True, fmt="d", cbar=False, cmap="Blues", xticklabels=class_names, yticklabels=class_names, ax=ax)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    return fig
