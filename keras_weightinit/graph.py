"""Reading a Keras model: its layers at any depth, their weights, fans and graph.

Every tool of the package (`initialize`, `lsuv`, `diagnose`,
`GradientHistograms`, `pretrain_dbn`, `compare`) reads models through this
module, so they all see the same layers with the same roles and fans.

- `layers(model)`: every layer at any depth (nested models, layers holding
  sublayers such as `MultiHeadAttention`, `Bidirectional`, RNN cells, custom
  blocks), each once.
- `weights(model)`: every trainable float weight with its owner layer, its
  role (`kernel`, `depthwise_kernel`, `pointwise_kernel`, `recurrent_kernel`,
  `embeddings`, `bias`, `gamma`, `beta`, or `unknown`), its fans and its
  gate blocks (recurrent kernels hold one block per gate along the last
  axis).
- `following_activation(layer, model)`: the activation applied to a layer's
  output, its own or that of an activation layer after it in the layer graph.
- `producer`, `consumers` and `residual_blocks`: the layer graph of functional
  and Sequential containers.

Private Keras names are used only here, where no public route exists:
`Layer._flatten_layers` (the sublayers of any layer, tracked by Keras),
`Operation._inbound_nodes` (whether a layer is shared, the arguments of
its call), `Function._run_through_graph` and `_nodes_by_depth`
(`shadow_operations`, `run_order`), a
symbolic tensor's `_keras_mask` (`chain`),
`MultiHeadAttention._inverse_sqrt_key_dim` (µP's attention scale),
`MultiHeadAttention._kernel_initializer` / `_bias_initializer` (µP's
projections), `Optimizer._get_variable_index` and `_use_weight_decay`
(µP's per-variable rates and decays), `Variable._initializer` and the
uninitialized-variable list of a `StatelessScope` (`build_initializers`),
the name-scope stack (the layer that is creating a variable, read by the
initializers' seed rule for copies) and the `_available` answer of Keras's
lazy TensorFlow module (`configs_without_tensorflow`).
`tests/test_graph.py` fails loudly if Keras changes any of them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import sys
from collections.abc import Callable, Iterator

import keras
import numpy as np

from keras_weightinit.gains import CONV_TRANSPOSE, activation_name, compute_fans

__all__ = [
    "KERNEL_ROLES",
    "Weight",
    "check_known",
    "configs_without_tensorflow",
    "consumers",
    "current_scope",
    "drawn_view",
    "following_activation",
    "kernel_weights",
    "layer_activation",
    "layer_below",
    "layer_path",
    "layers",
    "normalization_after",
    "normalizations_after",
    "own_activation",
    "primary_weight",
    "producer",
    "ResidualBlock",
    "attention_projections",
    "residual_blocks",
    "weights",
]

#: The roles whose weights are drawn from an initializer (the others are set).
KERNEL_ROLES = (
    "kernel",
    "depthwise_kernel",
    "pointwise_kernel",
    "recurrent_kernel",
    "embeddings",
    "token",
)
# attribute of the owner layer -> role
_ATTRIBUTES = {
    "kernel": "kernel",
    "depthwise_kernel": "depthwise_kernel",
    "pointwise_kernel": "pointwise_kernel",
    "recurrent_kernel": "recurrent_kernel",
    "embeddings": "embeddings",
    "bias": "bias",
    "gamma": "gamma",
    "beta": "beta",
    "scale": "gamma",  # RMSNormalization's
}
# Weights of Keras layers that no initialization rule covers: left as they are.
_LEFT_ALONE = {
    "PReLU": ("alpha",),
    "Attention": ("scale", "concat_score_weight"),
    "AdditiveAttention": ("scale",),
}
_NORMALIZATION = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
    keras.layers.RMSNormalization,
)
_DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
# Layers that may sit between a layer and the activation layer that follows it.
PASS_THROUGH = (
    *_NORMALIZATION,
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
)


# --------------------------------------------------------------------------
# private Keras names, in one place


def _sublayers(layer: keras.Layer, recursive: bool = True) -> list[keras.Layer]:
    """The layers tracked below `layer`, depth first (Keras's own walk)."""
    return list(layer._flatten_layers(include_self=False, recursive=recursive))


def called_once(layer: keras.Layer) -> bool:
    """Whether `layer` has one node in a layer graph (is not shared)."""
    return len(getattr(layer, "_inbound_nodes", ())) == 1


def _call_arguments(layer: keras.Layer) -> tuple[tuple, dict]:
    """The positional and keyword arguments of a layer's one graph call."""
    arguments = layer._inbound_nodes[0].arguments
    return tuple(arguments.args), dict(arguments.kwargs)


def _mask_of(tensor) -> object | None:
    """The mask Keras attached to a symbolic tensor (`Masking`), None if none."""
    return getattr(tensor, "_keras_mask", None)


def set_attention_scale(layer: keras.Layer, scale: float) -> None:
    """Sets the factor a `MultiHeadAttention` multiplies its logits by.

    Keras keeps it as `_inverse_sqrt_key_dim` (`1 / sqrt(key_dim)`), read in
    `_compute_attention`; µP's attention uses `1 / d` scaling instead.
    """
    if not hasattr(layer, "_inverse_sqrt_key_dim"):
        raise RuntimeError(
            "keras_weightinit: this Keras's MultiHeadAttention has no "
            "`_inverse_sqrt_key_dim`; the µP attention scale cannot be set."
        )
    layer._inverse_sqrt_key_dim = float(scale)


def set_attention_initializer(layer: keras.Layer, role: str, initializer) -> None:
    """Sets the initializer a `MultiHeadAttention` clones into its projections.

    Keras keeps them as `_kernel_initializer` / `_bias_initializer` (read
    when the layer builds its four `EinsumDense` projections); `role` is
    `"kernel"` or `"bias"`.
    """
    attribute = f"_{role}_initializer"
    if not hasattr(layer, attribute):
        raise RuntimeError(
            f"keras_weightinit: this Keras's MultiHeadAttention has no "
            f"`{attribute}`; its projections' initializer cannot be set."
        )
    setattr(layer, attribute, initializer)


def variable_index(optimizer, variable) -> int:
    """The index of `variable` in a built optimizer's own list (its slots')."""
    return optimizer._get_variable_index(variable)


def uses_weight_decay(optimizer, variable) -> bool:
    """Whether `optimizer` decays `variable` (`exclude_from_weight_decay`)."""
    return optimizer._use_weight_decay(variable)


def current_scope() -> keras.Layer | None:
    """The layer of the innermost Keras name scope.

    That is the layer creating a variable when an initializer is called from
    `add_weight`; None outside any layer.
    """
    from keras.src.backend.common import global_state

    stack = global_state.get_global_attribute("name_scope_stack") or []
    caller = getattr(stack[-1], "caller", None) if stack else None
    return caller if isinstance(caller, keras.Layer) else None


@contextlib.contextmanager
def shadow_operations(model: keras.Layer, wrap: Callable) -> Iterator[None]:
    """Each graph operation of `model`'s functional containers called through `wrap`.

    While active, a functional container (the model or one nested in it at
    any depth) that runs its graph calls each node's operation as
    `wrap(operation, call)(*args, **kwargs)`, where `call` is what it would
    have called (the operation, with the call's `training`); `wrap` may
    answer without calling `call`, so an operation it answers for costs no
    `Layer.__call__`. Through `Function._run_through_graph`'s
    `operation_fn`, shadowed on each container as `shadow_calls` shadows a
    layer's `call`.
    """
    containers = [
        c for c in _containers(model) if hasattr(type(c), "_run_through_graph")
    ]

    def make(container):
        run = type(container)._run_through_graph
        return _wrapped_run(container, run, wrap)

    with shadow_attribute(containers, "_run_through_graph", make):
        yield


@contextlib.contextmanager
def shadow_attribute(objects, name: str, make: Callable) -> Iterator[list]:
    """Each object's `name` replaced by `make(object)` while active.

    An instance attribute over the class's (a method such as a layer's
    `call`); `make` reads the original as `getattr(object, name)`. An object
    whose `name` is shadowed already, by an enclosing use, is left to it.

    Yields:
        The objects shadowed here.
    """
    shadowed = []
    try:
        for obj in objects:
            if name in vars(obj):
                continue
            object.__setattr__(obj, name, make(obj))
            shadowed.append(obj)
        yield shadowed
    finally:
        for obj in shadowed:
            object.__delattr__(obj, name)


def run_order(model: keras.Layer) -> list:
    """The operations a functional `model` runs, in the order it runs them.

    The order of `Function._run_through_graph` (its nodes by depth, deepest
    first); a nested functional model's own operations follow its entry.
    The operations inside any other layer are not listed; `[]` for a model
    that is not functional.

    Example:

    >>> x = keras.Input((3,))
    >>> a, b = keras.layers.Dense(2, name="a"), keras.layers.Dense(2, name="b")
    >>> [op.name for op in run_order(keras.Model(x, b(a(x))))]
    ['a', 'b']
    """
    nodes = getattr(model, "_nodes_by_depth", None)
    if not isinstance(nodes, dict) or not hasattr(model, "_run_through_graph"):
        return []
    order = []
    for depth in sorted(nodes, reverse=True):
        for node in nodes[depth]:
            if node.operation is None or node.is_input:
                continue
            order.append(node.operation)
            order.extend(run_order(node.operation))
    return order


def _wrapped_run(container: keras.Layer, run: Callable, wrap: Callable) -> Callable:
    def run_through_graph(inputs, operation_fn=lambda op: op, **kwargs):
        def wrapped(op):
            return wrap(op, operation_fn(op))

        return run(container, inputs, operation_fn=wrapped, **kwargs)

    return run_through_graph


@contextlib.contextmanager
def configs_without_tensorflow() -> Iterator[None]:
    """Keras's `get_config` and serialization, without importing TensorFlow.

    Keras's `serialize_keras_object` asks its lazy `tensorflow` module
    whether TensorFlow is available, which imports it, before checking for
    TensorFlow types; where TensorFlow is not imported no value is of one,
    so inside this block the answer is no (`tests/test_imports.py`): the
    lazy module's `_available`, set for the block and cleared after it.
    """
    from keras.src.utils import module_utils

    lazy = module_utils.tensorflow
    if "tensorflow" in sys.modules or lazy._available is not None:
        yield
        return
    lazy._available = False
    try:
        yield
    finally:
        lazy._available = None


# --------------------------------------------------------------------------
# layers and weights


def layers(model: keras.Layer) -> list[keras.Layer]:
    """Every layer of `model` at any depth, each once, in Keras's order.

    Nested models and the sublayers of layers that hold layers
    (`MultiHeadAttention`'s projections, an RNN's cell, `Bidirectional`'s two
    RNNs, a custom block) are included; input layers are not.

    Example:

    >>> block = keras.layers.MultiHeadAttention(2, 4)
    >>> out = block(keras.ops.zeros((1, 3, 8)), keras.ops.zeros((1, 3, 8)))
    >>> sorted(layer.name for layer in layers(block))[:3]
    ['attention_output', 'dropout', 'key']
    """
    return [
        layer
        for layer in _sublayers(model)
        if not isinstance(layer, keras.layers.InputLayer)
    ]


def layer_path(layer: keras.Layer, model: keras.Layer | None = None) -> str:
    """The path a user recognises: the layer's variable path, model prefix off.

    `"multi_head_attention/query"`, `"lstm"` (whose weights sit in
    `"lstm/lstm_cell"`), `"block/dense"`; a layer without weights gives its
    name.

    Example:

    >>> dense = keras.layers.Dense(2, name="dense")
    >>> model = keras.Sequential([keras.Input((3,)), dense])
    >>> layer_path(model.layers[0], model)
    'dense'
    """
    path = layer.name
    for variable in layer.weights:
        parts = variable.path.split("/")[:-1]
        if layer.name in parts:
            parts = parts[: len(parts) - parts[::-1].index(layer.name)]
        path = "/".join(parts)
        break
    if model is not None and path.startswith(model.name + "/"):
        path = path[len(model.name) + 1 :]
    return path


def primary_weight(unit: keras.Layer, kernels: list[Weight]) -> Weight | None:
    """The kernel-like weight that sets `unit`'s output scale.

    The embedding table of a layer that looks one up (a reversible
    embedding's first call is the lookup), the pointwise kernel of a
    separable convolution, an RNN cell's input kernel, else the layer's
    kernel or depthwise kernel, else the last of its other kernel-like
    weights (a class token).
    """
    own = {}
    for weight in kernels:
        if weight.unit is unit:
            own[weight.role] = weight
    for role in ("embeddings", "pointwise_kernel", "kernel", "depthwise_kernel"):
        if role in own:
            return own[role]
    return next(iter(own.values()), None)


def normalization_after(layer: keras.Layer, model: keras.Layer):
    """The normalization layer that alone takes `layer`'s output, or None."""
    return normalizations_after([layer], model)[id(layer)]


def normalizations_after(units: list, model: keras.Layer) -> dict:
    """`id(layer) -> normalization_after(layer, model)` for each of `units`."""
    index = _Graph(model)
    found = {}
    for layer in units:
        after = index.consumers(layer)
        alone = len(after) == 1 and isinstance(after[0], _NORMALIZATION)
        found[id(layer)] = after[0] if alone else None
    return found


@dataclasses.dataclass(frozen=True, eq=False)
class Weight:
    """One trainable weight of a model, as the tools read it.

    Attributes:
        variable: The `keras.Variable`.
        layer: The layer that owns it (the innermost one).
        role: Drawn: `kernel`, `depthwise_kernel`, `pointwise_kernel`,
            `recurrent_kernel`, `embeddings` (a lookup or added table),
            `token` (a class or register token); set: `bias`, `gamma`,
            `beta`, `constant` (any other weight its layer builds as a
            constant); or `unknown` (a random vector: no fans).
        name: The layer path of the owner (see `layer_path`), the name the
            tools report.
        fan_in: Inputs one output unit sums over (see the table in
            `fans_of`); None for the roles that are set, not drawn.
        fan_out: Outputs one input unit feeds.
        gates: Blocks along the last axis that are initialized separately
            (4 for LSTM kernels, 3 for GRU, 1 otherwise).
        unit: The layer whose call computes this weight's output: the RNN
            layer for a cell's weights, else the owner.
        experts: Slices along the first axis that are initialized separately
            (the experts of a mixture-of-experts kernel
            `(experts, in, out)`, whose fans are an expert's), 1 otherwise.
        frozen: Whether its layer is frozen (`trainable=False`); only
            `weights(model, frozen=True)` gives such weights.
        initial: For a weight that is set, not drawn: the constant value its
            layer's own initializer gives it at build, or None when that
            cannot be read (then `initialize` sets biases and betas to 0 and
            gammas to 1).
    """

    variable: keras.Variable
    layer: keras.Layer
    role: str
    name: str
    fan_in: int | None = None
    fan_out: int | None = None
    gates: int = 1
    unit: keras.Layer | None = None
    experts: int = 1
    initial: object = None
    frozen: bool = False

    @property
    def path(self) -> str:
        """The variable's path, the key every tool reports it by."""
        return self.variable.path

    @property
    def shape(self) -> tuple[int, ...]:
        """The variable's shape."""
        return tuple(int(d) for d in self.variable.shape)

    @property
    def kernel_like(self) -> bool:
        """Whether the weight is drawn from an initializer (`KERNEL_ROLES`)."""
        return self.role in KERNEL_ROLES


def einsum_axes(equation: str) -> tuple[list[int], list[int]]:
    """`(input axes, output axes)` of an `EinsumDense` kernel.

    The kernel axes contracted with the input (in the input, not in the
    output) count in `fan_in`, the kernel axes that reach the output in
    `fan_out`; an axis in all three is a batch axis of the kernel and counts
    in neither.

    Example:

    >>> einsum_axes("abc,cde->abde")  # MultiHeadAttention's query kernel
    ([0], [1, 2])
    """
    match = re.fullmatch(r"([\w.]*),([\w.]*)->([\w.]*)", equation.replace(" ", ""))
    if match is None:
        raise ValueError(f"Cannot read the EinsumDense equation {equation!r}.")
    source, kernel, target = (s.replace("...", "") for s in match.groups())
    inputs = [i for i, a in enumerate(kernel) if a in source and a not in target]
    outputs = [i for i, a in enumerate(kernel) if a in target and a not in source]
    return inputs, outputs


def fans_of(layer: keras.Layer, role: str, shape: tuple[int, ...]):
    """`(fan_in, fan_out, gates)` of a kernel-like weight of `layer`.

    | weight                                   | fan_in             | fan_out
    |------------------------------------------|--------------------|--------
    | Dense, Conv `(*k, in, out)`              | `prod(k) * in`     | `prod(k) * out`
    | ConvTranspose `(*k, out, in)`            | `prod(k) * in`     | `prod(k) * out`
    | EinsumDense                              | contracted axes    | other axes
    | DepthwiseConv / Separable depthwise      | `prod(k)`          | `prod(k) * mult`
    |   `(*k, in, mult)`                       |                    |
    | Separable pointwise `(1.., in, out)`     | `in`               | `out`
    | RNN cell kernel `(in, g * u)`            | `in` (per gate)    | `u`
    | RNN cell recurrent kernel `(u, g * u)`   | `u` (per gate)     | `u`
    | Embedding `(vocab, dim)`                 | `1`                | `dim`

    An Embedding is a Dense layer on a one-hot input: each output sums over
    one non-zero input, so its fan-in is 1.
    """
    if role == "embeddings":
        return 1, shape[-1], 1
    if role == "depthwise_kernel" or (
        role == "kernel" and isinstance(layer, _DEPTHWISE)
    ):
        field = math.prod(shape[:-2])
        return field, field * shape[-1], 1
    if role == "kernel" and isinstance(layer, keras.layers.EinsumDense):
        ins, outs = einsum_axes(layer.equation)
        return (
            math.prod(shape[i] for i in ins),
            math.prod(shape[i] for i in outs),
            1,
        )
    if role == "kernel" and isinstance(layer, CONV_TRANSPOSE):
        return (*compute_fans(shape, transposed=True), 1)
    recurrent = getattr(layer, "recurrent_kernel", None)
    if role in ("kernel", "recurrent_kernel") and isinstance(recurrent, keras.Variable):
        units = int(recurrent.shape[-2])
        gates = max(1, int(recurrent.shape[-1]) // units)
        block = (*shape[:-1], shape[-1] // gates)
        return (*compute_fans(block), gates)
    return (*compute_fans(shape), 1)


def drawn_view(weight: Weight) -> tuple[tuple[int, ...], Callable]:
    """`(shape to draw, function mapping the drawn values back to the weight)`.

    A kernel-like weight is drawn as the matrix its fans describe: a
    ConvTranspose kernel `(*k, out, in)` as `(*k, in, out)`, swapped back;
    an EinsumDense kernel as the matrix `(fan_in, fan_out)` of its input and
    output axes, reshaped and permuted back; any other weight as it is.

    Example:

    >>> model = keras.Sequential([keras.Input((4, 4, 3)),
    ...                           keras.layers.Conv2DTranspose(8, 2)])
    >>> drawn_view(kernel_weights(model)[0])[0]
    (2, 2, 3, 8)
    """
    shape = weight.shape
    if weight.role == "kernel" and isinstance(weight.layer, CONV_TRANSPOSE):

        def swap(values):
            return keras.ops.swapaxes(values, -1, -2)

        return (*shape[:-2], shape[-1], shape[-2]), swap
    if weight.role == "kernel" and isinstance(weight.layer, keras.layers.EinsumDense):
        ins, outs = einsum_axes(weight.layer.equation)
        order = ins + outs
        if sorted(order) == list(range(len(shape))):
            permuted = [shape[i] for i in order]
            inverse = [int(i) for i in np.argsort(order)]

            def back(values):
                return keras.ops.transpose(keras.ops.reshape(values, permuted), inverse)

            return (weight.fan_in, weight.fan_out), back
    return shape, lambda v: v


def _owners(model: keras.Layer) -> dict[int, tuple[keras.Layer, str]]:
    """`id(variable) -> (owner layer, attribute)` for named weights."""
    owners: dict[int, tuple[keras.Layer, str]] = {}
    for layer in [model, *layers(model)]:
        for attribute in (*_ATTRIBUTES, *_LEFT_ALONE.get(type(layer).__name__, ())):
            try:
                value = getattr(layer, attribute, None)
            except Exception:
                continue
            if isinstance(value, keras.Variable):
                owners[id(value)] = (layer, attribute)
    return owners


def own_variables(layer: keras.Layer) -> list[keras.Variable]:
    """The variables `layer` holds itself, not through a sublayer."""
    below = {id(v) for sub in _sublayers(layer) for v in sub.weights}
    return [v for v in layer.weights if id(v) not in below]


def build_initializers(layer: keras.Layer) -> dict[int, object]:
    """`id(variable) ->` the initializer `layer`'s build drew it from.

    A copy of the layer is made from its config and built from its build
    config inside a `keras.StatelessScope`, where Keras creates variables
    without values and keeps their initializers: nothing is drawn or
    allocated. `{}` when the layer cannot be rebuilt so (a config that does
    not serialize, a build that needs more than shapes).
    """
    from keras.src.backend.common import global_state

    key = "uninitialized_variables"
    pending = list(global_state.get_global_attribute(key) or [])
    try:
        with configs_without_tensorflow():
            copy = type(layer).from_config(layer.get_config())
        with keras.StatelessScope(initialize_variables=False):
            copy.build_from_config(layer.get_build_config())
        mine, theirs = own_variables(layer), own_variables(copy)
        if [tuple(v.shape) for v in mine] != [tuple(v.shape) for v in theirs]:
            return {}
        return {id(a): b._initializer for a, b in zip(mine, theirs, strict=True)}
    except Exception:
        return {}
    finally:
        global_state.set_global_attribute(key, pending)


# Keras layers whose build draws each weight from its `<attribute>_initializer`.
_DECLARING = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
)


def _initializer_at_build(owner, attribute, variable, built: dict):
    """The initializer `owner`'s build drew `variable` from, None if unknown.

    None for a kernel-like weight (its role needs none). A layer whose class
    is one of `_DECLARING` declares it as `<attribute>_initializer`; any other
    layer's build is read (`build_initializers`, once per layer in `built`).
    """
    if _ATTRIBUTES.get(attribute) in KERNEL_ROLES:
        return None
    if type(owner) in _DECLARING:
        declared = getattr(owner, f"{attribute}_initializer", None)
        if isinstance(declared, keras.initializers.Initializer):
            return declared
    if id(owner) not in built:
        built[id(owner)] = build_initializers(owner)
    return built[id(owner)].get(id(variable))


def _constant(initializer, variable: keras.Variable):
    """The value `initializer` gives `variable` if every entry is the same.

    Without an initializer (its layer cannot be rebuilt), the variable's
    current value is read instead.
    """
    if initializer is None:
        flat = keras.ops.reshape(variable.value, (-1,))
        if not bool(keras.ops.all(keras.ops.equal(flat, flat[0]))):
            return None
        first = keras.ops.convert_to_numpy(flat[0])
        return np.full(tuple(variable.shape), first, first.dtype)
    config = getattr(initializer, "get_config", dict)()
    if config.get("seed", False) is not False:  # Keras's random initializers
        return None
    try:
        value = initializer(tuple(variable.shape), dtype=variable.dtype)
    except Exception:
        return None
    value = np.asarray(keras.ops.convert_to_numpy(value))
    if value.size and np.all(value == value.flat[0]):
        return value
    return None


def input_width(layer: keras.Layer) -> int | None:
    """The last axis of the input `layer` was built for, if known."""
    config = layer.get_build_config() or {}
    shape = config.get("input_shape")
    if shape is None and config.get("shapes_dict"):
        shape = next(iter(config["shapes_dict"].values()))
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[-1], int):
        return shape[-1]
    return None


def drawn_role(layer: keras.Layer, shape: tuple[int, ...]) -> str:
    """The role of a weight of an unknown name that its layer drew at random.

    | shape                                   | role          | fans
    |-----------------------------------------|---------------|----------------
    | `(1, ..., n, d)`                        | `token`       | `1`, `d`
    | `(rows, d)`, `d` the input's width and  | `embeddings`  | `1`, `d`
    |   `rows` not (a table added or looked   |               |
    |   up, as position embeddings)           |               |
    | `(experts, in, out)`                    | `kernel`      | per expert
    | any other of rank >= 2                  | `kernel`      | `compute_fans`
    | rank 0 or 1                             | `unknown`     |
    """
    if len(shape) < 2:
        return "unknown"
    if shape[0] == 1 and all(d == 1 for d in shape[:-2]):
        return "token"
    width = input_width(layer)
    square = len(shape) == 2 and shape[-2] == shape[-1]
    if len(shape) == 2 and width == shape[-1] and (not square or _ignores_input(layer)):
        return "embeddings"
    return "kernel"


def _ignores_input(layer: keras.Layer) -> bool:
    """Whether `layer`'s output is the same for two random inputs.

    A position table `(length, d)` added to inputs of width `d == length`
    has the shape of a square kernel; what tells them apart is that the
    table's output does not depend on the input's values.
    """
    config = layer.get_build_config() or {}
    shape = config.get("input_shape")
    if not isinstance(shape, (list, tuple)) or not shape:
        return False
    shape = [2 if d is None else d for d in shape]
    rng = np.random.default_rng(0)
    try:
        outputs = [
            keras.ops.convert_to_numpy(
                layer(rng.standard_normal(shape).astype(layer.compute_dtype))
            )
            for _ in range(2)
        ]
    except Exception:
        return False
    return bool(np.array_equal(*outputs))


def _role(owner, attribute, variable, initializer) -> tuple[str, object]:
    """`(role, constant value at build or None)` of one weight."""
    role = _ATTRIBUTES.get(attribute)
    if role == "kernel" and isinstance(owner, _DEPTHWISE):
        return "depthwise_kernel", None
    if role in ("gamma", "beta") and not isinstance(owner, _NORMALIZATION):
        role = None  # a LayerScale's gamma: read from its build
    if role in KERNEL_ROLES:
        return role, None
    constant = _constant(initializer, variable)
    if role is not None:
        return role, constant
    if constant is not None:
        return "constant", constant
    return drawn_role(owner, tuple(variable.shape)), None


def _parents(model: keras.Layer) -> dict[int, keras.Layer]:
    parents: dict[int, keras.Layer] = {}
    for layer in [model, *layers(model)]:
        for sub in _sublayers(layer, recursive=False):
            parents.setdefault(id(sub), layer)
        cell = getattr(layer, "cell", None)
        if isinstance(cell, keras.Layer):
            parents[id(cell)] = layer
    return parents


def weights(model: keras.Layer, frozen: bool = False) -> list[Weight]:
    """Every trainable float weight of a built model, with role and fans.

    A weight's role comes from what it is in its layer: the kernels, tables
    and normalization weights of Keras's layers by their attribute; any
    other weight by what the layer's own initializer gives it at build
    (`build_initializers`): a constant (a norm's scale, a LayerScale's
    gain, a bias) has role `constant` and keeps that value; a random draw
    is a `kernel`, `embeddings` table or `token` by its shape
    (`drawn_role`). Only a random vector, which has no fans, is `unknown`
    (`check_known` names it with the `rules=` fix). Weights Keras's own
    layers hold that no rule covers (PReLU's `alpha`, `Attention`'s
    `scale`) are left out. With `frozen=True` the kernel-like weights of
    frozen layers (`trainable=False`) are included too, marked `frozen`.

    Example:

    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> [(w.role, w.fan_in, w.fan_out) for w in weights(model)]
    [('kernel', 3, 2), ('bias', None, None)]
    """
    owners, parents = _owners(model), _parents(model)
    owner_of = {}
    for layer in [model, *layers(model)]:
        for variable in own_variables(layer):
            owner_of.setdefault(id(variable), layer)
    built: dict[int, dict] = {}
    found, seen = [], set()
    for variable in model.weights if frozen else model.trainable_variables:
        if id(variable) in seen or not keras.backend.is_float_dtype(variable.dtype):
            continue
        seen.add(id(variable))
        owner, attribute = owners.get(id(variable), (None, None))
        if attribute in _LEFT_ALONE.get(type(owner).__name__, ()):
            continue
        if not variable.trainable and _ATTRIBUTES.get(attribute) not in KERNEL_ROLES:
            continue  # statistics (moving means), a frozen layer's biases
        owner = owner or owner_of.get(id(variable), model)
        initializer = _initializer_at_build(owner, attribute, variable, built)
        role, constant = _role(owner, attribute, variable, initializer)
        found.append(_weight(model, owner, role, variable, constant, parents))
    return found


def _weight(model, owner, role, variable, constant, parents) -> Weight:
    name, unit = layer_path(owner, model), _unit(owner, parents)
    if role not in KERNEL_ROLES:
        return Weight(variable, owner, role, name, unit=unit, initial=constant)
    shape = tuple(int(d) for d in variable.shape)
    experts = 1
    if (
        role == "kernel"
        and len(shape) == 3
        and owner_attribute(owner, variable) is None
    ):
        experts = shape[0]
        fan_in, fan_out, gates = shape[1], shape[2], 1
    else:
        fan_in, fan_out, gates = fans_of(owner, role, shape)
    return Weight(
        variable,
        owner,
        role,
        name,
        fan_in,
        fan_out,
        gates,
        unit,
        experts=experts,
        frozen=not variable.trainable,
    )


def owner_attribute(layer: keras.Layer, variable: keras.Variable) -> str | None:
    """The attribute of `_ATTRIBUTES` under which `layer` holds `variable`."""
    for attribute in _ATTRIBUTES:
        if getattr(layer, attribute, None) is variable:
            return attribute
    return None


def _unit(layer: keras.Layer, parents: dict[int, keras.Layer]) -> keras.Layer:
    """The RNN layer around a cell (its call is what can be observed)."""
    parent = parents.get(id(layer))
    if isinstance(parent, keras.layers.RNN) and getattr(parent, "cell", None) is layer:
        return parent
    return layer


def kernel_weights(model: keras.Layer) -> list[Weight]:
    """The weights of `weights(model)` that are drawn (`KERNEL_ROLES`)."""
    return [w for w in weights(model) if w.kernel_like]


def check_known(
    model: keras.Layer, caller: str, covered: Callable[[str], bool] | None = None
) -> list[Weight]:
    """`weights(model)`, or `ValueError` naming the weights of unknown role.

    Args:
        model: A built model.
        caller: The tool's name, used in the message.
        covered: Whether a variable path is covered by one of the user's
            `rules=` (its role need not be known).
    """
    found = weights(model)
    unknown = [
        w
        for w in found
        if w.role == "unknown" and not (covered is not None and covered(w.path))
    ]
    if unknown:
        listed = ", ".join(f"{w.path} (in a {type(w.layer).__name__})" for w in unknown)
        raise ValueError(
            f"{caller} does not know how to initialize weights {listed}: their "
            "layer draws them at random and they have no fans (a vector). "
            "Say what to do with them in `rules=`, a dict of glob patterns on "
            "the variable path: for example "
            f"`rules={{{unknown[0].path!r}: 'keep'}}` (leave it as it is), an "
            "initializer or a scheme name. Nothing was changed. "
            f"Received: model={model.name!r}"
        )
    if not any(w.kernel_like for w in found) and any(
        w.kernel_like for w in weights(model, frozen=True)
    ):
        raise ValueError(
            f"{caller} has nothing to change: every layer of model {model.name!r} "
            "with a kernel-like weight is frozen (trainable=False). Set "
            "`layer.trainable = True` on the layers to initialize. "
            f"Received: model={model.name!r}"
        )
    if not any(w.kernel_like for w in found):
        raise ValueError(
            f"{caller} needs a model with at least one kernel-like weight "
            f"({', '.join(KERNEL_ROLES)}). Received: model={model.name!r} "
            f"with layers {[layer.name for layer in layers(model)]}"
        )
    return found


# --------------------------------------------------------------------------
# the layer graph


def _containers(model: keras.Layer) -> list[keras.Layer]:
    return [m for m in [model, *layers(model)] if isinstance(m, keras.Model)]


def _inputs(layer: keras.Layer) -> list:
    try:
        return keras.tree.flatten(layer.input)
    except (AttributeError, ValueError):  # never called, or called twice
        return []


def _output(layer: keras.Layer):
    if not called_once(layer):
        return None
    try:
        return layer.output
    except (AttributeError, ValueError):
        return None


def _operations(container: keras.Layer) -> list:
    """The layers and ops (`x * 2`, ...) of a functional container."""
    return list(getattr(container, "operations", None) or container.layers)


def consumers(layer: keras.Layer, model: keras.Layer) -> list[keras.Layer]:
    """The layers of the container holding `layer` that take its output."""
    return _Graph(model).consumers(layer)


def producer(tensor, model: keras.Layer) -> keras.Layer | None:
    """The layer of `model` (at any depth of its containers) that made `tensor`."""
    return _Graph(model).producer(tensor)


class _Graph:
    """The layer graph of `model` and of the containers nested in it.

    Which operation made each tensor (the first one in the containers'
    order, input layers left out), each operation's input tensors and the
    operations taking each tensor, each read from the model on first use
    and then looked up. The tensors and operations are held here, so the
    `id`s that key them stay theirs.
    """

    def __init__(self, model: keras.Layer):
        self._made: dict[int, tuple] | None = None
        self._inputs: dict[int, tuple] = {}
        self._taking: dict[int, tuple] | None = None
        self._containers = _containers(model)

    def producer(self, tensor) -> keras.Layer | None:
        """The operation that made `tensor`, None if none did."""
        if self._made is None:  # tensor id -> (tensor, operation making it)
            self._made = {}
            for container in self._containers:
                for op in _operations(container):
                    if not isinstance(op, keras.layers.InputLayer):
                        output = _output(op)
                        self._made.setdefault(id(output), (output, op))
        output, op = self._made.get(id(tensor), (None, None))
        return op if output is tensor else None

    def consumers(self, layer: keras.Layer) -> list:
        """The operations taking `layer`'s output (`graph.consumers`)."""
        if self._taking is None:  # tensor id -> (tensor, operations taking it)
            self._taking = {}
            for container in self._containers:
                for op in _operations(container):
                    for t in {id(t): t for t in _inputs(op)}.values():
                        self._taking.setdefault(id(t), (t, []))[1].append(op)
        output = _output(layer)
        tensor, ops = self._taking.get(id(output), (None, []))
        return list(ops) if output is not None and tensor is output else []

    def inputs(self, layer: keras.Layer) -> list:
        """`_inputs(layer)`, read once per layer."""
        if id(layer) not in self._inputs:
            self._inputs[id(layer)] = (layer, _inputs(layer))
        return self._inputs[id(layer)][1]


def chain(model: keras.Layer) -> list[keras.Layer] | None:
    """`model`'s layers in order if it is a plain chain, else None.

    A plain chain: a Sequential or functional model of one input and one
    output whose operations are layers, each called once on the output of
    the one before alone, with no other argument and no mask. Calling them
    one after another on the previous one's output computes what the model
    computes; residual adds, several inputs, masks and subclassed models are
    not chains.

    Example:

    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> [layer.name for layer in chain(model)] == [model.layers[0].name]
    True
    """
    if isinstance(model, keras.Sequential):
        steps = list(model.layers)
    elif isinstance(getattr(model, "operations", None), list):
        steps = [
            op for op in model.operations if not isinstance(op, keras.layers.InputLayer)
        ]
    else:
        return None
    try:
        inputs, outputs = (
            keras.tree.flatten(model.inputs),
            keras.tree.flatten(model.outputs),
        )
    except (AttributeError, ValueError):  # not built
        return None
    if len(inputs) != 1 or len(outputs) != 1 or not steps:
        return None
    previous = inputs[0]
    for step in steps:
        if not isinstance(step, keras.Layer) or not called_once(step):
            return None
        args, kwargs = _call_arguments(step)
        extra = any(value is not None for value in kwargs.values())
        if extra or len(args) != 1 or args[0] is not previous:
            return None
        previous = _output(step)
        if not keras.utils.is_keras_tensor(previous):
            return None
        if _mask_of(previous) is not None:
            return None
    return steps if previous is outputs[0] else None


def layer_below(layer: keras.Layer, model: keras.Layer, kind: type):
    """The layer of type `kind` whose output feeds `layer`.

    Possibly through single-input layers (Flatten, Dropout, ...); None for
    the model's input, a merge of several tensors, a nested model, or a layer
    outside any layer graph.

    Example:

    >>> x = keras.Input((4,))
    >>> first, second = keras.layers.Dense(3), keras.layers.Dense(2)
    >>> model = keras.Model(x, second(keras.layers.Dropout(0.1)(first(x))))
    >>> layer_below(second, model, keras.layers.Dense) is first
    True
    """
    index = _Graph(model)
    inputs = _inputs(layer)
    while len(inputs) == 1:
        below = index.producer(inputs[0])
        if below is None or isinstance(below, keras.Model):
            return None
        if isinstance(below, kind):
            return below
        inputs = index.inputs(below)
    return None


@dataclasses.dataclass(frozen=True, eq=False)
class ResidualBlock:
    """One residual addition `shortcut + branch` of a layer graph.

    Attributes:
        add: The `Add` layer.
        branch: The layers computing the branch, in the container's order:
            those between the block's input (`source`) and the `Add`.
        source: The tensor both the shortcut and the branch start from.
    """

    add: keras.Layer
    branch: tuple
    source: object


def residual_blocks(model: keras.Layer) -> list[ResidualBlock]:
    """The residual additions of the layer graph, with their branches.

    An `Add` layer or an `x + y` op of the graph closes a residual block
    when one of its inputs, or the tensor a shortcut of at most two
    single-input layers (a projection and its
    normalization) starts from, is an ancestor of its other input: `x + f(x)`
    (identity shortcuts are looked for first) or `P(x) + f(x)`. Blocks built
    inside a custom layer's `call` have no graph and are not found.

    Example:

    >>> x = keras.Input((4,))
    >>> inner, outer = keras.layers.Dense(4, activation="relu"), keras.layers.Dense(4)
    >>> model = keras.Model(x, keras.layers.Add()([x, outer(inner(x))]))
    >>> [layer.name for layer in residual_blocks(model)[0].branch] == [
    ...     inner.name, outer.name]
    True
    """
    found = []
    for container in _containers(model):
        order = {id(op): i for i, op in enumerate(_operations(container))}
        index = _Graph(container)
        for layer in _operations(container):
            if not _is_add(layer):
                continue
            block = _block(layer, container, order, index)
            if block is not None:
                found.append(block)
    return found


def _is_add(operation) -> bool:
    """An `Add` layer, or the `x + y` op of a functional graph (`ops.add`)."""
    return isinstance(operation, keras.layers.Add) or type(operation).__name__ == "Add"


def attention_projections(layer: keras.Layer) -> dict[str, keras.Layer]:
    """A `MultiHeadAttention`'s projection layers by role; `{}` for others.

    `{"query", "key", "value", "output"} -> layer` (Keras names them `query`,
    `key`, `value`, `attention_output`).
    """
    if not isinstance(layer, keras.layers.MultiHeadAttention):
        return {}
    names = {"query": "query", "key": "key", "value": "value"}
    names["attention_output"] = "output"
    return {names[sub.name]: sub for sub in layers(layer) if sub.name in names}


def _block(
    add: keras.Layer, container, order: dict, index: _Graph
) -> ResidualBlock | None:
    inputs = index.inputs(add)
    if len(inputs) != 2:
        return None
    ancestry = [_ancestors(t, index) for t in inputs]
    starts = [_shortcut_starts(t, index) for t in inputs]
    for depth in range(3):
        for i in (0, 1):
            branch = 1 - i
            if depth < len(starts[i]) and id(starts[i][depth]) in ancestry[branch]:
                source = starts[i][depth]
                keep = ancestry[branch] | {id(inputs[branch])}
                drop = _ancestors(source, index) | {id(source)}
                layers = {}
                for op in _operations(container):
                    output = _output(op)
                    if output is not None and id(output) in keep - drop:
                        layers[id(op)] = op
                branch_layers = sorted(layers.values(), key=lambda op: order[id(op)])
                return ResidualBlock(add, tuple(branch_layers), source)
    return None


def _shortcut_starts(tensor, index: _Graph, depth: int = 2) -> list:
    """`tensor` and the tensors up to `depth` single-input layers below it."""
    starts = [tensor]
    for _ in range(depth):
        layer = index.producer(starts[-1])
        inputs = [] if layer is None else index.inputs(layer)
        if len(inputs) != 1:
            break
        starts.append(inputs[0])
    return starts


def _ancestors(tensor, index: _Graph) -> set[int]:
    """`id`s of the tensors `tensor` is computed from, itself excluded."""
    seen: set[int] = set()
    layer = index.producer(tensor)
    stack = [] if layer is None else list(index.inputs(layer))
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        layer = index.producer(t)
        if layer is not None:
            stack.extend(index.inputs(layer))
    return seen


# --------------------------------------------------------------------------
# activations


def _function_activation(function: Callable | keras.Layer | None):
    """`(name, negative slope)` of an activation function or layer."""
    if isinstance(function, keras.layers.Layer):
        return layer_activation(function)
    name = activation_name(function)
    if name is None:
        return None, 0.0
    return name, (0.2 if name == "leaky_relu" else 0.0)  # Keras's default slope


def layer_activation(layer: keras.Layer) -> tuple[str | None, float]:
    """`(name, negative slope)` of an activation layer, `(None, 0)` otherwise.

    Example:

    >>> layer_activation(keras.layers.LeakyReLU(0.1))
    ('leaky_relu', 0.1)
    """
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


def own_activation(layer: keras.Layer) -> tuple[str | None, float]:
    """`(name, slope)` of the layer's own `activation=`; linear without one.

    An RNN layer gives its cell's activation; `(None, 0)` for an unnamed
    callable.
    """
    if isinstance(layer, keras.layers.RNN):
        layer = layer.cell
    return _function_activation(getattr(layer, "activation", None))


def following_activation(
    layer: keras.Layer, model: keras.Layer
) -> tuple[str | None, float]:
    """The activation applied to `layer`'s output: its own, else a later layer's.

    A linear layer followed in the layer graph (possibly through
    normalization, dropout or noise layers) by exactly one `Activation`,
    `ReLU`, `LeakyReLU`, `PReLU`, `ELU` or `Softmax` layer takes that layer's
    activation. A layer inside a subclassed model or custom layer has no
    graph: its own activation counts. `(None, 0)` for an unnamed activation.

    Example:

    >>> x = keras.Input((4,))
    >>> dense = keras.layers.Dense(3)
    >>> model = keras.Model(x, keras.layers.ReLU()(dense(x)))
    >>> following_activation(dense, model)
    ('relu', 0.0)
    """
    name, slope = own_activation(layer)
    if name != "linear":
        return name, slope
    follower = layer
    while True:
        after = consumers(follower, model)
        if len(after) != 1:
            return "linear", 0.0
        follower = after[0]
        if not isinstance(follower, PASS_THROUGH):
            break
    found, found_slope = layer_activation(follower)
    return (found, found_slope) if found is not None else ("linear", 0.0)
