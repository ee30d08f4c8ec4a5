"""Bookkeeping for knowledge distillation (notebook 06): the student, its batches, the training runs
of a temperature/alpha sweep and of an alone-vs-distilled comparison over seeds, and saving a student.

The distiller itself is the lesson: it is written in notebook 06, in the code cell tagged
``distiller``. Nothing here holds a second copy of it. The functions that train take that class as
an argument (``distiller_cls``), and :func:`lesson_distiller` defines it by running that very cell,
for code that runs outside the notebook (the unit tests, the exercise solutions).

The contract ``distiller_cls`` must meet (the notebook's ``Distiller`` does)::

    distiller_cls(student, temperature=..., alpha=...)   # a keras.Model subclass
    .compile(optimizer=...); .fit(batches of (x, (labels, teacher_logits)))
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from helpers.keras_setup import keras, tf
from helpers.paths import project_root
from helpers.repro import set_seed
from helpers.training import batches, evaluate_keras

LESSON_NOTEBOOK = "06_knowledge_distillation.ipynb"
DISTILLER_TAG = "distiller"


class DistillationError(ValueError):
    """A distillation input is invalid (cached logits, a missing distiller class)."""


def lesson_distiller(notebook: str | Path | None = None) -> type:
    """The ``Distiller`` class of notebook 06, defined by running its code cell tagged ``distiller``.

    The cell runs with ``keras`` (tf_keras), ``tf`` and ``np`` defined, as in the notebook. One
    class, one source: the notebook teaches it, and tests and solutions use the same text.
    """
    path = Path(notebook) if notebook is not None else project_root() / "notebooks" / LESSON_NOTEBOOK
    return _lesson_distiller(path.resolve())


@functools.lru_cache(maxsize=4)
def _lesson_distiller(path: Path) -> type:
    if not path.exists():
        raise FileNotFoundError(f"{path.name} not found: the Distiller is defined in notebook 06 ({LESSON_NOTEBOOK}).")
    cells = [
        c for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
        if c["cell_type"] == "code" and DISTILLER_TAG in (c.get("metadata", {}).get("tags") or [])
    ]
    if len(cells) != 1:
        raise LookupError(f"{path.name} must have exactly one code cell tagged {DISTILLER_TAG!r}, found {len(cells)}.")
    source = "".join(cells[0]["source"])
    namespace: dict[str, Any] = {"keras": keras(), "tf": tf(), "np": np, "__name__": "lesson_distiller"}
    exec(compile(source, f"{path.name}, cell tagged {DISTILLER_TAG!r}", "exec"), namespace)  # noqa: S102
    if not isinstance(namespace.get("Distiller"), type):
        raise LookupError(f"the cell tagged {DISTILLER_TAG!r} in {path.name} does not define a class Distiller.")
    return namespace["Distiller"]


def build_student_cnn(
    input_shape: tuple[int, ...], num_classes: int, filters: int = 8, units: int = 32
) -> Any:
    """A tiny CNN student (about 4.5 k parameters on 8x8 digits): one convolution, a max-pool and a
    small dense layer. Outputs logits, like the teacher."""
    if filters < 1 or units < 1:
        raise ValueError(f"filters and units must be >= 1, got filters={filters}, units={units}.")
    k = keras()
    return k.Sequential(
        [
            k.layers.InputLayer(input_shape=input_shape, name="image"),
            k.layers.Conv2D(filters, 3, padding="same", activation="relu", name="conv"),
            k.layers.MaxPooling2D(name="pool"),
            k.layers.Flatten(name="flatten"),
            k.layers.Dense(units, activation="relu", name="dense"),
            k.layers.Dense(num_classes, name="logits"),
        ],
        name=f"student_cnn_{filters}_{units}",
    )


def param_ratio(teacher: Any, student: Any) -> float:
    """How many times more parameters the teacher has than the student."""
    return teacher.count_params() / student.count_params()


def distillation_dataset(
    x: np.ndarray,
    y: np.ndarray,
    teacher_logits: np.ndarray | None = None,
    batch_size: int = 32,
    seed: int = 0,
    shuffle: bool = True,
) -> Any:
    """A ``tf.data`` pipeline of ``(x, labels)`` or, with cached logits, ``(x, (labels, logits))``.

    Batched by :func:`helpers.training.batches` (shuffle with ``seed``, then batch), so a student
    trained alone and a distilled one see the same images in the same batches in the same order.
    """
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)}.")
    targets: Any = y
    if teacher_logits is not None:
        teacher_logits = np.asarray(teacher_logits, dtype=np.float32)
        if teacher_logits.ndim != 2 or len(teacher_logits) != len(x):
            raise DistillationError(
                f"teacher_logits must have shape (rows of x = {len(x)}, classes), got {teacher_logits.shape}; "
                "compute them with teacher.predict(x) on the same x."
            )
        if not np.all(np.isfinite(teacher_logits)):
            raise DistillationError("teacher_logits contain NaN or inf; check the teacher model.")
        targets = (y, teacher_logits)
    return batches(x, targets, batch_size, seed, shuffle)


def train_student(
    student: Any,
    x: np.ndarray,
    y: np.ndarray,
    teacher_logits: np.ndarray | None = None,
    *,
    distiller_cls: type | None = None,
    temperature: float = 4.0,
    alpha: float = 0.1,
    epochs: int = 20,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> Any:
    """Train ``student`` alone (``teacher_logits=None``: plain cross-entropy) or distilled from
    cached teacher logits with ``distiller_cls(student, temperature=, alpha=)``.

    Both arms use the same optimizer, learning rate, epochs and batches (same shuffle seed); the
    only difference is the loss. Seed the weights before building the student (:func:`seeded`).
    Returns the trained student (the model that ships).
    """
    if teacher_logits is not None and distiller_cls is None:
        raise DistillationError(
            "teacher_logits given but no distiller_cls: pass the Distiller class "
            "(notebook 06's, or helpers.distillation.lesson_distiller())."
        )
    k = keras()
    data = distillation_dataset(x, y, teacher_logits, batch_size, seed)
    optimizer = k.optimizers.Adam(learning_rate)
    # Creating Adam's slots up front (and compiling no training metrics: callers measure accuracy
    # afterwards) lets tf.function trace the train step once instead of twice.
    optimizer.build(student.trainable_variables)
    if teacher_logits is None:
        model = student
        model.compile(optimizer=optimizer, loss=k.losses.SparseCategoricalCrossentropy(from_logits=True))
    else:
        model = distiller_cls(student, temperature=temperature, alpha=alpha)
        model.compile(optimizer=optimizer)
    model.fit(data, epochs=epochs, verbose=0)
    return student


def seeded(make_student: Callable[[], Any], seed: int) -> Any:
    """``make_student()`` built right after :func:`helpers.repro.set_seed` (its initial weights depend on ``seed``)."""
    set_seed(seed)
    return make_student()


def sweep(
    make_student: Callable[[], Any],
    distiller_cls: type,
    x: np.ndarray,
    y: np.ndarray,
    teacher_logits: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    temperatures: Iterable[float],
    alphas: Iterable[float],
    seed: int = 0,
    verbose: bool = True,
    **recipe: Any,
) -> tuple[pd.DataFrame, dict[tuple[float, float], Any]]:
    """Distil a freshly seeded student at every (temperature, alpha); score each on ``x_val, y_val``.

    ``recipe`` holds :func:`train_student`'s ``epochs``, ``batch_size``, ``learning_rate``. Returns
    a table (temperature, alpha, val_accuracy) in sweep order and the trained students by setting.
    With ``verbose``, prints one line per setting.
    """
    rows, trained = [], {}
    start = time.perf_counter()
    for t in temperatures:
        for a in alphas:
            student = train_student(seeded(make_student, seed), x, y, teacher_logits, distiller_cls=distiller_cls,
                                    temperature=t, alpha=a, seed=seed, **recipe)
            trained[(float(t), float(a))] = student
            rows.append({"temperature": float(t), "alpha": float(a), "val_accuracy": evaluate_keras(student, x_val, y_val)})
            if verbose:
                print(f"T = {t:g}, alpha = {a:g}: val accuracy {rows[-1]['val_accuracy']:.4f} "
                      f"({time.perf_counter() - start:.0f} s)")
    return pd.DataFrame(rows), trained


def alone_vs_distilled(
    make_student: Callable[[], Any],
    distiller_cls: type,
    x: np.ndarray,
    y: np.ndarray,
    teacher_logits: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    seeds: Iterable[int],
    temperature: float,
    alpha: float,
    trained: dict[tuple[str, int], Any] | None = None,
    verbose: bool = True,
    **recipe: Any,
) -> tuple[pd.DataFrame, dict[tuple[str, int], Any]]:
    """The same student trained alone and distilled, once per seed, scored on ``x_test, y_test``.

    Both arms of a seed start from the same initial weights and see the same batches. ``trained``
    passes students already trained with this recipe (keys ``("alone" | "distilled", seed)``), which
    are reused, not retrained. Returns a table indexed by seed (columns ``alone``, ``distilled``)
    and every student by ``(arm, seed)``.
    """
    students = dict(trained or {})
    rows = []
    start = time.perf_counter()
    for seed in seeds:
        if ("alone", seed) not in students:
            students[("alone", seed)] = train_student(seeded(make_student, seed), x, y, seed=seed, **recipe)
        if ("distilled", seed) not in students:
            students[("distilled", seed)] = train_student(
                seeded(make_student, seed), x, y, teacher_logits, distiller_cls=distiller_cls,
                temperature=temperature, alpha=alpha, seed=seed, **recipe)
        rows.append({"seed": seed, **{arm: evaluate_keras(students[(arm, seed)], x_test, y_test)
                                      for arm in ("alone", "distilled")}})
        if verbose:
            print(f"seed {seed}: alone {rows[-1]['alone']:.4f} | distilled {rows[-1]['distilled']:.4f} "
                  f"({time.perf_counter() - start:.0f} s)")
    return pd.DataFrame(rows).set_index("seed"), students


def verdict(alone: Iterable[float], distilled: Iterable[float]) -> str:
    """``"gain"`` when every distilled run beats every run alone, ``"loss"`` for the reverse, else
    ``"overlap"`` (the difference is within run-to-run noise)."""
    alone, distilled = np.asarray(list(alone), float), np.asarray(list(distilled), float)
    if alone.size == 0 or distilled.size == 0:
        raise ValueError("verdict needs at least one accuracy per arm.")
    if distilled.min() > alone.max():
        return "gain"
    if distilled.max() < alone.min():
        return "loss"
    return "overlap"


def save_student(distiller: Any, path: Path) -> Path:
    """Save ``distiller.student`` to ``path`` atomically (temp file + rename)."""
    from helpers.models import save_keras_atomic

    return save_keras_atomic(distiller.student, Path(path))
