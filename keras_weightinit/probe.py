"""The probe pass: a training step's forward and backward pass without the update.

`diagnose`, `GradientHistograms` and `lsuv` all look inside a model through
this module. `observe` records, while active, what chosen layers compute:

- the output of each layer's first call (`outputs`) and its first input
  (`inputs`);
- for layers that apply their own `activation=` (Dense, Conv, EinsumDense,
  ...), the pre-activation `z` that goes into it (`pre`): the gradient of a
  cross-entropy loss reaches a softmax or sigmoid output layer there, since
  Keras computes such losses from the logits;
- the order in which the layers were first called (forward order, also in
  subclassed models, which have no layer graph).

The mechanism works on any model, functional or subclassed, at any depth:
for the duration of the block each observed layer gets an instance attribute
`call` (and `activation`) shadowing its method; the attributes are removed on
exit, also on an exception. `tests/test_probe.py` checks that a model is
unchanged afterwards. Keras offers no public hook into a sublayer's call
(`keras.Model(model.inputs, layer.output)` reaches only the layers of a
functional graph, not those inside `MultiHeadAttention` or a custom block).

`probe` runs the pass: the model called with `training=True` (as in `fit`),
the loss of `fit` (`model.compute_loss`, regularization included) or a given
one, the optimizer's loss scale applied and divided out, and every state
change (BatchNorm statistics, seed generators, metrics) made inside a
`keras.StatelessScope` and discarded.

The gradients come from the backend's own autodiff, behind one small
function each (`_tensorflow`: a tape watching the recorded tensors;
`_torch`: `torch.autograd.grad` on them; `_jax`: `jax.value_and_grad` of the
pass as a function, the recorded tensors perturbed by zeros whose gradients
are the signals, after a first pass that finds their shapes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterator, Sequence

import keras
import numpy as np

from keras_weightinit import graph
from keras_weightinit.gains import activation_name

__all__ = [
    "Observed",
    "Projection",
    "forward",
    "ProbeResult",
    "Stop",
    "check_labels",
    "default_loss",
    "is_batch_mean",
    "loss_scale",
    "observe",
    "probe",
    "shadow_calls",
]


class Stop(Exception):  # a signal, not an error
    """Raised by `observe(stop_after=... | stop_before=...)` to end a pass early."""


@dataclasses.dataclass
class Observed:
    """What `observe` recorded: `id(layer) ->` tensor, and the call order.

    `activations` holds each observed layer's own activation function (while
    observing, the layer's attribute is the recording shadow).
    """

    outputs: dict = dataclasses.field(default_factory=dict)
    activations: dict = dataclasses.field(default_factory=dict)
    inputs: dict = dataclasses.field(default_factory=dict)
    pre: dict = dataclasses.field(default_factory=dict)
    order: list = dataclasses.field(default_factory=list)


def _first_tensor(args) -> object | None:
    """The first tensor or array among the leaves of `(positional, keywords)`."""
    positional = args[0]
    if positional and _is_array(positional[0]):  # a layer's usual input
        return positional[0]
    for value in keras.tree.flatten(args):
        if _is_array(value):
            return value
    return None


def _is_array(value) -> bool:
    return keras.ops.is_tensor(value) or isinstance(value, np.ndarray)


@contextlib.contextmanager
def observe(
    layers: Sequence[keras.Layer],
    watch: Callable | None = None,
    stop_after: keras.Layer | None = None,
    perturb: dict | None = None,
    last: dict | None = None,
    stop_before: keras.Layer | None = None,
) -> Iterator[Observed]:
    """Records the first call of each layer in `layers` while active.

    Args:
        layers: The layers to observe (any depth).
        watch: Called on every recorded output and pre-activation (for
            example `tape.watch`).
        stop_after: Raise `Stop` once this layer has returned, ending the
            forward pass (for `lsuv`, which needs one layer's output).
        perturb: `(id(layer), "out" | "pre") ->` a tensor added to that
            output or pre-activation (zeros whose gradient is the signal
            there, for backends that differentiate functions, not tapes).
        last: A dict that receives `id(layer) ->` the output of the layer's
            latest call (a layer called twice, as a tied embedding is).
        stop_before: Raise `Stop` once this layer has received its input,
            before it computes anything (pretraining reads a layer's input).

    Yields:
        An `Observed`, filled as the model runs.
    """
    seen = Observed()
    hooks = (watch, (stop_before, stop_after), perturb, last)
    restore = []  # (layer, its own `activation` attribute)
    make_call = functools.partial(_call_hook, seen=seen, hooks=hooks)
    with shadow_calls(layers, make_call) as shadowed:
        try:
            for layer in shadowed:
                activation = vars(layer).get("activation")
                if callable(activation):
                    seen.activations[id(layer)] = activation
                    hook = _activation_hook(layer, activation, seen, watch, perturb)
                    object.__setattr__(layer, "activation", hook)
                    restore.append((layer, activation))
            yield seen
        finally:
            for layer, activation in restore:
                object.__setattr__(layer, "activation", activation)


@contextlib.contextmanager
def shadow_calls(
    layers: Sequence[keras.Layer], make_call: Callable
) -> Iterator[list[keras.Layer]]:
    """Each layer's `call` replaced by `make_call(layer)` while active.

    The one place the package shadows a layer's `call` (an instance
    attribute over the class's method; `make_call` reads the original as
    `layer.call`). A layer whose `call` is shadowed already, by an enclosing
    use, is left to it.

    Args:
        layers: The layers.
        make_call: `layer ->` the function to call instead.

    Yields:
        The layers shadowed here.

    Example:

    >>> layer = keras.layers.Dense(2)
    >>> with shadow_calls([layer], lambda l: lambda x: "shadowed") as done:
    ...     layer.call(None), len(done)
    ('shadowed', 1)
    >>> "call" in vars(layer)
    False
    """
    with graph.shadow_attribute(layers, "call", make_call) as shadowed:
        yield shadowed


def _call_hook(layer, seen: Observed, hooks: tuple):
    watch, stops, perturb, last = hooks
    key, original = id(layer), layer.call
    delta = (perturb or {}).get((key, "out"))
    stop_before, stop_after = stops

    def call(*args, **kwargs):
        if key not in seen.inputs:
            seen.inputs[key] = _first_tensor((args, kwargs))
        if layer is stop_before:
            raise Stop
        outputs = original(*args, **kwargs)
        if last is not None:
            last[key] = outputs
        if key not in seen.outputs and keras.ops.is_tensor(outputs):
            if delta is not None:
                outputs = outputs + delta
            if watch is not None:
                watch(outputs)
            seen.outputs[key] = outputs
            seen.order.append(layer)
        if layer is stop_after:
            raise Stop
        return outputs

    return call


def _activation_hook(layer, original, seen: Observed, watch, perturb):
    key = id(layer)
    delta = (perturb or {}).get((key, "pre"))

    def activation(z, *args, **kwargs):
        if key not in seen.pre:
            if delta is not None:
                z = z + delta
            if watch is not None:
                watch(z)
            seen.pre[key] = z
        return original(z, *args, **kwargs)

    return activation


def without_gradients() -> contextlib.AbstractContextManager:
    """A block whose operations record nothing for a backward pass.

    PyTorch's `torch.no_grad()`; TensorFlow and JAX record only inside a
    gradient tape or a differentiated function, so elsewhere a null block.

    Example:

    >>> with without_gradients():
    ...     y = keras.ops.ones((2,)) * keras.Variable([1.0, 2.0])
    """
    if keras.backend.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def forward(
    model: keras.Layer,
    x,
    layers: Sequence[keras.Layer],
    stop_after: keras.Layer | None = None,
) -> Observed:
    """Runs `model` on `x` in inference mode, observing `layers`.

    With `stop_after`, the pass ends once that layer has returned. Nothing
    of the model changes (inference mode updates no statistics).

    Example:

    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> seen = forward(model, np.ones((4, 3), "float32"), model.layers)
    >>> tuple(seen.outputs[id(model.layers[0])].shape)
    (4, 2)
    """
    with observe(layers, stop_after=stop_after) as seen, contextlib.suppress(Stop):
        model(x, training=False)
    return seen


# --------------------------------------------------------------------------
# the loss


# Keras divides a loss with these reductions by the number of replicas of the
# current `tf.distribute` strategy (each replica's share of the global batch).
_MEAN_REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight")


def whole_batch_loss(value, reduction: str | None = "sum_over_batch_size"):
    """A loss Keras reduced with `reduction`, as one device sees the whole batch.

    Under a `tf.distribute` strategy with N replicas Keras divides a mean
    loss by N (each replica's share of the global batch); a probe batch is
    computed whole, on one device, so the division is undone. Sums are
    left as they are.
    """
    value = keras.ops.cast(value, "float32")
    if keras.backend.backend() != "tensorflow":
        return value
    import tensorflow as tf

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1 and reduction in _MEAN_REDUCTIONS:
        value = value * float(replicas)
    return value


def is_batch_mean(loss) -> bool:
    """Whether a `probe` loss is a mean over the batch (else a sum over it).

    `"fit"` (the compiled losses, taken as means as in `training_loss`), a
    `keras.losses.Loss` with a mean reduction and a loss function (which
    `probe` averages) are means; `"sum"`, a `Projection` and a loss with
    reduction `"sum"` are sums. A mean's gradient on one process's share of
    a batch is that process's share of the whole batch's gradient times
    (whole batch / share); a sum's is its part.

    Example:

    >>> is_batch_mean("fit"), is_batch_mean("sum")
    (True, False)
    """
    if isinstance(loss, Projection) or (isinstance(loss, str) and loss == "sum"):
        return False
    if isinstance(loss, str):
        return True
    return getattr(loss, "reduction", "sum_over_batch_size") in _MEAN_REDUCTIONS


def training_loss(model: keras.Model, x, y, y_pred):
    """`fit`'s loss for one batch, in float32, undoing the per-replica scaling.

    The compiled losses are taken as means over the batch (Keras's default
    reduction); see `whole_batch_loss`. Keras's TensorFlow trainer divides
    the regularization losses by the replica count too, so one factor
    restores the whole sum.
    """
    if "training" in inspect.signature(model.compute_loss).parameters:
        loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
    else:  # overrides written before Keras 3.3
        loss = model.compute_loss(x=x, y=y, y_pred=y_pred)
    return whole_batch_loss(loss)


def loss_scale(model: keras.Model):
    """The factor the model's optimizer multiplies the loss by (1 if none)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return keras.ops.convert_to_tensor(1.0, "float32")
    one = keras.ops.convert_to_tensor(1.0, "float32")
    return keras.ops.cast(optimizer.scale_loss(one), "float32")


def default_loss(y: np.ndarray, activation: str | None, units: int):
    """The loss `diagnose` uses for `y` when the model is not compiled.

    | targets and output                               | loss
    |--------------------------------------------------|------------------------
    | integer labels, softmax output of >1 units       | sparse categorical CE
    | integer labels, linear output of >1 units        | sparse categorical CE,
    |                                                  | `from_logits=True`
    | one sigmoid unit                                 | binary CE
    | anything else                                    | mean squared error

    Returns:
        `(loss, description)`, the `keras.losses.Loss` and its name for the
        report.

    Example:

    >>> default_loss(np.array([0, 2, 1]), "softmax", 3)[1]
    'sparse_categorical_crossentropy'
    """
    integer = np.issubdtype(np.asarray(y).dtype, np.integer)
    if integer and units > 1 and activation == "softmax":
        return keras.losses.SparseCategoricalCrossentropy(), (
            "sparse_categorical_crossentropy"
        )
    if integer and units > 1 and activation == "linear":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True), (
            "sparse_categorical_crossentropy(from_logits=True)"
        )
    if units == 1 and activation == "sigmoid":
        return keras.losses.BinaryCrossentropy(), "binary_crossentropy"
    return keras.losses.MeanSquaredError(), "mean_squared_error"


def _is_sparse(model: keras.Model, loss) -> bool:
    """Whether `loss` (or `"fit"`'s compiled loss) takes class indices."""
    if isinstance(loss, str) and loss == "fit":
        loss = getattr(model, "loss", None)
    name = loss if isinstance(loss, str) else getattr(loss, "name", None)
    name = name or getattr(loss, "__name__", "") or type(loss).__name__
    return "sparse_categorical" in str(name) or "SparseCategorical" in str(name)


def check_labels(model: keras.Model, x, y, loss, name: str = "y") -> None:
    """Raises `ValueError` if the targets `y` cannot be the loss's targets.

    The one check of targets `diagnose`, `GradientHistograms` and `compare`
    make before the probe runs, the same on every backend (JAX would
    otherwise read an out-of-range label as a loss of 0): `y` holds numbers,
    and for a sparse categorical loss integer class indices in
    `[0, classes)`, `classes` the width of the model's output.

    Args:
        model: The model.
        x: A batch of its inputs (its first sample is run for the width).
        y: The targets, a NumPy array, or None.
        loss: `"fit"` (the compiled loss), a loss or its name.
        name: The argument's name, used in error messages.

    Example:

    >>> check_labels(model, x[:4], np.array([0, 3, 12, 1]),
    ...              "sparse_categorical_crossentropy")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Argument `y` must hold class indices in [0, 10) ... from 0 to 12
    """
    if y is None:
        return
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.number) and y.dtype != bool:
        raise ValueError(
            f"Argument `{name}` must hold numbers (class indices or targets). "
            f"Received dtype={y.dtype}"
        )
    if not _is_sparse(model, loss):
        return
    classes = _output_width(model, x)
    if not np.all(np.equal(np.mod(y, 1), 0)):
        raise ValueError(
            f"Argument `{name}` must hold integer class indices for a sparse "
            f"categorical loss. Received: {name} with non-integer values "
            f"(dtype={y.dtype})"
        )
    low, high = y.min(), y.max()
    if low < 0 or high >= classes:
        raise ValueError(
            f"Argument `{name}` must hold class indices in [0, {classes}) for "
            f"the model's {classes} outputs. Received: labels from "
            f"{low:.0f} to {high:.0f}"
        )


def _output_width(model: keras.Model, x) -> int:
    """The last dimension of the model's (first) output on inputs like `x`.

    From the layer graph of a functional model, else from a symbolic call
    (`compute_output_spec`, no computation); a model that cannot be called
    symbolically runs on one sample.
    """
    outputs = getattr(model, "outputs", None)
    if outputs and outputs[0].shape[-1] is not None:
        return int(outputs[0].shape[-1])
    sample = keras.tree.map_structure(lambda leaf: leaf[:1], x)
    try:
        spec = model.compute_output_spec(sample, training=False)
    except Exception:  # a call that needs values: run it
        spec = model(sample, training=False)
    return int(keras.ops.shape(keras.tree.flatten(spec)[0])[-1])


# --------------------------------------------------------------------------
# the pass


@dataclasses.dataclass
class ProbeResult:
    """What `probe` computed, tensors keyed by `id(layer)`.

    Attributes:
        loss: The unscaled loss (None for the loss-free pass without `y`).
        order: The observed layers in the order they were first called.
        outputs: Each layer's output `h`.
        inputs: Each layer's (first) input.
        pre: The pre-activation `z` of layers with their own `activation=`.
        signal: The backpropagated signal `dL/dh` at each output, and for a
            softmax or sigmoid output layer `dL/dz` at its logits, where a
            cross-entropy loss takes it (zeros where no gradient reaches).
        weight_grads: `dL/dw` of each variable in `variables`, dense float32.
    """

    loss: object
    order: list
    outputs: dict
    inputs: dict
    pre: dict
    signal: dict
    weight_grads: list


def _output_logits(y_pred, seen: Observed):
    """Each model output, or the logits of the softmax/sigmoid layer making it."""
    found = []
    for tensor in keras.tree.flatten(y_pred):
        layer = _producer(tensor, seen)
        if layer is not None and id(layer) in seen.pre:
            tensor = seen.pre[id(layer)]
        found.append(tensor)
    return found


def _producer(tensor, seen: Observed):
    """The observed softmax/sigmoid layer whose output `tensor` is, or None."""
    for layer in reversed(seen.order):
        if seen.outputs.get(id(layer)) is tensor:
            name = activation_name(seen.activations.get(id(layer)))
            return layer if name in ("softmax", "sigmoid") else None
    return None


def probe(
    model: keras.Model,
    x,
    y=None,
    *,
    units: Sequence[keras.Layer] = (),
    variables: Sequence = (),
    loss="fit",
    training: bool = True,
    scale=None,
    compiled: bool = True,
) -> ProbeResult:
    """One forward and backward pass of the training loss, nothing changed.

    The pass is one function of the model's variable values, the batch and
    the loss scale, compiled once per model, observed layers, loss and
    input signature and reused by later calls (`jax.jit` on JAX,
    `tf.function` on TensorFlow, plain autograd on PyTorch): what the
    observed layers compute comes out of it as outputs.

    Args:
        model: A built model.
        x: The inputs, a tensor or a structure of tensors.
        y: The targets, or None.
        units: The layers to observe.
        variables: The variables whose gradients to return.
        loss: `"fit"` for `fit`'s loss (`model.compute_loss`); `"sum"` for
            the loss-free pass, the sum of the outputs projected on a fixed
            random direction (of the logits for a
            softmax or sigmoid output layer, since a softmax sums to 1
            whatever its input); a `Projection` of an observed layer's
            output; or a `keras.losses.Loss` / callable `(y, y_pred)`, to
            which `model.losses` are added.
        training: The `training` argument of the model's call.
        scale: The loss scale (mixed precision); None reads the optimizer's
            for `"fit"` and uses 1 otherwise.
        compiled: Run the compiled pass (default) or the same pass op by op.

    Returns:
        A `ProbeResult`.

    Example:

    >>> result = probe(model, x[:32], y[:32], units=model.layers)
    >>> float(result.loss) > 0, len(result.order) == len(model.layers)
    (True, True)
    """
    trainable = list(model.trainable_variables)
    position = {id(v): i for i, v in enumerate(trainable)}
    wanted = tuple(position[id(v)] for v in variables)
    if scale is None:
        scale = loss_scale(model) if isinstance(loss, str) and loss == "fit" else 1.0
    scale = keras.ops.cast(scale, "float32")
    direction = (
        keras.ops.convert_to_tensor(loss.weights, "float32")
        if isinstance(loss, Projection)
        else None
    )
    step = _step(model, list(units), wanted, loss, bool(training), compiled)
    return step(x, y, scale, direction)


# --------------------------------------------------------------------------
# the compiled pass, one per model, observed layers, loss and training flag

_CACHE = "_keras_weightinit_probes"  # the model's own cache, in its __dict__
_CACHE_SIZE = 8


def _loss_key(loss):
    """A hashable key that is equal for losses computing the same thing."""
    if isinstance(loss, str):
        return loss
    if isinstance(loss, Projection):
        return ("projection", id(loss.layer))
    if isinstance(loss, keras.losses.Loss):
        try:
            return (type(loss), repr(sorted(loss.get_config().items())))
        except (NotImplementedError, TypeError, AttributeError):
            return (type(loss), id(loss))
    return (type(loss), id(loss))


def _step(model, units, wanted, loss, training, compiled) -> _Step:
    """The cached `_Step` for these arguments, built on first use."""
    trainable = model.trainable_variables
    key = (
        tuple(map(id, units)),
        tuple(
            id(vars(u).get("activation", getattr(u, "activation", None))) for u in units
        ),
        wanted,
        _loss_key(loss),
        training,
        compiled,
        tuple(map(id, trainable)),
        len(model.variables),
        id(getattr(model, "_compile_loss", None)),
    )
    cache = vars(model).get(_CACHE)
    if cache is None:
        cache = {}
        object.__setattr__(model, _CACHE, cache)
    step = cache.pop(key, None)
    if step is None:
        step = _Step(model, units, wanted, loss, training, compiled)
        while len(cache) >= _CACHE_SIZE:
            cache.pop(next(iter(cache)))
    cache[key] = step  # the most recent last
    return step


class _Step:
    """The probe pass as one function of the variable values and the batch.

    `body` is traced (compiled backends) or run (op by op) with the values
    of every model variable mapped in a `keras.StatelessScope`; it returns
    the tensors keyed by the position of the layer in `units`, and notes
    the call order and the logit layers, which the trace fixes, in
    `self.order` and `self.logits`.
    """

    def __init__(self, model, units, wanted, loss, training, compiled):
        self.model, self.units, self.wanted = model, units, wanted
        self.loss, self.training = loss, training
        self.trainable = list(model.trainable_variables)
        mine = {id(v) for v in self.trainable}
        self.others = [v for v in model.variables if id(v) not in mine]
        self.order: list[int] = []
        self.logits: set[int] = set()
        self.function = _COMPILE[keras.backend.backend()](self) if compiled else None

    def __call__(self, x, y, scale, direction) -> ProbeResult:
        if self.function is None:
            found = self.body(
                [v.value for v in self.trainable],
                [v.value for v in self.others],
                x,
                y,
                scale,
                direction,
            )
        else:
            found = self.function(x, y, scale, direction)
        value, outputs, inputs, pre, signal, weight_grads = found
        key = [id(layer) for layer in self.units]
        return ProbeResult(
            loss=value,
            order=[self.units[i] for i in self.order],
            outputs={key[i]: t for i, t in outputs.items()},
            inputs={key[i]: t for i, t in inputs.items()},
            pre={key[i]: t for i, t in pre.items()},
            signal={key[i]: signal[i] for i in self.order},
            weight_grads=list(weight_grads),
        )

    def run(self, values, others, x, y, scale, direction, watch=None, perturb=None):
        """The forward pass and the scaled loss at `values`, observed."""
        model, loss = self.model, self.loss
        if isinstance(loss, Projection):
            loss = Projection(loss.layer, direction)
        mapping = [
            *zip(self.trainable, values, strict=True),
            *zip(self.others, others, strict=True),
        ]
        with (
            observe(self.units, watch=watch, perturb=perturb) as seen,
            keras.StatelessScope(state_mapping=mapping, collect_losses=True),
        ):
            y_pred = model(x, training=self.training)
            total, value = _loss(model, x, y, y_pred, loss, seen)
        return total * scale, value, seen, _logit_layers(y_pred, seen)

    def body(self, values, others, x, y, scale, direction):
        """`(loss, outputs, inputs, pre, signal, weight_grads)`, by position."""

        def run(values, watch=None, perturb=None):
            return self.run(values, others, x, y, scale, direction, watch, perturb)

        value, seen, logits, grads = _AUTODIFF[keras.backend.backend()](
            run, values, self.wanted
        )
        index = {id(layer): i for i, layer in enumerate(self.units)}
        observed = [index[id(u)] for u in seen.order if id(u) in seen.outputs]
        self.order = observed
        self.logits = {index[k] for k in logits}
        signal = {}
        for i in observed:
            key = id(self.units[i])
            part = (key, "pre" if key in logits else "out")
            target = (seen.pre if part[1] == "pre" else seen.outputs)[key]
            grad = grads.get(part)
            signal[i] = (
                keras.ops.zeros(keras.ops.shape(target), "float32")
                if grad is None
                else keras.ops.cast(grad, "float32") / scale
            )
        weight_grads = [
            _dense(grads.get(i), self.trainable[i]) / scale for i in self.wanted
        ]
        return (
            value,
            {index[k]: t for k, t in seen.outputs.items()},
            {index[k]: t for k, t in seen.inputs.items() if t is not None},
            {index[k]: t for k, t in seen.pre.items()},
            signal,
            weight_grads,
        )


def _on_values(step: _Step, body):
    """`body` called with the current values of `step`'s variables."""

    def function(x, y, scale, direction):
        trainable = [v.value for v in step.trainable]
        others = [v.value for v in step.others]
        return body(trainable, others, x, y, scale, direction)

    return function


def _compile_tensorflow(step: _Step):
    import tensorflow as tf

    function = _on_values(step, step.body)
    return tf.function(function, autograph=False, reduce_retracing=True)


def _compile_jax(step: _Step):
    import jax

    return _on_values(step, jax.jit(step.body))


def _compile_torch(step: _Step):
    return _on_values(step, step.body)


_COMPILE = {
    "tensorflow": _compile_tensorflow,
    "jax": _compile_jax,
    "torch": _compile_torch,
}


@dataclasses.dataclass
class Projection:
    """A loss-free probe target: `sum(h * weights)`, `h` a layer's input.

    Its gradient is the Jacobian of the features `h` that `layer` takes,
    projected on `weights` (over the last axis), with respect to everything
    below: how the signal propagates where `layer` is zero (a
    zero-initialized classifier) and lets no loss gradient through.
    """

    layer: keras.Layer
    weights: np.ndarray


def _loss(model, x, y, y_pred, loss, seen: Observed):
    """`(total, value)`: the loss to differentiate and the one to report."""
    ops = keras.ops
    if isinstance(loss, Projection):
        h = ops.cast(seen.inputs[id(loss.layer)], "float32")
        return ops.sum(h * ops.convert_to_tensor(loss.weights, "float32")), None
    if isinstance(loss, str) and loss == "sum":
        total = sum(
            ops.sum(ops.cast(t, "float32") * _direction(t))
            for t in _output_logits(y_pred, seen)
        )
        return total, None
    if isinstance(loss, str) and loss == "fit":
        total = training_loss(model, x, y, y_pred)
        return total, total
    total = ops.mean(
        whole_batch_loss(loss(y, y_pred), getattr(loss, "reduction", None))
    )
    for extra in model.losses:
        total = total + ops.cast(extra, "float32")
    return total, total


def _direction(tensor):
    """A fixed random direction of `tensor`'s shape, for the loss-free pass.

    A plain sum would send nothing back through an output that sums to a
    constant (a softmax, a normalization's centred features); a projection
    on a fixed standard normal direction sends back a signal of the
    output's own scale.
    """
    shape = keras.ops.shape(tensor)
    return keras.random.normal(shape, seed=0, dtype="float32")


def _logit_layers(y_pred, seen: Observed) -> set[int]:
    """`id`s of the softmax/sigmoid layers making an output, logits recorded."""
    return {
        id(layer)
        for layer in map(lambda t: _producer(t, seen), keras.tree.flatten(y_pred))
        if layer is not None and id(layer) in seen.pre
    }


def _targets(seen: Observed, logits: set[int]) -> dict:
    """`(id(layer), "pre" | "out") ->` the tensor whose gradient is the signal."""
    targets = {}
    for layer in seen.order:
        key = id(layer)
        if key in logits:
            targets[(key, "pre")] = seen.pre[key]
        elif key in seen.outputs:
            targets[(key, "out")] = seen.outputs[key]
    return {
        k: t
        for k, t in targets.items()
        if keras.backend.is_float_dtype(keras.backend.standardize_dtype(t.dtype))
    }


# --------------------------------------------------------------------------
# each backend's autodiff: `(value, seen, logits, grads)`, grads keyed by
# `(id(layer), "pre" | "out")` for the signals and by variable index


def _tensorflow(run, values, wanted):
    import tensorflow as tf

    values = [tf.identity(v) for v in values]
    with tf.GradientTape() as tape:
        tape.watch(values)
        scaled, value, seen, logits = run(values, watch=tape.watch)
    targets = _targets(seen, logits)
    sources = list(targets.values()) + [values[i] for i in wanted]
    found = tape.gradient(scaled, sources)
    return value, seen, logits, dict(zip([*targets, *wanted], found, strict=True))


def _torch(run, values, wanted):
    import torch

    values = [v.detach().requires_grad_(True) for v in values]
    scaled, value, seen, logits = run(values)
    targets = _targets(seen, logits)
    keys = [k for k, t in targets.items() if t.requires_grad]
    sources = [targets[k] for k in keys] + [values[i] for i in wanted]
    found = (
        torch.autograd.grad(scaled, sources, allow_unused=True)
        if scaled.requires_grad
        else [None] * len(sources)
    )
    value = None if value is None else value.detach()
    seen.outputs = {k: t.detach() for k, t in seen.outputs.items()}
    seen.pre = {k: t.detach() for k, t in seen.pre.items()}
    seen.inputs = {
        k: t.detach() if hasattr(t, "detach") else t for k, t in seen.inputs.items()
    }
    return value, seen, logits, dict(zip([*keys, *wanted], found, strict=True))


def _jax(run, values, wanted):
    import jax

    _, _, first, logits = run(values)  # the shapes of the signals
    deltas = {k: keras.ops.zeros_like(t) for k, t in _targets(first, logits).items()}

    def loss(values, deltas):
        scaled, value, seen, _ = run(values, perturb=deltas)
        return scaled, (value, dict(seen.outputs), dict(seen.pre))

    (_, (value, outputs, pre)), (weight_grads, signal_grads) = jax.value_and_grad(
        loss, argnums=(0, 1), has_aux=True
    )(values, deltas)
    first.outputs, first.pre = outputs, pre
    grads = dict(signal_grads)
    grads.update({i: weight_grads[i] for i in wanted})
    return value, first, logits, grads


_AUTODIFF = {"tensorflow": _tensorflow, "torch": _torch, "jax": _jax}


def _dense(gradient, variable):
    """A float32 dense tensor for a gradient that may be None or sparse."""
    if gradient is None:
        return keras.ops.zeros(variable.shape, "float32")
    if type(gradient).__name__ == "IndexedSlices":  # TensorFlow's sparse gradient
        import tensorflow as tf

        gradient = tf.convert_to_tensor(gradient)
    return keras.ops.cast(gradient, "float32")
