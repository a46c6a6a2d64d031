"""Published Transformer initialization recipes, by name, applied by weight role.

`initialize(model, "gpt2")` (or `"bert"`, `"neox"`, `"t-fixup"`,
`"deepnet"`) draws every weight as its paper and reference code do. The
recipe reads the model, not names: the residual branches and their output
projections (`residual.branches`: the attention output and the feed-forward
output), the kernels that compute attention scores (queries and keys:
zeroing them leaves a block's output changed, where zeroing a value or a
feed-forward kernel silences its branch), lookup tables (token, segment)
against added tables (positions: built on a float input as wide as the
table), and, for T-Fixup, whether the model is causal (a decoder). `L` is
the number of Transformer blocks, `M = 2 L` residual branches (attention and
feed-forward); `d` is the residual stream's width.

| recipe    | branch-scaled kernels      | other kernels   | tables                 |
|-----------|----------------------------|-----------------|------------------------|
| `gpt2`    | outputs `N(0, 0.02/sqrt(2L))` | `N(0, 0.02)` | token `N(0, 0.02)`,    |
|           |                            |                 | position `N(0, 0.01)`  |
| `bert`    | (none)                     | `TruncatedNormal(0.02)`, cut at 2 std     |
| `neox`    | outputs `N(0, 2/(L sqrt d))` | `N(0, sqrt(2/(5d)))`, as the tables |   |
| `t-fixup` | value, output, feed-forward | Xavier uniform | lookup `N(0, d^-1/2)`  |
|           | Xavier uniform x `(9L)^-1/4` |               | x `(9L)^-1/4`,         |
|           | (decoder), `0.67 L^-1/4`   |                 | position `N(0, d^-1/2)` |
| `deepnet` | value, output, feed-forward | Xavier normal  | `N(0, d^-1/2)`         |
|           | Xavier normal, gain `(8L)^-1/4` |            |                        |

Every recipe sets biases to 0 and normalization scales and offsets (and any
weight its layer builds as a constant) to their build values. `deepnet` also
returns `alpha = (2 L)^(1/4)` (`report.alpha`), the factor the user's
Post-LN residual layers must apply, `LN(alpha x + f(x))`. A weight a recipe
has no rule for (a recurrent or depthwise kernel, a class token, ...) is
refused by name, with the `rules=` override, before anything is drawn.

Reference:
    Radford et al., "Language Models are Unsupervised Multitask Learners",
    2019, section 2.3, and openai/gpt-2 `src/model.py`; Shoeybi et al.,
    Megatron-LM `scaled_init_method_normal`; Devlin et al., BERT,
    google-research/bert `modeling.py` (`create_initializer`); Black et al.,
    "GPT-NeoX-20B", 2022, and EleutherAI/gpt-neox
    `megatron/model/init_functions.py` (`small_init_init_method`,
    `wang_init_method`); Nguyen & Salazar, "Transformers without Tears",
    2019; Huang et al., "Improving Transformer Optimization Through Better
    Initialization" (T-Fixup), ICML 2020, and layer6ai-labs/T-Fixup; Wang et
    al., "DeepNet: Scaling Transformers to 1,000 Layers", 2022, and
    microsoft/torchscale.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import keras
import numpy as np

from keras_weightinit import graph, residual, structure
from keras_weightinit.graph import Weight
from keras_weightinit.initializers import RandomNormal, XavierNormal, XavierUniform
from keras_weightinit.seeds import Seed

__all__ = [
    "RECIPES",
    "RecipePlan",
    "deepnet_constants",
    "gpt2_std",
    "recipe_rules",
    "small_init_std",
    "tfixup_scale",
    "wang_init_std",
]

RECIPES = ("gpt2", "bert", "neox", "t-fixup", "deepnet")
_DRAWN = ("kernel", "embeddings")
_SET = ("bias", "gamma", "beta", "constant")


def gpt2_std(blocks: float) -> float:
    """GPT-2's std of a residual output projection, `0.02 / sqrt(2 L)`.

    GPT-2 scales "the weights of residual layers at initialization by a
    factor of 1/sqrt(N) where N is the number of residual layers", `N = 2 L`
    for `L` blocks (Megatron-LM's `scaled_init_method_normal(0.02, L)`).

    Args:
        blocks: `L`, the number of Transformer blocks.

    Example:

    >>> round(gpt2_std(12), 6)
    0.004082

    Reference:
        Radford et al., "Language Models are Unsupervised Multitask
        Learners", 2019, section 2.3.
    """
    return 0.02 / math.sqrt(2.0 * blocks)


def small_init_std(width: int) -> float:
    """GPT-NeoX's `small_init` std, `sqrt(2 / (5 d))`.

    Args:
        width: `d`, the model's hidden size.

    Example:

    >>> round(small_init_std(768), 6)
    0.022822

    Reference:
        Nguyen & Salazar, "Transformers without Tears", 2019; EleutherAI/
        gpt-neox `megatron/model/init_functions.py`, `small_init_init_method`.
    """
    return math.sqrt(2.0 / (5.0 * width))


def wang_init_std(blocks: float, width: int) -> float:
    """GPT-NeoX's `wang_init` std for output projections, `2 / (L sqrt(d))`.

    Args:
        blocks: `L`, the number of Transformer blocks.
        width: `d`, the model's hidden size.

    Example:

    >>> round(wang_init_std(32, 768), 6)
    0.002255

    Reference:
        EleutherAI/gpt-neox `megatron/model/init_functions.py`,
        `wang_init_method`; Black et al., "GPT-NeoX-20B", 2022, section 2.1.
    """
    return 2.0 / (blocks * math.sqrt(width))


def tfixup_scale(blocks: float, decoder: bool) -> float:
    """T-Fixup's factor: `(9 L)^(-1/4)` for a decoder, `0.67 L^(-1/4)` else.

    Args:
        blocks: `L`, the number of blocks of the stack.
        decoder: Whether the stack is a (causal) decoder.

    Example:

    >>> round(tfixup_scale(6, decoder=True), 4), round(tfixup_scale(6, False), 4)
    (0.3689, 0.4281)

    Reference:
        Huang et al., "Improving Transformer Optimization Through Better
        Initialization", ICML 2020, section 3.3; layer6ai-labs/T-Fixup
        `fairseq/modules/transformer_layer.py`, `fixup_initialization`.
    """
    if decoder:
        return (9.0 * blocks) ** -0.25
    return 0.67 * blocks**-0.25


def deepnet_constants(encoder_layers: int = 0, decoder_layers: int = 0) -> dict:
    """DeepNorm's `alpha` (residual) and `beta` (init gain) per stack.

    | architecture          | encoder alpha, beta           | decoder alpha, beta   |
    |-----------------------|-------------------------------|-----------------------|
    | encoder only (N)      | `(2N)^1/4`, `(8N)^-1/4`       |                       |
    | decoder only (M)      |                               | `(2M)^1/4`, `(8M)^-1/4` |
    | encoder-decoder       | `0.81 (N^4 M)^1/16`,          | `(3M)^1/4`,           |
    |                       | `0.87 (N^4 M)^-1/16`          | `(12M)^-1/4`          |

    Args:
        encoder_layers: `N`, 0 for a decoder-only model.
        decoder_layers: `M`, 0 for an encoder-only model.

    Returns:
        `{"encoder": (alpha, beta), "decoder": (alpha, beta)}`, the stacks
        the model has.

    Example:

    >>> {k: tuple(round(c, 4) for c in v)
    ...  for k, v in deepnet_constants(decoder_layers=6).items()}
    {'decoder': (1.8612, 0.3799)}

    Reference:
        Wang et al., "DeepNet: Scaling Transformers to 1,000 Layers", 2022,
        table 1 and figure 2; microsoft/torchscale `architecture/encoder.py`,
        `architecture/decoder.py`.
    """
    n, m = encoder_layers, decoder_layers
    if n < 0 or m < 0 or n + m == 0:
        raise ValueError(
            "deepnet_constants needs a positive number of encoder or decoder "
            f"layers. Received: encoder_layers={n!r}, decoder_layers={m!r}"
        )
    if n and m:
        return {
            "encoder": (0.81 * (n**4 * m) ** 0.0625, 0.87 * (n**4 * m) ** -0.0625),
            "decoder": ((3.0 * m) ** 0.25, (12.0 * m) ** -0.25),
        }
    key, layers = ("encoder", n) if n else ("decoder", m)
    return {key: ((2.0 * layers) ** 0.25, (8.0 * layers) ** -0.25)}


# --------------------------------------------------------------------------
# reading the model


@dataclasses.dataclass(frozen=True)
class Rule:
    """One weight's rule: a seed -> initializer factory and its words."""

    make: Callable[[Seed], keras.initializers.Initializer]
    words: str


@dataclasses.dataclass
class RecipePlan:
    """What a recipe draws: `variable path -> Rule` for every drawn weight.

    Attributes:
        name: The recipe.
        rules: `variable path -> Rule` of the weights the recipe draws.
        alpha: DeepNet's residual `alpha`, None for the other recipes.
        blocks: `L`, the Transformer blocks found (0 for `bert`).
        factors: `variable path -> c`: a factor of the value drawn or set
            (µP's folded multipliers).
        offsets: `variable path -> o` for a factor that scales `o + value`
            (a gamma its layer uses as `1 + gamma`).
    """

    name: str
    rules: dict[str, Rule]
    alpha: float | None = None
    blocks: float = 0
    factors: dict[str, float] = dataclasses.field(default_factory=dict)
    offsets: dict[str, float] = dataclasses.field(default_factory=dict)

    def draw(self, weight: Weight, seed: Seed):
        """`(initializer, rule in words)` of a drawn weight."""
        rule = self.rules[weight.path]
        return rule.make(seed), f"{self.name}: {rule.words}"

    def scale(self, path: str, value):
        """`value` times its factor, `(o + value) * c - o`."""
        c = self.factors.get(path, 1.0)
        if c == 1.0:
            return value
        o = self.offsets.get(path, 0.0)
        return (value + o) * c - o if o else value * c


@dataclasses.dataclass
class _Model:
    """What the recipes read from a model."""

    model: keras.Model
    weights: list[Weight]
    branches: list
    blocks: float
    width: int
    lasts: set[str]
    inside: set[str]
    scores: set[str]


def _added(weight: Weight) -> bool:
    """Whether a table is added to a stream as wide as it (positions)."""
    return graph.input_width(weight.layer) == weight.shape[-1]


def _read(model: keras.Model, name: str, weights: list[Weight]) -> _Model:
    """The branches, `L`, `d` and the score kernels of `model` for `name`."""
    # a branch of tables only is the position table added to the token one
    branches = [
        b
        for b in residual.branches(model, weights)
        if b.last.role not in ("embeddings", "token")
    ]
    if not branches and name != "bert":
        raise ValueError(
            f"Recipe {name!r} needs the residual branches of a Transformer "
            "(attention and feed-forward blocks adding to a residual stream), "
            f"but none was found in model {model.name!r}. Received: scheme={name!r}"
        )
    width = branches[0].last.fan_out if branches else 0
    scores = (
        structure.score_kernels(model, weights)
        if name in ("t-fixup", "deepnet")
        else set()
    )
    return _Model(
        model,
        weights,
        branches,
        blocks=len(branches) / 2.0,
        width=width,
        lasts={b.last.path for b in branches},
        inside={w.path for b in branches for w in b.kernels},
        scores=scores,
    )


def _causal(model: keras.Model) -> bool:
    """Whether the model is causal (a decoder).

    Changing the last position of every input leaves a causal model's
    outputs at the earlier positions as they were.
    """
    x = structure.sample_inputs(model)
    if x is None:
        raise ValueError(
            "Recipe 't-fixup' needs to run the model to tell a decoder from an "
            f"encoder, but model {model.name!r} has no input specs. "
            "Received: scheme='t-fixup'"
        )

    def change(a):
        a = np.array(a)
        if a.ndim >= 2:
            a[:, -1] = 0 if np.issubdtype(a.dtype, np.integer) else a[:, -1] + 1
        return a

    before = keras.tree.flatten(model(x, training=False))
    after = keras.tree.flatten(
        model(keras.tree.map_structure(change, x), training=False)
    )
    length = structure.SAMPLE_LENGTH
    compared = False
    for a, b in zip(before, after, strict=True):
        a, b = keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
        if a.ndim >= 3 and a.shape[1] == length:
            compared = True
            if not np.allclose(a[:, :-1], b[:, :-1], rtol=1e-5, atol=1e-6):
                return False
    if not compared:
        raise ValueError(
            "Recipe 't-fixup' tells a decoder from an encoder by the model's "
            f"sequence outputs, but model {model.name!r} has none. "
            "Received: scheme='t-fixup'"
        )
    return True


# --------------------------------------------------------------------------
# the recipes


def _normal(std: float) -> Callable[[Seed], keras.initializers.Initializer]:
    return lambda seed: RandomNormal(stddev=std, seed=seed)


def _gpt2(weight: Weight, found: _Model) -> Rule:
    if weight.path in found.lasts:
        std = gpt2_std(found.blocks)
        return Rule(
            _normal(std),
            f"N(0, 0.02/sqrt(2L)) = N(0, {std:.4g}), residual output projection "
            f"(L={found.blocks:g})",
        )
    if weight.role == "embeddings" and _added(weight):
        return Rule(_normal(0.01), "N(0, 0.01), position table")
    what = "table" if weight.role == "embeddings" else "kernel"
    return Rule(_normal(0.02), f"N(0, 0.02), {what}")


def _bert(weight: Weight, found: _Model) -> Rule:
    def make(seed):
        return keras.initializers.TruncatedNormal(stddev=0.02, seed=seed)

    what = "table" if weight.role == "embeddings" else "kernel"
    return Rule(make, f"TruncatedNormal(stddev=0.02), cut at 2 std, {what}")


def _neox(weight: Weight, found: _Model) -> Rule:
    d, blocks = found.width, found.blocks
    if weight.path in found.lasts:
        std = wang_init_std(blocks, d)
        return Rule(
            _normal(std),
            f"wang_init N(0, 2/(L sqrt(d))) = N(0, {std:.4g}), residual output "
            f"projection (L={blocks:g}, d={d})",
        )
    std = small_init_std(d)
    return Rule(
        _normal(std), f"small_init N(0, sqrt(2/(5d))) = N(0, {std:.4g}) (d={d})"
    )


def _tfixup(weight: Weight, found: _Model, decoder: bool) -> Rule:
    blocks = found.blocks
    scale = tfixup_scale(blocks, decoder)
    formula = "(9L)^-1/4" if decoder else "0.67 L^-1/4"
    stack = "a decoder" if decoder else "an encoder"
    if weight.role == "embeddings":
        d = weight.shape[-1]
        if _added(weight):
            return Rule(
                _normal(d**-0.5), f"N(0, d^-1/2) = N(0, {d**-0.5:.4g}), position table"
            )
        std = d**-0.5 * (9.0 * blocks) ** -0.25
        return Rule(
            _normal(std),
            f"N(0, d^-1/2 (9L)^-1/4) = N(0, {std:.4g}), input table (L={blocks:g})",
        )
    if weight.path in found.inside and weight.path not in found.scores:
        return Rule(
            lambda seed: XavierUniform(gain=scale, seed=seed),
            f"XavierUniform x {formula} = x {scale:.4g}, value/output/feed-forward "
            f"kernel of {stack} (L={blocks:g})",
        )
    return Rule(lambda seed: XavierUniform(seed=seed), "XavierUniform")


def _deepnet(weight: Weight, found: _Model) -> Rule:
    blocks = found.blocks
    beta = (8.0 * blocks) ** -0.25
    if weight.role == "embeddings":
        d = weight.shape[-1]
        return Rule(_normal(d**-0.5), f"N(0, d^-1/2) = N(0, {d**-0.5:.4g}), table")
    if weight.path in found.inside and weight.path not in found.scores:
        return Rule(
            lambda seed: XavierNormal(gain=beta, seed=seed),
            f"XavierNormal(gain=beta), beta = (8L)^-1/4 = {beta:.4g}, "
            f"value/output/feed-forward kernel (L={blocks:g})",
        )
    return Rule(lambda seed: XavierNormal(seed=seed), "XavierNormal")


def check_recipe(name) -> str:
    """Returns `name` if it is one of `RECIPES`, else `ValueError`.

    Example:

    >>> check_recipe("gpt2")
    'gpt2'
    """
    if name in RECIPES:
        return name
    raise ValueError(
        f"Unknown recipe {name!r}. Known recipes: {list(RECIPES)}. Received: {name!r}"
    )


def _refuse_unplaced(name: str, weights: list[Weight], covered) -> None:
    """`ValueError` naming the weights `name` has no rule for."""
    unplaced = [
        w for w in weights if w.role not in (*_DRAWN, *_SET) and not covered(w.path)
    ]
    if unplaced:
        named = ", ".join(f"{w.path!r} (role {w.role!r})" for w in unplaced)
        example = f"rules={{{unplaced[0].path!r}: 'keep'}}"
        raise ValueError(
            f"Recipe {name!r} has no rule for {named}: it places kernels, tables, "
            "biases and normalization weights. Cover them with `rules=` (a "
            f"scheme name, an initializer or 'keep'), e.g. {example}. The model "
            f"is unchanged. Received: scheme={name!r}"
        )


def recipe_rules(
    model: keras.Model, name: str, weights: list[Weight], covered=None
) -> RecipePlan:
    """The rule recipe `name` gives every drawn weight of `model`.

    Args:
        model: A built model, read by `graph.weights`.
        name: One of `RECIPES`.
        weights: `graph.weights(model)`.
        covered: `path -> bool`, the weights the user's `rules=` cover
            (not placed, not refused).

    Returns:
        A `RecipePlan`.

    Raises:
        ValueError: For a weight of a role the recipe has no rule for, or,
            except for `bert`, a model without residual branches; nothing
            is changed.

    Example:

    >>> import keras_hub
    >>> model = keras_hub.models.GPT2Backbone(vocabulary_size=64, num_layers=2,
    ...     num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=8)
    >>> p = recipe_rules(model, "gpt2", graph.weights(model))
    >>> p.blocks, p.rules["position_embedding/embeddings"].words
    (2.0, 'N(0, 0.01), position table')
    """
    name = check_recipe(name)
    covered = covered or (lambda path: False)
    _refuse_unplaced(name, weights, covered)
    found = _read(model, name, weights)
    if name == "t-fixup":
        decoder = _causal(model)
        rule_of = lambda w, f: _tfixup(w, f, decoder)  # noqa: E731
    else:
        rule_of = {"gpt2": _gpt2, "bert": _bert, "neox": _neox, "deepnet": _deepnet}[
            name
        ]
    rules = {
        w.path: rule_of(w, found)
        for w in weights
        if w.role in _DRAWN and not covered(w.path)
    }
    alpha = (2.0 * found.blocks) ** 0.25 if name == "deepnet" else None
    return RecipePlan(name, rules, alpha, found.blocks)
