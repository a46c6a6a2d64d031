"""Fans and gains: the two numbers every scaled initializer is built from."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import keras

from keras_weightinit.checks import is_number, positive_shape

__all__ = [
    "activation_family",
    "activation_name",
    "calculate_gain",
    "compute_fans",
    "nonlinearity_name",
]

# The layers whose kernels are stored `(*kernel_size, out, in)`.
CONV_TRANSPOSE = (
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)

_ALIASES = {
    "linear": "linear",
    "identity": "linear",
    "conv1d": "linear",
    "conv2d": "linear",
    "conv3d": "linear",
    "conv_transpose1d": "linear",
    "conv_transpose2d": "linear",
    "conv_transpose3d": "linear",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "selu": "selu",
}


def compute_fans(shape: Sequence[int], transposed: bool = False) -> tuple[int, int]:
    """Returns `(fan_in, fan_out)` of a kernel shape, as Keras computes them.

    A Dense kernel is `(fan_in, fan_out)`; a convolution kernel is
    `(*kernel_size, in_channels, out_channels)`, whose fans are the channel
    counts times the receptive field size `prod(kernel_size)`. A vector has
    `fan_in = fan_out = len`, a scalar `1, 1`.

    A `ConvTranspose` kernel is stored `(*kernel_size, out_channels,
    in_channels)`; Keras's and PyTorch's initializers read it like a
    convolution kernel and so swap its fans. `transposed=True` counts the
    input channels in `fan_in`, as the layer's forward pass does.

    Args:
        shape: The kernel shape.
        transposed: Whether `shape` is a `ConvTranspose` kernel.

    Returns:
        The pair `(fan_in, fan_out)` of Python ints.

    Raises:
        ValueError: `shape` is not a sequence of positive ints.

    Example:

    >>> compute_fans((3, 3, 16, 32))
    (144, 288)
    >>> compute_fans((3, 3, 16, 32), transposed=True)  # 32 channels in
    (288, 144)

    Reference:
        Glorot & Bengio, "Understanding the difficulty of training deep
        feedforward neural networks", AISTATS 2010 (the fans); Keras
        `keras.initializers.VarianceScaling` (the convolution layout).
    """
    shape = positive_shape("shape", shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    fans = shape[-2] * receptive_field, shape[-1] * receptive_field
    return fans[::-1] if transposed else fans


# activation name -> the family of its initialization (He, Xavier, LeCun)
_FAMILIES = {
    "relu": "he",
    "relu6": "he",
    "elu": "he",
    "celu": "he",
    "gelu": "he",
    "silu": "he",
    "swish": "he",
    "hard_silu": "he",
    "hard_swish": "he",
    "mish": "he",
    "softplus": "he",
    "sparse_plus": "he",
    "squareplus": "he",
    "leaky_relu": "leaky_relu",
    "tanh": "tanh",
    "hard_tanh": "tanh",
    "selu": "lecun",
    "linear": "glorot",
    "sigmoid": "glorot",
    "hard_sigmoid": "glorot",
    "softsign": "glorot",
    "soft_sign": "glorot",
    "softmax": "glorot",
    "log_softmax": "glorot",
}


def activation_family(name: str | None) -> str | None:
    """The initialization family of an activation: he, leaky_relu, tanh, lecun, glorot.

    One table for `initialize(model, "auto")` and µP's standard draws; a
    package's variant is known by its base name.

    `"keras_hub>gelu_approximate"` is a `gelu`: the part after `>` and then
    the longest known name it starts with are tried. None for an unknown
    activation.

    Example:

    >>> activation_family("keras_hub>gelu_approximate"), activation_family("selu")
    ('he', 'lecun')
    """
    if name is None:
        return None
    base = name.rsplit(">", 1)[-1]
    for key in (name, base):
        if key in _FAMILIES:
            return _FAMILIES[key]
    for key in sorted(_FAMILIES, key=len, reverse=True):
        if base.startswith(key):
            return _FAMILIES[key]
    return None


def activation_name(activation: Callable | None) -> str | None:
    """The lower-case Keras name of an activation function, None if it has none.

    `None` (a layer without activation) is `"linear"`; a registered custom
    activation gives its registered name; a lambda or other unnamed callable
    gives None.

    Example:

    >>> activation_name(keras.activations.gelu)
    'gelu'
    """
    if activation is None:
        return "linear"
    # here, not at the top: `graph` reads this module when it is imported
    from keras_weightinit.graph import configs_without_tensorflow

    with warnings.catch_warnings(), configs_without_tensorflow():
        warnings.simplefilter("ignore")  # Keras warns when it serializes a lambda
        name = keras.activations.serialize(activation)
    if isinstance(name, dict):  # a registered custom activation
        name = name.get("config", name.get("class_name"))
    return name.lower() if isinstance(name, str) else None


def nonlinearity_name(nonlinearity: str | Callable) -> str:
    """Returns the canonical table name of an activation name or function.

    Accepts the names of `calculate_gain`'s table (and `"identity"`, the
    PyTorch convolution names) and Keras activation functions such as
    `keras.activations.relu`. Raises `ValueError` for anything else.
    """
    name = activation_name(nonlinearity) if callable(nonlinearity) else nonlinearity
    if isinstance(name, str) and name.lower() in _ALIASES:
        return _ALIASES[name.lower()]
    raise ValueError(
        "Argument `nonlinearity` must be one of "
        f"{sorted(set(_ALIASES))} or the matching Keras activation. "
        f"Received: nonlinearity={nonlinearity!r}"
    )


def calculate_gain(nonlinearity: str | Callable, param: float | None = None) -> float:
    """Returns the recommended gain for a nonlinearity (PyTorch's table).

    The gain multiplies the standard deviation of a scaled initializer so
    that the nonlinearity keeps the signal's variance from layer to layer:

    | nonlinearity      | gain                       |
    |-------------------|----------------------------|
    | linear, conv*     | `1`                        |
    | sigmoid           | `1`                        |
    | tanh              | `5 / 3`                    |
    | relu              | `sqrt(2)`                  |
    | leaky_relu        | `sqrt(2 / (1 + a ** 2))`   |
    | selu              | `3 / 4`                    |

    Args:
        nonlinearity: A name from the table or a Keras activation function
            (`keras.activations.tanh`, ...).
        param: The negative slope `a` of `leaky_relu`: by default `0.01` for
            the name (PyTorch's default) and `0.2` for the function
            `keras.activations.leaky_relu` (Keras's default); must be `None`
            for the other nonlinearities.

    Returns:
        The gain, a Python float.

    Example:

    >>> round(calculate_gain("relu"), 4)
    1.4142
    >>> round(calculate_gain(keras.activations.tanh), 4)
    1.6667

    Reference:
        PyTorch `torch.nn.init.calculate_gain`; He et al., "Delving Deep into
        Rectifiers", ICCV 2015; Klambauer et al., "Self-Normalizing Neural
        Networks", NeurIPS 2017 (selu's 3/4).
    """
    name = nonlinearity_name(nonlinearity)
    if name == "leaky_relu":
        if param is None:
            param = 0.2 if callable(nonlinearity) else 0.01
        elif not is_number(param):
            raise ValueError(
                "Argument `param` (the negative slope of leaky_relu) must be a "
                f"number. Received: param={param!r}"
            )
        return math.sqrt(2.0 / (1.0 + float(param) ** 2))
    if param is not None:
        raise ValueError(
            f"Argument `param` is only used with nonlinearity='leaky_relu'. "
            f"Received: param={param!r} with nonlinearity={nonlinearity!r}"
        )
    return {
        "linear": 1.0,
        "sigmoid": 1.0,
        "tanh": 5.0 / 3.0,
        "relu": math.sqrt(2.0),
        "selu": 0.75,
    }[name]
