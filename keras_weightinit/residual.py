"""Residual-depth recipes: zero-init, Fixup, depth-scaled branches, DeepNorm.

He initialization keeps a plain network's signal steady, but in a residual
network every block adds its branch's variance to the trunk: after `L`
blocks `Var(x_L) ~ Var(x_0) * prod(1 + c_l)`. The recipes here make the
branches start small or silent, so the trunk starts as (close to) the
identity. `branch_factors` reads the residual blocks from the layer graph
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

from keras_weightinit import graph, structure
from keras_weightinit.graph import Weight
from keras_weightinit.structure import Branch

__all__ = ["RECIPES", "ResidualPlan", "branch_factors", "check_recipe"]

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


def graph_branches(model: keras.Model, weights: list[Weight]) -> list[Branch]:
    """The branches closed by an `Add` of the layer graph."""
    kernels: dict[int, list[Weight]] = {}
    gammas: dict[int, Weight] = {}
    for weight in weights:
        if weight.kernel_like:
            kernels.setdefault(id(weight.layer), []).append(weight)
        elif weight.role == "gamma":
            gammas[id(weight.layer)] = weight
    branches = []
    for block in graph.residual_blocks(model):
        units = [_kernels_of(layer, kernels) for layer in block.branch]
        units = [unit for unit in units if unit]
        if all(w.role in ("embeddings", "token") for unit in units for w in unit):
            continue  # tables only: a position table added to the token one
        ends = [
            layer
            for layer in block.branch
            if _kernels_of(layer, kernels) or id(layer) in gammas
        ]
        gamma = None
        if isinstance(ends[-1], _NORMALIZATION):
            gamma = gammas.get(id(ends[-1]))
        flat = tuple(w for unit in units for w in unit)
        branches.append(Branch(flat, gamma, layers=len(units)))
    return branches


def branches(
    model: keras.Model, weights: list[Weight], inner: list | None = None
) -> list[Branch]:
    """Every residual branch: of the layer graph, then inside blocks' calls.

    `inner`: `structure.inner_blocks(model, weights)` when the caller has them.
    """
    found = graph_branches(model, weights)
    if inner is None:
        inner = structure.inner_blocks(model, weights)
    for block in inner:
        found.extend(block.branches)
    return found


def branch_factors(
    model: keras.Model, recipe: str, weights: list[Weight]
) -> ResidualPlan:
    """The factors `recipe` applies to `weights` (those of `graph.weights`).

    Args:
        model: The model, with residual `Add`s in its layer graph or blocks
            that add residual branches inside their call.
        recipe: One of `RECIPES`.
        weights: `graph.weights(model)`.

    Returns:
        A `ResidualPlan`.

    Raises:
        ValueError: If the model has no residual branch, or, for Fixup, a
            branch with fewer than two kernel layers.
    """
    found = branches(model, weights)
    if not found:
        raise ValueError(
            f"Argument `residual={recipe!r}` needs residual branches (`x + "
            "f(x)` with a `keras.layers.Add`, or blocks adding them inside "
            f"their call), but none was found in model {model.name!r}. "
            f"Received: residual={recipe!r}"
        )
    count = len(found)
    factors: dict[str, float] = {}
    rules: dict[str, str] = {}

    def set_factor(weight: Weight, factor: float, rule: str) -> None:
        factors[weight.path] = factor
        rules[weight.path] = rule

    skip = structure.score_kernels(model, weights) if recipe == "deepnorm" else set()
    for branch in found:
        _apply(recipe, branch, count, set_factor, skip)
    if recipe == "fixup":
        classifier = [w for w in weights if w.kernel_like][-1]
        set_factor(classifier, 0.0, "fixup: the classifier")
    alpha = count**0.25 if recipe == "deepnorm" else None
    return ResidualPlan(factors, rules, alpha, count)


def _apply(recipe: str, branch: Branch, count: int, set_factor, skip) -> None:
    """Sets the factors of one branch under `recipe` (`count` branches).

    DeepNorm leaves the query and key projections (`skip`) as they are.
    """
    last = branch.last
    if recipe == "zero":
        if branch.gamma is not None:
            set_factor(branch.gamma, 0.0, "zero: last normalization of a branch")
        else:
            set_factor(last, 0.0, "zero: last kernel of a residual branch")
    elif recipe == "fixup":
        m = branch.layers
        if m < 2:
            raise ValueError(
                "Argument `residual='fixup'` needs residual branches of at "
                f"least two kernel layers (its factor is L^(-1/(2m-2))); the "
                f"branch ending in {last.path!r} has {m}. "
                "Received: residual='fixup'"
            )
        factor = count ** (-1.0 / (2 * m - 2))
        for weight in branch.kernels:
            if weight is not last:
                set_factor(weight, factor, f"fixup: x L^(-1/(2m-2)) = {factor:.4g}")
        set_factor(last, 0.0, "fixup: last kernel of a residual branch")
    elif recipe == "scaled":
        factor = 1.0 / math.sqrt(count)
        set_factor(last, factor, f"scaled: x 1/sqrt(M) = {factor:.4g}")
    else:  # deepnorm
        beta = (4.0 * count) ** -0.25
        for weight in branch.kernels:
            if weight.path in skip:
                continue
            set_factor(weight, beta, f"deepnorm: x beta = {beta:.4g}")
