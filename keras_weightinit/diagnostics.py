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
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_weightinit.data import as_array, check_finite, first_batch
from keras_weightinit.gains import CONV_TRANSPOSE, activation_name, compute_fans
from keras_weightinit.gradients import (
    capture_outputs,
    dense_gradient,
    kernel_layers,
    loss_scale,
    training_loss,
    whole_batch_loss,
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
            `kernel_grad_ratio` (`||dL/dW|| / ||W||`).
        verdict: `"vanishing"`, `"exploding"` or `"healthy"`.
        gradient_ratio: `grad_norm` of the first row over that of the last
            (nan or inf when a value is not finite).
        activation_ratio: `std` of the last hidden row (the last but one; the
            last row if there is only one) over `std` of the first row.
        loss: The loss of the backward pass (None without targets: the pass
            then differentiates the sum of the outputs).
        reasons: Why the verdict, in words.

    Example:

    >>> report = diagnose(model, x[:256], y[:256])
    >>> report.verdict, f"{report.gradient_ratio:.1e}"
    ('vanishing', '1.8e-21')
    >>> report.plot("diagnosis.png")
    'diagnosis.png'
    """

    rows: list[dict[str, Any]]
    verdict: str
    gradient_ratio: float
    activation_ratio: float
    loss: float | None = None
    reasons: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict; non-finite floats become None."""
        return {
            "verdict": self.verdict,
            "gradient_ratio": _finite_or_none(self.gradient_ratio),
            "activation_ratio": _finite_or_none(self.activation_ratio),
            "loss": None if self.loss is None else _finite_or_none(self.loss),
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

        header = " ".join(
            f"{title:<{width}}" if not fmt else f"{title:>{width}}"
            for _, title, width, fmt in _COLUMNS
        )
        lines = [header, "-" * len(header)]
        for row in self.rows:
            lines.append(
                " ".join(cell(row[key], width, fmt) for key, _, width, fmt in _COLUMNS)
            )
        lines.append("-" * len(header))
        lines.append(
            f"verdict: {self.verdict}  (gradient ratio first/last "
            f"{self.gradient_ratio:.3g}: vanishing < {VANISHING_GRADIENT_RATIO:g}, "
            f"exploding > {EXPLODING_GRADIENT_RATIO:g}; activation std ratio "
            f"{self.activation_ratio:.3g})"
        )
        lines.extend(f"  - {reason}" for reason in self.reasons)
        return "\n".join(lines)

    def plot(self, path: str | os.PathLike) -> str:
        """Writes a PNG: output std and `||dL/dh||` per layer, log scale.

        Args:
            path: The file to write (its directory is created).

        Returns:
            The path written, as a string.
        """
        from matplotlib.figure import Figure

        path = os.fspath(path)
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


def _activation_name(layer) -> str:
    activation = getattr(layer, "activation", None)
    return activation_name(activation) or type(activation).__name__


def _saturated(name: str, h: np.ndarray) -> float:
    if name in ("sigmoid", "hard_sigmoid"):
        return float(np.mean((h < 0.01) | (h > 0.99)))
    if name in _SATURATING:
        return float(np.mean(np.abs(h) > 0.99))
    return 0.0


def _inputs(model, x, y):
    if y is None and isinstance(x, (tuple, list, tf.data.Dataset)):
        return first_batch(x, "x")
    x = as_array(x, "x")
    if y is not None:
        y = np.asarray(keras.ops.convert_to_numpy(y))
        if y.ndim == 0 or len(y) != len(x):
            raise ValueError(
                "Arguments `x` and `y` must hold the same number of samples. "
                f"Received: x of shape {x.shape}, y of shape {y.shape}"
            )
        check_finite(y, "y")
    return x, y


def diagnose(
    model: keras.Model,
    x,
    y=None,
    *,
    loss=None,
    training: bool = True,
) -> DiagnosisReport:
    """Measures signal propagation at the current weights and gives a verdict.

    One forward and one backward pass on `x`: of the training loss on `(x, y)`
    (the model's compiled loss and regularization losses, or `loss`), or,
    without `y`, of the sum of the outputs (for a softmax or sigmoid output,
    of its logits: a softmax sums to 1, so its sum sends nothing back). For
    every layer with a kernel (Dense, Conv, EinsumDense, ... also inside
    nested models; activation, normalization, pooling and dropout layers have
    no row) it measures the output `h_l` (mean, std, dead and saturated
    fractions), the backpropagated signal `||dL/dh_l||` and the kernel
    gradient relative to the kernel, `||dL/dW_l|| / ||W_l||`. Nothing of the
    model changes: the pass runs in a `keras.StatelessScope`, so BatchNorm
    statistics and seed generators are left as they were.

    Verdict, with `g_l = ||dL/dh_l||` and the gradient ratio
    `r_g = g_1 / g_L` (first kernel layer over last), and the activation ratio
    `r_a = std(h_{L-1}) / std(h_1)` (last hidden kernel layer over first):

    - `exploding` if any output, gradient or the loss is not finite, or
      `r_g > 1e2`, or `r_a > 1e2`;
    - `vanishing` if `r_g < 1e-2` (the first layer receives less than 1% of
      the signal the last sends back), or `r_a < 1e-2` (the forward signal
      has collapsed);
    - `healthy` otherwise.

    The thresholds are the module constants `VANISHING_GRADIENT_RATIO`,
    `EXPLODING_GRADIENT_RATIO`, `VANISHING_ACTIVATION_RATIO` and
    `EXPLODING_ACTIVATION_RATIO`. Calibration on digits (64 inputs, 10
    classes, width-128 ReLU MLPs, 256 samples): `r_g` is about 0.5 to 4 with
    He init at 20 and 30 layers, 1e-3 (20 layers) and 4e-5 (30 layers) with
    LeCun or Glorot, below 1e-20 with `N(0, 0.01^2)`, and above 1e17 or not
    finite with `N(0, 1)`; the thresholds sit orders of magnitude from each.

    Args:
        model: A built Keras model (or one `x` builds).
        x: The inputs: an array; or, with `y` None, a tuple `(x, y)` or a
            batched `tf.data.Dataset` whose first batch is taken.
        y: The targets, or None for the loss-free pass.
        loss: A loss (name, `keras.losses.Loss` or callable `(y, y_pred)`)
            used instead of the compiled one; needed with `y` for a model that
            is not compiled.
        training: Call the model with `training=True` (default: BatchNorm on
            batch statistics and Dropout active, as in the first training
            step) or `False` (inference).

    Returns:
        A `DiagnosisReport`: `verdict`, `gradient_ratio`, `rows`, `str()` a
        table, `to_dict()`, `plot(path)`.

    Raises:
        ValueError: If the data does not fit the model, the model has no
            layer with a kernel, or there is `y` but no loss.

    Example:

    >>> report = diagnose(model, x_train[:256], y_train[:256])
    >>> report.verdict
    'vanishing'
    >>> print(report)
    >>> report.plot("diagnosis.png")

    Reference:
        Glorot & Bengio, "Understanding the difficulty of training deep
        feedforward neural networks", AISTATS 2010; He et al., "Delving deep
        into rectifiers", ICCV 2015.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(
            "Argument `model` must be a keras.Model. "
            f"Received: model of type {type(model).__name__}"
        )
    x, y = _inputs(model, x, y)
    if y is not None and loss is None and not getattr(model, "compiled", False):
        raise ValueError(
            "Argument `y` was given but the model is not compiled, so there is "
            "no loss to differentiate: compile the model, pass `loss=`, or "
            f"leave `y` out. Received: model={model.name!r} (not compiled)"
        )
    loss_fn = None if loss is None else keras.losses.get(loss)
    try:
        inputs = list(model.inputs)
    except (AttributeError, ValueError):
        inputs = []
    if len(inputs) == 1:
        expected = tuple(inputs[0].shape)[1:]
        if len(expected) != x.ndim - 1 or any(
            e is not None and e != r for e, r in zip(expected, x.shape[1:], strict=True)
        ):
            raise ValueError(
                "Argument `x` does not fit the model: the model takes inputs of "
                f"shape {(None, *expected)}, x has shape {x.shape}."
            )

    x_tensor = tf.constant(x)
    y_tensor = None if y is None else tf.constant(y)
    if not model.built:
        try:
            model(x_tensor[:1])
        except Exception as error:  # noqa: BLE001
            raise ValueError(
                f"Argument `x` does not fit the model. Received: x of shape "
                f"{x.shape}. Building the model failed with: {error}"
            ) from error
    layers = kernel_layers(model)
    if not layers:
        raise ValueError(
            "diagnose needs a model with at least one layer with a kernel "
            f"(Dense, Conv, ...). Received: model={model.name!r}"
        )
    variables = list(model.trainable_variables)
    values = [tf.identity(v.value) for v in variables]
    position = {id(v): i for i, v in enumerate(variables)}
    outputs: dict = {}
    grad_targets: dict = {}
    try:
        with (
            tf.GradientTape() as tape,
            capture_outputs(layers, outputs, tape=tape, targets=grad_targets),
            keras.StatelessScope(
                state_mapping=list(zip(variables, values, strict=True)),
                collect_losses=True,
            ),
        ):
            tape.watch(values)
            y_pred = model(x_tensor, training=training)
            scale = tf.constant(1.0)
            if y_tensor is None:
                # A softmax sums to 1 whatever its input: take its logits.
                total = tf.add_n(
                    [
                        tf.reduce_sum(
                            tf.cast(getattr(t, "_keras_logits", t), "float32")
                        )
                        for t in tf.nest.flatten(y_pred)
                    ]
                )
                loss_value = None
            else:
                if loss_fn is not None:
                    total = tf.reduce_mean(
                        whole_batch_loss(
                            loss_fn(y_tensor, y_pred),
                            getattr(loss_fn, "reduction", None),
                        )
                    )
                    if model.losses:
                        total += tf.add_n([tf.cast(v, "float32") for v in model.losses])
                else:
                    total = training_loss(model, x_tensor, y_tensor, y_pred)
                    scale = loss_scale(model)
                loss_value = total
            scaled = total * scale
    except Exception as error:  # noqa: BLE001 - re-raised with context
        y_shape = None if y is None else y.shape
        raise ValueError(
            "Arguments `x` and `y` do not fit the model or its loss. Received: "
            f"x of shape {x.shape}, y of shape {y_shape}. The forward pass "
            f"failed with: {error}"
        ) from error

    seen = [layer for layer in layers if id(layer) in outputs]
    hs = [outputs[id(layer)] for layer in seen]
    logits = [grad_targets.get(id(layer)) for layer in seen]
    with_logits = [t for t in logits if t is not None]
    grads = tape.gradient(scaled, hs + with_logits + values)
    n, m = len(hs), len(with_logits)
    act_grads, logit_grads, weight_grads = grads[:n], grads[n : n + m], grads[n + m :]
    logit_grads = iter(logit_grads)
    fused = [None if t is None else next(logit_grads) for t in logits]
    # No gradient reaches the probabilities when the loss used the logits.
    act_grads = [
        g if g is not None else f for g, f in zip(act_grads, fused, strict=True)
    ]

    rows = []
    with np.errstate(all="ignore"):  # overflowing nets still get rows
        for layer, h, dh in zip(seen, hs, act_grads, strict=True):
            h_np = np.asarray(tf.cast(h, "float64"))
            dh_np = (
                np.zeros(h_np.shape)
                if dh is None
                else np.asarray(tf.cast(dh, "float64")) / float(scale)
            )
            kernel = layer.kernel
            i = position.get(id(kernel))
            kernel_value = np.asarray(tf.cast(kernel.value, "float64"))
            if i is None:
                kernel_ratio = math.nan
            else:
                dw = np.asarray(dense_gradient(weight_grads[i], kernel)) / float(scale)
                kernel_ratio = float(
                    np.linalg.norm(dw) / np.linalg.norm(kernel_value)
                    if np.linalg.norm(kernel_value) > 0
                    else math.inf
                )
            fan_in, fan_out = compute_fans(
                kernel.shape, transposed=isinstance(layer, CONV_TRANSPOSE)
            )
            name = _activation_name(layer)
            units = h_np.reshape(-1, h_np.shape[-1]) if h_np.ndim > 1 else h_np[:, None]
            rows.append(
                {
                    "name": layer.name,
                    "activation": name,
                    "fan_in": int(fan_in),
                    "fan_out": int(fan_out),
                    "mean": float(np.mean(h_np)),
                    "std": float(np.std(h_np)),
                    "dead_fraction": float(np.mean(np.all(units == 0, axis=0))),
                    "zero_fraction": float(np.mean(h_np == 0)),
                    "saturated_fraction": _saturated(name, h_np),
                    "grad_norm": float(np.linalg.norm(dh_np)),
                    "kernel_grad_ratio": kernel_ratio,
                }
            )
    if not rows:
        raise ValueError(
            "diagnose could not observe any layer output of the model "
            f"(layers with a kernel: {[layer.name for layer in layers]})."
        )
    loss_float = None if loss_value is None else float(loss_value)
    return _judge(rows, loss_float)


def _ratio(a: float, b: float) -> float:
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.nan
    if b == 0:
        return math.nan if a == 0 else math.inf
    return a / b


def _judge(rows: list[dict], loss: float | None) -> DiagnosisReport:
    gradient_ratio = _ratio(rows[0]["grad_norm"], rows[-1]["grad_norm"])
    hidden = rows[-2] if len(rows) > 1 else rows[-1]
    activation_ratio = _ratio(hidden["std"], rows[0]["std"])
    reasons = []
    numeric = ("mean", "std", "grad_norm", "kernel_grad_ratio")
    bad = [
        row["name"]
        for row in rows
        if not all(math.isfinite(row[k]) for k in numeric if k != "kernel_grad_ratio")
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
    return DiagnosisReport(
        rows=rows,
        verdict=verdict,
        gradient_ratio=gradient_ratio,
        activation_ratio=activation_ratio,
        loss=loss,
        reasons=reasons,
    )
