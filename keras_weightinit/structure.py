"""What a model's layers do, found by running them: the readout and the branches.

Some roles cannot be read from a weight's name or shape, only from what the
layer computes with it:

- the **readout**, the weight of the last projection to the model's output
  (a Dense head, a language model's untied `reverse_embeddings`, or a tied
  embedding table used transposed): found by running the model once on a
  small batch made from its input specs (`sample_inputs`) and taking the
  layer whose call produced the output;
- the **residual branches inside a block**: a Transformer block
  (KerasHub's decoders and encoders, any custom block) adds its branches to
  the residual stream inside its own `call`, so the layer graph shows no
  `Add`. `inner_blocks` calls each layer that holds two or more kernels on
  a random input, with its kernels and biases replaced by zeros (inside a
  `keras.StatelessScope`: the model's variables are never written). If the
  output is then not zero, the layer carries its input past its kernels: a
  residual shortcut. Restoring the kernels one at a time in the order the
  block calls them, a kernel whose restoration changes that output ends a
  branch (the attention output projection, the feed-forward output
  projection); setting exactly those to zero makes a pre-norm block the
  identity. No class or attribute name is read, so blocks the package has
  never seen are found the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses

import keras
import numpy as np

from keras_weightinit import graph
from keras_weightinit.data import input_specs
from keras_weightinit.graph import Weight
from keras_weightinit.probe import Stop, observe

__all__ = [
    "SAMPLE_LENGTH",
    "Branch",
    "InnerBlock",
    "block_input",
    "inner_blocks",
    "readouts",
    "sample_inputs",
    "score_kernels",
]

_BATCH, SAMPLE_LENGTH = 2, 4  # a sample batch: its size, and the size of free axes


def _sample(spec, rng: np.random.Generator, batch: int):
    shape = [
        batch if i == 0 and d is None else (d or SAMPLE_LENGTH)
        for i, d in enumerate(spec.shape)
    ]
    dtype = keras.backend.standardize_dtype(spec.dtype)
    if "int" in dtype:
        return np.ones(shape, dtype)
    if dtype == "bool":
        return np.ones(shape, bool)
    return rng.standard_normal(shape).astype(dtype)


def sample_inputs(model: keras.Model, batch: int = _BATCH, seed: int = 0):
    """A small batch in the structure of the model's inputs, or None.

    Float inputs are standard normal; integer ones (token ids, masks,
    segment ids) are 1, valid in any table of two or more rows. None for a
    model without input specs (a subclassed model not yet called
    functionally).

    Example:

    >>> x = keras.Input((3,), name="a")
    >>> model = keras.Model({"a": x}, keras.layers.Dense(2)(x))
    >>> {k: v.shape for k, v in sample_inputs(model).items()}
    {'a': (2, 3)}
    """
    specs = input_specs(model)
    if specs is None:
        return None
    rng = np.random.default_rng(seed)
    return keras.tree.map_structure(lambda s: _sample(s, rng, batch), specs)


_LOGITS = ("linear", "softmax", "sigmoid", "log_softmax")


def readouts(model: keras.Model, found: list[Weight]) -> list[Weight]:
    """The weights of the last projections to the model's outputs.

    For each output, on `sample_inputs`, the layer whose call returned it,
    if its own activation leaves logits or probabilities (linear, softmax,
    sigmoid), and in it the kernel-like weight whose last axis is the
    output's width (a Dense head, an untied reverse embedding), else one
    whose first axis is (a tied table, used transposed). An output that is
    not such a projection (a backbone ending in a normalization) has none;
    `[]` when the model cannot be run on a sample batch.
    """
    x = sample_inputs(model)
    if x is None:
        return []
    units = list(dict.fromkeys(w.unit for w in found if w.kernel_like))
    last: dict[int, object] = {}
    with observe(units, last=last):
        try:
            outputs = keras.tree.flatten(model(x, training=False))
        except Exception:
            return []
    found_heads = []
    for y in map(keras.ops.convert_to_numpy, outputs):
        head = _producer(units, last, y)
        if head is not None and graph.own_activation(head)[0] in _LOGITS:
            weight = _readout_weight(head, found, y.shape[-1])
            if weight is not None and weight not in found_heads:
                found_heads.append(weight)
    return found_heads


def _producer(units, last: dict, y: np.ndarray):
    """The unit whose latest call returned the values `y`."""
    for unit in reversed(units):
        out = last.get(id(unit))
        if out is None or not keras.ops.is_tensor(out) or tuple(out.shape) != y.shape:
            continue
        if np.array_equal(keras.ops.convert_to_numpy(out), y):
            return unit
    return None


def _readout_weight(unit, found: list[Weight], width: int) -> Weight | None:
    own = [w for w in found if w.kernel_like and w.unit is unit]
    for weight in own:
        if weight.shape[-1] == width and weight.role != "embeddings":
            return weight
    for weight in own:
        if weight.shape[0] == width:
            return weight
    return None


@dataclasses.dataclass(frozen=True)
class Branch:
    """One residual branch: its kernels in call order; the last one ends it.

    Attributes:
        kernels: The kernel-like weights computing the branch, in call order.
        gamma: The gamma of a normalization closing the branch, if any.
        layers: The number of kernel layers in the branch (Fixup's `m`).
    """

    kernels: tuple[Weight, ...]
    gamma: Weight | None = None
    layers: int = 0

    def __post_init__(self):
        if not self.layers:
            units = {id(w.unit) for w in self.kernels}
            object.__setattr__(self, "layers", len(units))

    @property
    def last(self) -> Weight:
        """The kernel whose output is the branch's."""
        return self.kernels[-1]


@dataclasses.dataclass(frozen=True)
class InnerBlock:
    """A layer whose call adds residual branches to its input."""

    layer: keras.Layer
    branches: tuple[Branch, ...]


def _depth(layer, parents: dict[int, keras.Layer]) -> int:
    depth = 0
    while id(layer) in parents:
        layer, depth = parents[id(layer)], depth + 1
    return depth


def inner_blocks(model: keras.Model, found: list[Weight]) -> list[InnerBlock]:
    """The residual blocks inside layers' calls, innermost first.

    A layer whose kernels all belong to blocks found already (an encoder
    holding the blocks) is not probed again.
    """
    parents = {}
    for layer in [model, *graph.layers(model)]:
        for sub in graph.layers(layer):
            parents.setdefault(id(sub), layer)
    kernels = [w for w in found if w.kernel_like]
    candidates = []
    for layer in graph.layers(model):
        if isinstance(layer, keras.Model):
            continue
        inside = {id(v) for v in layer.weights}
        mine = [w for w in kernels if id(w.variable) in inside]
        if len(mine) >= 2:
            candidates.append((layer, mine))
    candidates.sort(key=lambda c: -_depth(c[0], parents))
    blocks, claimed = [], set()
    for layer, mine in candidates:
        if all(id(w.variable) in claimed for w in mine):
            continue
        biases = [
            w
            for w in found
            if w.role == "bias" and id(w.unit) in {id(m.unit) for m in mine}
        ]
        block = _probe_block(layer, mine, biases)
        if block is not None:
            blocks.append(block)
            claimed.update(id(w.variable) for b in block.branches for w in b.kernels)
    return blocks


def block_input(layer: keras.Layer):
    """A random input of the shape `layer` was built for, or None."""
    config = layer.get_build_config() or {}
    shape = config.get("input_shape")
    if shape is None and config.get("shapes_dict"):
        shape = next(iter(config["shapes_dict"].values()))
    if not isinstance(shape, (list, tuple)) or not shape:
        return None
    if not all(d is None or isinstance(d, int) for d in shape):
        return None
    spec = keras.KerasTensor([d for d in shape], dtype=layer.compute_dtype)
    return _sample(spec, np.random.default_rng(0), _BATCH)


def _first(outputs):
    """A block's output: the first tensor it returns (some add their scores)."""
    return keras.tree.flatten(outputs)[0] if keras.tree.is_nested(outputs) else outputs


def _runner(layer, x, kernels: list[Weight], biases: list[Weight]):
    """`run(zeroed)`: `layer`'s output on `x` with the `zeroed` kernels 0.

    The biases are 0 and the other kernels random stand-ins
    `N(0, 1 / fan_in)`, set inside a `keras.StatelessScope`: what is probed
    is what the block computes, not the values it holds (a branch
    initialized to zero is still a branch), and no variable is written.
    """
    rng = np.random.default_rng(0)
    zeros, stand_ins = {}, {}
    for w in [*kernels, *biases]:
        zeros[id(w.variable)] = keras.ops.zeros(w.shape, w.variable.dtype)
    for w in kernels:
        draw = rng.standard_normal(w.shape) / np.sqrt(max(w.fan_in or 1, 1))
        stand_ins[id(w.variable)] = keras.ops.convert_to_tensor(draw, w.variable.dtype)

    def run(zeroed: list[Weight]) -> np.ndarray:
        off = {id(w.variable) for w in zeroed}
        mapping = [
            (
                w.variable,
                (zeros if id(w.variable) in off else stand_ins)[id(w.variable)],
            )
            for w in kernels
        ]
        mapping += [(w.variable, zeros[id(w.variable)]) for w in biases]
        with keras.StatelessScope(state_mapping=mapping):
            return np.asarray(
                keras.ops.convert_to_numpy(_first(layer(x, training=False)))
            )

    return run


def _probe_block(layer, kernels: list[Weight], biases: list[Weight]):
    """The `InnerBlock` of `layer`, or None if it adds no branch to its input."""
    x = block_input(layer)
    if x is None:
        return None
    x = keras.ops.convert_to_tensor(x)
    units = list(dict.fromkeys(w.unit for w in kernels))
    with observe(units) as seen, contextlib.suppress(Stop):
        try:
            full = _first(layer(x, training=False))
        except Exception:
            return None
    if not keras.ops.is_tensor(full) or tuple(full.shape) != tuple(x.shape):
        return None
    order = {id(u): i for i, u in enumerate(seen.order)}
    kernels = sorted(kernels, key=lambda w: order.get(id(w.unit), len(order)))
    run = _runner(layer, x, kernels, biases)
    full = run([])

    shortcut = run(kernels)
    scale = float(np.max(np.abs(full))) or 1.0
    if not np.all(np.isfinite(shortcut)) or np.max(np.abs(shortcut)) <= 1e-6 * scale:
        return None
    zeroed, ends = list(kernels), []
    for weight in kernels:
        zeroed.remove(weight)
        if not np.allclose(run(zeroed), shortcut, rtol=1e-5, atol=1e-6 * scale):
            zeroed.append(weight)
            ends.append(weight)
    if not ends:
        return None
    branches, start = [], 0
    for end in ends:
        stop = kernels.index(end) + 1
        branches.append(Branch(tuple(kernels[start:stop])))
        start = stop
    return InnerBlock(layer, tuple(branches))


def _scores_in(block: InnerBlock, weights: list[Weight]) -> list[str]:
    """Paths of the kernels of `block` that compute attention scores.

    Zeroing a value, output or feed-forward kernel (biases zeroed) silences
    its branch: the block's output is the one with the branch's last kernel
    zeroed. Zeroing a query or key kernel leaves a uniform attention over
    the values, so the output differs. Run on stand-ins (`_runner`).
    """
    x = block_input(block.layer)
    if x is None:
        return []
    x = keras.ops.convert_to_tensor(x)
    kernels = [w for b in block.branches for w in b.kernels]
    units = {id(w.unit) for w in kernels}
    biases = [w for w in weights if w.role == "bias" and id(w.unit) in units]
    run = _runner(block.layer, x, kernels, biases)
    found = []
    for branch in block.branches:
        silent = run([branch.last])
        atol = 1e-6 * (float(np.max(np.abs(silent))) or 1.0)
        for weight in branch.kernels[:-1]:
            if not np.allclose(run([weight]), silent, rtol=1e-5, atol=atol):
                found.append(weight.path)
    return found


def score_kernels(
    model: keras.Model, weights: list[Weight], inner: list[InnerBlock] | None = None
) -> set[str]:
    """Paths of the query and key kernels: of `MultiHeadAttention`s, then probed.

    `inner`: `inner_blocks(model, weights)` when the caller has them.
    """
    found = set()
    for layer in graph.layers(model):
        for role, sub in graph.attention_projections(layer).items():
            if role in ("query", "key"):
                found.update(w.path for w in weights if w.kernel_like and w.unit is sub)
    for block in inner_blocks(model, weights) if inner is None else inner:
        found.update(_scores_in(block, weights))
    return found
