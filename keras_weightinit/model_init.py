"""Initializing a whole built model: per-activation `initialize` and data-driven `lsuv`.

Neither fits `kernel_initializer=`: `initialize(model, "auto")` looks at the
activation that follows each layer, and `lsuv` needs a built model and a batch
of data (keras-team/keras#3608). Both re-initialize, in place, the kernels of
the model's Dense and Conv layers (`Dense`, `Conv1D/2D/3D` and their
`Transpose` versions) and leave every other weight alone; both either finish
or leave the model exactly as it was.
"""

from __future__ import annotations

import math
import random as python_random
import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_weightinit.checks import positive_int, positive_number
from keras_weightinit.data import as_array, check_model_input
from keras_weightinit.gains import CONV_TRANSPOSE, activation_name
from keras_weightinit.initializers import (
    HeNormal,
    Orthogonal,
    XavierNormal,
    get_scheme,
    scheme_names,
)
from keras_weightinit.seeds import Seed, check_seed, spawn_seeds

__all__ = ["LSUVReport", "check_lsuv_args", "initialize", "lsuv"]


_CONV = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_KERNEL_LAYERS = (keras.layers.Dense, *_CONV, *CONV_TRANSPOSE)

# Layers that may sit between a linear Dense/Conv and its activation layer.
_PASS_THROUGH = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
    keras.layers.Dropout,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
)

# Samples LSUV collects from a tf.data.Dataset or PyDataset.
_DATASET_SAMPLES = 1024

# activation name -> family of `_AUTO`
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


def _auto_initializer(family: str, slope: float, seed: Seed):
    if family == "he":
        return HeNormal(seed=seed)
    if family == "leaky_relu":
        return HeNormal(negative_slope=slope, seed=seed)
    if family == "tanh":
        return XavierNormal(gain="tanh", seed=seed)
    if family == "lecun":
        return XavierNormal(mode="fan_in", seed=seed)
    return XavierNormal(seed=seed)


# --------------------------------------------------------------------------
# argument checks


def _check_model(model) -> keras.Model:
    if not isinstance(model, keras.Model):
        raise ValueError(
            "Argument `model` must be a `keras.Model`. "
            f"Received: model of type {type(model).__name__}"
        )
    return model


def check_lsuv_args(tol=0.1, max_iters=10, orthogonal=True, verbose=0, seed=None):
    """Raises `ValueError` for a bad `lsuv` argument; returns them checked.

    `LSUVInit` calls it at construction, so a bad value fails before `fit`.

    Example:

    >>> check_lsuv_args(tol=0.05, max_iters=20)
    (0.05, 20, True, 0, None)
    """
    tol = positive_number("tol", tol)
    max_iters = positive_int("max_iters", max_iters)
    if not isinstance(orthogonal, bool):
        raise ValueError(
            "Argument `orthogonal` must be True or False. "
            f"Received: orthogonal={orthogonal!r}"
        )
    if verbose not in (0, 1):
        raise ValueError(
            f"Argument `verbose` must be 0 or 1. Received: verbose={verbose!r}"
        )
    return tol, max_iters, orthogonal, verbose, check_seed(seed)


# --------------------------------------------------------------------------
# finding the layers


def _has_kernel(layer) -> bool:
    kernel = getattr(layer, "kernel", None)
    return isinstance(kernel, keras.Variable) and keras.backend.is_float_dtype(
        kernel.dtype
    )


def _walk(model: keras.Model):
    """Yields `(layer, container)` for the kernel layers, nested models included."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _walk(layer)
        elif isinstance(layer, _KERNEL_LAYERS):
            yield layer, model


def _kernel_layers(model: keras.Model, what: str) -> list:
    """The built Dense/Conv layers of `model`; raises if none or one unbuilt."""
    pairs = list(_walk(model))
    unbuilt = [layer.name for layer, _ in pairs if not layer.built]
    if not model.built or unbuilt:
        raise ValueError(
            f"{what} needs a built model, but model {model.name!r} is not built"
            + (f" (layers {unbuilt})" if unbuilt else "")
            + ". Call `model.build(input_shape)` or call the model on data first."
        )
    pairs = [(layer, container) for layer, container in pairs if _has_kernel(layer)]
    if not pairs:
        raise ValueError(
            f"{what} needs a model with Dense or Conv layers holding float "
            f"kernels. Received: model {model.name!r} with layers "
            f"{[layer.name for layer in model.layers]}"
        )
    return pairs


def _consumers(container: keras.Model) -> dict[int, list]:
    """`id(tensor) -> layers that take it`, for a functional container."""
    consumers: dict[int, list] = {}
    for layer in container.layers:
        try:
            inputs = keras.tree.flatten(layer.input)
        except (AttributeError, ValueError):  # never called, or shared
            continue
        for tensor in inputs:
            consumers.setdefault(id(tensor), []).append(layer)
    return consumers


def _next_layer(layer, container, cache: dict):
    """The only layer fed by `layer`'s output, or None."""
    if isinstance(container, keras.Sequential):
        layers = container.layers
        index = layers.index(layer)
        return layers[index + 1] if index + 1 < len(layers) else None
    if id(container) not in cache:
        cache[id(container)] = _consumers(container)
    try:
        users = cache[id(container)].get(id(layer.output), [])
    except (AttributeError, ValueError):
        return None
    return users[0] if len(users) == 1 else None


# --------------------------------------------------------------------------
# activations


def _function_activation(function) -> tuple[str | None, float]:
    """`(name, negative slope)` of an activation function or layer."""
    if isinstance(function, keras.layers.Layer):
        return _layer_activation(function)
    name = activation_name(function)
    if name is None:
        return None, 0.0
    return name, (0.2 if name == "leaky_relu" else 0.0)  # Keras's default slope


def _layer_activation(layer) -> tuple[str | None, float]:
    """`(name, negative slope)` of an activation layer, `(None, 0)` otherwise."""
    if isinstance(layer, (keras.layers.ReLU, keras.layers.LeakyReLU)):
        slope = float(layer.negative_slope)
        if isinstance(layer, keras.layers.LeakyReLU) or slope > 0:
            return "leaky_relu", slope
        return "relu", 0.0
    if isinstance(layer, keras.layers.PReLU):  # alpha starts at 0: a ReLU
        return "relu", 0.0
    if isinstance(layer, keras.layers.ELU):
        return "elu", 0.0
    if isinstance(layer, keras.layers.Softmax):
        return "softmax", 0.0
    if isinstance(layer, keras.layers.Activation):
        return _function_activation(layer.activation)
    return None, 0.0


def _activation(layer, container, cache: dict) -> tuple[str, float]:
    """The activation applied to `layer`'s output: its own, else a later layer's.

    A linear layer followed (possibly through normalization or dropout
    layers) by exactly one `Activation`, `ReLU`, `LeakyReLU`, `PReLU`, `ELU`
    or `Softmax` layer takes that layer's activation.
    """
    name, slope = _function_activation(getattr(layer, "activation", None))
    if name != "linear":
        return name, slope
    follower = _next_layer(layer, container, cache)
    while isinstance(follower, _PASS_THROUGH):
        follower = _next_layer(follower, container, cache)
    if follower is not None:
        found, found_slope = _layer_activation(follower)
        if found is not None:
            return found, found_slope
    return "linear", 0.0


# --------------------------------------------------------------------------
# seeds and assignment


def _draw_kernel(init, layer) -> np.ndarray:
    """`init`'s kernel for `layer`, with the fans of its forward pass.

    A `ConvTranspose` kernel is stored `(*kernel_size, out, in)`; it is drawn
    as `(*kernel_size, in, out)` and swapped, so that `fan_in` counts the
    input channels (see `compute_fans(..., transposed=True)`).
    """
    shape = tuple(layer.kernel.shape)
    transposed = isinstance(layer, CONV_TRANSPOSE)
    if transposed:
        shape = (*shape[:-2], shape[-1], shape[-2])
    kernel = keras.ops.convert_to_numpy(init(shape, dtype=layer.kernel.dtype))
    return np.swapaxes(kernel, -1, -2) if transposed else kernel


def _clone(initializer, seed: Seed):
    """A copy of `initializer` drawing from `seed` (fresh when None)."""
    config = initializer.get_config()
    if "seed" not in config:  # deterministic: Zeros, ZerO, Identity, ...
        return initializer
    if seed is None:
        seed = python_random.getrandbits(31)  # Keras's unseeded ones repeat
    config["seed"] = keras.saving.serialize_keras_object(seed)
    return type(initializer).from_config(config)


def _snapshot(layers) -> list:
    variables = []
    for layer in layers:
        variables.append(layer.kernel)
        if getattr(layer, "bias", None) is not None:
            variables.append(layer.bias)
    return [(variable, keras.ops.convert_to_numpy(variable)) for variable in variables]


def _restore(snapshot) -> None:
    for variable, value in snapshot:
        variable.assign(value)


# --------------------------------------------------------------------------
# initialize


def initialize(
    model: keras.Model,
    scheme: str | keras.initializers.Initializer = "auto",
    seed: Seed = None,
) -> dict[str, keras.initializers.Initializer]:
    """Re-initializes every Dense and Conv kernel of a built model, in place.

    Each kernel gets fresh values from the scheme and each bias is set to 0;
    other weights (BatchNorm, embeddings, ...) are left alone. Layers inside
    nested models are included. With `scheme="auto"` the initializer follows
    the activation `f` after the layer, so that `Var(f(x W))` stays near
    `Var(x)`, e.g. `std = sqrt(2 / ((1 + a^2) * fan_in))` for a ReLU-like `f`:

    | activation after the layer          | initializer                       |
    |-------------------------------------|-----------------------------------|
    | relu, relu6, elu, celu, gelu,       | `HeNormal()`: `sqrt(2 / fan_in)`  |
    | silu/swish, hard_silu, mish,        |                                   |
    | softplus, sparse_plus, squareplus,  |                                   |
    | PReLU (its alpha starts at 0)       |                                   |
    | leaky_relu with slope `a`           | `HeNormal(negative_slope=a)`      |
    | tanh, hard_tanh                     | `XavierNormal(gain="tanh")`:      |
    |                                     | gain 5/3, fan_avg                 |
    | selu                                | `XavierNormal(mode="fan_in")`:    |
    |                                     | LeCun, `1 / sqrt(fan_in)`         |
    | linear, sigmoid, hard_sigmoid,      | `XavierNormal()`: Glorot,         |
    | softsign, softmax, log_softmax      | `sqrt(2 / (fan_in + fan_out))`    |
    | anything else (custom)              | `XavierNormal()`, and a warning   |

    ELU, GELU, swish and the other smooth rectifiers are treated as ReLU: they
    are close to it for the inputs a unit-variance signal gives. The
    activation is the layer's own `activation=`; when that is linear, a
    single `Activation`, `ReLU`, `LeakyReLU` (its `negative_slope`), `PReLU`,
    `ELU` or `Softmax` layer that takes the layer's output, possibly through
    BatchNormalization, LayerNormalization, GroupNormalization or dropout
    layers, is used instead. Keras's `"leaky_relu"` function has slope 0.2.
    A `ConvTranspose` kernel gets the fans of its forward pass (`fan_in`
    counts its input channels), where `kernel_initializer=` would swap them.

    Args:
        model: A built `keras.Model`.
        scheme: `"auto"`, a name from `get_scheme` (`"he"`, `"orthogonal"`,
            ...) or a `keras.initializers.Initializer`. An initializer with a
            seed is cloned for each layer with a seed of its own, so layers
            never share values.
        seed: None (fresh values; `keras.utils.set_random_seed` still makes
            the run reproducible), an int (the same values on every call with
            that int; each layer gets its own seed derived from it) or a
            `keras.random.SeedGenerator`. When None and `scheme` is an
            initializer with an int seed, that seed is used instead.

    Returns:
        A dict `layer name -> initializer used`, in the order of the layers.

    Raises:
        ValueError: For an unknown scheme, a bad seed, a model that is not
            built or has no Dense or Conv kernels. The model is unchanged.

    Example:

    >>> model = keras.Sequential([keras.Input((64,)),
    ...                           keras.layers.Dense(128, activation="relu"),
    ...                           keras.layers.Dense(10, activation="softmax")])
    >>> used = initialize(model, "auto", seed=0)
    >>> [type(init).__name__ for init in used.values()]
    ['HeNormal', 'XavierNormal']

    Reference:
        He et al., "Delving Deep into Rectifiers", ICCV 2015; Bingham &
        Miikkulainen, "AutoInit: Analytic Signal-Preserving Weight
        Initialization for Neural Networks", AAAI 2023 (arXiv 2022).
    """
    _check_model(model)
    seed = check_seed(seed)
    if isinstance(scheme, str):
        known = ["auto", *scheme_names()]
        if scheme not in known:
            raise ValueError(
                f"Unknown scheme {scheme!r}. Known schemes: {', '.join(known)}, "
                f"or a keras.initializers.Initializer. Received: scheme={scheme!r}"
            )
    elif not isinstance(scheme, keras.initializers.Initializer):
        raise ValueError(
            "Argument `scheme` must be 'auto', a scheme name or a "
            "`keras.initializers.Initializer`. "
            f"Received: scheme of type {type(scheme).__name__}"
        )
    pairs = _kernel_layers(model, "initialize")
    if seed is None and isinstance(scheme, keras.initializers.Initializer):
        own = scheme.get_config().get("seed")
        seed = own if isinstance(own, int) and not isinstance(own, bool) else None
    seeds = spawn_seeds(seed, len(pairs))

    used, values, cache, unknown = {}, [], {}, []
    for (layer, container), layer_seed in zip(pairs, seeds, strict=True):
        if scheme == "auto":
            name, slope = _activation(layer, container, cache)
            family = _FAMILIES.get(name)
            if family is None:
                unknown.append(f"{layer.name} ({name})")
            init = _auto_initializer(family or "glorot", slope, layer_seed)
        elif isinstance(scheme, str):
            init = get_scheme(scheme, layer_seed)
        else:
            init = _clone(scheme, layer_seed)
        values.append((layer, _draw_kernel(init, layer)))
        used[layer.name] = init
    if unknown:
        warnings.warn(
            "initialize: unknown activation after layers "
            f"{', '.join(unknown)}; used XavierNormal() (Glorot) for them.",
            stacklevel=2,
        )

    snapshot = _snapshot(layer for layer, _ in values)
    try:
        for layer, kernel in values:
            layer.kernel.assign(kernel)
            if getattr(layer, "bias", None) is not None:
                layer.bias.assign(keras.ops.zeros_like(layer.bias))
    except BaseException:
        _restore(snapshot)
        raise
    return used


# --------------------------------------------------------------------------
# lsuv


class LSUVReport(dict):
    """What `lsuv` did: `layer name -> {"var_before", "var_after", "iterations",
    "converged"}`, in forward order.

    A plain dict with two helpers: `not_converged` (the names of the layers
    whose variance is still more than `tol` away from 1) and `str(report)`, a
    table.

    Example:

    >>> report = lsuv(model, x[:256], seed=0)
    >>> report["dense"]["converged"], report.not_converged
    (True, [])
    """

    @property
    def not_converged(self) -> list[str]:
        return [name for name, row in self.items() if not row["converged"]]

    def __str__(self) -> str:
        width = max([len("layer"), *map(len, self)])
        lines = [f"{'layer':<{width}}  var before   var after  iters  converged"]
        for name, row in self.items():
            lines.append(
                f"{name:<{width}}  {row['var_before']:10.4g}  "
                f"{row['var_after']:10.4g}  {row['iterations']:5d}  "
                f"{'yes' if row['converged'] else 'NO'}"
            )
        return "\n".join(lines)


def _pre_activation(layer, inputs):
    """`inputs @ W + b` (or the convolution) of `layer`, before its activation."""
    ops = keras.ops
    kernel = ops.cast(layer.kernel, "float32")
    channels_first = getattr(layer, "data_format", None) == "channels_first"
    if isinstance(layer, keras.layers.Dense):
        outputs = ops.matmul(inputs, kernel)
    elif isinstance(layer, CONV_TRANSPOSE):
        outputs = ops.conv_transpose(
            inputs,
            kernel,
            strides=list(layer.strides),
            padding=layer.padding,
            output_padding=layer.output_padding,
            dilation_rate=layer.dilation_rate,
            data_format=layer.data_format,
        )
    else:
        padding = layer.padding
        if padding == "causal":  # Conv1D: pad on the left, then "valid"
            left = layer.dilation_rate[0] * (layer.kernel_size[0] - 1)
            pad = [[0, 0], [0, 0], [left, 0]] if channels_first else None
            inputs = ops.pad(inputs, pad or [[0, 0], [left, 0], [0, 0]])
            padding = "valid"
        outputs = ops.conv(
            inputs,
            kernel,
            strides=list(layer.strides),
            padding=padding,
            dilation_rate=layer.dilation_rate,
            data_format=layer.data_format,
        )
    if getattr(layer, "bias", None) is not None:
        bias = ops.cast(layer.bias, "float32")
        if channels_first:
            bias = ops.reshape(bias, (-1,) + (1,) * (len(outputs.shape) - 2))
        outputs = ops.add(outputs, bias)
    return outputs


def _lsuv_input(model: keras.Model, x) -> np.ndarray:
    """`x` as a float32 array that fits the model's one input."""
    from_dataset = isinstance(x, (tf.data.Dataset, keras.utils.PyDataset))
    x = as_array(x, "x", max_samples=_DATASET_SAMPLES if from_dataset else None)
    check_model_input(model, x, "lsuv")
    return x


def lsuv(
    model: keras.Model,
    x,
    tol: float = 0.1,
    max_iters: int = 10,
    orthogonal: bool = True,
    verbose: int = 0,
    seed: Seed = None,
) -> LSUVReport:
    """Layer-sequential unit-variance (LSUV) initialization of a built model.

    1. Pre-initialize each Dense/Conv kernel with a random orthogonal matrix
       (`Orthogonal(gain=1)`) and set its bias to 0 (`orthogonal=True`).
    2. For each such layer in forward order, run the batch `x` through the
       model up to the layer, compute the layer's pre-activation output
       `B = x_in @ W + b` (the convolution for Conv layers, without the
       layer's fused `activation=`) and, while `|Var(B) - 1| >= tol` and at
       most `max_iters` times, set `W <- W / sqrt(Var(B))`. `Var` is over all
       entries of `B` on the batch.

    Layers without kernels (pooling, Flatten, activations, ...) are skipped.
    BatchNormalization is handled as in the paper: LSUV scales the Dense/Conv
    output that feeds the BN layer and leaves the BN weights alone. The
    forward passes run in inference mode, so dropout is off and BN uses its
    moving statistics, which for a new model (mean 0, variance 1, gamma 1,
    beta 0) pass the signal through unchanged; no statistics are updated.

    Args:
        model: A Sequential or functional model with one input. An unbuilt
            Sequential model is built for `x`'s shape first.
        x: A batch of inputs (an array; from a batched `tf.data.Dataset` or
            `PyDataset`, the first 1024 samples); a few hundred samples
            suffice. Must be finite and fit the model's input shape.
        tol: The tolerance on `|Var(B) - 1|`, positive.
        max_iters: The most rescalings per layer, a positive int.
        orthogonal: Whether to pre-initialize with orthogonal kernels; if
            False the current kernels (and biases) are only rescaled.
        verbose: 1 prints the report table, 0 is silent.
        seed: Seed of the orthogonal pre-initialization, as in `initialize`.

    Returns:
        An `LSUVReport`, a dict `layer name -> {"var_before": float,
        "var_after": float, "iterations": int, "converged": bool}` in forward
        order: the variance of the layer's pre-activation output when its
        turn came (after the pre-initialization and the rescaling of the
        earlier layers) and at the end, and the number of rescalings. Layers
        that did not converge are also reported with a warning.

    Raises:
        ValueError: For a bad argument, NaN/inf or empty data, data whose
            shape does not fit, a model without Dense/Conv kernels, or a layer
            whose output has zero or non-finite variance on the batch. On any
            error (or KeyboardInterrupt) the weights are restored.

    Example:

    >>> report = lsuv(model, x_train[:256], seed=0)
    >>> report.not_converged
    []

    Reference:
        Mishkin & Matas, "All you need is a good init", ICLR 2016,
        Algorithm 1; Saxe et al., "Exact solutions to the nonlinear dynamics
        of learning in deep linear neural networks", ICLR 2014 (orthogonal).
    """
    _check_model(model)
    tol, max_iters, orthogonal, verbose, seed = check_lsuv_args(
        tol, max_iters, orthogonal, verbose, seed
    )
    x = _lsuv_input(model, x)
    nested = [
        layer.name
        for layer in model.layers
        if isinstance(layer, keras.Model) and any(True for _ in _walk(layer))
    ]
    if nested:
        raise ValueError(
            "lsuv works on the model's own layers, but nested models "
            f"{nested} hold Dense/Conv layers: build the model without nesting."
        )
    layers = [layer for layer, _ in _kernel_layers(model, "lsuv")]
    extractors = None if isinstance(model, keras.Sequential) else []
    for layer in layers if extractors is not None else []:
        try:
            extractors.append(keras.Model(model.inputs[0], layer.input))
        except (AttributeError, ValueError) as error:
            raise ValueError(
                f"lsuv cannot find the input of layer {layer.name!r} of model "
                f"{model.name!r} (is it used more than once?): {error}"
            ) from error
    x = keras.ops.convert_to_tensor(x)

    def layer_inputs():
        """`(layer, its input on x)`, each computed after the earlier rescaling."""
        if extractors is None:  # a Sequential chain: one pass, layer by layer
            wanted, outputs = {id(layer) for layer in layers}, x
            for layer in model.layers:
                if id(layer) in wanted:
                    yield layer, outputs
                outputs = layer(outputs, training=False)
        else:
            for layer, extractor in zip(layers, extractors, strict=True):
                yield layer, extractor(x, training=False)

    def variance(layer, inputs) -> float:
        value = float(keras.ops.var(_pre_activation(layer, inputs)))
        if not math.isfinite(value) or value <= 0:
            raise ValueError(
                f"The output of layer {layer.name!r} has variance {value} on "
                "the batch `x`, so it cannot be scaled to 1: check that `x` "
                "varies and that the earlier layers do not zero it."
            )
        return value

    report = LSUVReport()
    snapshot = _snapshot(layers)
    try:
        if orthogonal:
            for layer, layer_seed in zip(
                layers, spawn_seeds(seed, len(layers)), strict=True
            ):
                layer.kernel.assign(_draw_kernel(Orthogonal(seed=layer_seed), layer))
                if getattr(layer, "bias", None) is not None:
                    layer.bias.assign(keras.ops.zeros_like(layer.bias))
        for layer, inputs in layer_inputs():
            inputs = keras.ops.cast(inputs, "float32")
            var = before = variance(layer, inputs)
            iterations = 0
            while abs(var - 1.0) >= tol and iterations < max_iters:
                layer.kernel.assign(layer.kernel / math.sqrt(var))
                iterations += 1
                var = variance(layer, inputs)
            report[layer.name] = {
                "var_before": before,
                "var_after": var,
                "iterations": iterations,
                "converged": abs(var - 1.0) < tol,
            }
    except BaseException:
        _restore(snapshot)
        raise
    if verbose:
        print(f"LSUV initialization of {model.name!r} (tol={tol}):")
        print(report)
    if report.not_converged:
        warnings.warn(
            f"lsuv: layers {report.not_converged} did not reach variance "
            f"1 +- {tol} within max_iters={max_iters} rescalings.",
            stacklevel=2,
        )
    return report
