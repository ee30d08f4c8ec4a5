"""Datasets: an embedded default that works offline, optional downloads, and your own ``.npz``.

``load_dataset()`` returns a :class:`Dataset` with fixed train / validation / test splits. The name
comes from the argument, else ``$WORKBOOK_DATASET``, else ``"digits"`` (scikit-learn's bundled 8x8
handwritten digits: no network needed). Images are float32 in [0, 1] with a channel axis; labels
are int64 class indices.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

DATASET_ENV = "WORKBOOK_DATASET"
DEFAULT_DATASET = "digits"


class DatasetUnavailableError(RuntimeError):
    """A dataset could not be loaded (unknown name, offline download, malformed file)."""


@dataclass(frozen=True)
class Dataset:
    """Images and labels in three fixed splits."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...] = field(default=())

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def summary(self) -> dict[str, object]:
        """Sizes and shapes, for a one-line description in a notebook."""
        return {
            "dataset": self.name,
            "input_shape": self.input_shape,
            "classes": self.num_classes,
            "train": len(self.y_train),
            "val": len(self.y_val),
            "test": len(self.y_test),
        }


def _split(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    class_names: tuple[str, ...],
    seed: int,
    val_fraction: float,
    test_fraction: float,
) -> Dataset:
    from sklearn.model_selection import train_test_split

    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_fraction / (1 - test_fraction), random_state=seed, stratify=y_rest
    )
    return Dataset(name, x_train, y_train, x_val, y_val, x_test, y_test, class_names)


def _with_val(
    name: str,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    class_names: tuple[str, ...],
    seed: int,
    val_fraction: float,
) -> Dataset:
    """Carve a stratified validation split out of a dataset that ships train/test only."""
    from sklearn.model_selection import train_test_split

    x_train, x_val, y_train, y_val = train_test_split(
        train[0], train[1], test_size=val_fraction, random_state=seed, stratify=train[1]
    )
    return Dataset(name, x_train, y_train, x_val, y_val, test[0], test[1], class_names)


def _images(x: np.ndarray, scale: float) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32) / np.float32(scale)
    return x[..., None] if x.ndim == 3 else x


def _labels(y: np.ndarray) -> np.ndarray:
    return np.asarray(y).reshape(-1).astype(np.int64)


def load_digits(seed: int = 0) -> Dataset:
    """scikit-learn's 1,797 8x8 digits: 60 % train, 15 % validation, 25 % test, stratified."""
    from sklearn.datasets import load_digits as _sk_digits

    bunch = _sk_digits()
    x = _images(bunch.images, 16.0)
    names = tuple(str(c) for c in bunch.target_names)
    return _split("digits", x, _labels(bunch.target), names, seed, val_fraction=0.15, test_fraction=0.25)


def _download(loader: Callable[..., tuple], name: str, cache: Path) -> tuple:
    """Call a ``keras.datasets`` loader with its cache under ``data/``; offline -> one clear error."""
    try:
        return loader(cache_dir=str(cache))
    except Exception as exc:  # urllib/HTTP/SSL errors all surface as different types
        raise DatasetUnavailableError(
            f"Could not download the '{name}' dataset ({type(exc).__name__}: {exc}). "
            f"Are you offline? Run once while online (it is then cached under {cache.name}/), "
            f"or use the embedded default: {DATASET_ENV}=digits."
        ) from exc


def _keras_dataset(name: str, module: str, classes: tuple[str, ...], scale: float):
    def load(data: Path, seed: int = 0) -> Dataset:
        from helpers.keras_setup import keras

        loader = getattr(keras().datasets, module).load_data
        (x_tr, y_tr), (x_te, y_te) = _download(loader, name, Path(data) / "datasets")
        return _with_val(
            name,
            (_images(x_tr, scale), _labels(y_tr)),
            (_images(x_te, scale), _labels(y_te)),
            classes,
            seed,
            val_fraction=0.1,
        )

    return load


_FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_CIFAR = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

DOWNLOADABLE = {
    "mnist": _keras_dataset("mnist", "mnist", tuple(str(i) for i in range(10)), 255.0),
    "fashion_mnist": _keras_dataset("fashion_mnist", "fashion_mnist", _FASHION, 255.0),
    "cifar10": _keras_dataset("cifar10", "cifar10", _CIFAR, 255.0),
}
AVAILABLE = ("digits", *DOWNLOADABLE, "<path/to/file.npz>")


def load_npz(path: Path, seed: int = 0) -> Dataset:
    """Your own data: an ``.npz`` with ``x_train, y_train, x_test, y_test`` (``x_val, y_val`` and
    ``class_names`` optional). Integer images are scaled by 255; a validation split is carved from
    train when absent."""
    path = Path(path)
    if not path.is_file():
        raise DatasetUnavailableError(f"No dataset file at {path}; pass an existing .npz file.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:
        raise DatasetUnavailableError(f"{path.name} is not a readable .npz file ({exc}).") from exc
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise DatasetUnavailableError(
            f"{path.name} lacks {', '.join(missing)}; it needs x_train, y_train, x_test, y_test."
        )

    def images(key: str) -> np.ndarray:
        x = arrays[key]
        if x.ndim not in (3, 4):
            raise DatasetUnavailableError(
                f"{path.name}: {key} has shape {x.shape}; expected (N, H, W) or (N, H, W, C)."
            )
        return _images(x, 255.0 if np.issubdtype(x.dtype, np.integer) else 1.0)

    x_tr, y_tr, x_te, y_te = images("x_train"), _labels(arrays["y_train"]), images("x_test"), _labels(arrays["y_test"])
    for xs, ys, split in ((x_tr, y_tr, "train"), (x_te, y_te, "test")):
        if len(xs) != len(ys):
            raise DatasetUnavailableError(f"{path.name}: x_{split} has {len(xs)} rows but y_{split} has {len(ys)}.")
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DatasetUnavailableError(f"{path.name}: train images {x_tr.shape[1:]} and test images {x_te.shape[1:]} differ.")
    n_classes = int(max(y_tr.max(), y_te.max())) + 1
    names = tuple(str(c) for c in arrays["class_names"]) if "class_names" in arrays else tuple(str(i) for i in range(n_classes))
    if "x_val" in arrays and "y_val" in arrays:
        return Dataset(path.stem, x_tr, y_tr, images("x_val"), _labels(arrays["y_val"]), x_te, y_te, names)
    return _with_val(path.stem, (x_tr, y_tr), (x_te, y_te), names, seed, val_fraction=0.1)


def dataset_name(name: str | None = None) -> str:
    """The dataset to use: ``name``, else ``$WORKBOOK_DATASET``, else ``"digits"``."""
    return name or os.environ.get(DATASET_ENV) or DEFAULT_DATASET


def load_dataset(name: str | None = None, data: Path | None = None, seed: int = 0) -> Dataset:
    """Load a dataset by name (``digits``, ``mnist``, ``fashion_mnist``, ``cifar10``) or ``.npz`` path.

    ``data`` is the workbook's data folder (downloads are cached under ``data/datasets``); it is
    needed only for downloadable datasets.
    """
    name = dataset_name(name)
    if name == "digits":
        return load_digits(seed)
    if name in DOWNLOADABLE:
        if data is None:
            raise ValueError(f"'{name}' is downloaded into the data folder: pass data=<the data/ folder>.")
        return DOWNLOADABLE[name](Path(data), seed)
    if name.endswith(".npz"):
        return load_npz(Path(name), seed)
    raise DatasetUnavailableError(
        f"Unknown dataset '{name}'. Choose one of: {', '.join(AVAILABLE)}."
    )


def representative_batches(x: np.ndarray, count: int, seed: int = 0):
    """A converter-ready representative dataset: a function yielding ``[sample]`` batches of one.

    ``count`` samples are drawn without replacement with an explicit seed (int8 calibration).
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}.")
    idx = np.random.default_rng(seed).permutation(len(x))[: min(count, len(x))]

    def gen():
        for i in idx:
            yield [x[i : i + 1].astype(np.float32)]

    return gen
