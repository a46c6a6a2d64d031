"""µP's coordinate check and learning-rate transfer sweep, on small models.

- `coord_check(make_model, widths, x, y, ...)`: trains each width a few
  steps and records the mean `|activation|` of every layer after each step.
  Under µP the curves are flat in width; under the standard parametrization
  they grow (Tensor Programs V, Fig. 5).
- `lr_transfer(widths, learning_rates, ...)`: training loss against the
  learning rate, one curve per width, for both parametrizations, on the
  digits data set (Tensor Programs V, Fig. 1 at small scale).
- `digits_mlp`: the MLP `64 -> w -> w -> 10` (ReLU, `MuReadout`) both use.

The commands `keras-weightinit coord-check` and `keras-weightinit transfer`
run them (`keras_weightinit_cli`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence

import keras
import numpy as np

from keras_weightinit import graph
from keras_weightinit.checks import is_int, positive_int, positive_number
from keras_weightinit.mup import MuAdam, MuReadout, MuSGD, set_base_shapes

__all__ = [
    "CoordCheck",
    "TransferResult",
    "coord_check",
    "digits",
    "digits_mlp",
    "gpt_coord_check",
    "gpt_lr_transfer",
    "lr_transfer",
    "plot_coord_checks",
]

_OPTIMIZERS = ("adam", "sgd")


def digits(max_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`sklearn.datasets.load_digits` as `(x / 16, y)`: 1797 8x8 images, no download.

    Example:

    >>> x, y = digits(128)
    >>> x.shape, int(y.max())
    ((128, 64), 9)
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype("float32")
    y = data.target.astype("int32")
    if max_samples is not None:
        x, y = x[:max_samples], y[:max_samples]
    return x, y


def digits_mlp(width: int, depth: int = 2, classes: int = 10) -> keras.Model:
    """The MLP `64 -> width x depth -> classes`, ReLU, with a `MuReadout`.

    Args:
        width: Units per hidden layer.
        depth: Hidden layers.
        classes: Output units (logits).

    Example:

    >>> [layer.units for layer in digits_mlp(32).layers]
    [32, 32, 10]

    Reference:
        Yang et al., "Tensor Programs V", 2022 (the MLP of its Fig. 3).
    """
    width = positive_int("width", width)
    layers = [keras.Input((64,))]
    for i in range(positive_int("depth", depth)):
        layers.append(keras.layers.Dense(width, activation="relu", name=f"hidden{i}"))
    layers.append(MuReadout(positive_int("classes", classes), name="readout"))
    return keras.Sequential(layers, name=f"mlp_{width}")


def _check_widths(widths) -> list[int]:
    try:
        values = [positive_int("widths", w) for w in widths]
    except (TypeError, ValueError):
        values = []
    if len(values) < 2 or len(set(values)) != len(values):
        raise ValueError(
            "Argument `widths` must be at least two distinct positive ints. "
            f"Received: widths={widths!r}"
        )
    return sorted(values)


def _optimizer(name: str, learning_rate: float, mup: bool):
    if name not in _OPTIMIZERS:
        raise ValueError(
            "Argument `optimizer` must be 'adam' or 'sgd'. "
            f"Received: optimizer={name!r}"
        )
    if mup:
        return (MuAdam if name == "adam" else MuSGD)(learning_rate)
    return (keras.optimizers.Adam if name == "adam" else keras.optimizers.SGD)(
        learning_rate
    )


def _logits_loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _prepare(make_model, width: int, base_width: int, mup: bool, seed: int):
    """A model of `width` and its µP base model, initialized by `_reinitialize`.

    The base model is None for the standard parametrization.
    """
    keras.utils.set_random_seed(seed)
    model = make_model(width)
    base = make_model(base_width) if mup else None
    _reinitialize(model, base, seed)
    return model, base


def _reinitialize(model: keras.Model, base: keras.Model | None, seed: int) -> None:
    """Draws `model`'s weights again in place from `seed`.

    µP against `base`, or He/Glorot "auto" without one; Keras's global
    generators (the data order) are seeded with `seed` too.
    """
    keras.utils.set_random_seed(seed)
    if base is not None:
        set_base_shapes(model, base, seed=seed)
    else:
        from keras_weightinit.model_init import initialize

        initialize(model, "auto", seed=seed)


@dataclasses.dataclass
class CoordCheck:
    """What `coord_check` measured: mean `|activation|` per width, step, layer.

    Attributes:
        parametrization: `"mup"` or `"sp"`.
        widths: The widths, ascending.
        steps: Training steps taken (recorded after each, 1..steps).
        layers: The layer paths, input to output.
        values: `values[layer][step - 1][i]` is the mean `|activation|` of
            `layer` after `step` steps at `widths[i]`.

    Example:

    >>> result = CoordCheck("mup", [64, 128], 1, ["readout"], {"readout": [[1, 1.5]]})
    >>> result.growth("readout")
    1.5
    """

    parametrization: str
    widths: list[int]
    steps: int
    layers: list[str]
    values: dict[str, list[list[float]]]

    def growth(self, layer: str | None = None, step: int | None = None) -> float:
        """`max / min` over widths of `layer`'s value (default: last layer, step)."""
        layer = self.layers[-1] if layer is None else layer
        row = self.values[layer][(step or self.steps) - 1]
        return float(max(row) / max(min(row), 1e-30))

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)

    def plot(self, path: str) -> str:
        """Writes the figure (`|activation|` vs width, a line per layer, step)."""
        return plot_coord_checks([self], path)


def _layer_outputs(model: keras.Model) -> list[keras.Layer]:
    return [layer for layer in model.layers if layer.weights]


def coord_check(
    make_model: Callable[[int], keras.Model],
    widths: Sequence[int],
    x,
    y,
    steps: int = 3,
    optimizer: str = "adam",
    learning_rate: float | None = None,
    mup: bool = True,
    base_width: int | None = None,
    loss=None,
    seed: int = 0,
    verbose: int = 0,
) -> CoordCheck:
    """µP's coordinate check: mean `|activation|` per width after each step.

    For each width `n`, `make_model(n)` is built, parametrized (µP:
    `set_base_shapes(model, make_model(base_width))` and `MuAdam`/`MuSGD`;
    standard: `initialize(model, "auto")`, He/Glorot, and `Adam`/`SGD` with one
    learning rate), trained `steps` steps on the batch `(x, y)`, and after
    each step every layer's output on `x` is reduced to `mean(|h|)`. Under µP
    these stay `Θ(1)` in `n`; under the standard parametrization with Adam
    the logits grow like `n`.

    Args:
        make_model: `width -> keras.Model` (Sequential or functional, built),
            ending in a `MuReadout` for µP.
        widths: At least two widths.
        x: One batch of inputs.
        y: Its targets.
        steps: Training steps.
        optimizer: `"adam"` or `"sgd"`.
        learning_rate: Default 0.03 for Adam, 0.1 for SGD.
        mup: µP (True) or the standard parametrization.
        base_width: µP's base width (default the smallest width).
        loss: The Keras loss (default sparse categorical cross-entropy on
            logits: a `MuReadout` has no softmax).
        seed: Seeds the initialization.
        verbose: 1: a progress line per width, 0: silent.

    Returns:
        A `CoordCheck`.

    Example:

    >>> x, y = digits(64)
    >>> result = coord_check(digits_mlp, [32, 64], x, y, steps=1)
    >>> result.layers
    ['hidden0', 'hidden1', 'readout']

    Reference:
        Yang et al., "Tensor Programs V", 2022, section 6 and Appendix D.1
        (coordinate check).
    """
    widths = _check_widths(widths)
    steps = positive_int("steps", steps)
    if optimizer not in _OPTIMIZERS:
        raise ValueError(
            "Argument `optimizer` must be 'adam' or 'sgd'. "
            f"Received: optimizer={optimizer!r}"
        )
    if learning_rate is None:
        learning_rate = 0.03 if optimizer == "adam" else 0.1
    learning_rate = positive_number("learning_rate", learning_rate)
    base_width = (
        widths[0] if base_width is None else positive_int("base_width", base_width)
    )
    _check_verbose(verbose)
    x, y = np.asarray(x), np.asarray(y)
    loss = _logits_loss() if loss is None else loss

    values: dict[str, list[list[float]]] = {}
    names: list[str] = []
    for width in widths:
        model, _ = _prepare(make_model, width, base_width, mup, seed)
        model.compile(optimizer=_optimizer(optimizer, learning_rate, mup), loss=loss)
        watched = _layer_outputs(model)
        names = [graph.layer_path(layer, model) for layer in watched]
        probe = keras.Model(model.inputs[0], [layer.output for layer in watched])
        for step in range(steps):
            model.train_on_batch(x, y)
            outputs = probe(x, training=False)
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            for name, out in zip(names, outputs, strict=True):
                table = values.setdefault(name, [[] for _ in range(steps)])
                mean = float(np.mean(np.abs(keras.ops.convert_to_numpy(out))))
                table[step].append(mean)
        if verbose:
            print(
                f"{'mup' if mup else 'sp':>3} width {width:>5}: {steps} steps, "
                f"mean |{names[-1]}| {values[names[-1]][-1][-1]:.3g} "
                f"({len(values[names[-1]][-1])}/{len(widths)} widths)",
                flush=True,
            )
    return CoordCheck("mup" if mup else "sp", widths, steps, names, values)


def plot_coord_checks(results: Sequence[CoordCheck], path: str) -> str:
    """One panel per result: `|activation|` vs width, a line per layer and step.

    Args:
        results: `CoordCheck`s (e.g. µP and the standard parametrization).
        path: The PNG to write.

    Returns:
        `path`.

    Example:

    >>> result = CoordCheck("mup", [64, 128], 1, ["readout"], {"readout": [[1, 1]]})
    >>> import tempfile; path = plot_coord_checks([result], tempfile.mktemp(".png"))
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {"mup": "µP", "sp": "standard parametrization"}
    fig, axes = plt.subplots(
        1, len(results), figsize=(5.2 * len(results), 4.2), squeeze=False, sharey=True
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, result in zip(axes[0], results, strict=True):
        for i, layer in enumerate(result.layers):
            for step in range(result.steps):
                ax.plot(
                    result.widths,
                    result.values[layer][step],
                    marker="o",
                    color=colors[i % len(colors)],
                    alpha=0.35 + 0.65 * (step + 1) / result.steps,
                    label=f"{layer}, step {step + 1}",
                )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("width")
        ax.set_title(
            f"{titles.get(result.parametrization, result.parametrization)}: "
            f"logits x{result.growth():.1f} over widths"
        )
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("mean |activation|")
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------
# learning-rate transfer


@dataclasses.dataclass
class TransferResult:
    """Training loss per parametrization, width and learning rate.

    Attributes:
        widths: The widths.
        learning_rates: The learning rates, ascending.
        losses: `losses[parametrization][str(width)][j]`, the training loss
            after training at `learning_rates[j]`, averaged over `seeds` (NaN
            when a run diverged).
        optimizer: `"adam"` or `"sgd"`.
        epochs: Epochs per run (training steps for `gpt_lr_transfer`).
        seeds: The seeds averaged over.
        seed_losses: None, or `seed_losses[parametrization][str(width)][i][j]`,
            the loss of seed `seeds[i]` at `learning_rates[j]` (NaN when it
            diverged): the spread over seeds.
        over: What the widths are: `"width"`, or `"depth"` (blocks).
        loss_label: The y-axis label of `plot` (None: the training loss
            after `epochs` epochs).

    Example:

    >>> result = TransferResult([64, 128], [0.01, 0.1, 1.0], {"mup": {
    ...     "64": [1.0, 0.5, 1.0], "128": [0.9, 0.4, 0.9]}}, "adam", 1, [0])
    >>> {w: round(lr, 3) for w, lr in result.best_learning_rates("mup").items()}
    {64: 0.1, 128: 0.1}
    """

    widths: list[int]
    learning_rates: list[float]
    losses: dict[str, dict[str, list[float]]]
    optimizer: str
    epochs: int
    seeds: list[int]
    seed_losses: dict[str, dict[str, list[list[float]]]] | None = None
    over: str = "width"
    loss_label: str | None = None

    def _optimum(self, row) -> float:
        logs = np.log(np.asarray(self.learning_rates, float))
        row = np.asarray(row, float)
        row = np.where(np.isfinite(row) & (row > 0), row, np.inf)
        return float(np.exp(_vertex(logs, np.log(row), int(np.argmin(row)))))

    def best_learning_rates(self, parametrization: str) -> dict[int, float]:
        """`width -> the learning rate of the lowest loss`, interpolated.

        The vertex of the parabola through the lowest (log learning rate,
        log loss) point and its two neighbours, kept between them; the grid
        point itself at an end of the grid or next to a diverged run. So the
        optimum moves smoothly instead of jumping a grid step when two
        losses of a flat bottom swap order.
        """
        return {
            width: self._optimum(self.losses[parametrization][str(width)])
            for width in self.widths
        }

    def optimum_shift(self, parametrization: str) -> float:
        """How far the best learning rate moves: its max / min over widths.

        Example:

        >>> result = TransferResult([8, 16], [0.1, 1.0, 10.0], {"mup": {
        ...     "8": [1.0, 0.5, 1.0], "16": [0.3, 0.5, 0.9]}}, "adam", 1, [0])
        >>> round(result.optimum_shift("mup"), 6)
        10.0
        """
        best = list(self.best_learning_rates(parametrization).values())
        return float(max(best) / min(best))

    def seed_spread(self, parametrization: str) -> dict[int, dict[str, float]]:
        """Per width, the optimum and the lowest loss of each seed: mean, std.

        Each seed's curve is read as `best_learning_rates` reads the mean
        one. Without `seed_losses` the mean curve stands for every seed
        (std 0).

        Returns:
            `width -> {"lr_mean", "lr_std", "loss_mean", "loss_std"}`, the
            learning rate's mean and standard deviation in log space
            (geometric mean; `lr_std` a factor, 1 for no spread), the loss's
            in linear space.

        Example:

        >>> result = TransferResult([8, 16], [0.1, 1.0], {"mup": {
        ...     "8": [1.0, 0.5], "16": [0.3, 0.5]}}, "adam", 1, [0, 1], {"mup": {
        ...     "8": [[1.0, 0.4], [1.0, 0.6]], "16": [[0.3, 0.5], [0.3, 0.5]]}})
        >>> spread = result.seed_spread("mup")[8]
        >>> spread["lr_mean"], round(spread["loss_mean"], 3), round(spread["loss_std"], 3)
        (1.0, 0.5, 0.1)
        """  # noqa: E501 (a doctest's line)
        found = {}
        for width in self.widths:
            key = str(width)
            rows = (
                self.seed_losses[parametrization][key]
                if self.seed_losses
                else [self.losses[parametrization][key]]
            )
            logs = np.log([self._optimum(row) for row in rows])
            lows = [np.nanmin(np.where(np.isfinite(r), r, np.nan)) for r in rows]
            found[width] = {
                "lr_mean": float(np.exp(np.mean(logs))),
                "lr_std": float(np.exp(np.std(logs))),
                "loss_mean": float(np.mean(lows)),
                "loss_std": float(np.std(lows)),
            }
        return found

    def best_at_edge(self, parametrization: str) -> list[int]:
        """The widths whose lowest loss is at the first or last learning rate.

        Their optimum may lie outside the grid: the best learning rate
        reported for them is only a bound.

        Example:

        >>> result = TransferResult([8, 16], [0.1, 1.0, 10.0], {"mup": {
        ...     "8": [1.0, 0.5, 0.9], "16": [0.3, 0.5, 0.9]}}, "adam", 1, [0])
        >>> result.best_at_edge("mup")
        [16]
        """
        edges = (0, len(self.learning_rates) - 1)
        found = []
        for width in self.widths:
            row = np.asarray(self.losses[parametrization][str(width)], float)
            row = np.where(np.isfinite(row) & (row > 0), row, np.inf)
            if np.isfinite(row).any() and int(np.argmin(row)) in edges:
                found.append(width)
        return found

    def to_dict(self) -> dict:
        """A JSON-ready dict (NaN as null), with the best learning rates.

        `best_at_edge` lists, per parametrization, the widths whose best
        learning rate is at an end of the grid.
        """
        data = dataclasses.asdict(self)
        data["losses"] = {
            p: {
                w: [v if math.isfinite(v) else None for v in row]
                for w, row in d.items()
            }
            for p, d in self.losses.items()
        }
        data["best_learning_rates"] = {
            p: {str(k): v for k, v in self.best_learning_rates(p).items()}
            for p in self.losses
        }
        data["best_at_edge"] = {p: self.best_at_edge(p) for p in self.losses}
        data["optimum_shift"] = {p: self.optimum_shift(p) for p in self.losses}
        data["seed_spread"] = {
            p: {str(k): v for k, v in self.seed_spread(p).items()} for p in self.losses
        }
        if self.seed_losses is not None:
            data["seed_losses"] = {
                p: {
                    w: [[v if math.isfinite(v) else None for v in r] for r in rows]
                    for w, rows in d.items()
                }
                for p, d in self.seed_losses.items()
            }
        return data

    def plot(self, path: str) -> str:
        """Writes the figure: loss vs learning rate, a curve per width.

        A panel per parametrization (the standard one, then µP), the
        interpolated optimum dotted, and with `seed_losses` a band of one
        standard deviation over seeds; each title gives how far the optimum
        moves across widths.
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        titles = {"sp": "standard parametrization", "mup": "µP"}
        parts = [p for p in ("sp", "mup") if p in self.losses]
        fig, axes = plt.subplots(
            1, len(parts), figsize=(5.2 * len(parts), 4.2), squeeze=False, sharey=True
        )
        for ax, part in zip(axes[0], parts, strict=True):
            best = self.best_learning_rates(part)
            for width in self.widths:
                row = np.asarray(self.losses[part][str(width)], float)
                (line,) = ax.plot(
                    self.learning_rates, row, marker="o", label=f"{self.over} {width}"
                )
                if self.seed_losses:
                    spread = np.std(self.seed_losses[part][str(width)], axis=0)
                    ax.fill_between(
                        self.learning_rates,
                        row - spread,
                        row + spread,
                        color=line.get_color(),
                        alpha=0.2,
                    )
                ax.axvline(best[width], color=line.get_color(), ls=":", alpha=0.8)
            ax.set_xscale("log")
            ax.set_xlabel(f"learning rate ({self.optimizer})")
            ax.set_title(
                f"{titles[part]}: optimum moves x{self.optimum_shift(part):.2g}"
            )
            ax.grid(True, which="both", alpha=0.3)
        seeds = f", mean of {len(self.seeds)} seeds" if len(self.seeds) > 1 else ""
        label = self.loss_label or f"training loss after {self.epochs} epochs"
        axes[0][0].set_ylabel(label + seeds)
        finite = [
            v
            for d in self.losses.values()
            for row in d.values()
            for v in row
            if math.isfinite(v)
        ]
        if finite:
            cap = 3.0 if self.loss_label is None else 2.0 * min(finite)
            axes[0][0].set_ylim(
                max(min(finite) * 0.8, 1e-3), min(max(finite), cap) * 1.1
            )
        axes[0][0].set_yscale("log")
        axes[0][-1].legend()
        fig.tight_layout()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def _vertex(x: np.ndarray, y: np.ndarray, i: int) -> float:
    """The abscissa of the minimum of the parabola through points i-1, i, i+1.

    `x[i]` where the parabola does not open upwards, `i` is an end, or a
    neighbour is not finite; the result lies in `[x[i-1], x[i+1]]`.

    Example:

    >>> x = np.array([0.0, 1.0, 2.0])
    >>> round(_vertex(x, (x - 0.8) ** 2, 1), 6)
    0.8
    """
    if i == 0 or i == len(x) - 1 or not np.all(np.isfinite(y[i - 1 : i + 2])):
        return float(x[i])
    (x0, x1, x2), (y0, y1, y2) = x[i - 1 : i + 2], y[i - 1 : i + 2]
    a = ((y2 - y1) / (x2 - x1) - (y1 - y0) / (x1 - x0)) / (x2 - x0)
    if a <= 0:
        return float(x1)
    b = (y1 - y0) / (x1 - x0) - a * (x0 + x1)
    return float(np.clip(-b / (2 * a), x0, x2))


def _restart(model: keras.Model, learning_rate: float) -> None:
    """Zeroes the optimizer's state and sets its learning rate.

    So the compiled model trains again from step 0 without being traced again.
    """
    optimizer = model.optimizer
    for variable in optimizer.variables:
        variable.assign(keras.ops.zeros(variable.shape, variable.dtype))
    optimizer.learning_rate.assign(learning_rate)


def _check_verbose(verbose) -> None:
    """Raises `ValueError` unless `verbose` is the int 0 or 1."""
    if verbose not in (0, 1) or isinstance(verbose, bool):
        raise ValueError(
            f"Argument `verbose` must be 0 or 1. Received: verbose={verbose!r}"
        )


def _check_runs(learning_rates, seeds, parametrizations):
    """A sweep's learning rates (sorted) and seeds (a list), or `ValueError`."""
    rates = sorted(positive_number("learning_rates", v) for v in learning_rates)
    if not rates:
        raise ValueError(
            "Argument `learning_rates` must hold at least one positive number. "
            f"Received: learning_rates={learning_rates!r}"
        )
    seeds = list(seeds)
    if not seeds or not all(is_int(s) and s >= 0 for s in seeds):
        raise ValueError(
            "Argument `seeds` must hold at least one non-negative int. "
            f"Received: seeds={seeds!r}"
        )
    if not parametrizations or any(p not in ("mup", "sp") for p in parametrizations):
        raise ValueError(
            "Argument `parametrizations` must hold 'mup' and/or 'sp'. "
            f"Received: parametrizations={parametrizations!r}"
        )
    return rates, seeds


def lr_transfer(
    widths: Sequence[int] = (64, 256, 1024),
    learning_rates: Sequence[float] | None = None,
    epochs: int = 3,
    optimizer: str = "adam",
    batch_size: int = 128,
    parametrizations: Sequence[str] = ("sp", "mup"),
    seeds: Sequence[int] = (0, 1, 2),
    verbose: int = 0,
) -> TransferResult:
    """Training loss vs learning rate per width, for µP and the standard one.

    Each run trains `digits_mlp(width)` on the digits data for `epochs`
    epochs (µP: base width `min(widths)`, `MuAdam`/`MuSGD`; standard:
    He/Glorot and `Adam`/`SGD`) and reports the loss on the whole training
    set, averaged over `seeds` (each seed sets the initialization and the
    data order). Under µP the best learning rate stays put as the width
    grows; under the standard parametrization with Adam it moves down.

    One model is built and compiled per parametrization and width; each run
    re-draws its weights in place and zeroes the optimizer's state, so runs
    share one traced training step.

    Args:
        widths: At least two widths.
        learning_rates: Default `10 ** linspace(-4, -0.5, 8)` for Adam,
            `10 ** linspace(-2.5, 1, 8)` for SGD.
        epochs: Epochs per run.
        optimizer: `"adam"` or `"sgd"`.
        batch_size: Batch size.
        parametrizations: Any of `"sp"`, `"mup"`.
        seeds: Non-negative ints, at least one; the losses are their mean.
        verbose: 1: a line per run.

    Returns:
        A `TransferResult`.

    Example:

    >>> result = lr_transfer([16, 32], [1e-3, 1e-2], epochs=1, seeds=[0])
    >>> sorted(result.losses)
    ['mup', 'sp']

    Reference:
        Yang et al., "Tensor Programs V", 2022, Fig. 1.
    """
    widths = _check_widths(widths)
    epochs = positive_int("epochs", epochs)
    batch_size = positive_int("batch_size", batch_size)
    if optimizer not in _OPTIMIZERS:
        raise ValueError(
            "Argument `optimizer` must be 'adam' or 'sgd'. "
            f"Received: optimizer={optimizer!r}"
        )
    if learning_rates is None:
        low, high = (-4.0, -0.5) if optimizer == "adam" else (-2.5, 1.0)
        learning_rates = [float(v) for v in 10 ** np.linspace(low, high, 8)]
    learning_rates, seeds = _check_runs(learning_rates, seeds, parametrizations)
    x, y = digits()
    losses: dict[str, dict[str, list[float]]] = {}
    for part in parametrizations:
        mup = part == "mup"
        for width in widths:
            model, base = _prepare(digits_mlp, width, widths[0], mup, seeds[0])
            model.compile(
                optimizer=_optimizer(optimizer, learning_rates[0], mup),
                loss=_logits_loss(),
            )
            runs = np.empty((len(seeds), len(learning_rates)))
            for i, seed in enumerate(seeds):
                for j, lr in enumerate(learning_rates):
                    _reinitialize(model, base, seed)
                    _restart(model, lr)
                    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0)
                    loss = float(model.evaluate(x, y, batch_size=512, verbose=0))
                    runs[i, j] = loss if math.isfinite(loss) else np.nan
                    if verbose:
                        print(
                            f"{part:>3} width {width:>5} seed {seed} lr {lr:.2e}: "
                            f"loss {loss:.4f}",
                            flush=True,
                        )
            # a learning rate that diverged for any seed counts as diverged
            losses.setdefault(part, {})[str(width)] = runs.mean(axis=0).tolist()
    return TransferResult(widths, learning_rates, losses, optimizer, epochs, seeds)


def write_json(data: dict, path: str) -> str:
    """Writes `data` as indented JSON to `path` (folders made)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
    return path


# --------------------------------------------------------------------------
# the GPT-2-style language model (KerasHub GPT-2 on the stdlib's bytes)

_OVER = ("width", "depth")


def _gpt_probe(model: keras.Model, depth: int) -> keras.Model:
    """Token ids -> the last transformer block's output, sharing `model`'s layers."""
    backbone = next(
        layer for layer in model.layers if hasattr(layer, "token_embedding")
    )
    block = backbone.get_layer(f"transformer_layer_{depth - 1}")
    return keras.Model(backbone.inputs, block.output)


def gpt_coord_check(
    sizes: Sequence[int],
    over: str = "width",
    mup: bool = True,
    steps: int = 3,
    learning_rate: float = 0.01,
    width: int = 64,
    depth: int = 2,
    batch: int = 8,
    length: int = 32,
    seed: int = 0,
) -> CoordCheck:
    """The coordinate check on `lm.hub_lm` (KerasHub GPT-2) over width or depth.

    Each model (`over="width"`: `hub_lm(depth, n)` for `n` in `sizes`;
    `over="depth"`: `hub_lm(n, width)`) is trained `steps` Adam steps on one
    batch of stdlib bytes; after each step it records the mean `|logit|`
    (`"logits"`), the last block's mean `|output|` (`"last_block"`) and the
    change of the residual stream, mean `|h_t - h_0|` of that output
    (`"residual_change"`). µP: `set_base_shapes` against the smallest size
    (`depth_alpha=1`) and `MuAdam`; standard: `initialize(model, "auto")`
    and `Adam`. The probe is a functional model sharing the layers, so it
    runs on every backend.

    Args:
        sizes: At least two widths (or depths), ascending after checking.
        over: `"width"` or `"depth"`.
        mup: µP + depth rules (True) or the standard parametrization.
        steps: Adam steps.
        learning_rate: Adam's learning rate.
        width: The width when `over="depth"`.
        depth: The depth when `over="width"`.
        batch: Windows in the batch.
        length: Bytes per window (at most `lm.CONTEXT`).
        seed: Seeds the initialization and the batch.

    Returns:
        A `CoordCheck` whose `widths` are the sizes.

    Example:

    >>> result = gpt_coord_check([16, 32], steps=1, depth=1, batch=2, length=8)
    >>> result.layers
    ['last_block', 'residual_change', 'logits']
    """
    from keras_weightinit import lm

    if over not in _OVER:
        raise ValueError(
            f"Argument `over` must be 'width' or 'depth'. Received: over={over!r}"
        )
    sizes = _check_widths(sizes)
    steps = positive_int("steps", steps)
    learning_rate = positive_number("learning_rate", learning_rate)
    train, _ = lm.stdlib_corpus(200_000)
    x, y = lm.windows(train, positive_int("batch", batch), seed=seed)
    x, y = x[:, : positive_int("length", length)], y[:, :length]
    mask = np.ones_like(x)

    def make(n: int) -> keras.Model:
        return lm.hub_lm(depth, n) if over == "width" else lm.hub_lm(n, width)

    names = ["last_block", "residual_change", "logits"]
    values = {name: [[] for _ in range(steps)] for name in names}
    for n in sizes:
        model, _ = _prepare(make, n, sizes[0], mup, seed)
        model.compile(
            optimizer=_optimizer("adam", learning_rate, mup), loss=_logits_loss()
        )
        probe = _gpt_probe(model, depth if over == "width" else n)
        h0 = keras.ops.convert_to_numpy(probe({"token_ids": x, "padding_mask": mask}))
        for step in range(steps):
            model.train_on_batch(x, y)
            h = keras.ops.convert_to_numpy(
                probe({"token_ids": x, "padding_mask": mask})
            )
            logits = keras.ops.convert_to_numpy(model(x, training=False))
            values["last_block"][step].append(float(np.mean(np.abs(h))))
            values["residual_change"][step].append(float(np.mean(np.abs(h - h0))))
            values["logits"][step].append(float(np.mean(np.abs(logits))))
    return CoordCheck("mup" if mup else "sp", sizes, steps, names, values)


def _gpt_loss(model, seed, data, steps, batch, length) -> float:
    """`steps` steps on random windows from `seed`, then the held-out loss."""
    from keras_weightinit import lm

    train, held = data
    for step in range(steps):
        x, y = lm.windows(train, batch, seed=seed * 100_003 + step)
        model.train_on_batch(x[:, :length], y[:, :length])
    x, y = lm.windows(held, 4 * batch)
    loss = float(model.evaluate(x[:, :length], y[:, :length], verbose=0))
    return loss if math.isfinite(loss) else math.nan


def gpt_lr_transfer(
    sizes: Sequence[int],
    learning_rates: Sequence[float],
    over: str = "width",
    seeds: Sequence[int] = (0, 1, 2),
    steps: int = 30,
    width: int = 64,
    depth: int = 2,
    batch: int = 8,
    length: int = 32,
    parametrizations: Sequence[str] = ("mup", "sp"),
    verbose: int = 0,
) -> TransferResult:
    """Held-out loss against Adam's learning rate on `lm.hub_lm`, µP and standard.

    Each size (`over="width"`: widths at `depth`; `"depth"`: depths at
    `width`) trains `steps` steps on random stdlib-byte windows per learning
    rate and seed (the seed draws the weights and the windows); the loss is
    measured on held-out windows, NaN when a run diverged. µP + depth rules:
    `set_base_shapes` against the smallest size (`depth_alpha=1`) and
    `MuAdam`; standard: `initialize(model, "auto")` and `Adam`.

    One model is built and compiled per parametrization and size; each run
    loads its seed's initial weights into it and zeroes the optimizer's
    state, so the runs share one traced training step.

    Args:
        sizes: At least two widths (or depths).
        learning_rates: Adam's learning rates.
        over: `"width"` or `"depth"`.
        seeds: Non-negative ints, at least one; the losses are their mean.
        steps: Training steps per run.
        width: The width when `over="depth"`.
        depth: The depth when `over="width"`.
        batch: Windows per step.
        length: Bytes per window (at most `lm.CONTEXT`).
        parametrizations: Any of `"mup"`, `"sp"`.
        verbose: 1: a line per run.

    Returns:
        A `TransferResult` (`widths` the sizes, `epochs` the steps, the
        losses of each seed in `seed_losses`).

    Example:

    >>> r = gpt_lr_transfer([8, 16], [0.01], seeds=(0,), steps=1, depth=1,
    ...                     batch=2, length=8)
    >>> sorted(r.losses), r.over
    (['mup', 'sp'], 'width')

    Reference:
        Yang et al., "Tensor Programs V", 2022, Fig. 1 (width); Dey et al.,
        "Don't be lazy: CompleteP enables compute-efficient deep
        transformers", 2025 (depth).
    """
    from keras_weightinit import lm

    if over not in _OVER:
        raise ValueError(
            f"Argument `over` must be 'width' or 'depth'. Received: over={over!r}"
        )
    sizes = _check_widths(sizes)
    rates, seeds = _check_runs(learning_rates, seeds, parametrizations)
    steps = positive_int("steps", steps)
    batch = positive_int("batch", batch)
    length = positive_int("length", length)
    _check_verbose(verbose)
    data = lm.stdlib_corpus(400_000)

    def make(n: int) -> keras.Model:
        return lm.hub_lm(depth, n) if over == "width" else lm.hub_lm(n, width)

    seed_losses: dict[str, dict[str, list[list[float]]]] = {}
    for part in parametrizations:
        mup = part == "mup"
        for n in sizes:
            model, _ = _prepare(make, n, sizes[0], mup, seeds[0])
            model.compile(
                optimizer=_optimizer("adam", rates[0], mup), loss=_logits_loss()
            )
            runs = []
            for i, seed in enumerate(seeds):
                start = model if i == 0 else _prepare(make, n, sizes[0], mup, seed)[0]
                start = start.get_weights()
                runs.append([])
                for lr in rates:
                    model.set_weights(start)
                    _restart(model, lr)
                    runs[-1].append(_gpt_loss(model, seed, data, steps, batch, length))
                    if verbose:
                        print(
                            f"{part:>3} {over} {n:>5} seed {seed} lr {lr:.2e}: "
                            f"loss {runs[-1][-1]:.4f}",
                            flush=True,
                        )
            seed_losses.setdefault(part, {})[str(n)] = runs
    losses = {
        part: {n: np.mean(runs, axis=0).tolist() for n, runs in by_size.items()}
        for part, by_size in seed_losses.items()
    }
    return TransferResult(
        sizes,
        rates,
        losses,
        "adam",
        steps,
        seeds,
        seed_losses=seed_losses,
        over=over,
        loss_label=f"held-out loss after {steps} steps",
    )
