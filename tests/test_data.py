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
    assert ds.name == "mine" and ds.input_shape == (6, 6, 1) and ds.num_classes == 4
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
