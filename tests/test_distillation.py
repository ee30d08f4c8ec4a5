"""The distiller taught in notebook 06 (its cell tagged ``distiller``, loaded by
``distillation.lesson_distiller``) and the bookkeeping in ``helpers.distillation``."""

from __future__ import annotations

import ast
import json
import math

import numpy as np
import pandas as pd
import pytest

from helpers import distillation as D
from helpers import models
from helpers.keras_setup import keras, tf
from helpers.paths import project_root
from helpers.repro import set_seed

NOTEBOOK = project_root() / "notebooks" / D.LESSON_NOTEBOOK


@pytest.fixture(scope="module")
def Distiller():  # noqa: N802 - a class
    return D.lesson_distiller()


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


def _class_def(source: str, name: str = "Distiller") -> str:
    tree = ast.parse(source)
    found = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name]
    assert len(found) == 1, f"expected one class {name}, found {len(found)}"
    return ast.dump(found[0])


# --- one distiller: the lesson's cell, the recipe and the helpers use the same class -------------

def test_lesson_distiller_is_the_notebook_cell(Distiller):
    assert issubclass(Distiller, keras().Model)
    assert {"train_step", "test_step", "distillation_losses"} <= set(vars(Distiller))
    assert D.lesson_distiller() is Distiller  # loaded once


def test_recipe_repeats_the_lesson_distiller_word_for_word():
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    tagged = {tag: ["".join(c["source"]) for c in cells if tag in (c.get("metadata", {}).get("tags") or [])]
              for tag in ("distiller", "recipe")}
    assert len(tagged["distiller"]) == 1 and len(tagged["recipe"]) == 1
    assert _class_def(tagged["recipe"][0]) == _class_def(tagged["distiller"][0]), (
        "the recipe's Distiller differs from the one the notebook teaches: copy the lesson's class into the recipe")


def test_lesson_distiller_needs_exactly_one_tagged_cell(tmp_path):
    missing = tmp_path / "06.ipynb"
    with pytest.raises(FileNotFoundError, match="notebook 06"):
        D.lesson_distiller(missing)
    missing.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "source": "x = 1"}]}))
    with pytest.raises(LookupError, match="exactly one code cell tagged 'distiller', found 0"):
        D.lesson_distiller(missing)


# --- bad input: one clear error ------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), True, "0.5", None])
def test_alpha_outside_0_1_is_refused(digits, Distiller, alpha):
    with pytest.raises(ValueError, match=r"alpha .* in \[0, 1\]"):
        Distiller(_student(digits), alpha=alpha)


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan"), float("inf"), False, "4"])
def test_temperature_must_be_positive_and_finite(digits, Distiller, temperature):
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        Distiller(_student(digits), temperature=temperature)


def test_teacher_student_output_mismatch_is_refused(digits, Distiller):
    with pytest.raises(ValueError, match="teacher outputs 5 logits but the student 10"):
        Distiller(_student(digits), teacher=_teacher(digits, classes=5))


def test_keras3_models_are_refused(digits, Distiller):
    import keras as keras3

    k3 = keras3.Sequential([keras3.Input((8, 8, 1)), keras3.layers.Flatten(), keras3.layers.Dense(10)])
    with pytest.raises(TypeError, match=r"Keras 2 \(tf_keras\) models.*TF_USE_LEGACY_KERAS=1"):
        Distiller(k3)
    with pytest.raises(TypeError, match="Keras 2"):
        Distiller(_student(digits), teacher=k3)


def test_non_classifier_student_is_refused(Distiller):
    k = keras()
    conv_only = k.Sequential([k.layers.InputLayer(input_shape=(8, 8, 1)), k.layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match=r"one logits vector per example"):
        Distiller(conv_only)


def test_cached_logits_are_checked(digits, Distiller):
    x, y = digits.x_train[:64], digits.y_train[:64]
    with pytest.raises(D.DistillationError, match="shape"):
        D.distillation_dataset(x, y, np.zeros((63, 10), np.float32))
    with pytest.raises(D.DistillationError, match="NaN or inf"):
        D.distillation_dataset(x, y, np.full((64, 10), np.nan, np.float32))
    with pytest.raises(ValueError, match="rows"):
        D.distillation_dataset(x, y[:10])
    # Right rows but the wrong number of classes: caught when the distiller sees the batch.
    distiller = Distiller(_student(digits))
    distiller.compile(optimizer="adam")
    with pytest.raises(ValueError, match="7 columns but the student outputs 10"):
        distiller.fit(D.distillation_dataset(x, y, np.zeros((64, 7), np.float32)), epochs=1, verbose=0)


def test_no_teacher_and_no_cached_logits_is_a_clear_error(digits, Distiller):
    distiller = Distiller(_student(digits))
    distiller.compile(optimizer="adam")
    with pytest.raises(ValueError, match="no teacher logits"):
        distiller.fit(digits.x_train[:32], digits.y_train[:32], epochs=1, verbose=0)


def test_train_student_with_logits_needs_the_distiller_class(digits):
    logits = np.zeros((32, 10), np.float32)
    with pytest.raises(D.DistillationError, match="no distiller_cls"):
        D.train_student(_student(digits), digits.x_train[:32], digits.y_train[:32], logits, epochs=1)


# --- the loss and the training ---------------------------------------------------------------------

def test_loss_is_alpha_weighted_hard_plus_t_squared_kl(digits, Distiller):
    rng = np.random.default_rng(0)
    t_logits = rng.normal(scale=3, size=(16, 10)).astype(np.float32)
    s_logits = rng.normal(size=(16, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 16)
    T, alpha = 3.0, 0.25
    distiller = Distiller(_student(digits), temperature=T, alpha=alpha)
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


def test_student_regularization_is_added_to_the_loss(Distiller):
    k = keras()
    student = k.Sequential([k.layers.InputLayer(input_shape=(4,)),
                            k.layers.Dense(3, kernel_regularizer=k.regularizers.l2(1.0))])
    distiller = Distiller(student, alpha=0.5)
    labels, logits = np.array([0, 1]), np.zeros((2, 3), np.float32)
    total, hard, soft = (float(v) for v in distiller.distillation_losses(labels, logits, logits))
    l2 = float(np.sum(student.get_weights()[0] ** 2))
    assert total == pytest.approx(0.5 * hard + 0.5 * soft + l2, rel=1e-5)


def test_alpha_one_is_exactly_training_alone(digits, Distiller):
    """With alpha = 1 the soft loss has no weight: same seed, same batches -> the same student."""
    x, y = digits.x_train[:256], digits.y_train[:256]
    logits = np.random.default_rng(0).normal(size=(256, 10)).astype(np.float32)
    alone = D.train_student(_student(digits), x, y, None, epochs=2, seed=3)
    distilled = D.train_student(_student(digits), x, y, logits, distiller_cls=Distiller,
                                temperature=4.0, alpha=1.0, epochs=2, seed=3)
    for a, b in zip(alone.get_weights(), distilled.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # ... and a soft loss that counts changes the result.
    soft = D.train_student(_student(digits), x, y, logits, distiller_cls=Distiller,
                           temperature=4.0, alpha=0.1, epochs=2, seed=3)
    assert any(not np.allclose(a, b) for a, b in zip(alone.get_weights(), soft.get_weights()))


def test_cached_logits_train_like_calling_the_teacher(digits, Distiller):
    x, y = digits.x_train[:128], digits.y_train[:128]
    teacher = _teacher(digits)
    before = [w.copy() for w in teacher.get_weights()]
    runs = []
    for cached in (False, True):
        student = _student(digits)
        distiller = Distiller(student, teacher=None if cached else teacher, temperature=2.0, alpha=0.5)
        distiller.compile(optimizer=keras().optimizers.Adam(1e-3), metrics=["accuracy"])
        logits = teacher.predict(x, verbose=0) if cached else None
        history = distiller.fit(D.distillation_dataset(x, y, logits, 32, seed=0), epochs=2, verbose=0)
        runs.append(student.get_weights())
        assert {"loss", "hard_loss", "soft_loss", "accuracy"} <= set(history.history)
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip(before, teacher.get_weights()):  # the teacher never learns
        np.testing.assert_array_equal(a, b)


def test_evaluate_reports_student_accuracy(digits, Distiller):
    student = _student(digits)
    distiller = Distiller(student, teacher=_teacher(digits))
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    out = distiller.evaluate(digits.x_val, digits.y_val, verbose=0, return_dict=True)
    want = float(np.mean(student.predict(digits.x_val, verbose=0).argmax(1) == digits.y_val))
    assert out["accuracy"] == pytest.approx(want, abs=1e-6)
    assert math.isfinite(out["soft_loss"]) and out["hard_loss"] > 0
    np.testing.assert_allclose(distiller(digits.x_val[:4]).numpy(), student(digits.x_val[:4]).numpy())


def test_save_writes_the_student_only(tmp_path, digits, Distiller):
    student = _student(digits)
    distiller = Distiller(student, teacher=models.build_baseline_cnn(digits.input_shape, 10))
    path = tmp_path / "student.keras"
    distiller.save(path)
    loaded = keras().models.load_model(path)  # a plain model: no custom objects needed
    assert loaded.count_params() == student.count_params()
    np.testing.assert_allclose(loaded.predict(digits.x_test[:8], verbose=0), student.predict(digits.x_test[:8], verbose=0))
    assert D.save_student(distiller, tmp_path / "again.keras").exists()
    # The student converts to TFLite on its own.
    assert len(tf().lite.TFLiteConverter.from_keras_model(loaded).convert()) > 1000


# --- bookkeeping: sweep, seed runs, verdict, student -----------------------------------------------

def test_sweep_trains_one_student_per_setting(digits, Distiller):
    x, y = digits.x_train[:128], digits.y_train[:128]
    logits = _teacher(digits).predict(x, verbose=0)

    def make():
        return D.build_student_cnn(digits.input_shape, digits.num_classes, filters=2, units=8)

    table, trained = D.sweep(make, Distiller, x, y, logits, digits.x_val, digits.y_val, (1.0, 4.0), (0.5,),
                             seed=0, verbose=False, epochs=1, batch_size=64)
    assert list(table.columns) == ["temperature", "alpha", "val_accuracy"]
    assert table[["temperature", "alpha"]].values.tolist() == [[1.0, 0.5], [4.0, 0.5]]
    assert set(trained) == {(1.0, 0.5), (4.0, 0.5)}
    assert table.val_accuracy.between(0, 1).all()
    # Same seed, different temperature: different students.
    assert any(not np.allclose(a, b) for a, b in zip(trained[(1.0, 0.5)].get_weights(), trained[(4.0, 0.5)].get_weights()))


def test_alone_vs_distilled_reuses_trained_students(digits, Distiller):
    x, y = digits.x_train[:128], digits.y_train[:128]
    logits = _teacher(digits).predict(x, verbose=0)

    def make():
        return D.build_student_cnn(digits.input_shape, digits.num_classes, filters=2, units=8)

    given = D.train_student(D.seeded(make, 0), x, y, seed=0, epochs=1, batch_size=64)
    runs, students = D.alone_vs_distilled(make, Distiller, x, y, logits, digits.x_test, digits.y_test, (0, 1),
                                          4.0, 0.1, trained={("alone", 0): given}, verbose=False,
                                          epochs=1, batch_size=64)
    assert students[("alone", 0)] is given  # reused, not retrained
    assert set(students) == {("alone", 0), ("distilled", 0), ("alone", 1), ("distilled", 1)}
    assert list(runs.index) == [0, 1] and list(runs.columns) == ["alone", "distilled"]
    want = float(np.mean(given.predict(digits.x_test, verbose=0).argmax(1) == digits.y_test))
    assert runs.loc[0, "alone"] == pytest.approx(want)
    # The seed sets the initial weights: seed 1's student alone differs from seed 0's.
    assert any(not np.allclose(a, b) for a, b in zip(given.get_weights(), students[("alone", 1)].get_weights()))


@pytest.mark.parametrize("alone,distilled,want", [
    ([0.95, 0.96], [0.97, 0.98], "gain"),
    ([0.97, 0.98], [0.95, 0.96], "loss"),
    ([0.95, 0.97], [0.96, 0.98], "overlap"),
    ([0.96], [0.96], "overlap"),
])
def test_verdict_calls_a_difference_only_when_the_ranges_do_not_overlap(alone, distilled, want):
    assert D.verdict(pd.Series(alone), distilled) == want


def test_verdict_needs_runs():
    with pytest.raises(ValueError, match="at least one accuracy"):
        D.verdict([], [0.9])


def test_student_is_at_least_5x_smaller_than_the_baseline(digits):
    teacher = models.build_baseline_cnn(digits.input_shape, digits.num_classes)
    student = D.build_student_cnn(digits.input_shape, digits.num_classes)
    assert D.param_ratio(teacher, student) >= 5
    assert student.output_shape == (None, digits.num_classes)
    with pytest.raises(ValueError, match="filters and units"):
        D.build_student_cnn(digits.input_shape, 10, filters=0)
