"""Residual-depth recipes: zero-init, Fixup, depth-scaled branches, DeepNorm.

He initialization keeps a plain network's signal steady, but in a residual
network every block adds its branch's variance to the trunk: after `L`
blocks `Var(x_L) ~ Var(x_0) * prod(1 + c_l)`. The recipes here make the
branches start small or silent, so the trunk starts as (close to) the
identity. `plan` reads the residual blocks from the layer graph
(`graph.residual_blocks`) and says, per weight, what `initialize` does on top
of the scheme's draw:

| recipe     | rule                                                           |
|------------|----------------------------------------------------------------|
| `zero`     | the last kernel of each branch is 0, or, where the branch ends |
|            | in a normalization, that normalization's gamma is 0            |
| `fixup`    | the other kernels of each branch are scaled by                 |
|            | `L^(-1/(2m-2))` (`L` branches of `m` kernel layers), the last  |
|            | kernel of each branch and the classifier are 0                 |
| `scaled`   | the last kernel of each branch is scaled by `1/sqrt(M)`, `M`   |
|            | the number of residual additions (GPT-2)                       |
| `deepnorm` | the kernels of each branch (of an attention branch, the value  |
|            | and output projections) are scaled by `beta = (4M)^(-1/4)`;    |
|            | the residual layers should compute `LN(alpha * x + f(x))`      |
|            | with `alpha = M^(1/4)` (`M = 2N` for an N-layer encoder)       |

Reference:
    Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1
    Hour", 2017 (zero-init of the last BN gamma); De & Smith, "Batch
    Normalization Biases Residual Blocks Towards the Identity Function in Deep
    Networks", NeurIPS 2020 (SkipInit); Zhang, Dauphin & Ma, "Fixup
    Initialization: Residual Learning Without Normalization", ICLR 2019;
    Radford et al., "Language Models are Unsupervised Multitask Learners",
    2019 (GPT-2's 1/sqrt(N)); Wang et al., "DeepNet: Scaling Transformers to
    1,000 Layers", 2022.
"""

from __future__ import annotations

import dataclasses
import math

import keras

from keras_weightinit import graph
from keras_weightinit.graph import Weight

__all__ = ["RECIPES", "ResidualPlan", "check_recipe", "plan"]

RECIPES = ("zero", "fixup", "scaled", "deepnorm")
_NORMALIZATION = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
    keras.layers.RMSNormalization,
)


def check_recipe(residual) -> str | None:
    """Returns `residual` if it is None or a recipe name, else `ValueError`.

    Example:

    >>> check_recipe("fixup")
    'fixup'
    """
    if residual is None or residual in RECIPES:
        return residual
    raise ValueError(
        f"Argument `residual` must be None or one of {list(RECIPES)}. "
        f"Received: residual={residual!r}"
    )


@dataclasses.dataclass
class ResidualPlan:
    """What a recipe does to the weights `initialize` sets.

    Attributes:
        factors: `variable path -> factor` multiplying the drawn value (0
            sets it to zero).
        rules: `variable path -> the rule, in words`.
        alpha: DeepNorm's `alpha` for the residual layers, None otherwise.
        blocks: The number of residual additions found.
    """

    factors: dict[str, float]
    rules: dict[str, str]
    alpha: float | None
    blocks: int


def _kernels_of(layer: keras.Layer, kernels: dict[int, list[Weight]]) -> list[Weight]:
    """The kernel-like weights of `layer` and its sublayers, in weight order."""
    found = list(kernels.get(id(layer), ()))
    for sub in graph.layers(layer):
        found += kernels.get(id(sub), [])
    order = {id(v): i for i, v in enumerate(layer.weights)}
    return sorted(found, key=lambda w: order.get(id(w.variable), 0))


def _projections(layer: keras.Layer, weights: list[Weight]) -> list[Weight]:
    """An attention layer's value and output projections; else `weights`."""
    projections = graph.attention_projections(layer)
    if not projections:
        return weights
    keep = {id(projections["value"]), id(projections["output"])}
    return [w for w in weights if id(w.layer) in keep]


def plan(model: keras.Model, recipe: str, weights: list[Weight]) -> ResidualPlan:
    """The factors `recipe` applies to `weights` (those of `graph.weights`).

    Args:
        model: The model, with a layer graph holding residual `Add`s.
        recipe: One of `RECIPES`.
        weights: `graph.weights(model)`.

    Returns:
        A `ResidualPlan`.

    Raises:
        ValueError: If the model has no residual addition, or, for Fixup, a
            branch with fewer than two kernel layers.
    """
    blocks = graph.residual_blocks(model)
    if not blocks:
        raise ValueError(
            f"Argument `residual={recipe!r}` needs residual additions "
            "(`x + f(x)` with a `keras.layers.Add`), but none was found in "
            f"model {model.name!r}. Received: residual={recipe!r}"
        )
    kernels: dict[int, list[Weight]] = {}
    gammas: dict[int, Weight] = {}
    for weight in weights:
        if weight.kernel_like:
            kernels.setdefault(id(weight.layer), []).append(weight)
        elif weight.role == "gamma":
            gammas[id(weight.layer)] = weight
    count = len(blocks)
    factors: dict[str, float] = {}
    rules: dict[str, str] = {}
    alpha = None

    def set_factor(weight: Weight, factor: float, rule: str) -> None:
        factors[weight.path] = factor
        rules[weight.path] = rule

    for block in blocks:
        units = [
            (layer, _kernels_of(layer, kernels))
            for layer in block.branch
            if _kernels_of(layer, kernels)
        ]
        if not units:
            continue
        ends = [
            layer
            for layer in block.branch
            if _kernels_of(layer, kernels) or id(layer) in gammas
        ]
        last_layer, last_kernels = units[-1]
        last_kernel = last_kernels[-1]
        if recipe == "zero":
            if isinstance(ends[-1], _NORMALIZATION) and id(ends[-1]) in gammas:
                set_factor(
                    gammas[id(ends[-1])], 0.0, "zero: last normalization of a branch"
                )
            else:
                set_factor(last_kernel, 0.0, "zero: last kernel of a residual branch")
        elif recipe == "fixup":
            m = len(units)
            if m < 2:
                raise ValueError(
                    "Argument `residual='fixup'` needs residual branches of at "
                    f"least two kernel layers (its factor is L^(-1/(2m-2))); the "
                    f"branch closed by {block.add.name!r} has {m}. "
                    "Received: residual='fixup'"
                )
            factor = count ** (-1.0 / (2 * m - 2))
            for _, unit_kernels in units:
                for weight in unit_kernels:
                    if weight is not last_kernel:
                        set_factor(
                            weight, factor, f"fixup: x L^(-1/(2m-2)) = {factor:.4g}"
                        )
            set_factor(last_kernel, 0.0, "fixup: last kernel of a residual branch")
        elif recipe == "scaled":
            factor = 1.0 / math.sqrt(count)
            set_factor(last_kernel, factor, f"scaled: x 1/sqrt(M) = {factor:.4g}")
        else:  # deepnorm
            beta = (4.0 * count) ** -0.25
            alpha = count**0.25
            for layer, unit_kernels in units:
                for weight in _projections(layer, unit_kernels):
                    set_factor(weight, beta, f"deepnorm: x beta = {beta:.4g}")
    if recipe == "fixup":
        classifier = [w for w in weights if w.kernel_like][-1]
        set_factor(classifier, 0.0, "fixup: the classifier")
    return ResidualPlan(factors, rules, alpha, count)
