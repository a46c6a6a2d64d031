"""µP and depth-µP/CompleteP for Keras 3: width and depth transfer.

Initialization, learning rates, Adam epsilons and weight decays that do not
depend on width or depth, so that the hyperparameters tuned on a narrow,
shallow model transfer to a wide, deep one (µTransfer).

- `set_base_shapes(model, base_model, delta_model=None, depth_alpha=1.0)`
  compares every trainable weight's fans with the base (and delta) model's,
  and the residual blocks with the base's, writes one record per weight and
  re-initializes the model (a plan `initialize` applies).
- `MuAdam`, `MuAdamW`, `MuSGD`: Keras's optimizers with per-variable learning
  rate, epsilon and decoupled weight-decay factors read from the records,
  kept in the optimizer's config (so `model.save`/`load_model` keep them).
- `MuReadout`: an output `Dense` multiplying its matmul by
  `output_mult / width_mult`; `MuMultiHeadAttention`: `1/d` attention.
- `mup_multipliers(model)`: the table as applied, weight by weight.

The table is `keras_weightinit.parametrization.multipliers` (Tensor Programs
V, Tables 3 and 8; CompleteP, Table 1). µP's forward multipliers (attention
`1/d`, residual branches `(L_base / L)^alpha`, a tied readout's `1/m`) are
folded into the weights that produce the multiplied outputs, an exact
reparametrization under Adam and SGD (see `parametrization`), so any Keras
model, KerasHub's included, becomes a µP model without a change to its
code. A model at its base width and depth is initialized as in the standard
parametrization and trains exactly like plain Adam/SGD.

Where the records live: on each variable (in this process), in the
optimizer's config once it is built (saved with a compiled model), and, for
layers whose config holds their initializers (Keras's own layers), in a
`MuInit` in the layer's initializer attribute (so `clone_model` and a saved
uncompiled model keep them).

Reference:
    Yang et al., "Tensor Programs V: Tuning Large Neural Networks via
    Zero-Shot Hyperparameter Transfer", 2022; Yang et al., "Tensor Programs
    VI: Feature Learning in Infinite-Depth Neural Networks", ICLR 2024; Dey
    et al., "Don't be lazy: CompleteP enables compute-efficient deep
    transformers", NeurIPS 2025.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import warnings

import keras
import numpy as np

from keras_weightinit import graph, model_init, parametrization, recipes
from keras_weightinit.checks import (
    boolean,
    is_number,
    number_in,
    positive_int,
    positive_number,
)
from keras_weightinit.graph import Weight
from keras_weightinit.initializers import RandomNormal
from keras_weightinit.parametrization import Multipliers, Record, multipliers
from keras_weightinit.seeds import Seed, check_seed

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
_TAG = "keras_weightinit_mup"  # the attribute holding a variable's Record

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
_RECORD_FIELDS = [f.name for f in dataclasses.fields(Record)]


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


def _record(config: dict) -> Record:
    """A `Record` from its config (a `MuInit`'s or an optimizer's)."""
    fields = {k: config[k] for k in _RECORD_FIELDS if k in config}
    for key in ("fan_in_mult", "fan_out_mult"):
        fields[key] = _mult(fields.get(key))
    return Record(**fields)


def record_of(variable) -> Record | None:
    """The µP record `set_base_shapes` left on `variable`, if any."""
    return getattr(variable, _TAG, None)


# --------------------------------------------------------------------------
# the record as an initializer, for layer configs


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MuInit(keras.initializers.Initializer):
    """A µP record that is also the initializer drawing the weight.

    `MuInit(base, scale)(shape)` is `scale * base(shape)`; the record
    (`parametrization.Record`'s fields) is carried in its config, so that
    layer configs (saved models, `clone_model`) keep it. `set_base_shapes`
    puts one in every re-initialized weight's initializer attribute, where
    the layer has one; users do not create them.

    Args:
        base: The initializer drawing the values (serialized or not).
        scale: The factor applied to its draws.
        fan_in_mult: `fan_in / base fan_in` when the fan-in grows with width,
            None when it does not.
        fan_out_mult: The same for the fan-out (or a vector's length).
        readout: Whether the weight is a `MuReadout` kernel.
        sublayers: For a `MultiHeadAttention`'s own initializers: projection
            name -> that projection's record config.
        block: Whether the weight lives in a residual block.
        depth_mult: `L / L_base`.
        depth_alpha: The branch exponent.
        fold: The forward multiplier folded into the weight.

    Example:

    >>> init = MuInit(keras.initializers.Zeros(), fan_in_mult=4.0,
    ...               fan_out_mult=4.0)
    >>> init.record("dense").kind
    'hidden'

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
        block: bool = False,
        depth_mult: float = 1.0,
        depth_alpha: float = 1.0,
        fold: float = 1.0,
    ):
        self.base = keras.initializers.get(base)
        self.scale = float(scale)
        self.fan_in_mult = _mult(fan_in_mult)
        self.fan_out_mult = _mult(fan_out_mult)
        self.readout = bool(readout)
        self.sublayers = {str(k): dict(v) for k, v in (sublayers or {}).items()}
        self.block = bool(block)
        self.depth_mult = float(depth_mult)
        self.depth_alpha = float(depth_alpha)
        self.fold = float(fold)

    def record(self, layer_name: str | None = None) -> Record:
        """The weight's `Record`, or a named projection's."""
        if layer_name in self.sublayers:
            return _record(self.sublayers[layer_name])
        return _record(self.get_config())

    def __call__(self, shape, dtype=None):
        values = self.base(shape, dtype=dtype)
        return values if self.scale == 1.0 else values * self.scale

    def get_config(self) -> dict:
        return {
            "base": keras.initializers.serialize(self.base),
            "scale": self.scale,
            "fan_in_mult": self.fan_in_mult,
            "fan_out_mult": self.fan_out_mult,
            "readout": self.readout,
            "sublayers": {k: dict(v) for k, v in self.sublayers.items()},
            "block": self.block,
            "depth_mult": self.depth_mult,
            "depth_alpha": self.depth_alpha,
            "fold": self.fold,
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
        self.base_key_dim = positive_int("base_key_dim", base_key_dim)
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
# the table, as applied


def lr_multiplier(
    fan_in_mult: float | None,
    fan_out_mult: float | None,
    family: str = "adam",
    readout: bool = False,
) -> float:
    """The µP learning-rate multiplier of one weight at its width.

    The width column of `parametrization.multipliers` (depth and folded
    multipliers aside): Adam `1/m_in` for hidden weights and output kernels
    other than `MuReadout`'s, 1 otherwise; SGD `m_out/m_in`, `m_in`
    (`MuReadout`) or `1/m_in` (other outputs), `m_out` (inputs, vectors).

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
    record = Record(_mult(fan_in_mult), _mult(fan_out_mult), bool(readout))
    return multipliers(record, family).lr


def _records_of_layer(layer: keras.Layer) -> dict[int, Record]:
    """`id(variable) -> Record` of the weights `layer` holds from a MuInit."""
    found = {}
    for role, attribute in _INIT_ATTRIBUTES.items():
        variable = getattr(layer, "scale" if role == "gamma" else role, None)
        if role == "gamma" and not isinstance(variable, keras.Variable):
            variable = getattr(layer, "gamma", None)
        init = getattr(layer, attribute, None)
        if isinstance(variable, keras.Variable) and isinstance(init, MuInit):
            found[id(variable)] = init.record(layer.name)
    return found


def model_records(model: keras.Model) -> dict[str, Record]:
    """`variable path -> Record` of `model`'s trainable weights that have one.

    From the variables themselves (`set_base_shapes` in this process), else
    the model's µ-optimizer (a loaded compiled model), else its layers'
    `MuInit`s (a clone, a loaded Keras-layer model).
    """
    variables = list(model.trainable_variables)
    found = {v.path: record_of(v) for v in variables if record_of(v) is not None}
    if found:
        return found
    optimizer = getattr(model, "optimizer", None)
    if isinstance(optimizer, _MuOptimizer) and optimizer.parametrization:
        return {k: _record(v) for k, v in optimizer.parametrization.items()}
    by_id = {}
    for layer in graph.layers(model):
        by_id.update(_records_of_layer(layer))
    return {v.path: by_id[id(v)] for v in variables if id(v) in by_id}


def mup_multipliers(model: keras.Model, family: str = "adam") -> dict[str, dict]:
    """Every trainable weight's µP record and multipliers.

    Args:
        model: A model after `set_base_shapes` (or loaded/cloned from one).
        family: `"adam"` or `"sgd"`: the table used.

    Returns:
        `variable path -> {"fan_in_mult", "fan_out_mult", "readout", "block",
        "fold", "lr_mult", "epsilon_mult", "weight_decay_mult", "rule"}`
        (`rule`: the table's row in words); the fan
        multipliers are None for fans that do not grow, and a weight
        without a record has every multiplier 1.

    Example:

    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32),
    ...                           keras.layers.Dense(32), MuReadout(3)])
    >>> base = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8),
    ...                          keras.layers.Dense(8), MuReadout(3)])
    >>> table = mup_multipliers(set_base_shapes(model, base))
    >>> [row["lr_mult"] for row in table.values()][:3]
    [1.0, 1.0, 0.25]

    Reference:
        Yang et al., "Tensor Programs V", 2022, Tables 3 and 8; Dey et al.,
        "Don't be lazy: CompleteP", 2025, Table 1.
    """
    records = model_records(model)
    table = {}
    for variable in model.trainable_variables:
        record = records.get(variable.path, Record())
        factors = multipliers(record, family)
        table[variable.path] = {
            "fan_in_mult": record.fan_in_mult,
            "fan_out_mult": record.fan_out_mult,
            "readout": record.readout,
            "block": record.block,
            "fold": record.fold,
            "lr_mult": factors.lr,
            "epsilon_mult": factors.epsilon,
            "weight_decay_mult": factors.weight_decay,
            "rule": _words(record),
        }
    return table


def _words(record: Record) -> str:
    """The row of the table that applies, in words."""
    names = {
        "hidden": "hidden weight",
        "output": "output weight",
        "input": "input weight or vector",
        "fixed": "does not grow",
    }
    words = ["MuReadout kernel" if record.readout else names[record.kind]]
    if record.block:
        words.append(f"in a block (depth x {record.depth_mult:g})")
    if record.fold != 1.0:
        words.append(f"folded multiplier {record.fold:.4g}")
    return ", ".join(words)


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


def _init_scale(record: Record) -> float:
    """The factor of the standard draw: Table 3's output row, Table 8's."""
    if record.kind == "output":
        m = record.fan_in_mult
        return math.sqrt(m) if record.readout else 1.0 / math.sqrt(m)
    return 1.0


def _start(weight: Weight, model: keras.Model, reading, seed: Seed):
    """The standard draw; in a tied model, tables at the base readout's std.

    A table tied to the readout keeps the std `initialize` gives the tied
    readout at the base width (`model_init.readout_std`), the same at
    every width: an input weight's coordinates do not shrink with width.
    """
    if reading.tied is not None and weight.role in ("embeddings", "token"):
        std = model_init.readout_std(reading.base[reading.tied])
        return RandomNormal(stddev=std, seed=seed)
    return model_init.standard_initializer(weight, model, seed, mode="fan_in")


class _Draw:
    """A seed -> initializer factory: the standard draw times a factor."""

    def __init__(self, weight: Weight, model: keras.Model, reading, scale: float):
        self.weight, self.model, self.reading = weight, model, reading
        self.scale = scale

    def __call__(self, seed: Seed) -> keras.initializers.Initializer:
        init = _start(self.weight, self.model, self.reading, seed)
        return init if self.scale == 1.0 else MuInit(init, self.scale)


def _recipe_plan(model, reading, zeros: set[str]) -> recipes.RecipePlan:
    """µP's re-initialization as a plan `initialize` applies."""
    rules = {}
    for weight in reading.weights:
        if not weight.kernel_like:
            continue
        record = reading.records[weight.path]
        if weight.path in zeros:
            make, words = (lambda seed: keras.initializers.Zeros()), "0"
        else:
            scale = _init_scale(record)
            make = _Draw(weight, model, reading, scale)
            words = "standard" + (f" x {scale:.4g}" if scale != 1.0 else "")
        rules[weight.path] = recipes.Rule(make, f"{words} ({reading.why[weight.path]})")
    factors = {p: r.fold for p, r in reading.records.items() if r.fold != 1.0}
    return recipes.RecipePlan(
        "mup", rules, blocks=reading.blocks, factors=factors, offsets=reading.offsets
    )


def _zeros(reading, model, zero_readout: bool, zero_query: bool) -> set[str]:
    """The kernels drawn as 0: `MuReadout`s that ask, readouts, queries."""
    zeros = {
        w.path
        for w in reading.weights
        if isinstance(w.layer, MuReadout)
        and w.layer.readout_zero_init
        and w.role == "kernel"
    }
    if zero_readout:
        if reading.tied is not None:
            raise ValueError(
                f"Argument `zero_readout=True` would zero model {model.name!r}'s "
                f"token table: its readout is tied to it ({reading.tied}). "
                "Received: zero_readout=True"
            )
        zeros.update(reading.readout_paths)
    if zero_query:
        if not reading.query_paths:
            raise ValueError(
                f"Argument `zero_query=True` needs attention, but no query "
                f"kernel was found in model {model.name!r}. Received: "
                "zero_query=True"
            )
        zeros.update(reading.query_paths)
    return zeros


def set_base_shapes(
    model: keras.Model,
    base_model: keras.Model,
    delta_model: keras.Model | None = None,
    *,
    depth_alpha: float = 1.0,
    zero_readout: bool = False,
    zero_query: bool = False,
    rescale: bool = True,
    seed: Seed = None,
) -> keras.Model:
    """Makes `model` a µP (and depth-µP) model whose base is `base_model`.

    A fan grows with width when it differs between `base_model` and
    `delta_model` (or, without `delta_model`, between `base_model` and
    `model`); its multiplier is `m = fan(model) / fan(base_model)`. When
    `model` has `L` residual blocks and `base_model` `L_base`, the depth
    multiplier is `r = L / L_base`. Each trainable weight gets one record
    (`parametrization.Record`) and, with `rescale=True`, is re-drawn:

    - input, hidden and block weights: `N(0, gain^2 / fan_in)` (He for the
      ReLU family, LeCun otherwise, by the activation after the layer;
      `N(0, 1)` for tables, orthogonal for recurrent kernels); biases and
      betas 0, gammas 1;
    - output kernels (the fan-in grows, the fan-out does not):
      `N(0, 1 / (m_in fan_in))` (Table 3); `MuReadout` kernels 0 with
      `readout_zero_init=True`, else `N(0, 1 / base fan_in)` (Table 8);
    - folded multipliers (see `parametrization`): the query and key kernels
      `x (d_base/d)^(1/4)` each (attention `sqrt(d_base)/d`, `d` the head
      size), every residual branch's last kernel and bias (or closing
      normalization) `x (L_base/L)^alpha`, and the normalization before a
      readout tied to the token table `x 1/m`.

    Weights inside residual blocks are never readouts: one whose fan-out
    does not grow (the key and value kernels of grouped-query attention
    with a fixed number of key-value heads) is treated as hidden.

    Args:
        model: The built model to train, of any width and depth.
        base_model: The same architecture at the base width and depth (where
            the hyperparameters are tuned); built. It may have fewer (or
            more) residual blocks: block `k` of `L` pairs with block
            `k L_base // L`.
        delta_model: The same architecture at another width, to tell which
            dimensions grow when `model` has the base width in some of them
            (as in the `mup` package); built.
        depth_alpha: The branch exponent: 1 (CompleteP, the default) or
            1/2 (Depth-µP); any value in [1/2, 1].
        zero_readout: Whether untied readout kernels start at 0.
        zero_query: Whether query kernels start at 0 (uniform attention).
        rescale: Whether to re-initialize `model` (False: only record the
            multipliers, e.g. for a model loaded with trained weights).
        seed: None, a non-negative int or a `keras.random.SeedGenerator`;
            None draws the same weights on every process.

    Returns:
        `model`, in place (all-or-nothing: on any error it is unchanged).

    Raises:
        ValueError: If a model is not built, `base_model`/`delta_model` does
            not have `model`'s structure, or an argument is out of range (the
            argument is named).

    Example:

    >>> def mlp(width):
    ...     return keras.Sequential([keras.Input((64,)),
    ...         keras.layers.Dense(width, activation="relu"),
    ...         keras.layers.Dense(width, activation="relu"), MuReadout(10)])
    >>> model = set_base_shapes(mlp(256), mlp(64), seed=0)
    >>> model.compile(optimizer=MuAdam(3e-2), loss="mse")

    Reference:
        Yang et al., "Tensor Programs V", 2022, Tables 3 and 8; Dey et al.,
        "Don't be lazy: CompleteP enables compute-efficient deep
        transformers", 2025, Table 1; the `mup` package's `set_base_shapes`.
    """
    _check_built(model, "model")
    _check_built(base_model, "base_model")
    if delta_model is not None:
        _check_built(delta_model, "delta_model")
    depth_alpha = number_in("depth_alpha", depth_alpha, "[0.5, 1]")
    zero_readout = boolean("zero_readout", zero_readout)
    zero_query = boolean("zero_query", zero_query)
    rescale = boolean("rescale", rescale)
    seed = check_seed(seed)
    scaled = {  # projections of attentions that apply 1/d themselves
        id(sub)
        for layer in graph.layers(model)
        if isinstance(layer, MuMultiHeadAttention)
        for sub in graph.attention_projections(layer).values()
    }
    reading = parametrization.read(
        model,
        base_model,
        delta_model,
        depth_alpha,
        is_readout=lambda w: isinstance(w.layer, MuReadout) and w.role == "kernel",
        own_scale=lambda w: id(w.layer) in scaled,
    )
    zeros = _zeros(reading, model, zero_readout, zero_query)
    if rescale:
        model_init.initialize(model, _recipe_plan(model, reading, zeros), seed=seed)
    _write_records(model, base_model, reading, zeros)
    return model


def _layer_init(weight: Weight, model, reading, zeros: set[str]) -> tuple:
    """`(initializer, scale)` that draws `weight` as `set_base_shapes` did."""
    record = reading.records[weight.path]
    if weight.path in zeros:
        return keras.initializers.Zeros(), 1.0
    if weight.kernel_like:
        start = _start(weight, model, reading, None)
        return start, _init_scale(record) * record.fold
    if record.fold == 1.0:
        own = getattr(weight.layer, _INIT_ATTRIBUTES[weight.role])
        return (own.base if isinstance(own, MuInit) else own), 1.0
    initial = np.asarray(model_init.set_value(weight)).flat
    value = float(initial[0]) if len(initial) else 0.0
    offset = reading.offsets.get(weight.path, 0.0)
    return keras.initializers.Constant((value + offset) * record.fold - offset), 1.0


def _write_records(model, base_model, reading, zeros: set[str]) -> None:
    """The records on the variables and in the layers' initializers."""
    for weight in reading.weights:
        record = reading.records[weight.path]
        setattr(weight.variable, _TAG, record)
        if isinstance(weight.layer, MuReadout) and weight.role == "kernel":
            weight.layer.width_mult = record.fan_in_mult or 1.0
        attribute = _INIT_ATTRIBUTES.get(weight.role)
        if attribute is not None and hasattr(weight.layer, attribute):
            base, scale = _layer_init(weight, model, reading, zeros)
            config = dataclasses.asdict(record)
            setattr(weight.layer, attribute, MuInit(base, scale, **config))
    for layer, base_layer in zip(
        graph.layers(model), graph.layers(base_model), strict=False
    ):
        if isinstance(layer, MuMultiHeadAttention) and isinstance(
            base_layer, keras.layers.MultiHeadAttention
        ):
            layer.set_base_key_dim(int(base_layer.key_dim))
    _store_attention_records(model, reading)


def _store_attention_records(model, reading) -> None:
    """Puts a MultiHeadAttention's projection records in its own initializers."""
    by_layer: dict[int, dict] = {}
    for weight in reading.weights:
        by_layer.setdefault(id(weight.layer), {})[weight.role] = reading.records[
            weight.path
        ]
    for layer in graph.layers(model):
        found = graph.attention_projections(layer)
        for role in ("kernel", "bias"):  # MHA's own, cloned into its projections
            sublayers = {
                sub.name: dataclasses.asdict(by_layer[id(sub)][role])
                for sub in found.values()
                if role in by_layer.get(id(sub), {})
            }
            if sublayers:
                base = getattr(layer, f"{role}_initializer", "zeros")
                if isinstance(base, MuInit):
                    base = base.base
                graph.set_attention_initializer(
                    layer, role, MuInit(base, 1.0, sublayers=sublayers)
                )


# --------------------------------------------------------------------------
# optimizers


class _MuOptimizer:
    """Per-variable learning rate, epsilon and decoupled weight decay.

    In `build` each variable's `Record` is read (from the optimizer's own
    `parametrization`, by variable path, else from the variable) and kept
    by path in the config. `update_step(gradient, variable, learning_rate)`
    decays the variable by `learning_rate * lr_mult * weight_decay *
    decay_mult`, then runs the parent's step with `learning_rate * lr_mult`
    and `epsilon * epsilon_mult`; every Keras backend's training step calls
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

    def __init__(self, *args, parametrization: dict | None = None, **kwargs):
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
        self.decoupled_weight_decay = self.weight_decay
        self.weight_decay = None  # applied per variable in update_step
        self.parametrization = _check_parametrization(parametrization)

    def build(self, variables):
        super().build(variables)
        records = _records_for(self.parametrization, variables)
        if variables and not any(records):
            warnings.warn(
                f"{type(self).__name__}: none of the variables has a µP record, "
                "so every multiplier is 1 (plain "
                f"{type(self).__mro__[2].__name__}). Call "
                "`keras_weightinit.set_base_shapes(model, base_model)` first "
                "(`rescale=False` for a cloned or loaded model).",
                stacklevel=2,
            )
        records = [r or Record() for r in records]
        self.parametrization = {
            v.path: {**dataclasses.asdict(r), "shape": list(v.shape)}
            for v, r in zip(variables, records, strict=True)
        }
        self._factors = [multipliers(r, self._family) for r in records]

    @property
    def mup_multipliers(self) -> list[float]:
        """The learning-rate multiplier of each variable, in `build`'s order."""
        return [f.lr for f in getattr(self, "_factors", [])]

    def update_step(self, gradient, variable, learning_rate):
        factors: Multipliers = self._factors[graph.variable_index(self, variable)]
        if factors.lr != 1.0:
            learning_rate = keras.ops.multiply(learning_rate, factors.lr)
        decay = self.decoupled_weight_decay
        if decay and graph.uses_weight_decay(self, variable):
            rate = keras.ops.multiply(learning_rate, decay * factors.weight_decay)
            variable.assign_sub(variable * keras.ops.cast(rate, variable.dtype))
        epsilon = getattr(self, "epsilon", None)
        if epsilon is None or factors.epsilon == 1.0:
            return super().update_step(gradient, variable, learning_rate)
        self.epsilon = epsilon * factors.epsilon
        try:
            return super().update_step(gradient, variable, learning_rate)
        finally:
            self.epsilon = epsilon

    def get_config(self) -> dict:
        config = super().get_config()
        config["weight_decay"] = self.decoupled_weight_decay
        config["parametrization"] = self.parametrization
        return config


def _records_for(own: dict | None, variables) -> list[Record | None]:
    """Each variable's record: the optimizer's own, else the variable's.

    The optimizer's own records (its config) match by variable path, or,
    when the paths differ (a model loaded or cloned under other names), by
    position, if every shape agrees.
    """
    if not own:
        return [record_of(v) for v in variables]
    if all(v.path in own for v in variables):
        return [_record(own[v.path]) for v in variables]
    configs = list(own.values())
    shapes = [tuple(c.get("shape", ())) for c in configs]
    if shapes == [tuple(v.shape) for v in variables]:
        return [_record(c) for c in configs]
    raise ValueError(
        f"The optimizer's µP records ({len(configs)} variables) do not match "
        f"the {len(variables)} variables it is built for (by path or by "
        f"position and shape). Received: first paths "
        f"{[v.path for v in variables][:3]} against {list(own)[:3]}"
    )


def _check_parametrization(value) -> dict | None:
    """`variable path -> Record config`, checked, or None."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(
            "Argument `parametrization` must be a dict of variable path -> "
            f"µP record (an optimizer's config). Received: parametrization of "
            f"type {type(value).__name__}"
        )
    checked = {}
    for path, config in value.items():
        try:
            record = dataclasses.asdict(_record(dict(config)))
            checked[str(path)] = {**record, "shape": list(config.get("shape", []))}
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"Argument `parametrization` holds a bad record for {path!r}: "
                f"{error}. Received: {path!r}: {config!r}"
            ) from None
    return checked


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
