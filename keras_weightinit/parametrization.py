"""µP and depth-µP/CompleteP: the table, and reading it off a model.

Every trainable weight gets one `Record`: how its fans grow with width
(`fan_in_mult`, `fan_out_mult`), whether it lives in a residual block (the
depth rules apply), the forward multiplier folded into it (`fold`), and the
model's depth multiplier. `multipliers(record, family)` is the one table of
learning-rate, Adam-epsilon and weight-decay factors; `read(model, base)`
finds the records.

Forward multipliers as a reparametrization. µP and the depth rules put
multipliers in the forward pass: attention logits scaled by `1/d` instead of
`1/sqrt(d)`, residual branches by `(L_base / L)^alpha`, a tied readout by
`1/m`. A weight `W` whose output is multiplied by `c` trains, under Adam,
exactly like the weight `W' = c W` with no multiplier, drawn `c` times
larger, with learning rate `c * lr`, epsilon `epsilon / c` and decoupled
weight decay `weight_decay / c` (under SGD, learning rate `c^2 * lr` and
decay `weight_decay / c^2`). So
each multiplier is folded into the weight that produces the multiplied
output: the query and key kernels share the attention's (`sqrt(c)` each:
the logits are bilinear in them, which also covers grouped-query attention);
a branch's last kernel and its bias carry the branch's (or the gammas and
betas of a normalization that closes the branch); the final
normalization's gamma and beta carry a tied readout's. The model's code and
config stay as they are, which is what makes KerasHub's models (whose
configs do not hold their layers) µP models that survive `save`/`load`.

Reference:
    Yang et al., "Tensor Programs V: Tuning Large Neural Networks via
    Zero-Shot Hyperparameter Transfer", 2022, Tables 3 and 8; Yang et al.,
    "Tensor Programs VI: Feature Learning in Infinite-Depth Neural
    Networks" (Depth-µP), ICLR 2024; Bordelon et al., "Depthwise
    Hyperparameter Transfer in Residual Networks", ICLR 2024; Dey et al.,
    "Don't be lazy: CompleteP enables compute-efficient deep transformers",
    NeurIPS 2025, Table 1 and EleutherAI/nanoGPT-mup (branch `completep`).
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np

from keras_weightinit import checks, graph, residual, structure
from keras_weightinit.graph import Weight

__all__ = ["Multipliers", "Record", "Reading", "multipliers", "read"]

_NORM_ROLES = ("gamma", "beta", "constant")  # a norm's scale and offset


@dataclasses.dataclass(frozen=True)
class Record:
    """One weight's µP record.

    Attributes:
        fan_in_mult: `fan_in / base fan_in` when the fan-in grows with
            width, else None.
        fan_out_mult: The same for the fan-out (a vector's length).
        readout: Whether the weight is a `MuReadout` kernel (its layer
            multiplies its output by `1 / width_mult`).
        block: Whether the weight lives in a residual block.
        depth_mult: `L / L_base`, the model's blocks over the base's.
        depth_alpha: The exponent of the branch multiplier `depth_mult^-alpha`.
        fold: The forward multiplier folded into the weight (1: none).
    """

    fan_in_mult: float | None = None
    fan_out_mult: float | None = None
    readout: bool = False
    block: bool = False
    depth_mult: float = 1.0
    depth_alpha: float = 1.0
    fold: float = 1.0

    @property
    def kind(self) -> str:
        """`"hidden"`, `"output"`, `"input"` (or a vector) or `"fixed"`."""
        grows_in = self.fan_in_mult is not None
        grows_out = self.fan_out_mult is not None
        if grows_in and grows_out:
            return "hidden"
        if grows_in:
            return "output"
        return "input" if grows_out else "fixed"

    def get_config(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Multipliers:
    """Factors of the optimizer's learning rate, epsilon and weight decay."""

    lr: float = 1.0
    epsilon: float = 1.0
    weight_decay: float = 1.0


def _width(record: Record, family: str) -> Multipliers:
    """Tensor Programs V, Tables 3 and 8, with CompleteP's epsilon."""
    m_in, m_out = record.fan_in_mult, record.fan_out_mult
    kind = record.kind
    if family == "sgd":
        lr = {
            "hidden": (m_out or 1.0) / (m_in or 1.0),
            "output": (m_in or 1.0) if record.readout else 1.0 / (m_in or 1.0),
            "input": m_out or 1.0,
            "fixed": 1.0,
        }[kind]
        return Multipliers(lr=lr)
    if kind == "hidden":
        return Multipliers(1.0 / m_in, 1.0 / m_in, m_in)
    if kind == "output" and record.readout:
        return Multipliers(1.0, 1.0 / m_in, 1.0)
    if kind == "output":
        return Multipliers(1.0 / m_in, 1.0, m_in)
    if kind == "input":
        return Multipliers(1.0, 1.0 / m_out, 1.0)
    return Multipliers()


def multipliers(record: Record, family: str = "adam") -> Multipliers:
    """The learning-rate, epsilon and weight-decay factors of one weight.

    Width (`m_in`, `m_out`: the fans' multipliers; Adam covers AdamW and
    the other adaptive optimizers):

    | weight (fan_in, fan_out)     | Adam lr  | Adam eps | decay  | SGD lr      |
    |------------------------------|----------|----------|--------|-------------|
    | hidden (grows, grows)        | `1/m_in` | `1/m_in` | `m_in` | `m_out/m_in`|
    | `MuReadout` kernel (grows, -)| 1        | `1/m_in` | 1      | `m_in`      |
    | other output (grows, -)      | `1/m_in` | 1        | `m_in` | `1/m_in`    |
    | input weight, vector (-, grows) | 1     | `1/m_out`| 1      | `m_out`     |
    | neither grows                | 1        | 1        | 1      | 1           |

    Depth (weights inside residual blocks; `r = L / L_base`): Adam lr
    `x r^(alpha-1)`, epsilon `x r^-alpha`; SGD lr `x r^(2 alpha - 1)`
    (CompleteP, Table 1, for alpha = 1; Depth-µP for alpha = 1/2). A folded
    forward multiplier `c`: Adam lr `x c`, epsilon `/ c`, decay `/ c`; SGD
    lr `x c^2`, decay `/ c^2`. Decay is decoupled: each step multiplies a weight by
    `1 - lr * lr_mult * weight_decay * decay_mult`, so `lr * decay` of a
    hidden weight does not depend on width (mup#1).

    Args:
        record: The weight's `Record`.
        family: `"adam"` or `"sgd"`.

    Returns:
        `Multipliers(lr, epsilon, weight_decay)`.

    Example:

    >>> multipliers(Record(fan_in_mult=4.0, fan_out_mult=4.0))
    Multipliers(lr=0.25, epsilon=0.25, weight_decay=4.0)
    >>> multipliers(Record(block=True, depth_mult=4.0, depth_alpha=0.5)).lr
    0.5

    Reference:
        Yang et al., "Tensor Programs V", 2022, Tables 3 and 8; Dey et al.,
        "Don't be lazy: CompleteP enables compute-efficient deep
        transformers", 2025, Table 1 and Equation 40.
    """
    checks.one_of("family", family, ("adam", "sgd"))
    width = _width(record, family)
    lr, epsilon, decay = width.lr, width.epsilon, width.weight_decay
    r, alpha, c = record.depth_mult, record.depth_alpha, record.fold
    if family == "sgd":
        depth = r ** (2 * alpha - 1) if record.block else 1.0
        return Multipliers(lr=lr * depth * c * c, weight_decay=1.0 / (c * c))
    if record.block:
        lr, epsilon = lr * r ** (alpha - 1), epsilon * r**-alpha
    return Multipliers(lr * c, epsilon / c, decay / c)


# --------------------------------------------------------------------------
# reading a model against its base


@dataclasses.dataclass
class Reading:
    """What `read` found: a record per weight and where each fold comes from.

    Attributes:
        weights: `graph.weights(model)`.
        records: `variable path -> Record`, every trainable weight.
        why: `variable path -> words`: the rule that set the record.
        offsets: `path -> o` for a gamma whose layer computes `(o + gamma)`
            (Gemma's `1 + scale`): its fold scales `o + gamma`.
        blocks: `L`, the model's residual blocks; `base_blocks` the base's.
        tied: The path of a readout tied to the token table, if any.
        query_paths: The first score kernel of each attention (the query),
            for `zero_query`.
        readout_paths: Untied readout kernels, for `zero_readout`.
        base: `variable path -> Weight`: each weight's counterpart in the
            base model.
    """

    weights: list[Weight]
    records: dict[str, Record]
    why: dict[str, str]
    offsets: dict[str, float]
    blocks: int
    base_blocks: int
    tied: str | None
    query_paths: list[str]
    readout_paths: list[str]
    base: dict = dataclasses.field(default_factory=dict)


def _fans(weight: Weight) -> tuple[int | None, int | None]:
    if weight.kernel_like:
        return weight.fan_in, weight.fan_out
    return None, weight.shape[-1] if weight.shape else None


def _signature(weight: Weight) -> tuple:
    return type(weight.layer).__name__, weight.role, len(weight.shape)


def blocks_of(
    model: keras.Model, weights: list[Weight], inner: list | None = None
) -> list[list[Weight]]:
    """The weights of each residual block, in order.

    A block is a layer whose call adds residual branches (a KerasHub
    `TransformerDecoder`, ...) with all its weights, or a branch of the
    layer graph (an `Add` of `x` and `f(x)`) with the weights of its layers.
    """
    claimed: set[int] = set()
    found = []
    if inner is None:
        inner = structure.inner_blocks(model, weights)
    for block in inner:
        inside = {id(v) for v in block.layer.weights}
        mine = [w for w in weights if id(w.variable) in inside]
        found.append(mine)
        claimed.update(id(w.variable) for w in mine)
    for branch in residual.graph_branches(model, weights):
        owners = {id(w.layer) for w in branch.kernels}
        if branch.gamma is not None:
            owners.add(id(branch.gamma.layer))
        mine = [
            w
            for w in weights
            if id(w.layer) in owners and id(w.variable) not in claimed
        ]
        if mine:
            found.append(mine)
            claimed.update(id(w.variable) for w in mine)
    order = {id(w.variable): i for i, w in enumerate(weights)}
    return sorted(found, key=lambda ws: min(order[id(w.variable)] for w in ws))


def _layout(weights: list[Weight], blocks: list[list[Weight]]) -> list:
    """The weights as a sequence of single weights and `("block", k)` marks."""
    block_of = {id(w.variable): k for k, ws in enumerate(blocks) for w in ws}
    sequence, seen = [], set()
    for weight in weights:
        k = block_of.get(id(weight.variable))
        if k is None:
            sequence.append(weight)
        elif k not in seen:
            seen.add(k)
            sequence.append(("block", k))
    return sequence


def _mismatch(name: str, a: Weight, b: Weight | None, other) -> ValueError:
    found = "no weight" if b is None else f"{b.path}, a {_signature(b)}"
    return ValueError(
        f"Argument `{name}` must have the structure of `model` (the same "
        "layers in the same order, only wider or narrower, or with fewer or "
        f"more residual blocks): weight {a.path}, a {_signature(a)} (layer "
        f"type, role, rank), matches {found}. Received: {name}={other.name!r}"
    )


def align(model, weights, blocks, other, name: str) -> tuple[list[Weight], int]:
    """Each of `model`'s weights' counterpart in `other`, and `other`'s blocks.

    Weights outside residual blocks pair in order; block `k` of `L` pairs
    with block `k * L_other // L` of `other`, weight by weight.
    """
    theirs = graph.weights(other)
    their_blocks = blocks_of(other, theirs) if blocks else []
    mine_seq = _layout(weights, blocks)
    their_seq = _layout(theirs, their_blocks)
    singles = [s for s in their_seq if not isinstance(s, tuple)]
    if blocks and not their_blocks:
        raise ValueError(
            f"Argument `{name}` must have residual blocks as `model` has "
            f"({len(blocks)}), but none was found in it. Received: "
            f"{name}={other.name!r}"
        )
    pairs: dict[int, Weight] = {}
    i = 0
    for item in mine_seq:
        if isinstance(item, tuple):
            k = item[1]
            mine_block = blocks[k]
            their_block = their_blocks[k * len(their_blocks) // len(blocks)]
            for j, weight in enumerate(mine_block):
                other_w = their_block[j] if j < len(their_block) else None
                if other_w is None or _signature(other_w) != _signature(weight):
                    raise _mismatch(name, weight, other_w, other)
                pairs[id(weight.variable)] = other_w
            if len(their_block) != len(mine_block):
                raise _mismatch(name, mine_block[-1], None, other)
            continue
        other_w = singles[i] if i < len(singles) else None
        if other_w is None or _signature(other_w) != _signature(item):
            raise _mismatch(name, item, other_w, other)
        pairs[id(item.variable)] = other_w
        i += 1
    if i != len(singles):
        raise ValueError(
            f"Argument `{name}` must have the structure of `model`: it has "
            f"{len(singles) - i} more weights outside residual blocks, from "
            f"{singles[i].path}. Received: {name}={other.name!r}"
        )
    return [pairs[id(w.variable)] for w in weights], len(their_blocks)


def _mult(mine: int | None, base: int | None, delta: int | None) -> float | None:
    """`mine / base` when the fan grows (differs from the delta's), else None."""
    if mine is None or base is None or delta == base:
        return None
    return mine / base


def _query_pairs(scores: list[Weight]) -> list[tuple[Weight, ...]]:
    """Score kernels grouped by attention: consecutive in weight order."""
    return [tuple(scores[i : i + 2]) for i in range(0, len(scores), 2)]


def _logits(model, x, mapping=()) -> np.ndarray | None:
    with keras.StatelessScope(state_mapping=list(mapping)):
        outputs = keras.tree.flatten(model(x, training=False))
    return keras.ops.convert_to_numpy(outputs[-1]) if outputs else None


def output_scale(model, weights: list[Weight]) -> tuple[list[Weight], float] | None:
    """The gamma and beta that scale the logits linearly, and their offset.

    Run on `structure.sample_inputs`: the last normalization whose gamma and
    beta, doubled, double the logits (offset 0), or whose `1 + gamma` and
    beta, doubled, do (offset 1, Gemma's `RMSNormalization`); None if none.
    """
    x = structure.sample_inputs(model)
    if x is None:
        return None
    base = _logits(model, x)
    norms: dict[int, list[Weight]] = {}
    for weight in weights:
        if weight.role in _NORM_ROLES:
            norms.setdefault(id(weight.layer), []).append(weight)
    for group in list(norms.values())[::-1][:3]:
        for offset in (0.0, 1.0):
            mapping = []
            for w in group:
                value = keras.ops.convert_to_numpy(w.variable)
                shift = 0.0 if w.role == "beta" else offset
                mapping.append((w.variable, 2.0 * (value + shift) - shift))
            doubled = _logits(model, x, mapping)
            scale = float(np.max(np.abs(base))) or 1.0
            if np.allclose(doubled, 2.0 * base, rtol=1e-4, atol=1e-5 * scale):
                return group, offset
    return None


def _fold(records, why, weight: Weight, c: float, words: str) -> None:
    path = weight.path
    records[path] = dataclasses.replace(records[path], fold=records[path].fold * c)
    why[path] = f"{why[path]}; {words} x {c:.4g} folded in"


def _companions(weight: Weight, weights: list[Weight]) -> list[Weight]:
    """`weight` and the bias of its layer (the two make its output)."""
    return [weight] + [
        w for w in weights if w.role == "bias" and w.layer is weight.layer
    ]


def _fold_attention(reading: Reading, paths: set[str], skip) -> None:
    """`sqrt(d_base / d)` of the logits, as `sqrt(c)` in each score kernel.

    `paths`: the score kernels; the first of each attention's pair is
    recorded as its query.
    """
    base = reading.base
    scores = [w for w in reading.weights if w.path in paths]
    for pair in _query_pairs([w for w in scores if not skip(w)]):
        query = pair[0]
        reading.query_paths.append(query.path)
        d, d_base = query.shape[-1], base[query.path].shape[-1]
        if len(query.shape) < 3:  # a Dense query: heads fixed, head size grows
            d, d_base = query.fan_out, base[query.path].fan_out
        c = math.sqrt(d_base / d)
        if c == 1.0:
            continue
        for kernel in pair:
            for w in _companions(kernel, reading.weights):
                _fold(reading.records, reading.why, w, math.sqrt(c), "1/d attention")


def _fold_depth(reading: Reading, model, alpha: float, inner: list) -> None:
    """`(L_base / L)^alpha` of every residual branch, in its last weights."""
    if not reading.blocks:
        return
    c = (reading.base_blocks / reading.blocks) ** alpha
    if c == 1.0:
        return
    for branch in residual.branches(model, reading.weights, inner):
        if branch.gamma is not None:
            ends = [w for w in reading.weights if w.layer is branch.gamma.layer]
        else:
            ends = _companions(branch.last, reading.weights)
        for w in ends:
            _fold(reading.records, reading.why, w, c, "branch (L_base/L)^alpha")


def _fold_tied(reading: Reading, model, heads: list[Weight]) -> None:
    """`1/m` of a readout tied to the token table, in the final norm."""
    tied = [h for h in heads if h.role in ("embeddings", "token")]
    if not tied:
        return
    table = tied[0]
    reading.tied = table.path
    m = reading.records[table.path].fan_out_mult
    if m is None:
        return
    found = output_scale(model, reading.weights)
    if found is None:
        raise ValueError(
            f"µP scales a readout by 1/width_mult, but model {model.name!r} "
            f"reads out through its token table ({table.path}, tied) and no "
            "normalization before the logits could carry the factor (none "
            "scales the logits linearly). Untie the readout (e.g. "
            "`tie_word_embeddings=False`) or end the model in a normalization."
        )
    group, offset = found
    for w in group:
        if offset and w.role != "beta":
            reading.offsets[w.path] = offset
        _fold(reading.records, reading.why, w, 1.0 / m, "tied readout 1/m")


def read(
    model: keras.Model,
    base_model: keras.Model,
    delta_model: keras.Model | None = None,
    depth_alpha: float = 1.0,
    is_readout=lambda weight: False,
    own_scale=lambda weight: False,
) -> Reading:
    """Every weight's `Record`, against a base model (and a delta model).

    Args:
        model: The built model to train.
        base_model: The same architecture at the base width and depth.
        delta_model: Another width, telling which fans grow (else `model`).
        depth_alpha: The branch exponent `alpha` (1: CompleteP, 1/2:
            Depth-µP).
        is_readout: `weight -> bool`: a kernel whose layer scales its own
            output by `1 / width_mult` (`MuReadout`).
        own_scale: `weight -> bool`: a score kernel of an attention that
            applies `1/d` itself (`MuMultiHeadAttention`).

    Returns:
        A `Reading`.

    Raises:
        ValueError: If `base_model` or `delta_model` does not have `model`'s
            structure, or a tied readout has nothing to carry `1/m`.
    """
    weights = graph.weights(model)
    inner = structure.inner_blocks(model, weights)
    blocks = blocks_of(model, weights, inner)
    base, base_blocks = align(model, weights, blocks, base_model, "base_model")
    delta = weights
    if delta_model is not None:
        delta, _ = align(model, weights, blocks, delta_model, "delta_model")
    depth_mult = len(blocks) / base_blocks if base_blocks else 1.0
    in_block = {id(w.variable) for ws in blocks for w in ws}
    records, why = {}, {}
    for weight, b, d in zip(weights, base, delta, strict=True):
        (fi, fo), (bfi, bfo), (dfi, dfo) = _fans(weight), _fans(b), _fans(d)
        m_in, m_out = _mult(fi, bfi, dfi), _mult(fo, bfo, dfo)
        block = id(weight.variable) in in_block
        if block and m_in is not None and m_out is None and weight.kernel_like:
            m_out = m_in  # inside a block nothing is a readout (GQA's keys)
        record = Record(m_in, m_out, is_readout(weight), block, depth_mult, depth_alpha)
        records[weight.path] = record
        why[weight.path] = f"{record.kind}" + (" in a block" if block else "")
    heads = structure.readouts(model, weights)
    scores = structure.score_kernels(model, weights, inner)
    by_path = {w.path: b for w, b in zip(weights, base, strict=True)}
    reading = Reading(
        weights, records, why, {}, len(blocks), base_blocks, None, [], [], by_path
    )
    _fold_attention(reading, scores, own_scale)
    _fold_depth(reading, model, depth_alpha, inner)
    _fold_tied(reading, model, heads)
    reading.readout_paths = [
        h.path for h in heads if h.path != reading.tied and h.kernel_like
    ]
    return reading
