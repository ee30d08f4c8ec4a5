"""Datasets: an embedded default that works offline, optional downloads, and your own ``.npz``.

``load_dataset()`` returns a :class:`Dataset` with fixed train / validation / test splits. The name
comes from the argument, else ``$WORKBOOK_DATASET``, else ``"digits"`` (scikit-learn's bundled 8x8
handwritten digits: no network needed). Images are float32 in [0, 1] with a channel axis; labels
are int64 class indices.
"""

from __future__ import annotations

import os
import warnings
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


def _npz_labels(path: Path, key: str, y: np.ndarray) -> np.ndarray:
    """Labels as int64 class indices, or one clear error (strings, fractions, NaN, not 1-D)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DatasetUnavailableError(
            f"{path.name}: {key} has shape {y.shape}; expected one class index per image, shape (N,) "
            "(for one-hot labels use argmax(axis=1))."
        )
    if y.dtype == bool or np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int64)
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or not np.array_equal(y, np.round(y)):
            bad = y[~np.isfinite(y) | (y != np.round(y))][0].item()
            raise DatasetUnavailableError(
                f"{path.name}: {key} holds {bad!r}, which is not a class index; labels must be whole numbers 0..K-1."
            )
        return y.astype(np.int64)
    raise DatasetUnavailableError(
        f"{path.name}: {key} has dtype {y.dtype}; labels must be integer class indices 0..K-1 "
        "(map names to indices and store the names in class_names)."
    )


def _npz_images(path: Path, arrays: dict[str, np.ndarray], keys: list[str]) -> dict[str, np.ndarray]:
    """Check and scale the image arrays together (one scale for every split), or raise clearly."""
    raw = {}
    for key in keys:
        x = np.asarray(arrays[key])
        if x.ndim not in (3, 4):
            raise DatasetUnavailableError(f"{path.name}: {key} has shape {x.shape}; expected (N, H, W) or (N, H, W, C).")
        if x.dtype == bool or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise DatasetUnavailableError(f"{path.name}: {key} has dtype {x.dtype}; images must be integers 0..255 or floats in [0, 1].")
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            bad = ~np.isfinite(x)
            images = int(bad.reshape(len(x), -1).any(axis=1).sum())
            raise DatasetUnavailableError(
                f"{path.name}: {key} has {int(bad.sum())} NaN or infinite pixel value(s) in {images} image(s); "
                "fix or drop those images."
            )
        raw[key] = x
    lo = min(float(x.min()) for x in raw.values())
    hi = max(float(x.max()) for x in raw.values())
    integer = all(np.issubdtype(x.dtype, np.integer) for x in raw.values())
    if lo < 0 or hi > 255:
        raise DatasetUnavailableError(
            f"{path.name}: pixel values span [{lo:g}, {hi:g}]; give integers 0..255 or floats in [0, 1]."
        )
    if integer or hi > 1.0:
        if not integer:
            warnings.warn(
                f"{path.name}: float images span [{lo:g}, {hi:g}], so they are read as 0..255 and divided by 255.",
                stacklevel=3,
            )
        scale = 255.0
    else:
        scale = 1.0
    return {k: _images(x, scale) for k, x in raw.items()}


def load_npz(path: Path, seed: int = 0) -> Dataset:
    """Your own data: an ``.npz`` with ``x_train, y_train, x_test, y_test`` (``x_val, y_val`` and
    ``class_names`` optional), checked before use.

    Images: (N, H, W) or (N, H, W, C), integers 0..255 or floats in [0, 1] (floats in 0..255 are
    divided by 255, with a warning); no NaN or infinite pixels. Labels: whole-number class indices in
    [0, number of classes). ``class_names`` (if given) names every label. ``x_val``/``y_val`` come
    together, or a stratified validation split is carved from train (each class needs at least two
    training images). The dataset's name is :func:`helpers.paths.npz_dataset_name` of the path, so
    its models folder never collides with a built-in dataset's or another file's of the same stem.
    Any problem raises one :class:`DatasetUnavailableError` that says what to fix.
    """
    from helpers.paths import npz_dataset_name

    path = Path(path).expanduser()
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
    if ("x_val" in arrays) != ("y_val" in arrays):
        have, lack = ("x_val", "y_val") if "x_val" in arrays else ("y_val", "x_val")
        raise DatasetUnavailableError(f"{path.name} has {have} but no {lack}; give both, or neither (a split is carved from train).")
    splits = ["train", "test"] + (["val"] if "x_val" in arrays else [])
    for split in splits:
        for key in (f"x_{split}", f"y_{split}"):
            if np.ndim(arrays[key]) == 0 or len(arrays[key]) == 0:
                raise DatasetUnavailableError(f"{path.name}: {key} is empty; every split needs at least one image.")
    xs = _npz_images(path, arrays, [f"x_{s}" for s in splits])
    ys = {s: _npz_labels(path, f"y_{s}", arrays[f"y_{s}"]) for s in splits}
    for split in splits:
        if len(xs[f"x_{split}"]) != len(ys[split]):
            raise DatasetUnavailableError(
                f"{path.name}: x_{split} has {len(xs[f'x_{split}'])} rows but y_{split} has {len(ys[split])}."
            )
        if xs[f"x_{split}"].shape[1:] != xs["x_train"].shape[1:]:
            raise DatasetUnavailableError(
                f"{path.name}: {split} images {xs[f'x_{split}'].shape[1:]} and train images {xs['x_train'].shape[1:]} differ."
            )
    low = min(int(y.min()) for y in ys.values())
    high = max(int(y.max()) for y in ys.values())
    if low < 0:
        raise DatasetUnavailableError(f"{path.name}: a label is {low}; labels are class indices 0..K-1.")
    if "class_names" in arrays:
        raw_names = np.asarray(arrays["class_names"])
        if raw_names.ndim != 1 or len(raw_names) == 0:
            raise DatasetUnavailableError(f"{path.name}: class_names must be a non-empty list of names, got shape {raw_names.shape}.")
        names = tuple(str(c) for c in raw_names)
        if len(set(names)) != len(names):
            raise DatasetUnavailableError(f"{path.name}: class_names has duplicates; each class needs its own name.")
        if high >= len(names):
            raise DatasetUnavailableError(
                f"{path.name}: a label is {high} but class_names names only {len(names)} classes (0..{len(names) - 1}); "
                "add the missing names or fix the labels."
            )
    else:
        names = tuple(str(i) for i in range(high + 1))
    name = npz_dataset_name(path)
    if "val" in ys:
        return Dataset(name, xs["x_train"], ys["train"], xs["x_val"], ys["val"], xs["x_test"], ys["test"], names)
    classes, counts = np.unique(ys["train"], return_counts=True)
    if counts.min() < 2:
        raise DatasetUnavailableError(
            f"{path.name}: class {names[int(classes[counts.argmin()])]!r} has only {counts.min()} training image(s); "
            "a stratified validation split needs at least 2 per class (add images, or give x_val and y_val)."
        )
    try:
        return _with_val(name, (xs["x_train"], ys["train"]), (xs["x_test"], ys["test"]), names, seed, val_fraction=0.1)
    except ValueError as exc:  # e.g. fewer validation images than classes
        raise DatasetUnavailableError(
            f"{path.name}: cannot carve a stratified validation split from {len(ys['train'])} training images "
            f"({exc}); add images, or give x_val and y_val."
        ) from exc


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
