from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import models, paths, training
from helpers.keras_setup import Keras3ModelError, ensure_keras2_model
from helpers.repro import set_seed


def test_importing_helpers_selects_legacy_keras():
    assert os.environ["TF_USE_LEGACY_KERAS"] == "1"
    from helpers.keras_setup import tf

    assert tf().keras.__name__.startswith("tf_keras") or "tf_keras" in type(tf().keras.Model).__module__


def test_tensorflow_imported_first_without_the_flag_is_refused():
    code = "import tensorflow, helpers"
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "import `helpers` first" in out.stderr


def test_keras3_model_is_refused_with_a_clear_error(tiny_keras):
    assert ensure_keras2_model(tiny_keras) is tiny_keras
    import keras as keras3  # the Keras 3 package that TensorFlow installs

    k3 = keras3.Sequential([keras3.Input((4,)), keras3.layers.Dense(2)])
    with pytest.raises(Keras3ModelError, match="Keras 3 model"):
        ensure_keras2_model(k3)
    with pytest.raises(Keras3ModelError):
        ensure_keras2_model("not a model")


def _train_once(digits, seed):
    set_seed(seed)
    model = models.compile_classifier(models.build_baseline_cnn(digits.input_shape, digits.num_classes))
    history = training.fit(model, digits.x_train[:200], digits.y_train[:200], (digits.x_val, digits.y_val), epochs=2, seed=seed, every=5)
    return model, history


def test_training_is_reproducible_and_compact(digits, capsys):
    m1, h1 = _train_once(digits, 0)
    m2, h2 = _train_once(digits, 0)
    assert list(h1.columns) == ["loss", "accuracy", "val_loss", "val_accuracy"] and len(h1) == 2
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 2 and printed[0].startswith("epoch   2/2")  # only the last epoch (every=5)


def test_epoch_lines_reach_the_console_only_when_asked(digits, monkeypatch, capsys):
    import io

    console = io.StringIO()
    monkeypatch.setattr(sys, "__stdout__", console)  # a kernel: sys.stdout is the notebook, __stdout__ the console
    line = training.EpochLine(epochs=2)
    line.on_train_begin()
    line.on_epoch_end(0, {"loss": 1.0})
    assert console.getvalue() == "" and "epoch   1/2" in capsys.readouterr().out
    monkeypatch.setenv(training.CONSOLE_PROGRESS_ENV, "1")
    line.on_epoch_end(1, {"loss": 0.5})
    assert "epoch   2/2  loss 0.5000" in console.getvalue() and "epoch   2/2" in capsys.readouterr().out


def test_fit_refuses_mismatched_data(digits):
    model = models.compile_classifier(models.build_baseline_cnn(digits.input_shape, digits.num_classes))
    with pytest.raises(ValueError, match="rows"):
        training.fit(model, digits.x_train[:10], digits.y_train[:9])
    with pytest.raises(ValueError):
        set_seed(-1)


def test_model_builders(digits):
    base = models.build_baseline_cnn(digits.input_shape, digits.num_classes)
    assert 50_000 < base.count_params() < 400_000
    mobile = models.build_mobile_model(digits.input_shape, digits.num_classes, alpha=0.35, resolution=32)
    assert mobile.output_shape == (None, 10) and mobile.count_params() > 300_000
    with pytest.raises(ValueError):
        models.build_mobile_model(digits.input_shape, 10, resolution=16)


def test_make_strategy_mirrors_only_over_several_gpus(monkeypatch):
    from helpers.keras_setup import tf

    tf_ = tf()
    assert tf_.config.list_logical_devices("GPU") == []  # this machine: CPU only
    assert training.make_strategy() is tf_.distribute.get_strategy()
    assert training.make_strategy().num_replicas_in_sync == 1
    mirrored = object()
    monkeypatch.setattr(tf_.distribute, "MirroredStrategy", lambda: mirrored)
    monkeypatch.setattr(tf_.config, "list_logical_devices", lambda kind: ["gpu0", "gpu1"] if kind == "GPU" else [])
    assert training.make_strategy() is mirrored
    monkeypatch.setattr(tf_.config, "list_logical_devices", lambda kind: ["gpu0"] if kind == "GPU" else [])
    assert training.make_strategy() is tf_.distribute.get_strategy()  # one GPU: nothing to mirror


def test_load_or_train_baseline_rebuilds_when_missing(tmp_path, digits, monkeypatch):
    monkeypatch.setitem(models.BASELINE_RECIPE, "epochs", 1)
    model = models.load_or_train_baseline(tmp_path, digits)
    assert (tmp_path / models.BASELINE_KERAS).exists()
    again = models.load_or_train_baseline(tmp_path, digits)  # now loaded, not retrained
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_paths(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path / "d"))
    assert paths.data_dir() == tmp_path / "d" and (tmp_path / "d").is_dir()
    assert paths.models_dir(tmp_path, "digits").name == "models"
    assert paths.models_dir(tmp_path, "/x/own.npz").name.startswith("models-npz-own-")
    assert paths.models_dir(tmp_path, "/x/own.npz") != paths.models_dir(tmp_path, "/y/own.npz")
    assert paths.models_dir(tmp_path, "/x/digits.npz").name != "models"
    assert paths.models_dir(tmp_path, "mnist").name == "models-mnist"
    f = paths.atomic_write_text(tmp_path / "a" / "b.txt", "hi")
    assert f.read_text() == "hi" and [p.name for p in f.parent.iterdir()] == ["b.txt"]
    assert oct(f.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert paths.relative_to_data(tmp_path / "d" / "models" / "x.tflite", tmp_path / "d") == "d/models/x.tflite"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_write_with_cleans_up_and_never_shares_a_temp_name(tmp_path):
    target = tmp_path / "plot.png"

    def fails(tmp):
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        paths.atomic_write_with(target, fails)
    assert list(tmp_path.iterdir()) == []  # no target, no temp file left behind
    seen = []
    paths.atomic_write_with(target, lambda tmp: (seen.append(tmp), tmp.write_bytes(b"1")))
    paths.atomic_write_with(target, lambda tmp: (seen.append(tmp), tmp.write_bytes(b"2")))
    assert seen[0] != seen[1] and seen[0].suffix == ".png" and target.read_bytes() == b"2"
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]


def test_save_keras_atomic_uses_a_unique_temp_and_cleans_up(tmp_path, tiny_keras, monkeypatch):
    path = models.save_keras_atomic(tiny_keras, tmp_path / "m.keras")
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]
    from helpers.keras_setup import keras

    np.testing.assert_array_equal(keras().models.load_model(path).get_weights()[0], tiny_keras.get_weights()[0])

    class Broken:
        def save(self, filepath):
            open(filepath, "wb").write(b"partial")
            raise RuntimeError("serialization failed")

    with pytest.raises(RuntimeError, match="serialization failed"):
        models.save_keras_atomic(Broken(), tmp_path / "m.keras")
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]  # old model intact, no temp left
    keras().models.load_model(path)


def test_quiet_native_stderr_restores_fd2_under_threads(tmp_path):
    """Many threads entering and leaving at random: fd 2 must end where it started, and stay
    silenced while any thread is still inside (a lock and a reference count)."""
    import random
    import threading
    import time

    from helpers import keras_setup
    from helpers.keras_setup import quiet_native_stderr

    def target() -> tuple[int, int]:
        st = os.fstat(2)
        return st.st_dev, st.st_ino

    devnull = os.stat(os.devnull)
    before = target()
    assert before != (devnull.st_dev, devnull.st_ino)

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        for _ in range(200):
            with quiet_native_stderr():
                time.sleep(rnd.random() * 1e-4)
                assert target() == (devnull.st_dev, devnull.st_ino)
                if rnd.random() < 0.3:
                    with quiet_native_stderr():  # nested, as tf() inside a silenced block
                        pass

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target() == before and keras_setup._stderr_depth == 0

    inside, release = threading.Event(), threading.Event()

    def holder() -> None:
        with quiet_native_stderr():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    inside.wait(10)
    with quiet_native_stderr():
        pass
    assert target() == (devnull.st_dev, devnull.st_ino)  # the other thread is still inside: still silenced
    release.set()
    t.join()
    assert target() == before


def test_importing_helpers_sets_no_warning_filters_or_plot_style():
    code = (
        "import warnings, matplotlib, matplotlib.pyplot, seaborn, pandas, sklearn.model_selection, jsonschema, filelock; "
        "before = (list(warnings.filters), dict(matplotlib.rcParams)); "  # third-party imports add their own filters
        "import helpers, helpers.plots, helpers.registry, helpers.selection, helpers.data; "
        "assert list(warnings.filters) == before[0], 'warning filters changed'; "
        "assert dict(matplotlib.rcParams) == before[1], 'plot style changed'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr


def test_plots_draw_in_the_workbook_style_without_changing_the_global_one(digits):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from helpers import plots

    before = dict(plt.rcParams)
    fig = plots.class_balance({"train": digits.y_train}, digits.class_names)
    assert dict(plt.rcParams) == before
    ax = fig.axes[0]
    assert any(line.get_visible() for line in ax.get_ygridlines())  # whitegrid inside the function
    with plots.style():
        assert plt.rcParams["axes.grid"] is True
    assert plt.rcParams["axes.grid"] == before["axes.grid"]
    plt.close("all")


def test_ensure_baseline_fp32_builds_registers_and_repairs(tmp_path, digits, monkeypatch):
    from helpers import registry

    monkeypatch.setitem(models.BASELINE_RECIPE, "epochs", 1)
    model, path = models.ensure_baseline_fp32(tmp_path, digits)
    entry = registry.load_manifest(registry.manifest_path(tmp_path))["variants"][0]
    assert path.name == "baseline_fp32.tflite" and entry["name"] == "baseline_fp32"
    assert entry["params"] == model.count_params() and entry["technique"] == "baseline"
    stamp = path.stat().st_mtime_ns
    assert models.ensure_baseline_fp32(tmp_path, digits)[1].stat().st_mtime_ns == stamp  # intact: reused
    path.write_bytes(b"damaged")
    _, repaired = models.ensure_baseline_fp32(tmp_path, digits)
    from helpers.accounting import sha256

    assert repaired.read_bytes()[4:8] == b"TFL3"
    assert registry.load_manifest(registry.manifest_path(tmp_path))["variants"][0]["sha256"] == sha256(repaired)
