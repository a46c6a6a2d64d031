"""µP (the Maximal Update Parametrization) for Keras 3.

Initialization and learning rates that do not depend on width, so that the
learning rate tuned on a narrow model transfers to a wide one (µTransfer).

- `set_base_shapes(model, base_model, delta_model=None)` compares every
  trainable weight's fans with the base (and delta) model's to find the
  dimensions that grow with width, records the width multipliers on the
  model's layers and re-initializes the model by µP's table.
- `MuReadout`: the output layer, a `Dense` whose matmul is scaled by
  `output_mult / width_mult` (zero-initialized by default).
- `MuAdam`, `MuAdamW`, `MuSGD`: Keras's optimizers with a learning-rate
  multiplier per variable, read from those records.
- `MuMultiHeadAttention`: `MultiHeadAttention` with µP's `1/d` attention
  scaling.
- `mup_multipliers(model)`: the records and the learning-rate multipliers.

The table implemented (Tensor Programs V, Tables 3 and 8). `m` is a weight's
width multiplier: `fan_in / base fan_in` for a weight whose fan-in grows
with width, else `fan_out / base fan_out`; "inf" is a fan that grows.

| weight (fan_in, fan_out)       | init std x     | Adam lr x | SGD lr x       |
|--------------------------------|----------------|-----------|----------------|
| input weight, embedding        | 1 (standard)   | 1         | `m_out`        |
|   (fin, inf)                   |                |           |                |
| bias, gamma, beta that grow    | 0 / 1 (std.)   | 1         | `m`            |
| hidden weight (inf, inf)       | 1 (standard)   | `1/m_in`  | `m_out / m_in` |
| `MuReadout` kernel (inf, fin), | 0, or          | 1         | `m_in`         |
|   output x `output_mult/m_in`  |   `sqrt(m_in)` |           |                |
| other output kernel (inf, fin) | `1/sqrt(m_in)` | `1/m_in`  | `1/m_in`       |
| weights that do not grow       | 1 (standard)   | 1         | 1              |

"Standard" is `gain / sqrt(fan_in)` with the gain of the activation after the
layer (He for the ReLU family, LeCun otherwise; `N(0, 1)` for embeddings),
orthogonal for recurrent kernels, 0 for biases and betas, 1 for gammas, so a
model at its base width is initialized as in the standard parametrization
and trains exactly like plain Adam/SGD. The `MuReadout` row is Table 8 (the
multiplier formulation of the `mup` package), the other output row Table 3:
both give the same training dynamics in the limit. The initialization does
not depend on the optimizer family; only the learning rates do. Weight
decay (`MuAdamW`, `weight_decay=`) is applied as Keras applies it, with the
base learning rate: `lr * weight_decay` for every weight (the `mup` package's
`decoupled_wd=False`).

Where the records live. Every re-initialized weight's initializer attribute
(`kernel_initializer`, `bias_initializer`, `embeddings_initializer`,
`recurrent_initializer`, `gamma_initializer`, ...) is replaced by a `MuInit`,
a registered initializer that holds the weight's fan multipliers and the
µP initializer that draws it. Layer configs serialize their initializers, so
the records survive `model.save`/`keras.models.load_model` and
`keras.models.clone_model` (whose layers draw µP values when they are
built); `MuReadout` also keeps its `width_mult` in its config and
`MuMultiHeadAttention` its `base_key_dim`. A `MultiHeadAttention` keeps the
records of its four projections in its own initializers (keyed by
projection name). Optimizers read the records in `build`; a weight without
a record (none of the attributes above) gets multiplier 1.

µP fixes the width scaling only: depth is not covered (use the residual
recipes: scale residual branches by `1/sqrt(depth)` and tune at the target
depth), nor the batch size, training length or data.

Reference:
    Yang & Hu, "Tensor Programs IV: Feature Learning in Infinite-Width
    Neural Networks", ICML 2021; Yang et al., "Tensor Programs V: Tuning
    Large Neural Networks via Zero-Shot Hyperparameter Transfer", 2022.
"""

from __future__ import annotations

import inspect
import math
import warnings
import weakref
from collections.abc import Iterable

import keras
import numpy as np

from keras_weightinit import graph
from keras_weightinit.checks import boolean, is_number, number_in, positive_number
from keras_weightinit.gains import activation_family
from keras_weightinit.graph import Weight
from keras_weightinit.initializers import HeNormal, Orthogonal, XavierNormal
from keras_weightinit.model_init import draw, set_value
from keras_weightinit.seeds import Seed, check_seed, spawn_seeds

__all__ = [
    "MuAdam",
    "MuAdamW",
    "MuInit",
    "MuMultiHeadAttention",
    "MuReadout",
    "MuSGD",
    "lr_multiplier",
    "mup_multipliers",
    "set_base_shapes",
]

_PACKAGE = "keras_weightinit"

# role -> the owner layer's attribute holding the weight's initializer
_INIT_ATTRIBUTES = {
    "kernel": "kernel_initializer",
    "depthwise_kernel": "depthwise_initializer",
    "pointwise_kernel": "pointwise_initializer",
    "recurrent_kernel": "recurrent_initializer",
    "embeddings": "embeddings_initializer",
    "bias": "bias_initializer",
    "gamma": "gamma_initializer",
    "beta": "beta_initializer",
}

# In-process records: id(variable) -> (weak reference, (fan_in_mult,
# fan_out_mult, readout)); and the layers that built a weight from a MuInit
# (after load_model or clone_model), found by the optimizers.
_VARIABLES: dict[int, tuple[weakref.ref, tuple]] = {}
_LAYERS: dict[int, weakref.ref] = {}


def _remember_layer(layer: keras.Layer | None) -> None:
    if layer is not None:
        _LAYERS[id(layer)] = weakref.ref(layer)


def _mult(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            "A width multiplier must be a positive finite number or None. "
            f"Received: {value!r}"
        )
    return value


# --------------------------------------------------------------------------
# the record: an initializer


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MuInit(keras.initializers.Initializer):
    """A µP record that is also the initializer drawing the weight.

    `MuInit(base, scale)(shape)` is `scale * base(shape)`; the width
    multipliers are carried in its config, so that layer configs (saved
    models, `clone_model`) keep them. `set_base_shapes` puts one in every
    re-initialized weight's initializer attribute; users do not create them.

    Args:
        base: The initializer drawing the values (serialized or not).
        scale: The factor applied to its draws (`sqrt(m)`, `1/sqrt(m)`, 1).
        fan_in_mult: `fan_in / base fan_in` when the fan-in grows with width,
            None when it does not.
        fan_out_mult: The same for the fan-out (or a vector's length).
        readout: Whether the weight is a `MuReadout` kernel.
        sublayers: For a `MultiHeadAttention`'s own initializers: projection
            name -> `[fan_in_mult, fan_out_mult]`.

    Example:

    >>> init = MuInit(keras.initializers.Zeros(), fan_in_mult=4.0,
    ...               fan_out_mult=4.0)
    >>> init.record("dense")
    (4.0, 4.0, False)

    Reference:
        Yang et al., "Tensor Programs V", 2022 (`set_base_shapes`'s
        `infshape` in the `mup` package).
    """

    def __init__(
        self,
        base: keras.initializers.Initializer | dict | str = "zeros",
        scale: float = 1.0,
        fan_in_mult: float | None = None,
        fan_out_mult: float | None = None,
        readout: bool = False,
        sublayers: dict | None = None,
    ):
        self.base = keras.initializers.get(base)
        self.scale = float(scale)
        self.fan_in_mult = _mult(fan_in_mult)
        self.fan_out_mult = _mult(fan_out_mult)
        self.readout = bool(readout)
        self.sublayers = {
            str(k): [_mult(v[0]), _mult(v[1])] for k, v in (sublayers or {}).items()
        }

    def record(self, layer_name: str | None = None) -> tuple:
        """`(fan_in_mult, fan_out_mult, readout)`, for a projection if named."""
        if layer_name in self.sublayers:
            fan_in_mult, fan_out_mult = self.sublayers[layer_name]
            return fan_in_mult, fan_out_mult, False
        return self.fan_in_mult, self.fan_out_mult, self.readout

    def __call__(self, shape, dtype=None):
        _remember_layer(graph.current_scope())
        values = self.base(shape, dtype=dtype)
        return values if self.scale == 1.0 else values * self.scale

    def get_config(self) -> dict:
        return {
            "base": keras.initializers.serialize(self.base),
            "scale": self.scale,
            "fan_in_mult": self.fan_in_mult,
            "fan_out_mult": self.fan_out_mult,
            "readout": self.readout,
            "sublayers": dict(self.sublayers),
        }


# --------------------------------------------------------------------------
# layers


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MuReadout(keras.layers.Dense):
    """µP's output layer: `y = (output_mult / width_mult) * (x @ W) + b`.

    A `Dense` layer whose matmul (not its bias) is multiplied by
    `output_mult / width_mult`, with `width_mult = fan_in / base fan_in` set
    by `set_base_shapes` (1 until then, when it is a plain `Dense` times
    `output_mult`). With `readout_zero_init=True`, `set_base_shapes` sets the
    kernel to 0, else draws it with the constant std `1/sqrt(base fan_in)`;
    its Adam learning rate is unchanged, its SGD learning rate is
    `lr * width_mult` (Tensor Programs V, Table 8).

    Args:
        units: Output units.
        readout_zero_init: Whether `set_base_shapes` zero-initializes the
            kernel (µP's recommendation; the bias is 0 either way).
        output_mult: A width-independent multiplier of the logits, a
            hyperparameter that transfers.
        width_mult: Set by `set_base_shapes`; stored in the config.
        **kwargs: `keras.layers.Dense`'s other arguments (`activation`,
            `use_bias`, ...).

    Example:

    >>> model = keras.Sequential([keras.Input((8,)),
    ...                           keras.layers.Dense(32, activation="relu"),
    ...                           MuReadout(3)])
    >>> base = keras.Sequential([keras.Input((8,)),
    ...                          keras.layers.Dense(8, activation="relu"),
    ...                          MuReadout(3)])
    >>> model = set_base_shapes(model, base)
    >>> model.layers[-1].width_mult
    4.0

    Reference:
        Yang et al., "Tensor Programs V", 2022, Table 8 and Appendix B.
    """

    def __init__(
        self,
        units: int,
        readout_zero_init: bool = True,
        output_mult: float = 1.0,
        width_mult: float = 1.0,
        **kwargs,
    ):
        super().__init__(units, **kwargs)
        boolean("readout_zero_init", readout_zero_init)
        output_mult = positive_number("output_mult", output_mult)
        width_mult = positive_number("width_mult", width_mult)
        self.readout_zero_init = readout_zero_init
        self.output_mult = float(output_mult)
        self.width_mult = float(width_mult)

    def call(self, inputs, training=None):
        factor = self.output_mult / self.width_mult
        scaled = keras.ops.multiply(inputs, keras.ops.cast(factor, inputs.dtype))
        return super().call(scaled, training=training)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            readout_zero_init=self.readout_zero_init,
            output_mult=self.output_mult,
            width_mult=self.width_mult,
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MuMultiHeadAttention(keras.layers.MultiHeadAttention):
    """`MultiHeadAttention` with µP's attention scale `sqrt(base_key_dim) / key_dim`.

    The attention logits are `q . k * sqrt(base_key_dim) / key_dim`: `1/d`
    scaling (Tensor Programs V, section 4), calibrated to equal the standard
    `1/sqrt(key_dim)` at the base head size, so the base model is unchanged.
    `set_base_shapes` sets `base_key_dim` from the base model's layer (a
    plain `MultiHeadAttention` keeps `1/sqrt(d)`; use this layer to get
    `1/d`). When only the number of heads grows, `key_dim` is fixed and the
    scale does not change, as in µP.

    Args:
        num_heads: Heads.
        key_dim: Size of each attention head for query and key.
        base_key_dim: The head size of the base model (default `key_dim`).
        **kwargs: `keras.layers.MultiHeadAttention`'s other arguments.

    Example:

    >>> layer = MuMultiHeadAttention(2, key_dim=16, base_key_dim=4)
    >>> layer.attention_scale
    0.125

    Reference:
        Yang et al., "Tensor Programs V", 2022, section 4 and Appendix B.
    """

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        base_key_dim: int | None = None,
        **kwargs,
    ):
        super().__init__(num_heads, key_dim, **kwargs)
        if base_key_dim is None:
            base_key_dim = key_dim
        if isinstance(base_key_dim, bool) or not isinstance(base_key_dim, int):
            raise ValueError(
                "Argument `base_key_dim` must be a positive int or None. "
                f"Received: base_key_dim={base_key_dim!r}"
            )
        if base_key_dim <= 0:
            raise ValueError(
                "Argument `base_key_dim` must be a positive int or None. "
                f"Received: base_key_dim={base_key_dim!r}"
            )
        self.base_key_dim = int(base_key_dim)
        graph.set_attention_scale(self, self.attention_scale)

    @property
    def attention_scale(self) -> float:
        """`sqrt(base_key_dim) / key_dim`, the factor of the logits."""
        return math.sqrt(self.base_key_dim) / self.key_dim

    def set_base_key_dim(self, base_key_dim: int) -> None:
        """Sets the base head size (and with it the attention scale)."""
        self.base_key_dim = int(base_key_dim)
        graph.set_attention_scale(self, self.attention_scale)

    def get_config(self) -> dict:
        config = super().get_config()
        config["base_key_dim"] = self.base_key_dim
        return config


# --------------------------------------------------------------------------
# the table


def lr_multiplier(
    fan_in_mult: float | None,
    fan_out_mult: float | None,
    family: str = "adam",
    readout: bool = False,
) -> float:
    """The µP learning-rate multiplier of one weight (see the module's table).

    | weight                      | Adam           | SGD                   |
    |-----------------------------|----------------|-----------------------|
    | fan_in and fan_out grow     | `1 / m_in`     | `m_out / m_in`        |
    | only the fan-in grows,      | 1              | `m_in`                |
    |   `MuReadout` kernel        |                |                       |
    | only the fan-in grows,      | `1 / m_in`     | `1 / m_in`            |
    |   other output kernel       |                |                       |
    | only the fan-out grows      | 1              | `m_out`               |
    |   (input weight, vector)    |                |                       |
    | neither grows               | 1              | 1                     |

    Args:
        fan_in_mult: `m_in = fan_in / base fan_in`, or None if it does not grow.
        fan_out_mult: `m_out`, or None.
        family: `"adam"` (Adam, AdamW, and other adaptive optimizers) or
            `"sgd"`.
        readout: Whether the weight is a `MuReadout` kernel.

    Returns:
        The factor of the base learning rate.

    Example:

    >>> lr_multiplier(4.0, 4.0, "adam")
    0.25
    >>> lr_multiplier(None, 4.0, "sgd")
    4.0

    Reference:
        Yang et al., "Tensor Programs V", 2022, Tables 3 and 8.
    """
    if family not in ("adam", "sgd"):
        raise ValueError(
            f"Argument `family` must be 'adam' or 'sgd'. Received: family={family!r}"
        )
    if fan_in_mult is not None and fan_out_mult is not None:  # hidden
        return 1.0 / fan_in_mult if family == "adam" else fan_out_mult / fan_in_mult
    if fan_in_mult is not None:  # output
        if readout:
            return 1.0 if family == "adam" else fan_in_mult
        return 1.0 / fan_in_mult
    if fan_out_mult is not None:  # input weight or vector
        return 1.0 if family == "adam" else fan_out_mult
    return 1.0


def _init_scale(fan_in_mult, fan_out_mult, readout: bool) -> float:
    """The factor of the standard draw (see the module's table)."""
    if fan_in_mult is not None and fan_out_mult is None:
        return math.sqrt(fan_in_mult) if readout else 1.0 / math.sqrt(fan_in_mult)
    return 1.0


# --------------------------------------------------------------------------
# reading the records


def _records_of_layer(layer: keras.Layer, found: dict) -> None:
    """Adds `id(variable) -> record` for the weights `layer` holds from a MuInit."""
    for role, attribute in _INIT_ATTRIBUTES.items():
        variable = getattr(layer, "scale" if role == "gamma" else role, None)
        if role == "gamma" and not isinstance(variable, keras.Variable):
            variable = getattr(layer, "gamma", None)
        init = getattr(layer, attribute, None)
        if isinstance(variable, keras.Variable) and isinstance(init, MuInit):
            found[id(variable)] = init.record(layer.name)


def _records(variables: Iterable) -> dict[int, tuple]:
    """`id(variable) -> (fan_in_mult, fan_out_mult, readout)` of those known."""
    found: dict[int, tuple] = {}
    for key, ref in list(_LAYERS.items()):
        layer = ref()
        if layer is None:
            del _LAYERS[key]
            continue
        _records_of_layer(layer, found)
    for key, (ref, record) in list(_VARIABLES.items()):
        if ref() is None:
            del _VARIABLES[key]
        else:
            found[key] = record
    wanted = {id(v) for v in variables}
    return {k: v for k, v in found.items() if k in wanted}


def mup_multipliers(model: keras.Model, family: str = "adam") -> dict[str, dict]:
    """Every trainable weight's µP record and learning-rate multiplier.

    Args:
        model: A model after `set_base_shapes` (or loaded/cloned from one).
        family: `"adam"` or `"sgd"`: the table used for `lr_mult`.

    Returns:
        `variable path -> {"fan_in_mult", "fan_out_mult", "readout",
        "lr_mult"}`; the multipliers are None for fans that do not grow, and
        a weight without a record has `lr_mult` 1.

    Example:

    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32),
    ...                           keras.layers.Dense(32), MuReadout(3)])
    >>> base = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8),
    ...                          keras.layers.Dense(8), MuReadout(3)])
    >>> table = mup_multipliers(set_base_shapes(model, base))
    >>> [row["lr_mult"] for row in table.values()][:3]
    [1.0, 1.0, 0.25]

    Reference:
        Yang et al., "Tensor Programs V", 2022, Tables 3 and 8.
    """
    for layer in graph.layers(model):
        _remember_layer(layer)
    variables = list(model.trainable_variables)
    records = _records(variables)
    table = {}
    for variable in variables:
        fan_in_mult, fan_out_mult, readout = records.get(
            id(variable), (None, None, False)
        )
        table[variable.path] = {
            "fan_in_mult": fan_in_mult,
            "fan_out_mult": fan_out_mult,
            "readout": readout,
            "lr_mult": lr_multiplier(fan_in_mult, fan_out_mult, family, readout),
        }
    return table


# --------------------------------------------------------------------------
# set_base_shapes


def _check_built(model, name: str) -> keras.Model:
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"Argument `{name}` must be a built `keras.Model`. "
            f"Received: {name} of type {type(model).__name__}"
        )
    unbuilt = [layer.name for layer in graph.layers(model) if not layer.built]
    if not model.built or unbuilt:
        raise ValueError(
            f"Argument `{name}` must be a built `keras.Model` (call it on data "
            f"or build it first). Received: {name}={model.name!r}, not built"
            + (f" (layers {unbuilt})" if unbuilt else "")
        )
    return model


def _fans(weight: Weight) -> tuple[int, int | None]:
    if weight.kernel_like:
        return weight.fan_in, weight.fan_out
    return None, weight.shape[-1] if weight.shape else None


def _signature(weight: Weight) -> tuple:
    return type(weight.layer).__name__, weight.role, len(weight.shape)


def _matched(model, other, name: str) -> list[Weight]:
    """`graph.weights(other)`, or `ValueError` if its structure differs."""
    mine, theirs = graph.weights(model), graph.weights(other)
    if len(mine) != len(theirs):
        raise ValueError(
            f"Argument `{name}` must have the structure of `model` (the same "
            f"layers in the same order, only wider or narrower): `model` has "
            f"{len(mine)} trainable weights, `{name}` {len(theirs)}. "
            f"Received: {name}={other.name!r}"
        )
    for a, b in zip(mine, theirs, strict=True):
        if _signature(a) != _signature(b):
            raise ValueError(
                f"Argument `{name}` must have the structure of `model`: weight "
                f"{a.path} is a {_signature(a)} (layer type, role, rank) but the "
                f"matching weight {b.path} is a {_signature(b)}. "
                f"Received: {name}={other.name!r}"
            )
    return theirs


def _standard_init(weight: Weight, model: keras.Model, seed):
    """`gain / sqrt(fan_in)` by the activation after the layer (see the table)."""
    if weight.role == "embeddings":
        return XavierNormal(mode="fan_in", seed=seed)
    if weight.role == "recurrent_kernel":
        return Orthogonal(seed=seed)
    layer = weight.layer
    if isinstance(getattr(layer, "recurrent_kernel", None), keras.Variable):
        return XavierNormal(mode="fan_in", seed=seed)
    name, slope = graph.following_activation(layer, model)
    family = activation_family(name)
    if family == "he":
        return HeNormal(seed=seed)
    if family == "leaky_relu":
        return HeNormal(negative_slope=slope, seed=seed)
    if family == "tanh":
        return XavierNormal(gain="tanh", mode="fan_in", seed=seed)
    return XavierNormal(mode="fan_in", seed=seed)


def set_base_shapes(
    model: keras.Model,
    base_model: keras.Model,
    delta_model: keras.Model | None = None,
    *,
    rescale: bool = True,
    seed: Seed = None,
) -> keras.Model:
    """Makes `model` a µP model whose base width is `base_model`'s.

    A fan of a weight grows with width ("infinite") when it differs between
    `base_model` and `delta_model` (or, without `delta_model`, between
    `base_model` and `model`); its multiplier is `m = fan(model) /
    fan(base_model)`. Each trainable weight then gets the record
    `(fan_in_mult, fan_out_mult)` (None for a fan that does not grow), kept
    in a `MuInit` in the weight's initializer attribute so that it survives
    `save`/`load_model` and `clone_model`, and, with `rescale=True`, is
    re-drawn by µP's table (see the module docstring):

    - input and hidden weights: `N(0, gain^2 / fan_in)` (He for the ReLU
      family, LeCun otherwise; `N(0, 1)` for embeddings, orthogonal for
      recurrent kernels); biases and betas 0, gammas 1;
    - `MuReadout` kernels: 0 with `readout_zero_init=True`, else
      `N(0, 1 / base fan_in)`; the layer's `width_mult` is set to `m_in`;
    - other output kernels (fan-in grows, fan-out does not): `N(0, 1 /
      (m_in * fan_in))`, variance `∝ 1 / fan_in^2` (Table 3);
    - `MuMultiHeadAttention`: `base_key_dim` is set from the base model's
      layer, giving the `sqrt(base_key_dim) / key_dim` attention scale.

    The optimizers `MuAdam`, `MuAdamW` and `MuSGD` read the records. The
    initialization is the same for every optimizer family.

    Args:
        model: The built model to train, of any width.
        base_model: The same architecture at the base width (the width the
            hyperparameters are tuned at); built.
        delta_model: The same architecture at another width, to tell which
            dimensions grow when `model` has the base width in some of them
            (as in the `mup` package); built.
        rescale: Whether to re-initialize `model` (False: only record the
            multipliers, e.g. for a model loaded with trained weights).
        seed: None, a non-negative int or a `keras.random.SeedGenerator`
            for the re-drawn weights.

    Returns:
        `model`, in place.

    Raises:
        ValueError: If a model is not built, or `base_model`/`delta_model`
            does not have `model`'s structure (the argument is named).

    Example:

    >>> def mlp(width):
    ...     return keras.Sequential([keras.Input((64,)),
    ...         keras.layers.Dense(width, activation="relu"),
    ...         keras.layers.Dense(width, activation="relu"), MuReadout(10)])
    >>> model = set_base_shapes(mlp(256), mlp(64), seed=0)
    >>> model.compile(optimizer=MuAdam(3e-2), loss="mse")

    Reference:
        Yang et al., "Tensor Programs V: Tuning Large Neural Networks via
        Zero-Shot Hyperparameter Transfer", 2022, Tables 3 and 8; the `mup`
        package's `set_base_shapes`.
    """
    _check_built(model, "model")
    _check_built(base_model, "base_model")
    if delta_model is not None:
        _check_built(delta_model, "delta_model")
    rescale = boolean("rescale", rescale)
    seed = check_seed(seed)
    mine = graph.weights(model)
    base = _matched(model, base_model, "base_model")
    delta = mine if delta_model is None else _matched(model, delta_model, "delta_model")

    records = []
    for weight, b, d in zip(mine, base, delta, strict=True):
        (fi, fo), (bfi, bfo), (dfi, dfo) = _fans(weight), _fans(b), _fans(d)
        fan_in_mult = fi / bfi if fi is not None and dfi != bfi else None
        fan_out_mult = fo / bfo if fo is not None and dfo != bfo else None
        readout = isinstance(weight.layer, MuReadout) and weight.role == "kernel"
        records.append((fan_in_mult, fan_out_mult, readout))

    kernels = [w for w in mine if w.kernel_like]
    seeds = dict(zip(map(id, kernels), spawn_seeds(seed, len(kernels)), strict=True))
    values, inits = [], []
    for weight, record in zip(mine, records, strict=True):
        fan_in_mult, fan_out_mult, readout = record
        scale = _init_scale(fan_in_mult, fan_out_mult, readout)
        if readout and weight.layer.readout_zero_init:
            init = keras.initializers.Zeros()
        elif weight.kernel_like:
            init = _standard_init(weight, model, seeds[id(weight)])
        elif weight.role == "gamma":
            init = keras.initializers.Ones()
        else:
            init = keras.initializers.Zeros()
        if rescale:
            if weight.kernel_like and not isinstance(init, keras.initializers.Zeros):
                value = draw(init, weight, seeds[id(weight)]) * scale
            elif weight.kernel_like:
                value = np.zeros(weight.shape, "float32")
            else:
                value = set_value(weight)
            values.append((weight.variable, value))
        inits.append(MuInit(init, scale, fan_in_mult, fan_out_mult, readout))

    for layer, base_layer in zip(
        graph.layers(model), graph.layers(base_model), strict=False
    ):
        if isinstance(layer, MuMultiHeadAttention) and isinstance(
            base_layer, keras.layers.MultiHeadAttention
        ):
            layer.set_base_key_dim(int(base_layer.key_dim))

    snapshot = [(v, keras.ops.convert_to_numpy(v)) for v, _ in values]
    try:
        for variable, value in values:
            variable.assign(keras.ops.cast(value, variable.dtype))
    except BaseException:
        for variable, value in snapshot:
            variable.assign(value)
        raise

    for weight, record, init in zip(mine, records, inits, strict=True):
        _VARIABLES[id(weight.variable)] = (weakref.ref(weight.variable), record)
        if isinstance(weight.layer, MuReadout) and weight.role == "kernel":
            weight.layer.width_mult = record[0] or 1.0
        attribute = _INIT_ATTRIBUTES.get(weight.role)
        if attribute is not None and hasattr(weight.layer, attribute):
            setattr(weight.layer, attribute, init)
        _remember_layer(weight.layer)
    _store_attention_records(model, mine, records, inits)
    return model


def _store_attention_records(model, mine, records, inits) -> None:
    """Puts a MultiHeadAttention's projection records in its own initializers."""
    by_layer = {}
    for weight, record, init in zip(mine, records, inits, strict=True):
        by_layer.setdefault(id(weight.layer), {})[weight.role] = (record, init)
    for layer in graph.layers(model):
        if not isinstance(layer, keras.layers.MultiHeadAttention):
            continue
        found = graph.attention_projections(layer)
        projections = [
            found[name] for name in ("query", "key", "value", "output") if name in found
        ]
        for role in ("kernel", "bias"):  # MHA's own, cloned into its projections
            sublayers, base = {}, None
            for sub in projections:
                entry = by_layer.get(id(sub), {}).get(role)
                if entry is None:
                    continue
                (fan_in_mult, fan_out_mult, _), init = entry
                sublayers[sub.name] = [fan_in_mult, fan_out_mult]
                base = base or init.base
            if sublayers:
                graph.set_attention_initializer(
                    layer, role, MuInit(base, 1.0, sublayers=sublayers)
                )


# --------------------------------------------------------------------------
# optimizers


class _MuOptimizer:
    """Per-variable learning-rate multipliers, from the µP records, in `build`.

    `update_step(gradient, variable, learning_rate)` runs the parent's with
    `learning_rate * multiplier`; every Keras backend's training step calls
    it (JAX's `stateless_apply` too), and a subclass is not swapped for
    PyTorch's fused implementations, which skip it.
    """

    _family = "adam"
    # Keras takes any number here (it checks `momentum` alone): a NaN or a
    # negative value would train to NaN or uphill without a word.
    _RANGES = {
        "beta_1": "[0, 1)",
        "beta_2": "[0, 1)",
        "epsilon": "(0, inf)",
        "weight_decay": "[0, inf)",
        "momentum": "[0, 1]",
    }

    def __init__(self, *args, **kwargs):
        try:
            bound = inspect.signature(super().__init__).bind_partial(*args, **kwargs)
        except TypeError:  # too many positional arguments: the parent says so
            bound = None
        if bound is not None:
            for name, value in bound.arguments.items():
                if name == "learning_rate":
                    _check_learning_rate(value)
                elif name in self._RANGES and value is not None:
                    value = number_in(name, value, self._RANGES[name])
                    if name == "momentum":  # SGD takes a Python float only
                        bound.arguments[name] = value
            args, kwargs = bound.args, bound.kwargs
        super().__init__(*args, **kwargs)

    def build(self, variables):
        super().build(variables)
        records = _records(variables)
        if variables and not records:
            warnings.warn(
                f"{type(self).__name__}: none of the variables has a µP record, "
                "so every learning-rate multiplier is 1 (plain "
                f"{type(self).__mro__[2].__name__}). Call "
                "`keras_weightinit.set_base_shapes(model, base_model)` first.",
                stacklevel=2,
            )
        self._mup_multipliers = [
            lr_multiplier(
                *records.get(id(v), (None, None, False))[:2],
                self._family,
                records.get(id(v), (None, None, False))[2],
            )
            for v in variables
        ]

    @property
    def mup_multipliers(self) -> list[float]:
        """The learning-rate multiplier of each variable, in `build`'s order."""
        return list(getattr(self, "_mup_multipliers", []))

    def update_step(self, gradient, variable, learning_rate):
        multiplier = self._mup_multipliers[graph.variable_index(self, variable)]
        if multiplier != 1.0:
            learning_rate = keras.ops.multiply(learning_rate, multiplier)
        return super().update_step(gradient, variable, learning_rate)


def _check_learning_rate(value) -> None:
    """Raises `ValueError` unless `value` is a learning rate Keras can use.

    A positive finite number, a `LearningRateSchedule` or a callable (not
    checked: it is called later).
    """
    if callable(value):  # a `LearningRateSchedule` too
        return
    if is_number(value):
        positive_number("learning_rate", value)
        return
    raise ValueError(
        "Argument `learning_rate` must be a positive finite number, a "
        "`keras.optimizers.schedules.LearningRateSchedule` or a callable "
        f"returning the rate. Received: learning_rate={value!r}"
    )


_OPTIMIZER_DOC = """{name} with µP's per-variable learning rates: `{base}` whose
    update of each weight uses `learning_rate * lr_mult`, `lr_mult` from the
    records `set_base_shapes` left on the model ({family} column of the
    table in `keras_weightinit.mup`: {summary}).

    Args:
        learning_rate: The base learning rate (the one tuned at the base
            width): a positive finite number, a schedule or a callable.
        **kwargs: `keras.optimizers.{base}`'s other arguments, unchanged;
            checked here where Keras takes any number: `beta_1`, `beta_2`
            in [0, 1), `epsilon` > 0, `weight_decay` >= 0 (or None),
            `momentum` in [0, 1].

    Raises:
        ValueError: A learning rate that is not a positive finite number or
            a schedule, or one of the arguments above out of its range;
            the message names the argument and the value received.

    Example:

    >>> def mlp(width):
    ...     return keras.Sequential([keras.Input((64,)),
    ...         keras.layers.Dense(width, activation="relu"), MuReadout(10)])
    >>> model = set_base_shapes(mlp(128), mlp(32), seed=0)
    >>> model.compile(optimizer={name}({lr}),
    ...     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    Reference:
        Yang et al., "Tensor Programs V", 2022, Tables 3 and 8 (the `mup`
        package's `{mup}`).
    """

_ADAM = (
    "hidden weights `lr / m_in`, input weights, vectors and `MuReadout` "
    "kernels `lr`, other output kernels `lr / m_in`"
)
_SGD = (
    "input weights and vectors `lr * m_out`, hidden weights `lr * m_out / m_in`, "
    "`MuReadout` kernels `lr * m_in`, other output kernels `lr / m_in`"
)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MuAdam(_MuOptimizer, keras.optimizers.Adam):  # noqa: D101 (__doc__ is set below)
    __doc__ = _OPTIMIZER_DOC.format(
        name="MuAdam",
        base="Adam",
        family="Adam",
        summary=_ADAM,
        lr="3e-2",
        mup="MuAdam",
    )
    _family = "adam"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MuAdamW(_MuOptimizer, keras.optimizers.AdamW):  # noqa: D101 (__doc__ is set below)
    __doc__ = _OPTIMIZER_DOC.format(
        name="MuAdamW",
        base="AdamW",
        family="Adam",
        summary=_ADAM + "; weight decay `lr * weight_decay` for every weight",
        lr="3e-2",
        mup="MuAdamW",
    )
    _family = "adam"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MuSGD(_MuOptimizer, keras.optimizers.SGD):  # noqa: D101 (__doc__ is set below)
    __doc__ = _OPTIMIZER_DOC.format(
        name="MuSGD", base="SGD", family="SGD", summary=_SGD, lr="0.1", mup="MuSGD"
    )
    _family = "sgd"
