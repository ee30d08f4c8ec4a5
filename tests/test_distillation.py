from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import distillation as D
from helpers import models
from helpers.keras_setup import Keras3ModelError, keras, tf
from helpers.repro import set_seed


def _student(digits, seed=0, **kw):
    set_seed(seed)
    return D.build_student_cnn(digits.input_shape, digits.num_classes, **kw)


def _teacher(digits, classes=None):
    k = keras()
    set_seed(1)
    return k.Sequential(
        [k.layers.InputLayer(input_shape=digits.input_shape), k.layers.Flatten(),
         k.layers.Dense(classes or digits.num_classes)]
    )


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), True, "0.5", None])
def test_alpha_outside_0_1_is_refused(digits, alpha):
    with pytest.raises(D.DistillationError, match=r"alpha .* in \[0, 1\]"):
        D.Distiller(_student(digits), alpha=alpha)


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan"), float("inf"), False, "4"])
def test_temperature_must_be_positive_and_finite(digits, temperature):
    with pytest.raises(D.DistillationError, match="temperature must be a finite number > 0"):
        D.Distiller(_student(digits), temperature=temperature)


def test_teacher_student_output_mismatch_is_refused(digits):
    with pytest.raises(D.DistillationError, match="teacher outputs 5 logits but the student 10"):
        D.Distiller(_student(digits), teacher=_teacher(digits, classes=5))


def test_keras3_student_is_refused(digits):
    import keras as keras3

    k3 = keras3.Sequential([keras3.Input((8, 8, 1)), keras3.layers.Flatten(), keras3.layers.Dense(10)])
    with pytest.raises(Keras3ModelError, match="Keras 3 model"):
        D.Distiller(k3)


def test_non_classifier_student_is_refused(digits):
    k = keras()
    conv_only = k.Sequential([k.layers.InputLayer(input_shape=(8, 8, 1)), k.layers.Conv2D(2, 3)])
    with pytest.raises(D.DistillationError, match=r"one logits vector per image"):
        D.Distiller(conv_only)


def test_cached_logits_are_checked(digits):
    x, y = digits.x_train[:64], digits.y_train[:64]
    with pytest.raises(D.DistillationError, match="shape"):
        D.distillation_dataset(x, y, np.zeros((63, 10), np.float32))
    with pytest.raises(D.DistillationError, match="NaN or inf"):
        D.distillation_dataset(x, y, np.full((64, 10), np.nan, np.float32))
    with pytest.raises(ValueError, match="rows"):
        D.distillation_dataset(x, y[:10])
    # Right rows but the wrong number of classes: caught when the distiller sees the batch.
    distiller = D.Distiller(_student(digits))
    distiller.compile(optimizer="adam")
    with pytest.raises(D.DistillationError, match="7 columns but the student outputs 10"):
        distiller.fit(D.distillation_dataset(x, y, np.zeros((64, 7), np.float32)), epochs=1, verbose=0)


def test_no_teacher_and_no_cached_logits_is_a_clear_error(digits):
    distiller = D.Distiller(_student(digits))
    distiller.compile(optimizer="adam")
    with pytest.raises(D.DistillationError, match="no teacher logits"):
        distiller.fit(digits.x_train[:32], digits.y_train[:32], epochs=1, verbose=0)


def test_loss_is_alpha_weighted_hard_plus_t_squared_kl(digits):
    rng = np.random.default_rng(0)
    t_logits = rng.normal(scale=3, size=(16, 10)).astype(np.float32)
    s_logits = rng.normal(size=(16, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 16)
    T, alpha = 3.0, 0.25
    distiller = D.Distiller(_student(digits), temperature=T, alpha=alpha)
    total, hard, soft = (float(v) for v in distiller.distillation_losses(labels, t_logits, s_logits))

    p_s = _softmax(s_logits)
    want_hard = float(np.mean(-np.log(p_s[np.arange(16), labels])))
    pt, ps = _softmax(t_logits / T), _softmax(s_logits / T)
    want_soft = float(np.mean(np.sum(pt * np.log(pt / ps), axis=1))) * T**2
    assert hard == pytest.approx(want_hard, rel=1e-4)
    assert soft == pytest.approx(want_soft, rel=1e-3)
    assert total == pytest.approx(alpha * want_hard + (1 - alpha) * want_soft, rel=1e-3)
    # A student that equals the teacher has no soft loss, at any temperature.
    _, _, zero = distiller.distillation_losses(labels, t_logits, t_logits)
    assert abs(float(zero)) < 1e-5


def test_alpha_one_is_exactly_training_alone(digits):
    """With alpha = 1 the soft loss has no weight: same seed, same batches -> the same student."""
    x, y = digits.x_train[:256], digits.y_train[:256]
    logits = np.random.default_rng(0).normal(size=(256, 10)).astype(np.float32)
    alone = D.train_student(_student(digits), x, y, None, epochs=2, seed=3)
    distilled = D.train_student(_student(digits), x, y, logits, temperature=4.0, alpha=1.0, epochs=2, seed=3)
    for a, b in zip(alone.get_weights(), distilled.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # ... and a soft loss that counts changes the result.
    soft = D.train_student(_student(digits), x, y, logits, temperature=4.0, alpha=0.1, epochs=2, seed=3)
    assert any(not np.allclose(a, b) for a, b in zip(alone.get_weights(), soft.get_weights()))


def test_cached_logits_train_like_calling_the_teacher(digits):
    x, y = digits.x_train[:128], digits.y_train[:128]
    teacher = _teacher(digits)
    before = [w.copy() for w in teacher.get_weights()]
    runs = []
    for cached in (False, True):
        student = _student(digits)
        distiller = D.Distiller(student, teacher=None if cached else teacher, temperature=2.0, alpha=0.5)
        distiller.compile(optimizer=keras().optimizers.Adam(1e-3), metrics=["accuracy"])
        logits = teacher.predict(x, verbose=0) if cached else None
        history = distiller.fit(D.distillation_dataset(x, y, logits, 32, seed=0), epochs=2, verbose=0)
        runs.append(student.get_weights())
        assert {"loss", "hard_loss", "soft_loss", "accuracy"} <= set(history.history)
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip(before, teacher.get_weights()):  # the teacher never learns
        np.testing.assert_array_equal(a, b)


def test_evaluate_reports_student_accuracy(digits):
    student = _student(digits)
    distiller = D.Distiller(student, teacher=_teacher(digits))
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    out = distiller.evaluate(digits.x_val, digits.y_val, verbose=0, return_dict=True)
    want = float(np.mean(student.predict(digits.x_val, verbose=0).argmax(1) == digits.y_val))
    assert out["accuracy"] == pytest.approx(want, abs=1e-6)
    assert math.isfinite(out["soft_loss"]) and out["hard_loss"] > 0
    np.testing.assert_allclose(distiller(digits.x_val[:4]).numpy(), student(digits.x_val[:4]).numpy())


def test_save_writes_the_student_only(tmp_path, digits):
    student = _student(digits)
    distiller = D.Distiller(student, teacher=models.build_baseline_cnn(digits.input_shape, 10))
    path = tmp_path / "student.keras"
    distiller.save(path)
    loaded = keras().models.load_model(path)  # a plain model: no custom objects needed
    assert loaded.count_params() == student.count_params()
    np.testing.assert_allclose(loaded.predict(digits.x_test[:8], verbose=0), student.predict(digits.x_test[:8], verbose=0))
    assert D.save_student(distiller, tmp_path / "again.keras").exists()
    with pytest.raises(NotImplementedError, match="save or convert its student"):
        distiller.get_config()
    # The student converts to TFLite on its own.
    assert len(tf().lite.TFLiteConverter.from_keras_model(loaded).convert()) > 1000


def test_student_is_at_least_5x_smaller_than_the_baseline(digits):
    teacher = models.build_baseline_cnn(digits.input_shape, digits.num_classes)
    student = D.build_student_cnn(digits.input_shape, digits.num_classes)
    assert D.param_ratio(teacher, student) >= 5
    assert student.output_shape == (None, digits.num_classes)
    with pytest.raises(ValueError, match="filters and units"):
        D.build_student_cnn(digits.input_shape, 10, filters=0)
