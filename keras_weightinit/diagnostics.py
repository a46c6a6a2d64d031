"""Signal-propagation diagnosis: will this initialization vanish or explode?

`diagnose` runs one forward and one backward pass at the model's current
weights and measures, layer by layer, the forward signal (the std of each
layer's output) and the backward signal (the norm of the loss gradient with
respect to each layer's output), then gives a verdict before any training.

Why the backward signal and not the kernel gradients: for a deep ReLU MLP
with LeCun or Glorot init, the backpropagated gradient shrinks by about
`sqrt(1/2)` per layer (30 layers: first/last ~4e-5), yet the kernel gradient
`dL/dW_l = h_{l-1}^T dL/dz_l` multiplies that shrinking backward signal with
a forward signal that shrinks the other way, so the kernel gradient norms are
about equal in every layer (ratio first/last 1 to 1.6) while the network does
not learn.

With several processes (`keras.distribution`, `keras_weightinit.distributed`)
each probes its own batch and the rows are those of the union of the
batches (sums and the kernel gradients are exchanged), so every process gets
the same report and verdict.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import keras
import numpy as np

from keras_weightinit import distributed, graph, residual
from keras_weightinit.checks import boolean, keras_model
from keras_weightinit.data import (
    as_batch,
    check_finite,
    describe,
    first_batch,
    fit_model_input,
    is_dataset,
    num_samples,
    take,
)
from keras_weightinit.probe import (
    ProbeResult,
    Projection,
    check_labels,
    default_loss,
    is_batch_mean,
    probe,
)

__all__ = ["DiagnosisReport", "diagnose"]

#: Vanishing when the backpropagated signal reaching the first layer is less
#: than this fraction of the one leaving the last layer.
VANISHING_GRADIENT_RATIO = 1e-2
#: Exploding when it is more than this multiple of it.
EXPLODING_GRADIENT_RATIO = 1e2
#: Vanishing when the last hidden layer's output std fell below this fraction
#: of the first layer's (the forward signal has collapsed).
VANISHING_ACTIVATION_RATIO = 1e-2
#: Exploding when it grew above this multiple of it.
EXPLODING_ACTIVATION_RATIO = 1e2

_SATURATING = {"tanh", "sigmoid", "hard_sigmoid", "hard_tanh", "softsign"}
# (row key, column title, width, number format or "" for text)
_COLUMNS = (
    ("name", "layer", 14, ""),
    ("activation", "activation", 10, ""),
    ("fan_in", "fan_in", 6, "d"),
    ("fan_out", "fan_out", 7, "d"),
    ("mean", "mean", 10, ".3g"),
    ("std", "std", 10, ".3g"),
    ("dead_fraction", "dead", 6, ".2f"),
    ("saturated_fraction", "satur.", 6, ".2f"),
    ("grad_norm", "|dL/dh|", 10, ".3g"),
    ("kernel_grad_ratio", "|dL/dW|/|W|", 11, ".3g"),
)


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclasses.dataclass
class DiagnosisReport:
    """The result of `diagnose`: per-layer rows, ratios and a verdict.

    Attributes:
        rows: One dict per layer with a kernel, input to output, with keys
            `name`, `activation`, `fan_in`, `fan_out`, `mean` and `std` (of the
            layer's output), `dead_fraction` (units whose output is 0 for
            every probe sample, and every position for convolutions),
            `zero_fraction` (outputs that are exactly 0), `saturated_fraction`
            (outputs with `|h| > 0.99` for tanh-like activations, or within
            0.01 of 0 or 1 for sigmoid-like ones; 0 for the others),
            `grad_norm` (`||dL/dh||`, the backpropagated signal at the layer's
            output; for a softmax or sigmoid output layer at its logits, which
            is where Keras's cross-entropy takes the gradient) and
            `kernel_grad_ratio` (`||dL/dW|| / ||W||`, nan for a frozen
            layer), and `frozen` (the layer has `trainable=False`: it is
            measured, its signal passes, no step changes it).
        verdict: `"symmetric"`, `"vanishing"`, `"exploding"` or `"healthy"`.
        gradient_ratio: `grad_norm` of the first row over that of the last
            (nan or inf when a value is not finite).
        activation_ratio: `std` of the last hidden row (the last but one; the
            last row if there is only one; not a residual branch's output,
            which is its share of a stream) over `std` of the first row that
            is not a table lookup (an embedding's scale is its author's
            choice). In a network with residual branches the gradient ratio
            is read between the first and last branch outputs, which take
            the stream's gradient.
        loss: The loss of the backward pass (None without targets: the pass
            then differentiates a random projection of the outputs).
        reasons: Why the verdict, in words, and what was not measured.
        loss_name: The loss differentiated: the compiled loss, `loss`'s
            name, or the default loss for a model that is not compiled.
        span: The first and last rows the gradient ratio is read between.
        identical: Groups of kernel-like variable paths whose values are
            equal (an unseeded Keras initializer instance shared by several
            layers, MultiHeadAttention's projections from a Keras int seed,
            copied weights); constant tensors are left out.

    Example:

    >>> small = [
    ...     keras.layers.Dense(
    ...         64, activation="relu", kernel_initializer=kwi.SmallRandomNormal(seed=i)
    ...     )
    ...     for i in range(8)
    ... ]
    >>> deep = keras.Sequential(
    ...     [keras.Input((64,)), *small, keras.layers.Dense(10, activation="softmax")]
    ... )
    >>> report = diagnose(deep, x[:256], y[:256])
    >>> report.verdict, report.gradient_ratio < 1e-6
    ('vanishing', True)
    >>> report.plot("diagnosis.png")
    'diagnosis.png'
    """

    rows: list[dict[str, Any]]
    verdict: str
    gradient_ratio: float
    activation_ratio: float
    loss: float | None = None
    reasons: list[str] = dataclasses.field(default_factory=list)
    loss_name: str | None = None
    identical: list[list[str]] = dataclasses.field(default_factory=list)
    span: tuple[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict; non-finite floats become None."""
        return {
            "verdict": self.verdict,
            "gradient_ratio": _finite_or_none(self.gradient_ratio),
            "activation_ratio": _finite_or_none(self.activation_ratio),
            "loss": None if self.loss is None else _finite_or_none(self.loss),
            "loss_name": self.loss_name,
            "identical": [list(group) for group in self.identical],
            "span": None if self.span is None else list(self.span),
            "reasons": list(self.reasons),
            "thresholds": {
                "vanishing_gradient_ratio": VANISHING_GRADIENT_RATIO,
                "exploding_gradient_ratio": EXPLODING_GRADIENT_RATIO,
                "vanishing_activation_ratio": VANISHING_ACTIVATION_RATIO,
                "exploding_activation_ratio": EXPLODING_ACTIVATION_RATIO,
            },
            "rows": [
                {k: _finite_or_none(v) for k, v in row.items()} for row in self.rows
            ],
        }

    def to_json(self, **kwargs) -> str:
        """`json.dumps(self.to_dict(), **kwargs)`."""
        return json.dumps(self.to_dict(), **kwargs)

    def __str__(self) -> str:
        def cell(value, width, fmt):
            if not fmt:
                text = str(value)
                if len(text) > width:
                    text = text[: width - 1] + "~"
                return f"{text:<{width}}"
            return f"{value:>{width}{fmt}}"

        names = max([len("layer"), *(len(str(row["name"])) for row in self.rows)])
        columns = [
            (key, title, min(names, 40) if key == "name" else width, fmt)
            for key, title, width, fmt in _COLUMNS
        ]
        header = " ".join(
            f"{title:<{width}}" if not fmt else f"{title:>{width}}"
            for _, title, width, fmt in columns
        )
        lines = [header, "-" * len(header)]
        for row in self.rows:
            lines.append(
                " ".join(cell(row[key], width, fmt) for key, _, width, fmt in columns)
            )
        lines.append("-" * len(header))
        lines.append(
            f"verdict: {self.verdict}  (gradient ratio first/last "
            f"{self.gradient_ratio:.3g}: vanishing < {VANISHING_GRADIENT_RATIO:g}, "
            f"exploding > {EXPLODING_GRADIENT_RATIO:g}; activation std ratio "
            f"{self.activation_ratio:.3g})"
        )
        if self.span is not None:
            lines.append(f"  ratios from {self.span[0]} to {self.span[1]}")
        lines.extend(f"  - {reason}" for reason in self.reasons)
        for group in self.identical:
            lines.append(f"  - identical values: {', '.join(group)}")
        return "\n".join(lines)

    def plot(self, path: str | os.PathLike) -> str:
        """Writes a PNG: output std and `||dL/dh||` per layer, log scale.

        With several processes only process 0 writes (every process has the
        same report).

        Args:
            path: The file to write (its directory is created).

        Returns:
            The path written, as a string.
        """
        from matplotlib.figure import Figure

        path = os.fspath(path)
        if not distributed.is_writer():
            return path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        depth = np.arange(1, len(self.rows) + 1)
        fig = Figure(figsize=(9, 4), layout="constrained")
        panels = fig.subplots(1, 2)
        for ax, key, title in (
            (panels[0], "std", "forward: std of layer output"),
            (panels[1], "grad_norm", "backward: ||dL/d output||"),
        ):
            values = np.array([row[key] for row in self.rows], dtype=float)
            good = np.isfinite(values) & (values > 0)
            ax.plot(depth[good], values[good], "o-", color="tab:blue")
            bad = ~good
            if bad.any():
                ax.plot(
                    depth[bad],
                    np.full(bad.sum(), np.nanmin(values[good]) if good.any() else 1),
                    "x",
                    color="tab:red",
                    label="0 or not finite",
                )
                ax.legend()
            ax.set_yscale("log")
            ax.set_xlabel("layer (input to output)")
            ax.set_title(title)
            ax.grid(True, which="both", alpha=0.3)
        fig.suptitle(
            f"{self.verdict}: gradient ratio first/last {self.gradient_ratio:.2g}"
        )
        fig.savefig(path, dpi=100)
        return path


def _saturated(name: str, h: np.ndarray) -> float:
    if name in ("sigmoid", "hard_sigmoid"):
        return float(np.mean((h < 0.01) | (h > 0.99)))
    if name in _SATURATING:
        return float(np.mean(np.abs(h) > 0.99))
    return 0.0


def _inputs(x, y):
    """The probe batch: `x` nested as the model's inputs, and `y` or None.

    Without `y`, a tuple `(x, y)` and a dataset give their (first) batch; a
    list is the inputs of a model that takes several, as in `fit`.
    """
    if y is None and (
        isinstance(x, tuple) or is_dataset(x) or isinstance(x, keras.utils.PyDataset)
    ):
        return first_batch(x, "x")
    x = as_batch(x, "x")
    if y is not None:
        y = np.asarray(keras.ops.convert_to_numpy(y))
        if y.ndim == 0 or len(y) != num_samples(x):
            raise ValueError(
                "Arguments `x` and `y` must hold the same number of samples. "
                f"Received: {num_samples(x)} samples in x, y of shape {y.shape}"
            )
        check_finite(y, "y")
    return x, y


def _numpy(tensor) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(tensor), dtype="float64")


def diagnose(
    model: keras.Model,
    x,
    y=None,
    *,
    loss=None,
    training: bool = True,
) -> DiagnosisReport:
    """Measures signal propagation at the current weights and gives a verdict.

    One forward and one backward pass on `x` (`keras_weightinit.probe`): of
    the training loss on `(x, y)` (the model's compiled loss and
    regularization losses, `loss`, or for a model that is not compiled the
    default loss below), or, without `y`, of the outputs projected on a fixed
    random direction (for a softmax or sigmoid output, of its logits; a plain
    sum would send nothing back through a softmax or a normalization, whose
    outputs sum to a constant). `x` is what `fit` takes: an array, a list or
    dict of arrays (nested as the model's inputs), a `tf.data.Dataset` or a
    `PyDataset` (its first batch). For every layer with a kernel-like weight, at any
    depth and in the order the model calls them (Dense, Conv, EinsumDense and
    `MultiHeadAttention`'s projections, Depthwise and Separable convolutions,
    LSTM/GRU/SimpleRNN layers, Embedding; normalization, pooling and dropout
    layers have no row), it measures the output `h_l` (mean, std, dead and
    saturated fractions), the backpropagated signal `g_l = ||dL/dh_l||` (for
    a softmax or sigmoid output layer at its logits, which is where Keras's
    cross-entropy takes the gradient) and the gradient of the layer's primary
    kernel (`graph.primary_weight`) relative to the kernel,
    `||dL/dW_l|| / ||W_l||`. Nothing of the model changes: the pass
    runs in a `keras.StatelessScope`, so BatchNorm statistics and seed
    generators are left as they were.

    The verdict reads two ratios, over the layers whose kernel is not
    exactly zero: `r_g = g_first / g_last` over the layers whose output does
    not go straight into a normalization layer, and `r_a = std_eff(h_{L-1})
    / std_eff(h_1)`, the last hidden row over the first (for a *normalized*
    row, the std after its normalization):

    - `exploding` if any output, gradient or the loss is not finite, or
      `r_g > 1e2`, or `r_a > 1e2`;
    - `symmetric` if a hidden layer's units have equal incoming weights and
      equal weight gradients, so they never become different (groups of
      equal kernels in `report.identical`);
    - `vanishing` if `r_g < 1e-2`, `r_a < 1e-2`, or no gradient reaches the
      last layer;
    - `healthy` otherwise.

    `docs/diagnostics.md` says why normalized layers' gradients stay out of
    the verdict, how a zero output layer (Fixup) is probed, which default
    loss a model that is not compiled gets (`probe.default_loss`, named in
    `loss_name`), and the cases the thresholds (`VANISHING_GRADIENT_RATIO`,
    `EXPLODING_GRADIENT_RATIO`, `VANISHING_ACTIVATION_RATIO`,
    `EXPLODING_ACTIVATION_RATIO`) were set on.

    Args:
        model: A built Keras model (or a Sequential model `x` builds).
        x: The inputs: an array; or, with `y` None, a tuple `(x, y)` or a
            batched `tf.data.Dataset` whose first batch is taken.
        y: The targets, or None for the loss-free pass.
        loss: A loss (name, `keras.losses.Loss` or callable `(y, y_pred)`)
            used instead of the compiled one.
        training: Call the model with `training=True` (default: BatchNorm on
            batch statistics and Dropout active, as in the first training
            step) or `False` (inference).

    Returns:
        A `DiagnosisReport`: `verdict`, `gradient_ratio`, `rows`, `str()` a
        table, `to_dict()`, `plot(path)`.

    Raises:
        ValueError: If the data does not fit the model or its loss, or the
            model has no kernel-like weight, or, with several processes, the
            model or the loss differs across them.
        keras_weightinit.distributed.ProcessError: With several processes,
            when another one failed, died or did not answer in time.

    Example:

    >>> report = diagnose(model, x_train[:256], y_train[:256])
    >>> report.verdict, [row["name"] for row in report.rows]
    ('healthy', ['dense', 'dense_1', 'dense_2'])
    >>> "verdict: healthy" in str(report)
    True
    >>> report.plot("diagnosis.png")
    'diagnosis.png'

    Reference:
        Glorot & Bengio, "Understanding the difficulty of training deep
        feedforward neural networks", AISTATS 2010; He et al., "Delving deep
        into rectifiers", ICCV 2015; van Laarhoven, "L2 Regularization versus
        Batch and Weight Normalization", 2017; Arora, Li & Lyu, "Theoretical
        Analysis of Auto Rate-Tuning by Batch Normalization", ICLR 2019.
    """
    with distributed.together("diagnose"):
        return _diagnose(model, x, y, loss, training)


def _diagnose(model, x, y, loss, training: bool) -> DiagnosisReport:
    keras_model(model)
    training = boolean("training", training)
    x, y = _inputs(x, y)
    fit_model_input(model, x, "diagnose")
    found = graph.weights(model, frozen=True)
    kernels = [w for w in found if w.kernel_like]
    if not kernels:
        raise ValueError(
            "diagnose needs a model with at least one kernel-like weight "
            f"({', '.join(graph.KERNEL_ROLES)}). Received: model={model.name!r}"
        )
    distributed.check_same_model(model)
    distributed.check_replicated(model, "diagnose")
    units = list(dict.fromkeys(w.unit for w in kernels))
    primaries = {id(u): graph.primary_weight(u, kernels) for u in units}
    norms = graph.normalizations_after(units, model)
    loss_fn, loss_name = _choose_loss(model, x, y, loss, units[-1])
    check_labels(model, x, y, loss_fn)
    distributed.check_same_across_processes("loss", loss_name)
    measured = _measure(model, (x, y), primaries, norms, loss_fn, training)
    parts = [
        LayerSums.of(measured, unit, norms[id(unit)], primaries[id(unit)])
        for unit in measured.order
    ]
    mean = is_batch_mean(loss_fn)
    parts, totals = _reduce(parts, measured, num_samples(x), mean)
    stats = [
        LayerStats.of(part, primaries[id(unit)], last=unit is measured.order[-1])
        for unit, part in zip(measured.order, parts, strict=True)
    ]
    marks = {
        "silenced": _silenced(model, found),
        "ends": {id(b.last.unit) for b in residual.branches(model, found)},
        "zero": measured.zero,
    }
    rows = _rows(model, measured.order, primaries, stats, norms, marks)
    symmetric = [row["name"] for row, s in zip(rows, stats, strict=True) if s.symmetric]
    report = _judge(rows, totals["loss"], symmetric, totals["reference"])
    report.loss_name = loss_name
    read = {
        id(primaries[id(unit)].variable): part.kernel
        for unit, part in zip(measured.order, parts, strict=True)
    }
    report.identical = _identical(kernels, read)
    report.reasons += _not_measured(
        model, units, measured.result, found, measured.probed
    )
    return report


def _choose_loss(model, x, y, loss, output):
    """`(loss, name)` of the backward pass: compiled, given, default or none."""
    if y is None:
        return "sum", None
    if loss is None and not getattr(model, "compiled", False):
        width = (
            int(model.outputs[0].shape[-1])
            if getattr(model, "outputs", None)
            else int(keras.ops.shape(model(take(x, 1)))[-1])
        )
        return default_loss(y, graph.own_activation(output)[0], width)
    if loss is not None:
        loss_fn = keras.losses.get(loss)
        name = getattr(loss_fn, "name", None) or getattr(
            loss_fn, "__name__", repr(loss_fn)
        )
        return loss_fn, name
    return "fit", "compiled loss"


def _pass(model, x, y, observed, weights, training):
    """`run(loss)`: the probe pass on `(x, y)`, its errors given context."""
    x_tensor = keras.tree.map_structure(keras.ops.convert_to_tensor, x)
    y_tensor = None if y is None else keras.ops.convert_to_tensor(y)

    def run(loss):
        try:
            return probe(
                model,
                x_tensor,
                y_tensor,
                units=observed,
                variables=[w.variable for w in weights],
                loss=loss,
                training=training,
            )
        except Exception as error:  # re-raised with context
            y_shape = None if y is None else y.shape
            raise ValueError(
                "Arguments `x` and `y` do not fit the model or its loss. "
                f"Received: {describe(x)}; y of shape {y_shape}. The "
                f"forward pass failed with: {error}"
            ) from error

    return run


@dataclasses.dataclass(frozen=True)
class _Measured:
    """The probe passes of one diagnosis.

    Attributes:
        result: The pass of the loss: outputs, and signals unless `probed`.
        signal: The pass whose signals are read (`result`, or the zero
            classifier's projection).
        order: The measured layers, in the order the model calls them.
        grads: `id(unit) ->` the gradient of its primary weight (learning
            layers only).
        zero: `id(unit) ->` whether its primary weight is all zero.
        probed: The zero classifier whose input is projected, or None.
        reference: The projection's norm times `sqrt(positions)`, or None.
        positions: The positions the projection sums over, or None.
    """

    result: ProbeResult
    signal: ProbeResult
    order: list
    grads: dict
    zero: dict
    probed: keras.Layer | None = None
    reference: float | None = None
    positions: int | None = None


def _measure(model, data, primaries, norms, loss, training) -> _Measured:
    """The probe pass of `loss` on `data = (x, y)`, every unit observed.

    One pass over the model (per-layer statistics linear in depth): every
    unit and the normalization after it is observed at once; a second
    pass only for a zero classifier (`_zero_classifier_projection`).
    """
    units = [primary.unit for primary in primaries.values()]
    learning = [u for u in units if not primaries[id(u)].frozen]
    observed = units + [n for n in norms.values() if n is not None]
    run = _pass(model, *data, observed, [primaries[id(u)] for u in learning], training)
    result = run(loss)
    order = [u for u in result.order if id(u) in primaries]
    zero = {
        id(u): not bool(keras.ops.any(primaries[id(u)].variable.value)) for u in order
    }
    signal, probed, reference, positions = _zero_classifier_projection(
        run, result, order, zero
    )
    grads = dict(zip(map(id, learning), signal.weight_grads, strict=True))
    return _Measured(result, signal, order, grads, zero, probed, reference, positions)


def _zero_classifier_projection(run, result, order, zero):
    """`(signal pass, probed layer, reference, positions)`.

    A zero classifier (Fixup) lets no loss gradient through before the
    first step: the signal is then that of a random projection of the
    features it takes, and the reference its norm per position.
    """
    if not order or not zero[id(order[-1])] or all(zero.values()):
        return result, None, None, None
    probed = order[-1]
    features = int(keras.ops.shape(result.inputs[id(probed)])[-1])
    direction = np.random.default_rng(0).standard_normal(features)
    signal = run(Projection(probed, direction.astype("float32")))
    positions = math.prod(keras.ops.shape(result.inputs[id(probed)])[:-1])
    reference = float(np.linalg.norm(direction) * math.sqrt(positions))
    return signal, probed, reference, positions


def _moments(values: np.ndarray) -> tuple[float, float, float, float]:
    """`(count, shift, sum(values - shift), sum((values - shift)**2))`.

    The shift is the mean, so the sums of one batch lose nothing to
    cancellation (the variance is `np.var`'s); sums of several batches are
    combined from their raw moments.
    """
    shift = float(np.mean(values)) if values.size else 0.0
    centred = values - shift
    return (
        float(values.size),
        shift,
        float(np.sum(centred)),
        float(np.sum(centred * centred)),
    )


def _mean_std(moments) -> tuple[float, float]:
    count, shift, total, square = moments
    mean = total / count
    return shift + mean, math.sqrt(max(square / count - mean * mean, 0.0))


def _raw(moments) -> tuple[float, float, float, float]:
    """The moments about 0 (shift 0), which add across batches."""
    count, shift, total, square = moments
    return (
        count,
        0.0,
        total + count * shift,
        square + 2.0 * shift * total + count * shift * shift,
    )


@dataclasses.dataclass(frozen=True)
class LayerSums:
    """One layer's sums over a batch, from which its `LayerStats` are read.

    Sums, not means, so that the batches of several processes add up
    (`_reduce`); one process's are used as they are.

    Attributes:
        output: `_moments` of the layer's output `h`.
        effective: `_moments` of `h` after its normalization (of `h` if none).
        alive: Per unit, 1 if its output is not 0 for some sample.
        zeros: The number of entries of `h` that are exactly 0.
        saturated: The number of saturated entries of `h`.
        signal: `sum(dL/dh ** 2)`, the squared backpropagated signal.
        dw: The gradient of the layer's primary weight.
        kernel: The primary weight's value.
    """

    output: tuple
    effective: tuple
    alive: np.ndarray
    zeros: float
    saturated: float
    signal: float
    dw: np.ndarray
    kernel: np.ndarray

    @classmethod
    def of(cls, measured: _Measured, unit, after, weight) -> LayerSums:
        """The sums of `unit` in `measured` (`after`: its normalization)."""
        result = measured.result
        h = _numpy(result.outputs[id(unit)])
        dh = measured.signal.signal.get(id(unit))
        kernel = _numpy(weight.variable)
        dw = measured.grads.get(id(unit))
        effective = h
        if after is not None and id(after) in result.outputs:
            effective = _numpy(result.outputs[id(after)])
        units_h = h.reshape(-1, h.shape[-1]) if h.ndim > 1 else h[:, None]
        activation = graph.own_activation(unit)[0] or "unnamed"
        with np.errstate(all="ignore"):  # overflowing nets still get rows
            dh = np.zeros(h.shape) if dh is None else _numpy(dh)
            return cls(
                output=_moments(h),
                effective=_moments(effective),
                alive=np.any(units_h != 0, axis=0).astype("float64"),
                zeros=float(np.sum(h == 0)),
                saturated=_saturated(activation, h) * h.size,
                signal=float(np.sum(dh * dh)),
                dw=np.zeros(kernel.shape) if dw is None else _numpy(dw),
                kernel=kernel,
            )

    def weighted(self, weight: float) -> dict:
        """The parts that add across processes, signals times `weight`."""
        return {
            "output": _raw(self.output),
            "effective": _raw(self.effective),
            "alive": self.alive,
            "zeros": self.zeros,
            "saturated": self.saturated,
            "signal": self.signal * weight * weight,
            "dw": self.dw * weight,
        }


def _reduce(parts: list[LayerSums], measured: _Measured, samples: int, mean: bool):
    """`(sums, totals)` over every process's batch; this one's with one process.

    Sums travel, not means: each process's mean loss is weighted by its share
    of the samples, so the gradients and signals are those of the mean loss
    over all batches (BatchNormalization still uses each process's batch
    statistics, as data-parallel training without synchronized BN does).
    Every process gets the same sums, so the same rows and verdict.

    Returns:
        The reduced `LayerSums`, and `totals`: `loss` and `reference` over
        all processes.
    """
    loss = measured.result.loss
    loss = None if loss is None else float(loss)
    if distributed.process_count() == 1:
        return parts, {"loss": loss, "reference": measured.reference}
    mean_signal = mean and measured.probed is None
    weight = float(samples) if mean_signal else 1.0
    total = distributed.sum_across_processes(
        {
            "samples": float(samples),
            "loss": 0.0 if loss is None else loss * (samples if mean else 1.0),
            "positions": float(measured.positions or 0),
            "rows": [part.weighted(weight) for part in parts],
        }
    )
    scale = total["samples"] if mean_signal else 1.0
    reduced = [
        dataclasses.replace(
            part,
            output=tuple(row["output"]),
            effective=tuple(row["effective"]),
            alive=row["alive"],
            zeros=row["zeros"],
            saturated=row["saturated"],
            signal=row["signal"] / (scale * scale),
            dw=row["dw"] / scale,
        )
        for part, row in zip(parts, total["rows"], strict=True)
    ]
    if loss is not None:
        loss = total["loss"] / (total["samples"] if mean else 1.0)
    reference = measured.reference
    if reference is not None:  # the projection's norm times sqrt(positions)
        reference = reference * math.sqrt(total["positions"] / measured.positions)
    return reduced, {"loss": loss, "reference": reference}


@dataclasses.dataclass(frozen=True)
class LayerStats:
    """One layer's statistics, read from its (reduced) `LayerSums`.

    Attributes:
        mean: The mean of the layer's output `h`.
        std: Its standard deviation.
        dead_fraction: The fraction of units whose output is 0 for every
            sample (and position).
        zero_fraction: The fraction of outputs that are exactly 0.
        saturated_fraction: The fraction of saturated outputs.
        grad_norm: `||dL/dh||`, the backpropagated signal.
        kernel_grad_ratio: `||dL/dW|| / ||W||` (nan for a frozen layer).
        effective_std: The std after the layer's normalization.
        symmetric: Its units have equal incoming weights and gradients.
    """

    mean: float
    std: float
    dead_fraction: float
    zero_fraction: float
    saturated_fraction: float
    grad_norm: float
    kernel_grad_ratio: float
    effective_std: float
    symmetric: bool

    @classmethod
    def of(cls, sums: LayerSums, weight, last: bool = False) -> LayerStats:
        """The statistics of `sums`; `weight` is the layer's primary weight."""
        with np.errstate(all="ignore"):
            mean, std = _mean_std(sums.output)
            count = sums.output[0]
            norm = float(np.linalg.norm(sums.kernel))
            ratio = float(np.linalg.norm(sums.dw) / norm) if norm > 0 else math.inf
            return cls(
                mean=mean,
                std=std,
                dead_fraction=float(np.mean(sums.alive == 0)),
                zero_fraction=sums.zeros / count,
                saturated_fraction=sums.saturated / count,
                grad_norm=math.sqrt(sums.signal),
                # a frozen layer: no step changes it
                kernel_grad_ratio=math.nan if weight.frozen else ratio,
                effective_std=_mean_std(sums.effective)[1],
                symmetric=not last and _symmetric(sums.kernel, sums.dw),
            )


def _rows(model, order, primaries, stats, norms, marks) -> list[dict]:
    """The report's rows: each layer's names and marks, and its `LayerStats`."""
    rows = []
    for unit, layer in zip(order, stats, strict=True):
        weight, after = primaries[id(unit)], norms[id(unit)]
        rows.append(
            {
                "name": graph.layer_path(unit, model),
                "activation": graph.own_activation(unit)[0] or "unnamed",
                "fan_in": int(weight.fan_in),
                "fan_out": int(weight.fan_out),
                "mean": layer.mean,
                "std": layer.std,
                "dead_fraction": layer.dead_fraction,
                "zero_fraction": layer.zero_fraction,
                "saturated_fraction": layer.saturated_fraction,
                "grad_norm": layer.grad_norm,
                "kernel_grad_ratio": layer.kernel_grad_ratio,
                "normalized_by": None if after is None else after.name,
                "effective_std": layer.effective_std,
                "zero_kernel": marks["zero"][id(unit)],
                "table": weight.role in ("embeddings", "token"),
                "silenced": id(unit) in marks["silenced"],
                "branch_end": id(unit) in marks["ends"],
                "frozen": weight.frozen,
            }
        )
    if not rows:
        raise ValueError(
            "diagnose could not observe any layer of the model on `x` "
            f"(layers with kernel-like weights: "
            f"{[graph.layer_path(w.unit, model) for w in primaries.values()]})."
        )
    return rows


def _not_measured(model, units, result, found, probed) -> list[str]:
    """The report's lines on what the pass could not measure, and why."""
    notes = []
    if probed is not None:
        notes.append(
            "the output layer's kernel is zero, so no loss gradient passes "
            "before the first step: the backward signal is that of a random "
            f"projection of the features {graph.layer_path(probed, model)!r} "
            "takes"
        )
    missing = [graph.layer_path(u, model) for u in units if u not in result.order]
    if missing:
        notes.append(f"not measured: layers {missing} were not called on `x`")
    unknown = [w.path for w in found if w.role == "unknown"]
    if unknown:
        notes.append(
            f"not measured: weights of layer types the core does not know: {unknown}"
        )
    return notes


def _ratio(a: float, b: float) -> float:
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.nan
    if b == 0:
        return math.nan if a == 0 else math.inf
    return a / b


def _symmetric(kernel: np.ndarray, gradient: np.ndarray) -> bool:
    """Whether a layer's units start equal and stay equal after a step.

    Its kernel's columns (each unit's incoming weights) are all equal, and so
    are its gradient's: every unit computes the same thing and gets the same
    update. A zero kernel whose units get different gradients (the last layer
    of a zero-initialized residual branch) is not symmetric.
    """
    if kernel.ndim < 2 or kernel.shape[-1] < 2:
        return False
    w = kernel.reshape(-1, kernel.shape[-1])
    g = gradient.reshape(-1, gradient.shape[-1])
    return bool(np.all(w == w[:, :1]) and np.allclose(g, g[:, :1], rtol=1e-6, atol=0))


def _identical(kernels, read: dict | None = None) -> list[list[str]]:
    """Groups of kernel-like variable paths whose values are equal.

    Constant tensors (all zeros, all ones) are left out: their equality says
    nothing of a shared draw, and `symmetric` covers them.

    Args:
        kernels: The kernel-like `Weight`s.
        read: `id(variable) ->` its value as `_numpy` gives it, for the
            variables already read.
    """
    groups: list[tuple[np.ndarray, list[str]]] = []  # (bytes, paths), in order
    candidates: dict[tuple, list[int]] = {}  # (shape, first bytes) -> groups
    for weight in kernels:
        value = (read or {}).get(id(weight.variable))
        if value is None:
            value = _numpy(weight.variable)
        if value.size < 2 or np.all(value == value.flat[0]):
            continue
        bits = np.ascontiguousarray(value).view(np.uint8).reshape(-1)
        key = (value.shape, bits[:64].tobytes())
        for i in candidates.setdefault(key, []):
            if np.array_equal(groups[i][0], bits):
                groups[i][1].append(weight.path)
                break
        else:
            candidates[key].append(len(groups))
            groups.append((bits, [weight.path]))
    return [paths for _, paths in groups if len(paths) > 1]


def _frozen_notes(rows: list[dict]) -> list[str]:
    """What the report says of frozen layers (measured, never stepped)."""
    frozen = [row["name"] for row in rows if row.get("frozen")]
    if frozen and len(frozen) == len(rows):
        return ["every layer is frozen (trainable=False): fit changes no weight"]
    if frozen:
        return [f"frozen (trainable=False), measured: {', '.join(frozen[:5])}"]
    return []


_SILENT = 1e-3  # a branch gain at most this starts the branch (near) silent


def _silenced(model, found) -> set[int]:
    """`id`s of the units of residual branches that start (near) silent.

    A branch holding a gain of at most `_SILENT` (a LayerScale's 1e-6, a
    zero-initialized normalization gamma) sends its layers a gradient that
    small on purpose, as a zero-initialized branch does: their rows are
    judged as zero kernels are, left out of the ratios.
    """
    gains = {}
    for weight in found:
        if weight.role in ("constant", "gamma") and len(weight.shape) <= 1:
            gains.setdefault(id(weight.unit), []).append(weight)
    quiet = {
        key
        for key, weights in gains.items()
        if any(float(np.max(np.abs(_numpy(w.variable)))) <= _SILENT for w in weights)
    }
    silenced = set()
    if not quiet:  # no gain is small: no block to look for
        return silenced
    for block in graph.residual_blocks(model):
        inside = {id(layer) for layer in block.branch}
        if inside & quiet:
            silenced.update(inside)
    return silenced


def _ratios(rows: list[dict], reference: float | None):
    """`(gradient ratio, activation ratio, span, notes)` of the rows.

    Zero-initialized and silenced branches are left out; a table's scale is
    its author's choice, not propagation, so the ratios start at the first
    computed signal; in a residual network the gradient travels along the
    stream, each branch's output taking the stream's gradient there, so the
    gradient ratio is read between the first and last branch outputs, and a
    branch's output (its share of the stream) is no hidden activation.
    """
    live = [
        row for row in rows if not row.get("zero_kernel") and not row.get("silenced")
    ] or rows
    computed = [row for row in live if not row.get("table")] or live
    free = [row for row in computed if not row.get("normalized_by")] or live[-1:]
    ends = [row for row in free if row.get("branch_end")]
    if len(ends) >= 2:
        free = ends
    last = free[-1]["grad_norm"] if reference is None else reference
    gradient_ratio = _ratio(free[0]["grad_norm"], last)
    hidden = [
        row for row in live if row is not rows[-1] and not row.get("branch_end")
    ] or live
    first = computed[0]
    reference_std = first.get("effective_std", first["std"])
    activation_ratio = _ratio(
        hidden[-1].get("effective_std", hidden[-1]["std"]), reference_std
    )
    notes = _frozen_notes(rows)
    if reference_std == 0:  # a batch of one value: nothing to compare with
        activation_ratio = math.nan
        notes.append(
            f"not measured: the activation ratio, since {first['name']}'s output "
            "does not vary on `x` (a constant batch?)"
        )
    return gradient_ratio, activation_ratio, (free[0]["name"], free[-1]["name"]), notes


def _judge(
    rows: list[dict],
    loss: float | None,
    symmetric: list[str] = (),
    reference: float | None = None,
) -> DiagnosisReport:
    gradient_ratio, activation_ratio, span, notes = _ratios(rows, reference)
    reasons = []
    numeric = ("mean", "std", "grad_norm")
    bad = [
        row["name"] for row in rows if not all(math.isfinite(row[k]) for k in numeric)
    ]
    if loss is not None and not math.isfinite(loss):
        reasons.append(f"the loss is {loss}")
    if bad:
        reasons.append(f"non-finite outputs or gradients in {', '.join(bad[:5])}")
    if gradient_ratio > EXPLODING_GRADIENT_RATIO:
        reasons.append(
            f"gradient ratio first/last {gradient_ratio:.3g} > "
            f"{EXPLODING_GRADIENT_RATIO:g}"
        )
    if activation_ratio > EXPLODING_ACTIVATION_RATIO:
        reasons.append(
            f"activation std ratio last hidden/first {activation_ratio:.3g} > "
            f"{EXPLODING_ACTIVATION_RATIO:g}"
        )
    if reasons:
        verdict = "exploding"
    elif symmetric:
        verdict = "symmetric"
        reasons.append(
            f"layers {', '.join(symmetric[:5])} have units with equal incoming "
            "weights and equal gradients: they compute the same thing and can "
            "never become different"
        )
    else:
        if gradient_ratio < VANISHING_GRADIENT_RATIO:
            reasons.append(
                f"gradient ratio first/last {gradient_ratio:.3g} < "
                f"{VANISHING_GRADIENT_RATIO:g}"
            )
        if activation_ratio < VANISHING_ACTIVATION_RATIO:
            reasons.append(
                f"activation std ratio last hidden/first {activation_ratio:.3g} < "
                f"{VANISHING_ACTIVATION_RATIO:g}"
            )
        verdict = "vanishing" if reasons else "healthy"
        if not reasons and math.isnan(gradient_ratio):
            verdict = "vanishing"
            reasons.append("no gradient reaches the last layer")
    reasons.extend(notes)
    return DiagnosisReport(
        rows=rows,
        verdict=verdict,
        gradient_ratio=gradient_ratio,
        activation_ratio=activation_ratio,
        loss=loss,
        reasons=reasons,
        span=span,
    )
