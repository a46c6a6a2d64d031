"""Initializing a whole built model: per-activation `initialize` and data-driven `lsuv`.

Neither fits `kernel_initializer=`: `initialize(model, "auto")` looks at the
activation that follows each layer, and `lsuv` needs a built model and a batch
of data (keras-team/keras#3608). Both read the model through
`keras_weightinit.graph`, so they reach every kernel-like weight at any depth
(Dense, Conv, ConvTranspose, EinsumDense and `MultiHeadAttention`'s
projections, Depthwise and Separable convolutions, LSTM/GRU/SimpleRNN cells,
Embedding tables, inside nested models, subclassed models and custom layers),
and both either finish or leave the model exactly as it was.

Several processes (`keras.distribution` on JAX; `keras_weightinit.distributed`):
both check that every process holds the same model and agree on one seed
(process 0's for `seed=None`), and `lsuv` takes each layer's variance over
the union of the processes' batches, so every process ends with the same
weights; an error on one process fails the call on all, each restoring its
weights. Each weight is re-drawn into its current layout: a kernel sharded
by a `ModelParallel` `LayoutMap` is drawn shard by shard and keeps its
sharding.
"""

from __future__ import annotations

import contextlib
import functools
import math
import random as python_random
import warnings

import keras
import numpy as np
from keras import ops

from keras_weightinit import distributed, graph, recipes, structure, transaction
from keras_weightinit.checks import (
    boolean,
    is_int,
    known_keywords,
    one_of,
    positive_int,
    positive_number,
    verbose_level,
)
from keras_weightinit.data import as_batch, fit_model_input, is_dataset
from keras_weightinit.gains import activation_family
from keras_weightinit.graph import Weight
from keras_weightinit.initializers import (
    HeNormal,
    Orthogonal,
    RandomNormal,
    XavierNormal,
    draw_with_fans,
    get_scheme,
    scheme_names,
)
from keras_weightinit.probe import (
    Stop,
    forward,
    observe,
    shadow_calls,
    without_gradients,
)
from keras_weightinit.residual import branch_factors, check_recipe
from keras_weightinit.rules import KEEP, Rules
from keras_weightinit.seeds import Seed, check_seed, spawn_seeds

__all__ = [
    "InitReport",
    "LSUVReport",
    "check_lsuv_args",
    "draw_weight",
    "initialize",
    "lsuv",
    "set_value",
    "standard_initializer",
]

# Samples LSUV collects from a tf.data.Dataset or PyDataset.
_DATASET_SAMPLES = 1024


# --------------------------------------------------------------------------
# argument checks


def check_model(model, caller: str) -> keras.Model:
    """Returns `model` if it is a built `keras.Model`, else `ValueError`."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            "Argument `model` must be a `keras.Model`. "
            f"Received: model of type {type(model).__name__}"
        )
    unbuilt = [layer.name for layer in graph.layers(model) if not layer.built]
    if not model.built or unbuilt:
        raise ValueError(
            f"{caller} needs a built model, but model {model.name!r} is not built"
            + (f" (layers {unbuilt})" if unbuilt else "")
            + ". Call `model.build(input_shape)` or call the model on data first."
        )
    return model


_LSUV_ARGUMENTS = ("tol", "max_iters", "orthogonal", "verbose", "seed")
_TOL_MIN = float(np.finfo(np.float32).resolution)  # 1e-06


def check_lsuv_args(
    tol=0.1, max_iters=10, orthogonal=True, verbose=0, seed=None, **unknown
):
    """Raises `ValueError` for a bad `lsuv` argument; returns them checked.

    `LSUVInit` calls it at construction, so a bad value fails before `fit`;
    an unknown keyword is named with the accepted ones. `tol` must be at
    least float32's resolution, 1e-6: the variances are float32, so a
    smaller one is never met. `verbose` as in Keras (`checks.verbose_level`),
    returned as an int.

    Example:

    >>> check_lsuv_args(tol=0.05, max_iters=20)
    (0.05, 20, True, 0, None)
    """
    known_keywords("lsuv (and LSUVInit)", unknown, _LSUV_ARGUMENTS)
    tol = positive_number("tol", tol)
    if tol < _TOL_MIN:
        raise ValueError(
            f"Argument `tol` must be at least {_TOL_MIN:g}, float32's resolution "
            "(the variances are float32: a smaller tolerance is never met). "
            f"Received: tol={tol!r}"
        )
    max_iters = positive_int("max_iters", max_iters)
    orthogonal = boolean("orthogonal", orthogonal)
    verbose = verbose_level(verbose)
    return tol, max_iters, orthogonal, verbose, check_seed(seed)


# --------------------------------------------------------------------------
# drawing a weight with its fans


def draw_weight(init, weight: Weight, seed: Seed = None):
    """`init`'s values for `weight`, drawn with the weight's fans and gates.

    Each gate block of a recurrent kernel is drawn on its own, from a copy of
    `init` with a seed derived from `seed`. The values stay on the backend's
    device (a tensor).

    Example:

    >>> model = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4)])
    >>> recurrent = [w for w in graph.weights(model)
    ...              if w.role == "recurrent_kernel"][0]
    >>> q = keras.ops.convert_to_numpy(draw_weight(Orthogonal(), recurrent, seed=0))
    >>> bool(np.allclose(q[:, :4].T @ q[:, :4], np.eye(4), atol=1e-5))
    True
    """
    view, back = graph.drawn_view(weight)
    dtype = weight.variable.dtype
    fans = None if weight.fan_in is None else (weight.fan_in, weight.fan_out)
    if weight.experts > 1:  # one draw per expert, with an expert's fans
        slices = spawn_seeds(seed, weight.experts)
        return ops.stack(
            [
                _draw_gates(_clone(init, s), view[1:], dtype, fans, weight.gates, s)
                for s in slices
            ]
        )
    return back(_draw_gates(init, view, dtype, fans, weight.gates, seed))


def _draw_gates(init, shape, dtype, fans, gates: int, seed: Seed):
    """`init` drawn for `shape`, each of `gates` blocks of the last axis alone."""
    if gates == 1:
        return ops.convert_to_tensor(draw_with_fans(init, shape, dtype, fans))
    block = (*shape[:-1], shape[-1] // gates)
    parts = [
        ops.convert_to_tensor(
            draw_with_fans(_clone(init, block_seed), block, dtype, fans)
        )
        for block_seed in spawn_seeds(seed, gates)
    ]
    return ops.concatenate(parts, axis=-1)


def _clone(initializer, seed: Seed):
    """A copy of `initializer` drawing from `seed` (fresh when None)."""
    config = initializer.get_config()
    if "seed" not in config:  # deterministic: Zeros, ZerO, Identity, ...
        return initializer
    if seed is None:
        seed = python_random.getrandbits(31)  # Keras's unseeded ones repeat
    config["seed"] = keras.saving.serialize_keras_object(seed)
    return type(initializer).from_config(config)


def set_value(weight: Weight) -> np.ndarray:
    """The value `initialize` sets a weight that is not drawn to.

    The value its layer's own initializer gives it at build, where that is
    a constant (`Weight.initial`: a norm's scale, Gemma's zero scale, a
    LayerScale's 1e-6, an LSTM's forget-gate bias); else biases and betas
    are 0 and gammas 1, an LSTM bias 1 on its forget gate when the cell has
    `unit_forget_bias=True` (Jozefowicz et al. 2015).
    """
    shape = weight.shape
    if weight.initial is not None:
        return np.asarray(weight.initial)
    if weight.role == "gamma":
        return np.ones(shape, "float32")
    value = np.zeros(shape, "float32")
    layer = weight.layer
    if weight.role == "bias" and getattr(layer, "unit_forget_bias", False):
        units = shape[-1] // 4
        value[..., units : 2 * units] = 1.0
    return value


def readout_std(head: Weight) -> float:
    """The std of the readout's draw: `sqrt(0.1 ln(C) / fan_in)`, at most LeCun's.

    Logits `z = h W` of `C` classes, from features `h` of unit second moment
    and `W ~ N(0, s^2 / fan_in)`, are i.i.d. `N(0, s^2)`, and the expected
    cross-entropy of an untrained model is `E[logsumexp(z)] - E[z_y] ~ ln(C)
    + s^2 / 2` (the second-order expansion of `logsumexp` around 0). With
    `s^2 = 0.1 ln(C)` (capped at 1, LeCun's `1 / fan_in`) the model predicts
    near uniformly, its loss within 5% of `ln(C)`, while the readout still
    passes a gradient to the layers below. A tied table `(C, d)` is used
    transposed: its readout fan-in is `d`. `C` is at least 2 (one sigmoid
    unit is a choice of two).

    Example:

    >>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    >>> head = graph.kernel_weights(model)[0]
    >>> round(readout_std(head), 4)
    0.06
    """
    if head.role == "embeddings":
        classes, fan = head.shape[0], head.shape[-1]
    else:
        classes, fan = head.shape[-1] // max(head.gates, 1), head.fan_in
    spread = min(1.0, 0.1 * math.log(max(classes, 2)))
    return math.sqrt(spread / fan)


def _auto(weight: Weight, model, seed: Seed, unknown: list, heads=()):
    """`(initializer, qualifier)` of the "auto" rule for a kernel-like weight."""
    if weight in heads:
        tied = " (readout, tied table)" if weight.role == "embeddings" else " (readout)"
        return RandomNormal(stddev=readout_std(weight), seed=seed), tied
    tied = [h for h in heads if h.role == "embeddings"]
    if tied and weight.role in ("embeddings", "token"):
        # the tied table's scale, so the input tables summed keep their ratio
        return RandomNormal(stddev=readout_std(tied[0]), seed=seed), " (tied model)"
    return standard_initializer(weight, model, seed, unknown=unknown), ""


def standard_initializer(
    weight: Weight,
    model: keras.Model,
    seed: Seed = None,
    mode: str = "fan_avg",
    unknown: list | None = None,
) -> keras.initializers.Initializer:
    """The initializer of a kernel-like weight by its role and the activation after it.

    The "auto" rule of `initialize` below the readout (its table), and µP's
    standard draw (`mode="fan_in"`, `gain / sqrt(fan_in)`): a table is
    `N(0, 1)`, a recurrent kernel orthogonal, an RNN cell's input kernel and
    a Separable depthwise kernel (linear: the pointwise conv follows) and the
    linear family Xavier with `mode`; else He for the ReLU family, He with
    the slope for leaky ReLU, Xavier with the tanh gain and `mode` for tanh,
    LeCun for selu (`gains.activation_family`).

    Args:
        weight: A kernel-like weight of `model` (`graph.weights`).
        model: The model whose layer graph gives the activation after the
            weight's layer.
        seed: The initializer's seed.
        mode: `"fan_avg"` (Glorot) or `"fan_in"` (LeCun) for the Xavier draws.
        unknown: None, or a list that gets `"weight name (activation)"` for
            an activation without a family (drawn as the linear family).

    Returns:
        A new initializer.

    Example:

    >>> model = keras.Sequential([keras.Input((4,)),
    ...                           keras.layers.Dense(8, activation="relu")])
    >>> kernel = graph.kernel_weights(model)[0]
    >>> type(standard_initializer(kernel, model, seed=0)).__name__
    'HeNormal'
    """
    mode = one_of("mode", mode, ("fan_avg", "fan_in"))
    layer = weight.layer
    if weight.role in ("embeddings", "token"):
        return XavierNormal(mode="fan_in", seed=seed)  # fan_in 1: N(0, 1)
    if weight.role == "recurrent_kernel":
        return Orthogonal(seed=seed)
    if isinstance(getattr(layer, "recurrent_kernel", None), keras.Variable):
        return XavierNormal(mode=mode, seed=seed)  # an RNN cell's, per gate
    if weight.role == "depthwise_kernel" and isinstance(
        getattr(layer, "pointwise_kernel", None), keras.Variable
    ):
        return XavierNormal(mode=mode, seed=seed)  # linear: the pointwise follows
    name, slope = graph.following_activation(layer, model)
    family = activation_family(name)
    if family is None and unknown is not None:
        unknown.append(f"{weight.name} ({name})")
    if family == "he":
        return HeNormal(seed=seed)
    if family == "leaky_relu":
        return HeNormal(negative_slope=slope, seed=seed)
    if family == "tanh":
        return XavierNormal(gain="tanh", mode=mode, seed=seed)
    if family == "lecun":
        return XavierNormal(mode="fan_in", seed=seed)
    return XavierNormal(mode=mode, seed=seed)


_SET_RULES = {"bias": "bias: 0", "gamma": "gamma: 1", "beta": "beta: 0"}


def _describe(init) -> str:
    """`HeNormal(negative_slope=0.0, mode='fan_in')`, seed left out."""
    config = {k: v for k, v in init.get_config().items() if k != "seed"}
    args = ", ".join(f"{k}={v!r}" for k, v in config.items())
    return f"{type(init).__name__}({args})"


# --------------------------------------------------------------------------
# initialize


class InitReport(dict):
    """What `initialize` did: `variable path -> initializer used`.

    A plain dict (one entry per re-drawn weight) with `rules`, `variable path
    -> the rule that set it, in words` (every trainable variable: drawn,
    set to its layer's constant, or kept by a user's rule), `alpha`,
    DeepNorm's residual multiplier for the user's residual layers (None for
    other recipes), and `str(report)`, the rules as a table.

    Example:

    >>> model = keras.Sequential([keras.Input((4,)),
    ...                           keras.layers.Dense(8, activation="relu")])
    >>> report = initialize(model, "auto", seed=0)
    >>> report.rules[model.layers[0].kernel.path]
    "auto: HeNormal(negative_slope=0.0, mode='fan_in')"
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rules: dict[str, str] = {}
        self.alpha: float | None = None

    def __str__(self) -> str:
        width = max([len("variable"), *map(len, self.rules)])
        lines = [f"{'variable':<{width}}  rule"]
        lines += [f"{path:<{width}}  {rule}" for path, rule in self.rules.items()]
        if self.alpha is not None:
            lines.append(f"residual layers: alpha = {self.alpha:.4g}")
        return "\n".join(lines)


def initialize(
    model: keras.Model,
    scheme: str | keras.initializers.Initializer = "auto",
    seed: Seed = None,
    residual: str | None = None,
    rules: dict | None = None,
) -> InitReport:
    """Re-initializes every kernel-like weight of a built model, in place.

    Every kernel-like weight at any depth is re-drawn with the fans of its
    layer (`keras_weightinit.graph.fans_of`): kernels of Dense, Conv,
    ConvTranspose (forward fans) and EinsumDense (its contracted axes,
    `MultiHeadAttention`'s projections included), depthwise and pointwise
    kernels, RNN cell kernels and recurrent kernels (each gate block on its
    own), and Embedding tables. Biases are set to 0 (an LSTM's forget gate
    to 1 with `unit_forget_bias`), normalization gammas to 1 and betas to 0.

    With `scheme="auto"` the initializer follows the weight and the
    activation `f` after the layer, so that `Var(f(x W))` stays near
    `Var(x)`:

    | weight, activation after the layer    | initializer                       |
    |---------------------------------------|-----------------------------------|
    | relu, relu6, elu, celu, gelu,         | `HeNormal()`: `sqrt(2 / fan_in)`  |
    | silu/swish, hard_silu, mish,          |                                   |
    | softplus, sparse_plus, squareplus,    |                                   |
    | PReLU (its alpha starts at 0)         |                                   |
    | leaky_relu with slope `a`             | `HeNormal(negative_slope=a)`      |
    | tanh, hard_tanh                       | `XavierNormal(gain="tanh")`       |
    | selu                                  | `XavierNormal(mode="fan_in")`     |
    | linear, sigmoid, hard_sigmoid,        | `XavierNormal()`: Glorot,         |
    | softsign, softmax, log_softmax        | `sqrt(2 / (fan_in + fan_out))`    |
    | anything else (custom)                | `XavierNormal()`, and a warning   |
    | Separable depthwise kernel            | `XavierNormal()` (linear)         |
    | RNN cell kernel                       | `XavierNormal()` per gate block   |
    | RNN recurrent kernel                  | `Orthogonal()` per gate block     |
    | Embedding table (fan_in 1), position  | `XavierNormal(mode="fan_in")`:    |
    | table, class/register token           | `N(0, 1)`                         |
    | the readout (the projection making    | `N(0, 0.1 ln(C) / fan_in)` (see   |
    | logits or probabilities of `C`        | `readout_std`): the untrained     |
    | classes: a Dense head, an untied      | model predicts near uniformly     |
    | reverse embedding)                    |                                   |
    | a tied table (input and readout) and  | the readout's rule, `fan_in = d`, |
    | the model's other input tables        | for the one variable              |
    | a kernel `(experts, in, out)`         | each expert its own draw          |

    Weights that are set, not drawn (biases, normalization scales and
    offsets, LayerScale gains, any weight its layer builds as a constant)
    get the value their layer's own initializer gives them at build
    (Gemma's zero scale stays 0, a LayerScale's 1e-6 stays 1e-6); see
    `keras_weightinit.graph.weights` for how roles are read.

    The activation is the layer's own `activation=`; when that is linear, a
    single `Activation`, `ReLU`, `LeakyReLU`, `PReLU`, `ELU` or `Softmax`
    layer that takes the layer's output in the layer graph, possibly through
    normalization, dropout or noise layers, is used instead. A named scheme
    or an initializer is applied to every kernel-like weight with the same
    fans and gate blocks.

    Args:
        model: A built `keras.Model`: Sequential, functional or subclassed.
        scheme: `"auto"`, a name from `get_scheme` (`"he"`, `"orthogonal"`,
            ...), a Transformer recipe (`"gpt2"`, `"bert"`, `"neox"`,
            `"t-fixup"`, `"deepnet"`: `keras_weightinit.recipes`, every
            weight by its role as the paper draws it) or a
            `keras.initializers.Initializer`, which is cloned for each weight
            with a seed of its own.
        seed: None (fresh values; `keras.utils.set_random_seed` still makes
            the run reproducible), an int (the same values on every call with
            that int; each weight gets its own seed derived from it) or a
            `keras.random.SeedGenerator`. When None and `scheme` is an
            initializer with an int seed, that seed is used instead.
        residual: None, or a residual-depth recipe applied on top of the
            scheme to the residual blocks the layer graph holds
            (`keras_weightinit.residual`): `"zero"` (the last kernel of each
            branch, or its last normalization's gamma, is 0), `"fixup"`
            (branch kernels x `L^(-1/(2m-2))`, the last of each branch and
            the classifier 0), `"scaled"` (the last kernel of each branch x
            `1/sqrt(M)`, M residual additions) or `"deepnorm"` (branch
            kernels, of attention the value and output projections, x
            `(4M)^(-1/4)`; `report.alpha = M^(1/4)` is for the residual
            layers, `LN(alpha * x + f(x))`). Branches are found in the
            layer graph (`Add`) and inside blocks that add them in their own
            `call` (`keras_weightinit.structure.inner_blocks`).
        rules: None, or `{glob pattern: "keep" | scheme name |
            keras.initializers.Initializer}` on variable paths
            (`fnmatch`, first match wins), applied before the automatic
            rules; a weight the core cannot place must be covered here.

    Returns:
        An `InitReport`: a dict `variable path -> initializer used`, one
        entry per re-drawn weight, in the order of the model's weights, with
        `rules` (per variable, the rule that set it) and `alpha`.

    Raises:
        ValueError: For an unknown scheme or `residual`, a bad seed, a model
            that is not built, has no kernel-like weight, holds a weight of a
            layer type the core does not know (named in the message), or has
            no residual addition when `residual` is set, or, with several
            processes, models that differ across them. The model is
            unchanged.
        keras_weightinit.distributed.ProcessError: With several processes,
            when another one failed, died or did not answer within the
            timeout (`distributed.collective_timeout()`); the model is
            unchanged.

    Example:

    >>> model = keras.Sequential([keras.Input((64,)),
    ...                           keras.layers.Dense(128, activation="relu"),
    ...                           keras.layers.Dense(10, activation="softmax")])
    >>> used = initialize(model, "auto", seed=0)
    >>> [type(init).__name__ for init in used.values()]  # the head: a readout
    ['HeNormal', 'RandomNormal']

    Reference:
        He et al., "Delving Deep into Rectifiers", ICCV 2015; Saxe et al.,
        "Exact solutions to the nonlinear dynamics of learning in deep linear
        neural networks", ICLR 2014 (orthogonal recurrent kernels);
        Jozefowicz et al., "An Empirical Exploration of Recurrent Network
        Architectures", ICML 2015 (forget-gate bias 1).
    """
    with transaction.atomic("initialize") as keep:
        used, values = _new_values(model, scheme, seed, residual, rules)
        values.reverse()
        while values:  # each drawn value is dropped once assigned
            keep.assign(*values.pop(), take=True)
    return used


def _check_scheme(scheme) -> None:
    if isinstance(scheme, recipes.RecipePlan):
        return
    if isinstance(scheme, str):
        known = ["auto", *scheme_names(), *recipes.RECIPES]
        if scheme not in known:
            raise ValueError(
                f"Unknown scheme {scheme!r}. Known schemes: {', '.join(known)}, "
                f"or a keras.initializers.Initializer. Received: scheme={scheme!r}"
            )
    elif not isinstance(scheme, keras.initializers.Initializer):
        raise ValueError(
            "Argument `scheme` must be 'auto', a scheme name, a "
            "`keras.initializers.Initializer` or a `recipes.RecipePlan`. "
            f"Received: scheme of type {type(scheme).__name__}"
        )


def _drawn(weight: Weight, rules: Rules) -> bool:
    """Whether `initialize` draws `weight` (else it sets or keeps it)."""
    rule = rules.match(weight.path)
    return rule != KEEP and (weight.kernel_like or rule is not None)


def _new_values(model, scheme, seed, residual, rules) -> tuple[InitReport, list]:
    """`initialize`'s checks and draws: the report and `(variable, value)`s."""
    check_model(model, "initialize")
    seed = check_seed(seed)
    residual = check_recipe(residual)
    _check_scheme(scheme)
    rules = Rules(rules, [v.path for v in model.trainable_variables], scheme_names())
    found = graph.check_known(model, "initialize", covered=rules.covers)
    distributed.check_same_model(model)
    scheme = _recipe_rules(model, scheme, residual, found, rules)
    if seed is None and isinstance(scheme, keras.initializers.Initializer):
        own = scheme.get_config().get("seed")
        seed = own if is_int(own) else None
    drawn = [w for w in found if _drawn(w, rules)]
    seeds = spawn_seeds(distributed.shared_seed(seed), len(drawn))
    heads = structure.readouts(model, found) if scheme == "auto" else []
    recipe = None if residual is None else branch_factors(model, residual, found)
    used, values, unknown = InitReport(), [], []
    for weight, weight_seed in zip(drawn, seeds, strict=True):
        rule = rules.match(weight.path)
        if rule is not None:
            init = _named(rule, weight_seed)
            used.rules[weight.path] = (
                f"rules[{rules.pattern(weight.path)!r}]: {_describe(init)}"
            )
        else:
            init, used.rules[weight.path] = _initializer(
                weight, scheme, model, weight_seed, unknown, heads
            )
        fill = functools.partial(draw_weight, init, weight, weight_seed)
        values.append((weight, distributed.draw_into(weight.variable, fill)))
        used[weight.path] = init
    for weight in found:
        if weight.path in used.rules:
            continue
        if rules.match(weight.path) == KEEP:
            used.rules[weight.path] = f"rules[{rules.pattern(weight.path)!r}]: kept"
            continue
        fill = functools.partial(set_value, weight)
        values.append((weight, distributed.draw_into(weight.variable, fill)))
        used.rules[weight.path] = _recipe_prefix(scheme) + _set_rule(weight)
    used.rules = {w.path: used.rules[w.path] for w in found}
    if isinstance(scheme, recipes.RecipePlan):
        used.alpha = scheme.alpha
        values = [(w, scheme.scale(w.path, value)) for w, value in values]
    if recipe is not None:
        used.alpha = recipe.alpha
        values = [(w, value * recipe.factors.get(w.path, 1.0)) for w, value in values]
        for path, rule in recipe.rules.items():
            used.rules[path] = f"{used.rules[path]}; {rule}"
    if unknown:
        warnings.warn(
            "initialize: unknown activation after layers "
            f"{', '.join(unknown)}; used XavierNormal() (Glorot) for them.",
            stacklevel=3,
        )
    return used, [(w.variable, value) for w, value in values]


def _named(rule, seed: Seed):
    """The initializer of a scheme name or a user's initializer, seeded."""
    return get_scheme(rule, seed) if isinstance(rule, str) else _clone(rule, seed)


def _initializer(weight, scheme, model, seed, unknown, heads):
    """`(initializer, rule in words)` of a drawn weight under `scheme`."""
    if isinstance(scheme, recipes.RecipePlan):
        return scheme.draw(weight, seed)
    if scheme == "auto":
        init, why = _auto(weight, model, seed, unknown, heads)
        return init, f"auto{why}: {_describe(init)}"
    if isinstance(scheme, str):
        init = get_scheme(scheme, seed)
        return init, f"{scheme}: {_describe(init)}"
    init = _clone(scheme, seed)
    return init, _describe(init)


def _recipe_rules(model, scheme, residual, found, rules):
    """`scheme`, or for a recipe name its `recipes.RecipePlan`."""
    if not (isinstance(scheme, str) and scheme in recipes.RECIPES):
        return scheme
    if residual is not None:
        raise ValueError(
            f"Recipe {scheme!r} sets the residual branches itself; it does not "
            f"combine with `residual`. Received: scheme={scheme!r}, "
            f"residual={residual!r}"
        )
    return recipes.recipe_rules(model, scheme, found, covered=rules.covers)


def _recipe_prefix(scheme) -> str:
    """`"gpt2: "` before a set weight's rule under a recipe, else `""`."""
    return f"{scheme.name}: " if isinstance(scheme, recipes.RecipePlan) else ""


def _set_rule(weight: Weight) -> str:
    """The rule, in words, that set a weight that is not drawn."""
    if weight.initial is not None:
        value = np.asarray(weight.initial).flat[0]
        kept = "kept" if weight.role == "constant" else weight.role
        return f"{kept}: {value:g}, its layer's constant at build"
    if weight.role == "bias" and getattr(weight.layer, "unit_forget_bias", False):
        return "bias: 0, forget gate 1"
    return _SET_RULES.get(weight.role, "set")


# --------------------------------------------------------------------------
# lsuv


class LSUVReport(dict):
    """What `lsuv` did, layer by layer in forward order.

    `layer path -> {"weight", "var_before", "var_after", "iterations",
    "converged"}`: a plain dict with `not_converged` (the layers whose
    variance is still more than `tol` away from 1), `skipped` (`layer path ->
    why`, the layers with kernel-like weights that `lsuv` could not scale)
    and `str(report)`, a table.

    Example:

    >>> report = lsuv(model, x[:256], seed=0)
    >>> report["dense"]["converged"], report.not_converged, report.skipped
    (True, [], {})
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skipped: dict[str, str] = {}

    @property
    def not_converged(self) -> list[str]:
        """The layers whose variance is still more than `tol` away from 1."""
        return [name for name, row in self.items() if not row["converged"]]

    def __str__(self) -> str:
        width = max([len("layer"), *map(len, self), *map(len, self.skipped)])
        lines = [f"{'layer':<{width}}  var before   var after  iters  converged"]
        for name, row in self.items():
            lines.append(
                f"{name:<{width}}  {row['var_before']:10.4g}  "
                f"{row['var_after']:10.4g}  {row['iterations']:5d}  "
                f"{'yes' if row['converged'] else 'NO'}"
            )
        for name, why in self.skipped.items():
            lines.append(f"{name:<{width}}  not scaled: {why}")
        return "\n".join(lines)


def _why_not(unit: keras.Layer) -> str | None:
    """Why LSUV cannot scale `unit`, None if it can."""
    if isinstance(unit, keras.layers.RNN) and not isinstance(
        getattr(unit.cell, "kernel", None), keras.Variable
    ):
        return "an RNN cell without a `kernel`"
    if isinstance(unit, keras.layers.RNN) and len(unit.cell.kernel.shape) != 2:
        return "a convolutional RNN cell (its input kernel is not a matrix)"
    return None


def _linear_in_weight(unit: keras.Layer) -> bool:
    """Whether the output LSUV measures is its weight times the input alone.

    True for an RNN's input projection and for layers without a bias or with
    an all-zero one (after the orthogonal pre-initialization): their output
    after a rescaling is the measured one times the factor, no pass needed.
    """
    if isinstance(unit, keras.layers.RNN):
        return True
    bias = getattr(unit, "bias", None)
    if not isinstance(bias, keras.Variable):
        return True
    return not bool(keras.ops.any(keras.ops.not_equal(bias, 0)))


def _unit_output(unit: keras.Layer, weight: Weight, seen) -> object:
    """The output whose variance LSUV sets to 1 for `unit`.

    The pre-activation for a layer with its own `activation=`; for an RNN,
    the input projection `x W` of its cell's kernel over every time step (the
    recurrent kernel keeps its orthogonal scale); the output otherwise.
    """
    key = id(unit)
    if isinstance(unit, keras.layers.RNN):
        inputs = seen.inputs.get(key)
        return keras.ops.matmul(
            keras.ops.cast(inputs, "float32"),
            keras.ops.cast(weight.variable, "float32"),
        )
    if key in seen.pre:
        return seen.pre[key]
    return seen.outputs.get(key)


class _ChainPasses:
    """`unit ->` what a pass observed of it, each chain step run once.

    For a model that is a plain chain (`graph.chain`): the layers before a
    unit are final when LSUV reaches it, so the input of the chain step that
    holds the unit is kept, and a measure runs that step alone on it; moving
    on runs each step in between once. LSUV then costs one pass over the
    model, plus a step per rescaling of a layer with a bias, not a prefix
    per layer (`benchmarks/bench_lsuv.py`).
    """

    def __init__(self, model: keras.Model, x, steps: list[keras.Layer]):
        self.steps = steps
        self.step_of = {
            id(layer): i
            for i, step in enumerate(steps)
            for layer in [step, *graph.layers(step)]
        }
        first = steps[0]  # its input as the model gives it (dtype, rank)
        self.h = forward(model, x, [first], stop_after=first).inputs[id(first)]
        self.at = 0  # `self.h` is the input of `steps[self.at]`

    def __call__(self, unit: keras.Layer):
        i = self.step_of[id(unit)]
        while self.at < i:
            self.h = self.steps[self.at](self.h, training=False)
            self.at += 1
        with observe([unit], stop_after=unit) as seen, contextlib.suppress(Stop):
            self.steps[i](self.h, training=False)
        return seen


class _KeptPasses:
    """`unit ->` what a pass up to `unit` observed, final outputs kept.

    For any model (residual adds, subclassed models, KerasHub backbones):
    in the order the model calls its layers, a call that returned before
    the measured unit's call began depends on no later unit, so its output
    is final once the earlier units are. Such outputs are kept, keyed by
    the layer and the very input tensors it got, and a later pass that
    calls the layer on those same tensors gets the kept output back, not
    computed again: LSUV then computes each layer's output about once,
    plus the steps from the kept outputs to each unit, not a prefix per
    unit. A call on other inputs (a recomputed tensor) is computed. In a
    functional graph the kept output is handed back at the node
    (`graph.shadow_operations`), before the operation's `Layer.__call__`.
    """

    def __init__(self, model: keras.Model, x):
        self.model, self.x = model, x
        self.layers = graph.layers(model)  # the measured unit: observed instead
        self.kept: dict[tuple, list] = {}  # (where, id) -> [(input leaves, output)]

    def __call__(self, unit: keras.Layer):
        def keep(where, operation, call):
            return self._kept(where, operation, call, unit, seen)

        with (
            observe([unit], stop_after=unit) as seen,
            shadow_calls(self.layers, lambda layer: keep("call", layer, layer.call)),
            graph.shadow_operations(self.model, lambda op, call: keep("op", op, call)),
            contextlib.suppress(Stop),
        ):
            self.model(self.x, training=False)
        return seen

    def _kept(self, where: str, operation, call, unit: keras.Layer, seen):
        """`call`, answered from the kept outputs of `operation` when it can."""
        entries = self.kept.setdefault((where, id(operation)), [])

        def kept_call(*args, **kwargs):
            leaves = _leaves(args, kwargs)
            for kept, output in entries:
                if len(kept) == len(leaves) and all(
                    a is b for a, b in zip(kept, leaves, strict=True)
                ):
                    return output
            output = call(*args, **kwargs)
            if id(unit) not in seen.inputs:  # returned before the unit began
                entries.append((leaves, output))
            return output

        return kept_call


def _leaves(args: tuple, kwargs: dict) -> list:
    """The tensors and values of a call's arguments, flat."""
    leaves = []
    for value in (*args, *kwargs.values()):
        if isinstance(value, dict):
            return keras.tree.flatten((args, kwargs))
        if not isinstance(value, list | tuple):
            leaves.append(value)
        elif any(isinstance(v, list | tuple | dict) for v in value):
            return keras.tree.flatten((args, kwargs))
        else:
            leaves.extend(value)
    return leaves


def _call_order(model: keras.Model, x, units: list[keras.Layer]) -> list:
    """The units that `model` calls on `x`, in the order it calls them.

    For units that are all steps of a plain chain (`graph.chain`) or
    operations of functional graphs (`graph.run_order`), the order of the
    steps or of the graphs' runs; else from a forward pass that observes
    the units.
    """
    for read in (graph.chain, graph.run_order):
        steps, index = read(model) or [], {}
        for i, step in enumerate(steps):
            index.setdefault(id(step), i)
        if all(id(unit) in index for unit in units):
            return sorted(units, key=lambda unit: index[id(unit)])
    return forward(model, x, units).order


def _passes(model: keras.Model, x, units: list[keras.Layer]):
    """`unit ->` the observed pass up to `unit`, at the current weights.

    Each unit's step alone for a plain chain whose units are all in it
    (`_ChainPasses`); for other functional and subclassed models the pass
    up to the unit from the kept final outputs (`_KeptPasses`); a
    `Sequential` that is not a chain (masks, a unit inside a step) runs
    the model up to the unit, again for every unit.
    """
    steps = graph.chain(model)
    if steps is not None:
        passes = _ChainPasses(model, x, steps)
        if all(id(unit) in passes.step_of for unit in units):
            return passes
    if not isinstance(model, keras.Sequential):
        return _KeptPasses(model, x)
    return lambda unit: forward(model, x, [unit], stop_after=unit)


def _lsuv_input(model: keras.Model, x):
    """`x` as a nested batch that fits the model's inputs."""
    from_dataset = is_dataset(x) or isinstance(x, keras.utils.PyDataset)
    x = as_batch(x, "x", max_samples=_DATASET_SAMPLES if from_dataset else None)
    fit_model_input(model, x, "lsuv")
    return x


def lsuv(
    model: keras.Model,
    x,
    tol: float = 0.1,
    max_iters: int = 10,
    orthogonal: bool = True,
    verbose: int = 0,
    seed: Seed = None,
    rules: dict | None = None,
) -> LSUVReport:
    """Layer-sequential unit-variance (LSUV) initialization of a built model.

    1. With `orthogonal=True`, pre-initialize every kernel-like weight with
       a random orthogonal matrix (`Orthogonal(gain=1)`, each gate block of
       a recurrent kernel on its own, with the fans of `initialize`) and set
       the biases as `initialize` does (0; an LSTM's forget gate 1).
    2. For each layer with a kernel-like weight, in the order the model calls
       them, run the batch `x` through the model up to that layer (for a
       plain chain of layers, a Sequential or functional model without
       branches, from the kept input of that layer's step: LSUV is linear
       in depth), take the
       variance `v` of its output `B` over all entries and, while
       `|v - 1| >= tol` and at most `max_iters` times, scale the weight by
       `1 / sqrt(v)`:

    | layer                        | `B`                   | scaled weight     |
    |------------------------------|-----------------------|-------------------|
    | Dense, Conv, ConvTranspose,  | pre-activation output | kernel            |
    | EinsumDense (MHA's q/k/v/o)  |                       |                   |
    | DepthwiseConv                | pre-activation output | depthwise kernel  |
    | SeparableConv                | pre-activation output | pointwise kernel  |
    | LSTM, GRU, SimpleRNN         | `x W` over all steps  | the cell's kernel |
    | Embedding                    | the looked-up vectors | the table         |

    The recurrent kernel of an RNN keeps its orthogonal scale (gain 1): it
    maps the state to itself, so unit variance of the state is kept by its
    orthogonality, not by rescaling. A layer the model never calls on `x`,
    or one `lsuv` cannot scale (a ConvLSTM cell), is named in
    `report.skipped` and in a warning, never left out silently.

    A layer whose output is linear in the scaled weight (no bias, or a zero
    one, as after the orthogonal pre-initialization) has its output after a
    rescaling computed from the same pass, exactly; the others run the batch
    again.

    BatchNormalization is handled as in the paper: LSUV scales the layer
    that feeds the BN layer and leaves the BN weights alone. The forward
    passes run in inference mode, so dropout is off and BN uses its moving
    statistics, which for a new model (mean 0, variance 1) pass the signal
    through unchanged; no statistics are updated.

    Args:
        model: A Sequential, functional or subclassed model, nested models
            and custom layers included. An unbuilt Sequential model is built
            for `x`'s shape first.
        x: A batch of inputs (an array; from a batched `tf.data.Dataset` or
            `PyDataset`, the first 1024 samples); a few hundred samples
            suffice. Must be finite and fit the model's input. With several
            processes, each passes its own shard.
        tol: The tolerance on `|Var(B) - 1|`, positive.
        max_iters: The most rescalings per layer, a positive int.
        orthogonal: Whether to pre-initialize with orthogonal weights; if
            False the current weights are only rescaled.
        verbose: 1 prints the report table, 0 is silent.
        seed: Seed of the orthogonal pre-initialization, as in `initialize`.
        rules: None, or `{glob pattern: "keep" | scheme name |
            keras.initializers.Initializer}` on variable paths, as in
            `initialize`: a kept weight is neither pre-initialized nor
            scaled (its layer is named in `report.skipped`); a weight with
            an initializer or scheme is pre-initialized with it instead of
            the orthogonal draw, then scaled. A weight the core cannot place
            must be covered here.

    Returns:
        An `LSUVReport`, a dict `layer path -> {"weight": variable path,
        "var_before": float, "var_after": float, "iterations": int,
        "converged": bool}` in forward order, and `report.skipped`. Layers
        that did not converge are also reported with a warning.

    Raises:
        ValueError: For a bad argument, NaN/inf or empty data, data that does
            not fit, a model without kernel-like weights or with weights of a
            layer type the core does not know, or a layer whose output has
            zero or non-finite variance on the batch. On any error (or
            KeyboardInterrupt) the weights are restored.
        keras_weightinit.distributed.ProcessError: With several processes,
            when another one failed, died or did not answer within the
            timeout; the weights are restored on every process.

    Example:

    >>> report = lsuv(model, x_train[:256], seed=0)
    >>> report.not_converged
    []

    Reference:
        Mishkin & Matas, "All you need is a good init", ICLR 2016,
        Algorithm 1; Saxe et al., "Exact solutions to the nonlinear dynamics
        of learning in deep linear neural networks", ICLR 2014 (orthogonal).
    """
    if not isinstance(model, keras.Model):
        check_model(model, "lsuv")
    tol, max_iters, orthogonal, verbose, seed = check_lsuv_args(
        tol, max_iters, orthogonal, verbose, seed
    )
    settings = (tol, max_iters, orthogonal, seed, rules)
    with transaction.atomic("lsuv") as keep, without_gradients():
        report = _lsuv(model, x, settings, keep)
    if verbose and distributed.is_writer():
        print(f"LSUV initialization of {model.name!r} (tol={tol}):")
        print(report)
    if report.not_converged:
        warnings.warn(
            f"lsuv: layers {report.not_converged} did not reach variance "
            f"1 +- {tol} within max_iters={max_iters} rescalings.",
            stacklevel=2,
        )
    if report.skipped:
        warnings.warn(
            "lsuv: did not scale "
            + "; ".join(f"{name} ({why})" for name, why in report.skipped.items()),
            stacklevel=2,
        )
    return report


def _variance(output) -> float:
    """`Var(output)` over all its entries and the batches of every process.

    With several processes, from each one's count, mean and variance (so
    every process gets the variance over the union of the batches).
    """
    if distributed.process_count() == 1:
        return float(keras.ops.var(output))
    values = keras.ops.cast(output, "float32")
    count = math.prod(keras.ops.shape(values))
    mean = float(keras.ops.mean(values))
    second = float(keras.ops.var(values)) + mean * mean
    mean, second = distributed.mean_across_processes(
        [mean * count, second * count], count=count
    )
    return second - mean * mean


def _lsuv(model, x, settings, keep: transaction.Keep) -> LSUVReport:
    """`lsuv`'s work; `keep` records the weights before it changes them."""
    tol, max_iters, orthogonal, seed, rules = settings
    x = _lsuv_input(model, x)
    check_model(model, "lsuv")
    rules = Rules(rules, [v.path for v in model.trainable_variables], scheme_names())
    found = graph.check_known(model, "lsuv", covered=rules.covers)
    distributed.check_same_model(model)
    distributed.check_replicated(model, "lsuv")
    kernels = [w for w in found if w.kernel_like]
    units = list(dict.fromkeys(w.unit for w in kernels))
    x = keras.tree.map_structure(keras.ops.convert_to_tensor, x)

    def measure(unit, weight):
        return check(weight, _unit_output(unit, weight, passes(unit)))

    def check(weight, output):
        value = _variance(output)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(
                f"The output of layer {weight.name!r} has variance {value} on "
                "the batch `x`, so it cannot be scaled to 1: check that `x` "
                "varies and that the earlier layers do not zero it."
            )
        return output, value

    report = LSUVReport()
    keep([w.variable for w in found])
    _lsuv_start(found, orthogonal, seed, rules)
    order = _call_order(model, x, units)
    passes = _passes(model, x, order)
    for unit in units:
        if unit not in order:
            report.skipped[graph.layer_path(unit, model)] = (
                "the model does not call it on `x`"
            )
    for unit in order:
        weight = graph.primary_weight(unit, kernels)
        why = _why_not(unit) if weight is not None else "no weight to scale"
        if why is None and rules.match(weight.path) == KEEP:
            why = f"rules[{rules.pattern(weight.path)!r}]: kept"
        if why is not None:
            report.skipped[graph.layer_path(unit, model)] = why
            continue
        output, var = measure(unit, weight)
        before, iterations = var, 0
        linear = _linear_in_weight(unit)
        while abs(var - 1.0) >= tol and iterations < max_iters:
            scale = 1.0 / math.sqrt(var)
            weight.variable.assign(weight.variable * scale)
            iterations += 1
            if linear:  # the output scales exactly with the weight
                output, var = check(weight, keras.ops.multiply(output, scale))
            else:
                output, var = measure(unit, weight)
        report[graph.layer_path(unit, model)] = {
            "weight": weight.path,
            "var_before": before,
            "var_after": var,
            "iterations": iterations,
            "converged": abs(var - 1.0) < tol,
        }
    return report


def _lsuv_start(found: list[Weight], orthogonal: bool, seed: Seed, rules: Rules):
    """LSUV's pre-initialization: orthogonal kernels (or the user's rule), biases.

    A kernel-like weight is drawn orthogonal (with `orthogonal=True`) or
    from its rule; a weight a rule keeps is left as it is; a bias is set as
    `initialize` sets it.
    """
    drawn = []
    for weight in found:
        rule = rules.match(weight.path)
        if rule == KEEP or (rule is None and not (orthogonal and weight.kernel_like)):
            continue
        drawn.append((weight, rule))
    seeds = spawn_seeds(distributed.shared_seed(seed), len(drawn))
    values = []
    for (weight, rule), weight_seed in zip(drawn, seeds, strict=True):
        init = (
            Orthogonal(seed=weight_seed) if rule is None else _named(rule, weight_seed)
        )
        fill = functools.partial(draw_weight, init, weight, weight_seed)
        values.append((weight.variable, distributed.draw_into(weight.variable, fill)))
    if orthogonal:
        for weight in found:
            if weight.role == "bias" and rules.match(weight.path) is None:
                fill = functools.partial(set_value, weight)
                values.append(
                    (weight.variable, distributed.draw_into(weight.variable, fill))
                )
    for variable, value in values:
        variable.assign(value)
