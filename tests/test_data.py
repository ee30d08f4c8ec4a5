from __future__ import annotations

import urllib.error

import numpy as np
import pytest

from helpers import data


def test_digits_splits_are_fixed_disjoint_and_scaled(digits):
    again = data.load_digits(seed=0)
    assert np.array_equal(digits.y_test, again.y_test)
    assert (len(digits.y_train), len(digits.y_val), len(digits.y_test)) == (1077, 270, 450)
    assert digits.input_shape == (8, 8, 1) and digits.num_classes == 10
    assert digits.x_train.dtype == np.float32 and 0.0 <= digits.x_train.min() and digits.x_train.max() <= 1.0
    # no image shared between train and test
    train = {x.tobytes() for x in digits.x_train}
    assert sum(x.tobytes() in train for x in digits.x_test) < 5  # the raw dataset has a few duplicates
    # stratified: every class in every split
    assert set(digits.y_val) == set(range(10)) == set(digits.y_test)


def test_other_seed_gives_other_split():
    assert not np.array_equal(data.load_digits(seed=0).y_test, data.load_digits(seed=1).y_test)


def test_dataset_name_from_env(monkeypatch):
    monkeypatch.setenv(data.DATASET_ENV, "fashion_mnist")
    assert data.dataset_name() == "fashion_mnist"
    assert data.dataset_name("digits") == "digits"
    monkeypatch.delenv(data.DATASET_ENV)
    assert data.dataset_name() == "digits"


def test_unknown_dataset_names_the_choices():
    with pytest.raises(data.DatasetUnavailableError, match="Unknown dataset 'imagenet'.*digits"):
        data.load_dataset("imagenet")


def test_offline_download_gives_one_clear_error(monkeypatch, tmp_path):
    def offline(cache_dir=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    from helpers.keras_setup import keras

    monkeypatch.setattr(keras().datasets.mnist, "load_data", offline)
    with pytest.raises(data.DatasetUnavailableError, match="offline.*WORKBOOK_DATASET=digits"):
        data.load_dataset("mnist", data=tmp_path)


def test_downloadable_dataset_needs_the_data_folder():
    with pytest.raises(ValueError, match="data="):
        data.load_dataset("cifar10")


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_own_npz_is_loaded_scaled_and_split(tmp_path, rng):
    x = rng.integers(0, 256, size=(200, 6, 6), dtype=np.uint8)
    y = np.arange(200) % 4
    path = _write_npz(tmp_path / "mine.npz", x_train=x, y_train=y, x_test=x[:40], y_test=y[:40])
    ds = data.load_dataset(str(path))
    assert ds.name.startswith("npz-mine-") and ds.input_shape == (6, 6, 1) and ds.num_classes == 4
    assert len(ds.y_train) + len(ds.y_val) == 200 and len(ds.y_test) == 40
    assert ds.x_train.max() <= 1.0


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": np.zeros((4, 3, 3)), "y_train": np.zeros(4)}, "lacks x_test, y_test"),
        ({"x_train": np.zeros((4, 3, 3)), "y_train": np.zeros(3), "x_test": np.zeros((2, 3, 3)), "y_test": np.zeros(2)}, "4 rows but y_train has 3"),
        ({"x_train": np.zeros((4, 9)), "y_train": np.zeros(4), "x_test": np.zeros((2, 9)), "y_test": np.zeros(2)}, r"expected \(N, H, W\)"),
        ({"x_train": np.zeros((4, 3, 3)), "y_train": np.zeros(4), "x_test": np.zeros((2, 4, 4)), "y_test": np.zeros(2)}, "differ"),
    ],
)
def test_malformed_npz_is_refused_clearly(tmp_path, arrays, message):
    path = _write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(data.DatasetUnavailableError, match=message):
        data.load_npz(path)


def _good(n=40, classes=4, **over):
    x = np.random.default_rng(0).random((n, 5, 5), dtype=np.float32)
    y = np.arange(n) % classes
    arrays = {"x_train": x, "y_train": y, "x_test": x[:12], "y_test": y[:12]}
    arrays.update(over)
    return {k: v for k, v in arrays.items() if v is not None}


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"y_train": np.r_[np.arange(39) % 4, 4], "class_names": np.array(["a", "b", "c", "d"])},
         "a label is 4 but class_names names only 4 classes"),
        ({"y_train": (np.arange(40) % 4) + 0.5}, "holds 0.5, which is not a class index"),
        ({"y_train": np.where(np.arange(40) == 3, np.nan, np.arange(40) % 4)}, "not a class index"),
        ({"y_train": np.array(["cat", "dog"] * 20)}, "labels must be integer class indices"),
        ({"y_train": -(np.arange(40) % 4)}, "a label is -3"),
        ({"y_train": np.eye(4)[np.arange(40) % 4]}, "one-hot labels"),
        ({"x_train": np.where(np.arange(40)[:, None, None] == 7, np.nan, np.ones((40, 5, 5)))}, r"25 NaN or infinite pixel value\(s\) in 1 image"),
        ({"x_test": np.full((12, 5, 5), np.inf)}, "NaN or infinite"),
        ({"x_train": -np.ones((40, 5, 5))}, r"pixel values span \[-1, "),
        ({"x_train": np.full((40, 5, 5), 300.0)}, "0..255"),
        ({"x_train": np.full((40, 5, 5), 1000, dtype=np.int32)}, "0..255"),
        ({"x_train": np.zeros((40, 5, 5), dtype=bool)}, "dtype bool"),
        ({"x_val": np.zeros((4, 5, 5))}, "has x_val but no y_val"),
        ({"y_val": np.zeros(4, int)}, "has y_val but no x_val"),
        ({"x_val": np.zeros((4, 5, 5)), "y_val": np.zeros(3, int)}, "x_val has 4 rows but y_val has 3"),
        ({"x_val": np.zeros((4, 6, 6)), "y_val": np.zeros(4, int)}, r"val images \(6, 6, 1\) and train images \(5, 5, 1\) differ"),
        ({"x_val": np.zeros((0, 5, 5)), "y_val": np.zeros(0, int)}, "x_val is empty"),
        ({"x_train": np.zeros((0, 5, 5)), "y_train": np.zeros(0, int)}, "x_train is empty"),
        ({"y_test": np.zeros(0, int)}, "y_test is empty"),
        ({"y_train": np.r_[np.arange(39) % 3, 3]}, "class '3' has only 1 training image"),
        ({"class_names": np.array(["a", "a", "b", "c"])}, "duplicates"),
        ({"class_names": np.array("abcd")}, "non-empty list of names"),
    ],
)
def test_npz_contents_are_checked(tmp_path, over, message):
    path = _write_npz(tmp_path / "own.npz", **_good(**over))
    with pytest.raises(data.DatasetUnavailableError, match=message):
        data.load_npz(path)


def test_too_few_images_to_split_is_a_clear_error(tmp_path):
    path = _write_npz(tmp_path / "few.npz", **_good(n=8, classes=4))  # 2 per class, 10 % val < 4 classes
    with pytest.raises(data.DatasetUnavailableError, match="cannot carve a stratified validation split"):
        data.load_npz(path)


def test_float_images_in_0_255_are_scaled_with_a_warning(tmp_path):
    arrays = _good()
    arrays = {**arrays, "x_train": arrays["x_train"] * 255, "x_test": arrays["x_test"] * 255}
    path = _write_npz(tmp_path / "bytes.npz", **arrays)
    with pytest.warns(UserWarning, match="divided by 255"):
        ds = data.load_npz(path)
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0 and ds.x_test.max() <= 1.0


def test_labels_in_other_integer_forms_are_accepted(tmp_path):
    y = np.arange(40) % 4
    path = _write_npz(tmp_path / "ok.npz", **_good(y_train=y.astype(np.float64)[:, None], y_test=y[:12].astype(np.uint8),
                                                 x_val=np.zeros((4, 5, 5, 1), np.float32), y_val=np.arange(4),
                                                 class_names=np.array(["a", "b", "c", "d", "unused"])))
    ds = data.load_npz(path)
    assert ds.y_train.dtype == np.int64 and ds.num_classes == 5 and len(ds.y_val) == 4 and len(ds.y_train) == 40


def test_own_datasets_never_share_a_models_folder(tmp_path):
    from helpers.paths import models_dir

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    files = [_write_npz(tmp_path / f, **_good()) for f in ("digits.npz", "mnist.npz", "a/x.npz", "b/x.npz", "my.data.npz")]
    folders = [models_dir(tmp_path / "data", data.load_npz(f).name) for f in files]
    builtins = [models_dir(tmp_path / "data", n) for n in ("digits", "mnist", "fashion_mnist", "cifar10")]
    assert len({f.name for f in folders + builtins}) == len(folders) + len(builtins)
    assert all(f.name.startswith("models-npz-") for f in folders)
    # the path form (WORKBOOK_DATASET=/path/x.npz) and the loaded dataset's name file to the same folder
    assert [models_dir(tmp_path / "data", str(f)) for f in files] == folders
    assert data.load_npz(files[0]).name == data.load_npz(files[0]).name  # stable


def test_corrupt_or_missing_npz(tmp_path):
    bad = tmp_path / "garbage.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(data.DatasetUnavailableError, match="not a readable .npz"):
        data.load_npz(bad)
    with pytest.raises(data.DatasetUnavailableError, match="No dataset file"):
        data.load_npz(tmp_path / "absent.npz")


def test_representative_batches_yield_single_float_samples(digits):
    gen = data.representative_batches(digits.x_train, 7, seed=3)
    batches = list(gen())
    assert len(batches) == 7 and all(b[0].shape == (1, 8, 8, 1) and b[0].dtype == np.float32 for b in batches)
    assert [b[0].tobytes() for b in batches] == [b[0].tobytes() for b in gen()]  # same seed, same samples
    with pytest.raises(ValueError):
        data.representative_batches(digits.x_train, 0)
