"""Tests of `keras_weightinit.gains`: PyTorch's gain table and Keras's fans."""

import math

import keras
import pytest

import keras_weightinit as kwi


@pytest.mark.parametrize(
    "nonlinearity, param, expected",
    [
        ("linear", None, 1.0),
        ("conv2d", None, 1.0),
        ("sigmoid", None, 1.0),
        ("tanh", None, 5 / 3),
        ("relu", None, math.sqrt(2)),
        ("leaky_relu", None, math.sqrt(2 / (1 + 0.01**2))),
        ("leaky_relu", 0.2, math.sqrt(2 / 1.04)),
        ("selu", None, 0.75),
        (keras.activations.relu, None, math.sqrt(2)),
        (keras.activations.tanh, None, 5 / 3),
        (keras.activations.linear, None, 1.0),
        # Keras's leaky_relu function has slope 0.2, PyTorch's name 0.01.
        (keras.activations.leaky_relu, None, math.sqrt(2 / 1.04)),
        (keras.activations.leaky_relu, 0.01, math.sqrt(2 / (1 + 0.01**2))),
    ],
)
def test_calculate_gain_is_the_pytorch_table(nonlinearity, param, expected):
    assert kwi.calculate_gain(nonlinearity, param) == pytest.approx(expected)


@pytest.mark.parametrize(
    "shape, fans",
    [
        ((), (1, 1)),
        ((7,), (7, 7)),
        ((3, 5), (3, 5)),
        ((3, 8, 16), (24, 48)),
        ((3, 3, 8, 16), (72, 144)),
        ((2, 2, 2, 4, 6), (32, 48)),
    ],
)
def test_compute_fans_agrees_with_keras(shape, fans):
    assert kwi.compute_fans(shape) == fans


def test_compute_fans_of_a_transposed_kernel_counts_its_input_channels():
    layer = keras.layers.Conv2DTranspose(16, 3)
    layer.build((None, 8, 8, 4))  # kernel (3, 3, 16, 4): 4 channels in
    assert tuple(layer.kernel.shape) == (3, 3, 16, 4)
    assert kwi.compute_fans(layer.kernel.shape, transposed=True) == (36, 144)
