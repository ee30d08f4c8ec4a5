"""Knowledge distillation for tf_keras: a ``Distiller`` model, a small student, and one training
routine that trains the student alone or distilled, so both arms of a comparison share every detail.

The loss (Hinton et al., 2015)::

    loss = alpha * CE(labels, student) + (1 - alpha) * T**2 * KL(softmax(teacher / T) || softmax(student / T))

``alpha`` weights the hard-label loss; the soft-target loss is scaled by ``T**2`` so its gradients
keep the same size whatever the temperature. The teacher's logits can come from the teacher model
(called frozen in every step) or from a cache computed once (``teacher.predict``): for a
deterministic teacher (no augmentation, ``training=False``) both give the same training.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from helpers.keras_setup import ensure_keras2_model, keras, tf
from helpers.training import batches


class DistillationError(ValueError):
    """A distillation setting or input is invalid (alpha, temperature, output widths, logits)."""

    # Lets TensorFlow's autograph re-raise this type (not a generic StagingError) when the check
    # fails while ``fit`` traces ``train_step``.
    __init__ = Exception.__init__


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
        raise DistillationError(
            f"alpha weights the hard-label loss and must be a number in [0, 1], got {alpha!r} "
            "(0 = learn from the teacher only, 1 = labels only)."
        )
    return float(alpha)


def _check_temperature(temperature: float) -> float:
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not math.isfinite(float(temperature))
        or float(temperature) <= 0.0
    ):
        raise DistillationError(
            f"temperature must be a finite number > 0, got {temperature!r} "
            "(1 = the teacher's own probabilities; 2-8 soften them)."
        )
    return float(temperature)


def _output_width(model: Any, role: str) -> int:
    shape = getattr(model, "output_shape", None)
    if not isinstance(shape, tuple) or len(shape) != 2 or shape[-1] is None:
        raise DistillationError(
            f"the {role} must output one logits vector per image, shape (batch, classes); got {shape!r}."
        )
    return int(shape[-1])


class Distiller(keras().Model):
    """Trains ``student`` to match the labels and a frozen teacher's softened predictions.

    ``fit`` accepts batches ``(x, labels)`` (the teacher is called, frozen, in each step) or
    ``(x, (labels, teacher_logits))`` (logits cached once; see :func:`distillation_dataset`).
    Calling the distiller runs the student; ``save`` saves the student only: the teacher and the
    losses are training scaffolding, not part of what ships.
    """

    def __init__(
        self,
        student: Any,
        teacher: Any | None = None,
        temperature: float = 4.0,
        alpha: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=kwargs.pop("name", "distiller"), **kwargs)
        self.temperature = _check_temperature(temperature)
        self.alpha = _check_alpha(alpha)
        self.student = ensure_keras2_model(student)
        self.num_classes = _output_width(student, "student")
        self.teacher = None if teacher is None else ensure_keras2_model(teacher)
        if teacher is not None and _output_width(teacher, "teacher") != self.num_classes:
            raise DistillationError(
                f"the teacher outputs {_output_width(teacher, 'teacher')} logits but the student "
                f"{self.num_classes}; both must predict the same classes."
            )
        k = keras()
        self.hard_loss_fn = k.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.soft_loss_fn = k.losses.KLDivergence()
        self.loss_tracker = k.metrics.Mean(name="loss")
        self.hard_tracker = k.metrics.Mean(name="hard_loss")
        self.soft_tracker = k.metrics.Mean(name="soft_loss")

    @property
    def metrics(self) -> list:
        # Listed here so that Keras resets them at the start of every epoch.
        return [self.loss_tracker, self.hard_tracker, self.soft_tracker, *super().metrics]

    def call(self, x: Any, training: bool = False) -> Any:
        return self.student(x, training=training)

    def _unpack(self, data: Any) -> tuple[Any, Any, Any]:
        x, y = data[0], data[1]
        if isinstance(y, (tuple, list)):
            labels, teacher_logits = y
        elif self.teacher is not None:
            labels, teacher_logits = y, self.teacher(x, training=False)
        else:
            raise DistillationError(
                "no teacher logits: pass a teacher to Distiller(...) or feed batches "
                "(x, (labels, teacher_logits)) built with distillation_dataset()."
            )
        if teacher_logits.shape[-1] != self.num_classes:
            raise DistillationError(
                f"the teacher logits have {teacher_logits.shape[-1]} columns but the student outputs "
                f"{self.num_classes} classes."
            )
        return x, labels, tf().stop_gradient(teacher_logits)

    def distillation_losses(self, labels: Any, teacher_logits: Any, student_logits: Any) -> tuple[Any, Any, Any]:
        """``(total, hard, soft)``: the weighted sum, the label cross-entropy, T²·KL on softened outputs."""
        t = self.temperature
        hard = self.hard_loss_fn(labels, student_logits)
        soft = self.soft_loss_fn(
            tf().nn.softmax(teacher_logits / t, axis=-1),
            tf().nn.softmax(student_logits / t, axis=-1),
        ) * (t**2)
        total = self.alpha * hard + (1.0 - self.alpha) * soft
        if self.student.losses:  # e.g. kernel regularizers of the student
            total += tf().add_n(self.student.losses)
        return total, hard, soft

    def _report(self, labels: Any, student_logits: Any, total: Any, hard: Any, soft: Any) -> dict[str, Any]:
        self.loss_tracker.update_state(total)
        self.hard_tracker.update_state(hard)
        self.soft_tracker.update_state(soft)
        self.compiled_metrics.update_state(labels, student_logits)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data: Any) -> dict[str, Any]:
        x, labels, teacher_logits = self._unpack(data)
        with tf().GradientTape() as tape:
            student_logits = self.student(x, training=True)
            total, hard, soft = self.distillation_losses(labels, teacher_logits, student_logits)
        # Only the student learns: the teacher's weights are never in the gradient list.
        self.optimizer.minimize(total, self.student.trainable_variables, tape=tape)
        return self._report(labels, student_logits, total, hard, soft)

    def test_step(self, data: Any) -> dict[str, Any]:
        x, labels, teacher_logits = self._unpack(data)
        student_logits = self.student(x, training=False)
        total, hard, soft = self.distillation_losses(labels, teacher_logits, student_logits)
        return self._report(labels, student_logits, total, hard, soft)

    def save(self, filepath: Any, *args: Any, **kwargs: Any) -> None:
        """Save the student only (a plain Keras model that loads without this class)."""
        self.student.save(filepath, *args, **kwargs)

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(
            "A Distiller is not serialized; save or convert its student (distiller.student), "
            "which is the model that ships."
        )


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

    Batched by :func:`helpers.training.batches`, as :func:`helpers.training.fit` is, so a student trained alone and
    a distilled one see the same batches in the same order.
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
    temperature: float = 4.0,
    alpha: float = 0.1,
    epochs: int = 20,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> Any:
    """Train ``student`` alone (``teacher_logits=None``) or distilled from cached teacher logits.

    Both paths use the same optimizer, learning rate, epochs and batches (same shuffle seed); the
    only difference is the loss. Seed the weights before building the student
    (:func:`helpers.repro.set_seed`). Returns the trained student (the model that ships).
    """
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
        model = Distiller(student, temperature=temperature, alpha=alpha)
        model.compile(optimizer=optimizer)
    model.fit(data, epochs=epochs, verbose=0)
    return student


def save_student(distiller: Distiller, path: Path) -> Path:
    """Save the distiller's student to ``path`` atomically (temp file + rename)."""
    from helpers.models import save_keras_atomic

    return save_keras_atomic(distiller.student, Path(path))
