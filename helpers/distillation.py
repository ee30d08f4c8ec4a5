"""Bookkeeping for knowledge distillation (notebook 06): the student, the loops over seeds and over
student sizes of the alone-vs-distilled comparison, and saving a student.

The lesson is written in notebook 06: the views (``mixup``, in the code cell tagged ``views``) and
the ``Distiller`` with its function-matching train step (the cell tagged ``distiller``). Nothing here
holds a second copy of them. The functions that train take the class and the view function as
arguments, and :func:`lesson_distiller` / :func:`lesson_views` define them by running those very
cells, for code that runs outside the notebook (the unit tests, the exercise solutions).

The contract ``distiller_cls`` must meet (the notebook's ``Distiller`` does)::

    distiller_cls(student, teacher=..., temperature=..., alpha=..., augment=..., seed=...)  # a keras.Model
    .rng                      # the tf.random.Generator that draws the views
    .compile(optimizer=...); .fit(batches of (x, integer labels))
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from helpers.keras_setup import keras, tf
from helpers.paths import project_root
from helpers.repro import set_seed
from helpers.training import batches, evaluate_keras

LESSON_NOTEBOOK = "06_knowledge_distillation.ipynb"
DISTILLER_TAG = "distiller"
VIEWS_TAG = "views"


class DistillationError(ValueError):
    """A distillation input is invalid (a missing distiller class, no seeds, a bad size)."""


def lesson_distiller(notebook: str | Path | None = None) -> type:
    """The ``Distiller`` class of notebook 06, defined by running its code cell tagged ``distiller``.

    The cell runs with ``keras`` (tf_keras), ``tf`` and ``np`` defined, as in the notebook. One
    class, one source: the notebook teaches it, and tests and solutions use the same text.
    """
    found = _lesson_cell(_notebook_path(notebook), DISTILLER_TAG)
    if not isinstance(found.get("Distiller"), type):
        raise LookupError(f"the cell tagged {DISTILLER_TAG!r} in {LESSON_NOTEBOOK} does not define a class Distiller.")
    return found["Distiller"]


def lesson_views(notebook: str | Path | None = None) -> Callable[..., Any]:
    """The ``mixup`` view function of notebook 06, defined by running its code cell tagged ``views``."""
    found = _lesson_cell(_notebook_path(notebook), VIEWS_TAG)
    if not callable(found.get("mixup")):
        raise LookupError(f"the cell tagged {VIEWS_TAG!r} in {LESSON_NOTEBOOK} does not define a function mixup.")
    return found["mixup"]


def lesson_namespace(tag: str, notebook: str | Path | None = None) -> dict[str, Any]:
    """Everything notebook 06's code cell tagged ``tag`` defines (e.g. ``views``: ``mixup`` and
    ``random_shift``), by running that cell (with ``keras``, ``tf`` and ``np`` defined)."""
    return dict(_lesson_cell(_notebook_path(notebook), tag))


def _notebook_path(notebook: str | Path | None) -> Path:
    return (Path(notebook) if notebook is not None else project_root() / "notebooks" / LESSON_NOTEBOOK).resolve()


@functools.lru_cache(maxsize=8)
def _lesson_cell(path: Path, tag: str) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"{path.name} not found: the lesson's code is in notebook 06 ({LESSON_NOTEBOOK}).")
    cells = [
        c for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
        if c["cell_type"] == "code" and tag in (c.get("metadata", {}).get("tags") or [])
    ]
    if len(cells) != 1:
        raise LookupError(f"{path.name} must have exactly one code cell tagged {tag!r}, found {len(cells)}.")
    source = "".join(cells[0]["source"])
    namespace: dict[str, Any] = {"keras": keras(), "tf": tf(), "np": np, "__name__": f"lesson_{tag}"}
    exec(compile(source, f"{path.name}, cell tagged {tag!r}", "exec"), namespace)  # noqa: S102
    return namespace


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


def seeded(make_student: Callable[[], Any], seed: int) -> Any:
    """``make_student()`` built right after :func:`helpers.repro.set_seed` (its initial weights depend on ``seed``)."""
    set_seed(seed)
    return make_student()


def train_student(
    student: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    seed: int = 0,
    steps_per_epoch: int | None = None,
) -> Any:
    """Train ``student`` alone on the labels with the plain recipe (no views, no teacher): Adam,
    cross-entropy, batches shuffled with ``seed``. The quick path (:mod:`helpers.quick_variants`)
    builds its student this way. ``steps_per_epoch`` (from :func:`helpers.training.budget` on a large
    dataset) stops each epoch part-way. Returns the trained student."""
    k = keras()
    optimizer = k.optimizers.Adam(learning_rate)
    optimizer.build(student.trainable_variables)  # Adam's slots up front: tf.function traces once
    student.compile(optimizer=optimizer, loss=k.losses.SparseCategoricalCrossentropy(from_logits=True))
    student.fit(batches(x, y, batch_size, seed), epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=0)
    return student


def fit_seeds(
    distiller_cls: type,
    make_student: Callable[[], Any],
    x: np.ndarray,
    y: np.ndarray,
    x_eval: np.ndarray,
    y_eval: np.ndarray,
    seeds: Iterable[int],
    *,
    teacher: Any = None,
    temperature: float = 1.0,
    alpha: float = 0.0,
    augment: Callable[..., Any] | None = None,
    epochs: int = 100,
    batch_size: int = 128,
    learning_rate: float = 3e-3,
    steps_per_epoch: int | None = None,
    trained: Mapping[int, Any] | None = None,
) -> tuple[pd.Series, dict[int, Any]]:
    """One student per seed, trained with ``distiller_cls(student, teacher, temperature, alpha,
    augment, seed)`` and Adam with a cosine-decayed learning rate; scored on ``x_eval, y_eval``.

    Seed ``s`` sets the student's initial weights (:func:`seeded`), the batch order (shuffle seed)
    and the views (``distiller.rng`` reset from ``s``), so the same seed gives the same run with any
    ``alpha``. To save time, one distiller is compiled once and reused: before each seed its student
    gets the seeded initial weights, the optimizer's state is zeroed and the view generator is
    reseeded, which trains exactly as a fresh distiller would (a unit test checks it). ``trained``
    passes students already trained with this recipe, by seed; they are scored, not retrained.
    ``steps_per_epoch`` (from :func:`helpers.training.budget` on a large dataset) shortens each
    epoch to that many steps; ``None`` is one full pass. Returns the accuracies (a Series indexed by seed) and a separate trained student per seed.
    """
    seeds = list(seeds)
    if not seeds:
        raise DistillationError("fit_seeds needs at least one seed.")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)}.")
    k, tf_ = keras(), tf()
    done = dict(trained or {})
    students: dict[int, Any] = {}
    distiller = optimizer = None
    steps = int(steps_per_epoch or np.ceil(len(x) / batch_size))
    for seed in seeds:
        if seed in done:
            students[seed] = done[seed]
            continue
        initial = seeded(make_student, seed).get_weights()
        if distiller is None:
            distiller = distiller_cls(make_student(), teacher=teacher, temperature=temperature, alpha=alpha,
                                      augment=augment, seed=seed)
            optimizer = k.optimizers.Adam(k.optimizers.schedules.CosineDecay(learning_rate, epochs * steps))
            optimizer.build(distiller.student.trainable_variables)
            distiller.compile(optimizer=optimizer, steps_per_execution=steps * epochs)  # one call per run
        distiller.student.set_weights(initial)
        for variable in optimizer.variables():  # step count (and so the schedule) and Adam's moments
            variable.assign(tf_.zeros_like(variable))
        distiller.rng.reset_from_seed(seed)
        # The batches repeated `epochs` times in one fit call: the same batches, in the same order, as
        # fit(..., epochs=epochs), without Keras's per-epoch overhead (a unit test checks it).
        distiller.fit(batches(x, y, batch_size, seed).repeat(epochs), epochs=1, verbose=0,
                      steps_per_epoch=steps * epochs if steps_per_epoch else None)
        copy = make_student()
        copy.set_weights(distiller.student.get_weights())
        students[seed] = copy
    scores = pd.Series({s: evaluate_keras(students[s], x_eval, y_eval) for s in seeds}, name="accuracy")
    scores.index.name = "seed"
    return scores, students


def alone_vs_distilled(
    distiller_cls: type,
    make_student: Callable[[], Any],
    teacher: Any,
    x: np.ndarray,
    y: np.ndarray,
    x_eval: np.ndarray,
    y_eval: np.ndarray,
    seeds: Iterable[int],
    *,
    temperature: float = 1.0,
    alpha: float = 0.0,
    trained: Mapping[tuple[str, int], Any] | None = None,
    verbose: bool = True,
    **recipe: Any,
) -> tuple[pd.DataFrame, dict[tuple[str, int], Any]]:
    """The same student trained **alone** (``alpha = 1``: the labels of the views, no teacher) and
    **distilled** (``temperature``, ``alpha``, the teacher called on the same views), once per seed.

    ``recipe`` holds :func:`fit_seeds`'s ``augment``, ``epochs``, ``batch_size``, ``learning_rate``
    (and ``steps_per_epoch`` if set), the same for both arms. Both arms of a seed start from the same weights and see the same views
    in the same order. ``trained`` passes students already trained, keys ``("alone" | "distilled",
    seed)``. Returns a table indexed by seed (columns ``alone``, ``distilled``) and every student
    by ``(arm, seed)``.
    """
    seeds = list(seeds)
    trained = dict(trained or {})
    settings = {"alone": dict(teacher=None, temperature=1.0, alpha=1.0),
                "distilled": dict(teacher=teacher, temperature=temperature, alpha=alpha)}
    columns, students = {}, {}
    start = time.perf_counter()
    for arm, setting in settings.items():
        done = {s: m for (a, s), m in trained.items() if a == arm}
        columns[arm], by_seed = fit_seeds(distiller_cls, make_student, x, y, x_eval, y_eval, seeds,
                                          trained=done, **setting, **recipe)
        students.update({(arm, s): m for s, m in by_seed.items()})
        if verbose:
            print(f"{arm:>9}: " + " | ".join(f"seed {s} {a:.4f}" for s, a in columns[arm].items())
                  + f"  ({time.perf_counter() - start:.0f} s)")
    return pd.DataFrame(columns), students


def size_sweep(
    distiller_cls: type,
    sizes: Mapping[str, Callable[[], Any]],
    teacher: Any,
    x: np.ndarray,
    y: np.ndarray,
    x_eval: np.ndarray,
    y_eval: np.ndarray,
    seeds: Iterable[int],
    *,
    done: Mapping[str, pd.DataFrame] | None = None,
    verbose: bool = True,
    **settings: Any,
) -> pd.DataFrame:
    """:func:`alone_vs_distilled` for every student in ``sizes`` (name -> builder), one row per size:
    parameters, the teacher/student parameter ratio, mean and sd of each arm, the gain in points and
    the :func:`verdict`. ``done`` passes comparisons already run (name -> its seed table); their
    seeds in ``seeds`` are reused, not retrained. ``settings`` go to :func:`alone_vs_distilled`.
    """
    seeds = list(seeds)
    rows = []
    for name, make in sizes.items():
        if done and name in done:
            runs = done[name].loc[[s for s in seeds if s in done[name].index]]
        else:
            runs, _ = alone_vs_distilled(distiller_cls, make, teacher, x, y, x_eval, y_eval, seeds,
                                         verbose=False, **settings)
        params = make().count_params()
        rows.append({"student": name, "params": params, "ratio": teacher.count_params() / params,
                     "seeds": len(runs), "alone": runs.alone.mean(), "alone_sd": runs.alone.std(),
                     "distilled": runs.distilled.mean(), "distilled_sd": runs.distilled.std(),
                     "gain_pp": 100 * (runs.distilled.mean() - runs.alone.mean()),
                     "verdict": verdict(runs.alone, runs.distilled)})
        if verbose:
            r = rows[-1]
            print(f"{name}: {params:,} parameters | alone {r['alone']:.4f} | distilled {r['distilled']:.4f} "
                  f"| {r['gain_pp']:+.2f} pp")
    return pd.DataFrame(rows).set_index("student")


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
