"""The distiller and views taught in notebook 06 (its cells tagged ``distiller`` and ``views``, loaded
by ``distillation.lesson_distiller`` / ``lesson_views``) and the bookkeeping in ``helpers.distillation``."""

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


@pytest.fixture(scope="module")
def mixup():
    return D.lesson_views()


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


def _def(source: str, name: str) -> str:
    tree = ast.parse(source)
    found = [n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name == name]
    assert len(found) == 1, f"expected one definition of {name}, found {len(found)}"
    return ast.dump(found[0])


def _weights_equal(a, b, **tol):
    for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(x, y, **(tol or {"rtol": 0, "atol": 0}))


# --- one distiller: the lesson's cells, the recipe and the helpers use the same code ----------------

def test_lesson_distiller_is_the_notebook_cell(Distiller):
    assert issubclass(Distiller, keras().Model)
    assert {"train_step", "test_step", "distillation_losses", "teacher_logits"} <= set(vars(Distiller))
    assert D.lesson_distiller() is Distiller  # loaded once


def test_recipe_repeats_the_lesson_code_word_for_word():
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    tagged = {tag: ["".join(c["source"]) for c in cells if tag in (c.get("metadata", {}).get("tags") or [])]
              for tag in ("distiller", "views", "recipe")}
    assert len(tagged["distiller"]) == 1 and len(tagged["views"]) == 1 and len(tagged["recipe"]) == 1
    assert _def(tagged["recipe"][0], "Distiller") == _def(tagged["distiller"][0], "Distiller"), (
        "the recipe's Distiller differs from the one the notebook teaches: copy the lesson's class into the recipe")
    assert _def(tagged["recipe"][0], "mixup") == _def(tagged["views"][0], "mixup"), (
        "the recipe's mixup differs from the notebook's views cell")


def test_lesson_cells_need_exactly_one_tagged_cell(tmp_path):
    missing = tmp_path / "06.ipynb"
    with pytest.raises(FileNotFoundError, match="notebook 06"):
        D.lesson_distiller(missing)
    missing.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "source": "x = 1"}]}))
    with pytest.raises(LookupError, match="exactly one code cell tagged 'distiller', found 0"):
        D.lesson_distiller(missing)
    with pytest.raises(LookupError, match="exactly one code cell tagged 'views', found 0"):
        D.lesson_views(missing)
    views = D.lesson_namespace("views")
    assert views["mixup"] is D.lesson_views() and callable(views["random_shift"])


# --- the views --------------------------------------------------------------------------------------

def test_mixup_blends_images_and_labels_with_one_weight_per_image(mixup):
    rng = tf().random.Generator.from_seed(0)
    x = tf().constant(np.random.default_rng(0).random((6, 8, 8, 1)), tf().float32)
    y = tf().one_hot([0, 1, 2, 3, 4, 5], 10)
    mixed, labels = (v.numpy() for v in mixup(x, y, rng))
    lam = labels[np.arange(6), np.arange(6)]  # the weight of each image's own class
    assert np.all((lam >= 0) & (lam <= 1))
    want = lam[:, None, None, None] * x.numpy() + (1 - lam[:, None, None, None]) * x.numpy()[::-1]
    np.testing.assert_allclose(mixed, want, atol=1e-6)
    np.testing.assert_allclose(labels.sum(axis=1), 1, atol=1e-6)
    # The same seed draws the same views.
    again = mixup(x, y, tf().random.Generator.from_seed(0))[0].numpy()
    np.testing.assert_array_equal(mixed, again)


# --- bad input: one clear error ------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), True, "0.5", None])
def test_alpha_outside_0_1_is_refused(digits, Distiller, alpha):
    with pytest.raises(ValueError, match=r"alpha .* in \[0, 1\]"):
        Distiller(_student(digits), teacher=_teacher(digits), alpha=alpha)


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan"), float("inf"), False, "4"])
def test_temperature_must_be_positive_and_finite(digits, Distiller, temperature):
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        Distiller(_student(digits), teacher=_teacher(digits), temperature=temperature)


def test_a_teacher_is_needed_unless_alpha_is_one(digits, Distiller):
    with pytest.raises(ValueError, match="there is no teacher"):
        Distiller(_student(digits), alpha=0.5)
    assert Distiller(_student(digits), alpha=1.0).teacher is None


def test_teacher_student_output_mismatch_is_refused(digits, Distiller):
    with pytest.raises(ValueError, match="teacher outputs 5 logits but the student 10"):
        Distiller(_student(digits), teacher=_teacher(digits, classes=5))


def test_keras3_models_are_refused(digits, Distiller):
    import keras as keras3

    k3 = keras3.Sequential([keras3.Input((8, 8, 1)), keras3.layers.Flatten(), keras3.layers.Dense(10)])
    with pytest.raises(TypeError, match=r"Keras 2 \(tf_keras\) models.*TF_USE_LEGACY_KERAS=1"):
        Distiller(k3, alpha=1.0)
    with pytest.raises(TypeError, match="Keras 2"):
        Distiller(_student(digits), teacher=k3)


def test_non_classifier_student_is_refused(Distiller):
    k = keras()
    conv_only = k.Sequential([k.layers.InputLayer(input_shape=(8, 8, 1)), k.layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match=r"one logits vector per example"):
        Distiller(conv_only, alpha=1.0)


def test_fit_seeds_needs_seeds(digits, Distiller):
    with pytest.raises(D.DistillationError, match="at least one seed"):
        D.fit_seeds(Distiller, lambda: _student(digits), digits.x_train, digits.y_train,
                    digits.x_test, digits.y_test, [], alpha=1.0)


# --- the loss and the training ---------------------------------------------------------------------

def test_loss_is_alpha_weighted_hard_plus_t_squared_kl(digits, Distiller):
    rng = np.random.default_rng(0)
    t_logits = rng.normal(scale=3, size=(16, 10)).astype(np.float32)
    s_logits = rng.normal(size=(16, 10)).astype(np.float32)
    labels = _softmax(rng.normal(size=(16, 10))).astype(np.float32)  # soft labels, as mixup makes them
    T, alpha = 3.0, 0.25
    distiller = Distiller(_student(digits), teacher=_teacher(digits), temperature=T, alpha=alpha)
    total, hard, soft = (float(v) for v in distiller.distillation_losses(labels, t_logits, s_logits))

    p_s = _softmax(s_logits)
    want_hard = float(np.mean(-np.sum(labels * np.log(p_s), axis=1)))
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
    teacher = k.Sequential([k.layers.InputLayer(input_shape=(4,)), k.layers.Dense(3)])
    distiller = Distiller(student, teacher=teacher, alpha=0.5)
    labels, logits = np.eye(3, dtype=np.float32)[[0, 1]], np.zeros((2, 3), np.float32)
    total, hard, soft = (float(v) for v in distiller.distillation_losses(labels, logits, logits))
    l2 = float(np.sum(student.get_weights()[0] ** 2))
    assert total == pytest.approx(0.5 * hard + 0.5 * soft + l2, rel=1e-5)


def _fit(distiller, digits, n=256, epochs=2, seed=3):
    distiller.compile(optimizer=keras().optimizers.Adam(1e-3))
    data = tf().data.Dataset.from_tensor_slices((digits.x_train[:n], digits.y_train[:n])).shuffle(n, seed=seed).batch(64)
    return distiller.fit(data, epochs=epochs, verbose=0)


def test_alpha_one_trains_alone_and_never_calls_the_teacher(digits, Distiller, mixup):
    """alpha = 1: the teacher has no weight and is not called, so any teacher (or none) gives the same student."""
    runs = []
    for teacher in (None, _teacher(digits)):
        d = Distiller(_student(digits), teacher=teacher, alpha=1.0, augment=mixup, seed=3)
        _fit(d, digits)
        runs.append(d.student)
    _weights_equal(*runs)
    # ... and the plain recipe without views trains the same student as alpha = 1 without views.
    plain = D.train_student(_student(digits), digits.x_train[:256], digits.y_train[:256], epochs=2, batch_size=64,
                            learning_rate=1e-3, seed=3)
    d = Distiller(_student(digits), alpha=1.0)
    d.compile(optimizer=keras().optimizers.Adam(1e-3))
    d.fit(D.batches(digits.x_train[:256], digits.y_train[:256], 64, 3), epochs=2, verbose=0)
    _weights_equal(plain, d.student, rtol=1e-5, atol=1e-6)


def test_the_teacher_sees_the_students_view_and_never_learns(digits, Distiller, mixup):
    teacher = _teacher(digits)
    before = [w.copy() for w in teacher.get_weights()]
    seen = []
    base_call = Distiller.teacher_logits

    class Spy(Distiller):
        def teacher_logits(self, x):
            seen.append(x)
            return base_call(self, x)

    d = Spy(_student(digits), teacher=teacher, alpha=0.0, augment=mixup, seed=0)
    d.compile(optimizer=keras().optimizers.Adam(1e-3))
    d.train_step((tf().constant(digits.x_train[:8]), tf().constant(digits.y_train[:8])))
    view = mixup(tf().constant(digits.x_train[:8]), tf().one_hot(digits.y_train[:8], 10),
                 tf().random.Generator.from_seed(0))[0]
    np.testing.assert_allclose(seen[0].numpy(), view.numpy(), atol=1e-6)  # the mixed view, not the images
    for a, b in zip(before, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)
    # A distilled run differs from the run alone on the same views.
    alone = Distiller(_student(digits), alpha=1.0, augment=mixup, seed=3)
    dist = Distiller(_student(digits), teacher=teacher, alpha=0.0, augment=mixup, seed=3)
    _fit(alone, digits)
    _fit(dist, digits)
    assert any(not np.allclose(a, b) for a, b in zip(alone.student.get_weights(), dist.student.get_weights()))


def test_evaluate_reports_student_accuracy_on_the_images(digits, Distiller, mixup):
    student = _student(digits)
    distiller = Distiller(student, teacher=_teacher(digits), augment=mixup)
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


# --- bookkeeping: seeds, comparison, sweep, verdict, student ------------------------------------------

def _small(digits):
    return lambda: D.build_student_cnn(digits.input_shape, digits.num_classes, filters=2, units=8)


def test_fit_seeds_reuses_one_distiller_and_trains_like_a_fresh_one(digits, Distiller, mixup):
    """The reset between seeds (weights, optimizer, views) leaves no trace: seed 1 trained after seed 0
    equals seed 1 trained first, and equals a fresh distiller trained by hand with the same recipe."""
    x, y = digits.x_train[:200], digits.y_train[:200]
    make, teacher = _small(digits), _teacher(digits)
    recipe = dict(teacher=teacher, temperature=1.0, alpha=0.0, augment=mixup, epochs=2, batch_size=64)
    scores, both = D.fit_seeds(Distiller, make, x, y, digits.x_test, digits.y_test, [0, 1], **recipe)
    _, alone1 = D.fit_seeds(Distiller, make, x, y, digits.x_test, digits.y_test, [1], **recipe)
    _weights_equal(both[1], alone1[1])
    assert list(scores.index) == [0, 1] and scores.between(0, 1).all()
    assert any(not np.allclose(a, b) for a, b in zip(both[0].get_weights(), both[1].get_weights()))

    k = keras()
    fresh = Distiller(D.seeded(make, 1), teacher=teacher, temperature=1.0, alpha=0.0, augment=mixup, seed=1)
    steps = int(np.ceil(len(x) / 64))
    fresh.compile(optimizer=k.optimizers.Adam(k.optimizers.schedules.CosineDecay(3e-3, 2 * steps)))
    fresh.fit(D.batches(x, y, 64, 1), epochs=2, verbose=0)
    _weights_equal(fresh.student, both[1], rtol=1e-6, atol=1e-7)


def test_alone_vs_distilled_reuses_trained_students(digits, Distiller, mixup):
    x, y = digits.x_train[:128], digits.y_train[:128]
    make = _small(digits)
    recipe = dict(augment=mixup, epochs=1, batch_size=64)
    _, given = D.fit_seeds(Distiller, make, x, y, digits.x_test, digits.y_test, [0], alpha=1.0, **recipe)
    runs, students = D.alone_vs_distilled(Distiller, make, _teacher(digits), x, y, digits.x_test, digits.y_test,
                                          (0, 1), trained={("alone", 0): given[0]}, verbose=False, **recipe)
    assert students[("alone", 0)] is given[0]  # reused, not retrained
    assert set(students) == {("alone", 0), ("distilled", 0), ("alone", 1), ("distilled", 1)}
    assert list(runs.index) == [0, 1] and list(runs.columns) == ["alone", "distilled"]
    want = float(np.mean(given[0].predict(digits.x_test, verbose=0).argmax(1) == digits.y_test))
    assert runs.loc[0, "alone"] == pytest.approx(want)


def test_size_sweep_has_one_row_per_size_and_reuses_done_runs(digits, Distiller, mixup):
    x, y = digits.x_train[:128], digits.y_train[:128]
    teacher = models.build_baseline_cnn(digits.input_shape, digits.num_classes)
    sizes = {"tiny": _small(digits), "small": lambda: D.build_student_cnn(digits.input_shape, 10, 4, 16)}
    done = pd.DataFrame({"alone": [0.5, 0.7], "distilled": [0.6, 0.9]}, index=pd.Index([0, 1], name="seed"))
    table = D.size_sweep(Distiller, sizes, teacher, x, y, digits.x_test, digits.y_test, [0, 1],
                         done={"small": done}, verbose=False, augment=mixup, epochs=1, batch_size=64)
    assert list(table.index) == ["tiny", "small"]
    assert table.loc["small", "alone"] == pytest.approx(0.6) and table.loc["small", "gain_pp"] == pytest.approx(15.0)
    assert table.loc["small", "verdict"] == "overlap"
    assert table.loc["tiny", "params"] == _small(digits)().count_params()
    assert table.loc["tiny", "ratio"] == pytest.approx(teacher.count_params() / table.loc["tiny", "params"])
    assert table[["alone", "distilled"]].stack().between(0, 1).all()


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


def test_random_shift_moves_each_image_by_at_most_max_shift():
    random_shift = D.lesson_namespace("views")["random_shift"]
    x = np.zeros((50, 8, 8, 1), np.float32)
    x[:, 3, 4, 0] = 1.0  # one bright pixel
    shifted, labels = random_shift(tf().constant(x), tf().one_hot(np.arange(50) % 10, 10),
                                   tf().random.Generator.from_seed(0), max_shift=1)
    pos = np.argwhere(shifted.numpy()[..., 0] == 1.0)  # (image, row, col)
    assert len(pos) == 50  # the pixel stays inside an 8x8 image, once per image
    assert set(np.abs(pos[:, 1] - 3)) <= {0, 1} and set(np.abs(pos[:, 2] - 4)) <= {0, 1}
    assert len({(r, c) for _, r, c in pos}) > 3  # offsets differ between images
    assert labels.shape == (50, 10)
