"""helpers.structured_pruning: layer work, zeroed copies, the accuracy budget, the mobile-style net."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import structured_pruning as sp
from helpers.keras_setup import keras


def _cnn():
    k = keras()
    k.utils.set_random_seed(0)
    return k.Sequential([
        k.layers.InputLayer(input_shape=(8, 8, 1)),
        k.layers.Conv2D(4, 3, padding="same", name="conv"),
        k.layers.Flatten(name="flatten"),
        k.layers.Dense(3, name="dense"),
    ])


def test_layer_work_counts_params_and_macs():
    work = sp.layer_work(_cnn())
    assert list(work.index) == ["conv", "dense", "total"]
    assert work.loc["conv", "params"] == 3 * 3 * 1 * 4 + 4
    assert work.loc["conv", "macs"] == 3 * 3 * 1 * 4 * 8 * 8
    assert work.loc["dense", "macs"] == 8 * 8 * 4 * 3
    assert work.loc["total", "macs"] == work.loc["conv", "macs"] + work.loc["dense", "macs"]


def test_layer_work_counts_depthwise_and_nested():
    net = sp.build_inverted_residual_net((8, 8, 1), 10, expansions=(6,), outputs=(4,), strides=(2,))
    work = sp.layer_work(net)
    assert work.loc["block0_depthwise", "macs"] == 3 * 3 * 6 * 4 * 4  # stride 2: 4x4 outputs, one input channel each
    assert work.loc["block0_expand", "params"] == 16 * 6
    assert work.loc["total", "params"] == sum(int(np.prod(w.shape)) for w in net.weights
                                              if "bn" not in w.name)


def test_layer_work_refuses_a_model_without_counted_layers():
    k = keras()
    model = k.Sequential([k.layers.InputLayer(input_shape=(4,)), k.layers.ReLU()])
    with pytest.raises(ValueError, match="no Conv2D"):
        sp.layer_work(model)


def test_zeroed_copy_zeroes_only_dropped_channels():
    model = _cnn()
    copy = sp.zeroed_copy(model, {"conv": [0, 2]})
    kernel, bias = copy.get_layer("conv").get_weights()
    original = model.get_layer("conv").get_weights()[0]
    assert np.all(kernel[..., [1, 3]] == 0) and np.all(bias[[1, 3]] == 0)
    np.testing.assert_array_equal(kernel[..., [0, 2]], original[..., [0, 2]])
    assert np.any(model.get_layer("conv").get_weights()[0][..., 1] != 0), "the original must be untouched"
    np.testing.assert_array_equal(copy.get_layer("dense").get_weights()[0], model.get_layer("dense").get_weights()[0])


@pytest.mark.parametrize("keep, message", [({"nope": [0]}, "no layer named"), ({"conv": [0, 9]}, "distinct indices"),
                                           ({"conv": []}, "distinct indices"), ({"conv": [1, 1]}, "distinct indices")])
def test_zeroed_copy_refuses_bad_keep(keep, message):
    with pytest.raises(ValueError, match=message):
        sp.zeroed_copy(_cnn(), keep)


def _frame():
    return pd.DataFrame(
        {"accuracy": [0.99, 0.985, 0.97, 0.99, 0.99], "gzip_bytes": [300, 100, 50, 80, 10]},
        index=["pruned_50_fp32", "pruned_80_fp32", "pruned_90_fp32", "pruned_mobile_probe", "ptq_int8"],
    )


def test_within_budget_filters_by_name_and_accuracy():
    picked = sp.within_budget(_frame(), reference_accuracy=0.99, budget_points=1.0)
    assert list(picked.index) == ["pruned_80_fp32", "pruned_50_fp32"]  # smallest gzip first; 90 is 2 points down
    assert list(sp.within_budget(_frame(), 0.99, 2.0).index) == ["pruned_90_fp32", "pruned_80_fp32", "pruned_50_fp32"]
    assert sp.within_budget(_frame(), 0.99, 0.0).index.tolist() == ["pruned_50_fp32"]


@pytest.mark.parametrize("ref, budget", [(1.5, 1.0), (0.9, -1.0), (0.9, float("nan"))])
def test_within_budget_refuses_bad_numbers(ref, budget):
    with pytest.raises(ValueError):
        sp.within_budget(_frame(), ref, budget)


def test_inverted_residual_net_keeps_block_outputs_when_expansions_shrink():
    wide = sp.build_inverted_residual_net((8, 8, 1), 10)
    narrow = sp.build_inverted_residual_net((8, 8, 1), 10, expansions=(48, 48, 72, 72, 96))
    for i in range(5):
        assert wide.get_layer(f"block{i}_project").output_shape == narrow.get_layer(f"block{i}_project").output_shape
        assert narrow.get_layer(f"block{i}_expand").output_shape[-1] == (48, 48, 72, 72, 96)[i]
    assert narrow.count_params() < wide.count_params()
    assert [layer.name for layer in wide.layers] == [layer.name for layer in narrow.layers]


def test_inverted_residual_net_same_weights_at_another_resolution():
    net = sp.build_inverted_residual_net((8, 8, 1), 10)
    big = sp.build_inverted_residual_net((8, 8, 1), 10, resolution=32)
    big.set_weights(net.get_weights())  # raises if any shape depended on the input size
    assert big.get_layer("block4_project").output_shape[1:3] == (8, 8)


def test_inverted_residual_net_refuses_mismatched_blocks():
    with pytest.raises(ValueError, match="one entry per block"):
        sp.build_inverted_residual_net((8, 8, 1), 10, expansions=(6, 6), outputs=(4,), strides=(1,))
    with pytest.raises(ValueError, match="at least one channel"):
        sp.build_inverted_residual_net((8, 8, 1), 10, expansions=(0,), outputs=(4,), strides=(1,))
