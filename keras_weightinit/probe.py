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
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from collections.abc import Callable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_weightinit.gains import activation_name

__all__ = [
    "Observed",
    "forward",
    "ProbeResult",
    "Stop",
    "default_loss",
    "loss_scale",
    "observe",
    "probe",
]


class Stop(Exception):  # noqa: N818 - a signal, not an error
    """Raised by `observe(stop_after=...)` to end a forward pass early."""


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
    for value in keras.tree.flatten(args):
        if keras.ops.is_tensor(value) or isinstance(value, np.ndarray):
            return value
    return None


@contextlib.contextmanager
def observe(
    layers: Sequence[keras.Layer],
    watch: Callable | None = None,
    stop_after: keras.Layer | None = None,
) -> Iterator[Observed]:
    """Records the first call of each layer in `layers` while active.

    Args:
        layers: The layers to observe (any depth).
        watch: Called on every recorded output and pre-activation (for
            example `tape.watch`).
        stop_after: Raise `Stop` once this layer has returned, ending the
            forward pass (for `lsuv`, which needs one layer's output).

    Yields:
        An `Observed`, filled as the model runs.
    """
    seen = Observed()
    restore = []  # (layer, its own `activation` attribute or None)
    try:
        for layer in layers:
            if "call" in vars(layer):  # observed already (nested use)
                continue
            activation = vars(layer).get("activation")
            object.__setattr__(
                layer, "call", _call_hook(layer, seen, watch, stop_after)
            )
            restore.append((layer, activation))
            if callable(activation):
                seen.activations[id(layer)] = activation
                object.__setattr__(
                    layer,
                    "activation",
                    _activation_hook(layer, activation, seen, watch),
                )
        yield seen
    finally:
        for layer, activation in restore:
            object.__delattr__(layer, "call")
            if callable(activation):
                object.__setattr__(layer, "activation", activation)


def _call_hook(layer, seen: Observed, watch, stop_after):
    key, original = id(layer), layer.call

    def call(*args, **kwargs):
        if key not in seen.inputs:
            seen.inputs[key] = _first_tensor(args)
        outputs = original(*args, **kwargs)
        if key not in seen.outputs and keras.ops.is_tensor(outputs):
            if watch is not None:
                watch(outputs)
            seen.outputs[key] = outputs
            seen.order.append(layer)
        if layer is stop_after:
            raise Stop
        return outputs

    return call


def _activation_hook(layer, original, seen: Observed, watch):
    key = id(layer)

    def activation(z, *args, **kwargs):
        if key not in seen.pre:
            if watch is not None:
                watch(z)
            seen.pre[key] = z
        return original(z, *args, **kwargs)

    return activation


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
    value = tf.cast(value, "float32")
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1 and reduction in _MEAN_REDUCTIONS:
        value = value * float(replicas)
    return value


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
        return tf.constant(1.0)
    return tf.cast(optimizer.scale_loss(tf.constant(1.0)), "float32")


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


def dense_gradient(gradient, variable):
    """A float32 dense tensor for a gradient that may be None or sparse."""
    if gradient is None:
        return tf.zeros(variable.shape, "float32")
    if isinstance(gradient, tf.IndexedSlices):
        gradient = tf.convert_to_tensor(gradient)
    return tf.cast(gradient, "float32")


# --------------------------------------------------------------------------
# the pass


@dataclasses.dataclass
class ProbeResult:
    """What `probe` computed, tensors keyed by `id(layer)`.

    Attributes:
        loss: The unscaled loss (None for the loss-free pass without `y`).
        order: The observed layers in the order they were first called.
        outputs: Each layer's output `h`.
        pre: The pre-activation `z` of layers with their own `activation=`.
        signal: The backpropagated signal `dL/dh` at each output, and for a
            softmax or sigmoid output layer `dL/dz` at its logits, where a
            cross-entropy loss takes it (zeros where no gradient reaches).
        weight_grads: `dL/dw` of each variable in `variables`, dense float32.
    """

    loss: object
    order: list
    outputs: dict
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
) -> ProbeResult:
    """One forward and backward pass of the training loss, nothing changed.

    Args:
        model: A built model.
        x: The inputs, a tensor.
        y: The targets, or None.
        units: The layers to observe.
        variables: The variables whose gradients to return.
        loss: `"fit"` for `fit`'s loss (`model.compute_loss`); `"sum"` for
            the loss-free pass, the sum of the outputs (of the logits for a
            softmax or sigmoid output layer, since a softmax sums to 1
            whatever its input); or a `keras.losses.Loss` / callable
            `(y, y_pred)`, to which `model.losses` are added.
        training: The `training` argument of the model's call.
        scale: The loss scale (mixed precision); None reads the optimizer's
            for `"fit"` and uses 1 otherwise.

    Returns:
        A `ProbeResult`.
    """
    trainable = list(model.trainable_variables)
    values = [tf.identity(v.value) for v in trainable]
    position = {id(v): i for i, v in enumerate(trainable)}
    if scale is None:
        scale = loss_scale(model) if loss == "fit" else 1.0
    scale = tf.cast(scale, "float32")
    with tf.GradientTape() as tape:
        tape.watch(values)
        with (
            observe(units, watch=tape.watch) as seen,
            keras.StatelessScope(
                state_mapping=list(zip(trainable, values, strict=True)),
                collect_losses=True,
            ),
        ):
            y_pred = model(x, training=training)
            if isinstance(loss, str) and loss == "sum":
                total = tf.add_n(
                    [
                        tf.reduce_sum(tf.cast(t, "float32"))
                        for t in _output_logits(y_pred, seen)
                    ]
                )
                value = None
            elif isinstance(loss, str) and loss == "fit":
                total = value = training_loss(model, x, y, y_pred)
            else:
                total = tf.reduce_mean(
                    whole_batch_loss(loss(y, y_pred), getattr(loss, "reduction", None))
                )
                if model.losses:
                    total += tf.add_n([tf.cast(v, "float32") for v in model.losses])
                value = total
        scaled = total * scale
    observed = [layer for layer in seen.order if id(layer) in seen.outputs]
    logits = {
        id(layer)
        for layer in map(lambda t: _producer(t, seen), keras.tree.flatten(y_pred))
        if layer is not None and id(layer) in seen.pre
    }
    targets = [
        seen.pre[id(layer)] if id(layer) in logits else seen.outputs[id(layer)]
        for layer in observed
    ]
    wanted = [values[position[id(v)]] for v in variables]
    grads = tape.gradient(scaled, targets + wanted)
    signal = {
        id(layer): (
            tf.zeros_like(tf.cast(t, "float32"))
            if g is None
            else tf.cast(g, "float32") / scale
        )
        for layer, t, g in zip(observed, targets, grads[: len(targets)], strict=True)
    }
    weight_grads = [
        dense_gradient(g, v) / scale
        for g, v in zip(grads[len(targets) :], variables, strict=True)
    ]
    return ProbeResult(
        loss=value,
        order=observed,
        outputs=dict(seen.outputs),
        pre=dict(seen.pre),
        signal=signal,
        weight_grads=weight_grads,
    )
