"""The article, replayed: one deep network trained under each initialization.

`compare(CompareConfig(...))` trains the same MLP from every scheme and seed,
writes TensorBoard runs `<logdir>/<scheme>/seed<k>/{train,validation,gradients}`
and a summary (`summary.md`, `summary.json`, `summary.png`). The command line
front end is `keras-weightinit compare` (`keras_weightinit_cli`), whose
`keras_weightinit_cli.settings` defines `CompareConfig` without Keras.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import keras
import numpy as np

from keras_weightinit.callbacks import DBNPretrain, GradientHistograms, LSUVInit
from keras_weightinit.diagnostics import diagnose
from keras_weightinit.gains import activation_name
from keras_weightinit.initializers import scheme_names
from keras_weightinit.model_init import initialize
from keras_weightinit.pretraining import UNITS_FOR_ACTIVATION
from keras_weightinit_cli.settings import (  # the command line's: no Keras there
    ARTICLE_SCHEMES,
    DATA_DEPENDENT,
    DATASETS,
    CompareConfig,
    check_config,
)
from keras_weightinit_cli.settings import OPTIMIZERS as OPTIMIZERS

__all__ = [
    "ARTICLE_SCHEMES",
    "CompareConfig",
    "compare",
    "format_summary",
    "build_mlp",
    "build_resmlp",
    "load_dataset",
    "resolve_scheme",
    "validate",
]

# ------------------------------------------------------------ validation


def resolve_scheme(name: str):
    """What `initialize` takes for a scheme: its name, or an initializer.

    `get_scheme` names and `"auto"` stay names; other strings become the
    initializer Keras deserializes (`"keras_weightinit>HeUniform"`,
    `"glorot_uniform"`); `"dbn"` and `"lsuv"`, which need data, give None.

    Raises:
        ValueError: If `name` is neither a known scheme nor an initializer
            that Keras can deserialize.
    """
    if name in ("dbn", "lsuv"):
        return None
    if name in scheme_names() or name == "auto":
        return name
    try:
        return keras.initializers.get(name)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"Unknown scheme {name!r}. {_known_schemes()}. Received: name={name!r}"
        ) from error


def _known_schemes() -> str:
    return (
        f"Known schemes: {', '.join(scheme_names() + list(DATA_DEPENDENT))}, or "
        "an initializer string such as 'keras_weightinit>HeNormal' or "
        "'glorot_uniform'"
    )


def validate(config: CompareConfig) -> None:
    """Checks every setting of `config`; `compare` calls it first.

    `check_config`'s checks, which need no Keras, then the activation (one
    Keras knows, with RBM hidden units for it if `schemes` has `dbn`) and
    each scheme (`resolve_scheme`).

    Args:
        config: The settings.

    Raises:
        ValueError: For the first bad setting, naming it as the package names
            an argument: ``Argument `depth` must be a positive int.
            Received: depth=0``.
    """
    check_config(config)
    try:
        activation = activation_name(keras.activations.get(config.activation))
    except (ValueError, TypeError):
        raise ValueError(
            "Argument `activation` must be the name of a Keras activation. "
            f"Received: activation={config.activation!r}"
        ) from None
    if "dbn" in config.schemes and activation not in UNITS_FOR_ACTIVATION:
        raise ValueError(
            f"Argument `activation` must be one of {tuple(UNITS_FOR_ACTIVATION)} "
            "with the 'dbn' scheme (RBM hidden units exist for those). "
            f"Received: activation={config.activation!r}"
        )
    for name in config.schemes if config.model != "gpt" else ():  # compare_lm's
        try:
            resolve_scheme(name.partition("+")[0])
        except ValueError:
            raise ValueError(
                f"Argument `schemes` has an unknown scheme {name!r}. "
                f"{_known_schemes()}. Received: schemes={tuple(config.schemes)!r}"
            ) from None


# ------------------------------------------------------------------ data


def load_dataset(name: str, max_train: int | None = None):
    """Returns `(x_train, y_train, x_val, y_val)`, inputs flat and float32.

    `digits` is scikit-learn's bundled `load_digits` (8x8 images scaled to
    [0, 1]) with a fixed stratified 75/25 split; `mnist` and `fashion_mnist`
    come from `keras.datasets` (downloaded once, so they need a network) scaled
    to [0, 1]; any other name is read as an `.npz` path with `x_train, y_train,
    x_test, y_test`, used as given.
    """
    if name == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        x, y = load_digits(return_X_y=True)
        splits = train_test_split(
            x / 16.0, y, test_size=0.25, random_state=0, stratify=y
        )
        x_train, x_val, y_train, y_val = splits
    elif name in ("mnist", "fashion_mnist"):
        module = getattr(keras.datasets, name)
        try:
            (x_train, y_train), (x_val, y_val) = module.load_data()
        except Exception as error:
            raise ValueError(f"could not load dataset {name!r}: {error}") from None
        x_train, x_val = x_train / 255.0, x_val / 255.0
    else:
        path = Path(name)
        if path.suffix != ".npz":
            raise ValueError(
                f"unknown --dataset {name!r}; use {', '.join(DATASETS)} or a .npz path"
            )
        x_train, y_train, x_val, y_val = _read_npz(path)
    arrays = [
        _numeric(name, "x_train", x_train).reshape(len(x_train), -1),
        _labels(name, "y_train", y_train),
        _numeric(name, "x_test", x_val).reshape(len(x_val), -1),
        _labels(name, "y_test", y_val),
    ]
    if len(arrays[0]) != len(arrays[1]) or len(arrays[2]) != len(arrays[3]):
        raise ValueError(f"dataset {name!r}: inputs and labels differ in length")
    if max_train is not None:
        arrays[0], arrays[1] = arrays[0][:max_train], arrays[1][:max_train]
    if min(len(a) for a in arrays) == 0:
        raise ValueError(f"dataset {name!r} is empty")
    return tuple(arrays)


_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _read_npz(path: Path) -> tuple[np.ndarray, ...]:
    """The four arrays of an `.npz`; `ValueError` saying why not, in one line."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in _NPZ_KEYS if key not in archive.files]
            if missing:
                raise ValueError(
                    f"it has no {', '.join(missing)} (it has "
                    f"{', '.join(archive.files) or 'no arrays'})"
                )
            arrays = []
            for key in _NPZ_KEYS:
                try:
                    arrays.append(archive[key])
                except ValueError as error:
                    if "allow_pickle" not in str(error):
                        raise
                    raise ValueError(
                        f"{key} holds Python objects (a pickled object array), "
                        "which compare does not load; save numeric arrays"
                    ) from None
    except Exception as error:
        raise ValueError(f"cannot read {str(path)!r}: {error}") from None
    return tuple(arrays)


def _numeric(dataset: str, key: str, values, dtype: str = "float32") -> np.ndarray:
    """`values` as `dtype`, or `ValueError` for non-numbers, NaN or inf."""
    try:
        array = np.asarray(values, dtype)
    except (TypeError, ValueError):
        raise ValueError(
            f"dataset {dataset!r}: {key} must hold numbers. Received: dtype="
            f"{np.asarray(values).dtype}"
        ) from None
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise ValueError(
            f"dataset {dataset!r}: {key} has {bad} non-finite values (NaN or "
            f"inf) of {np.size(array)}; replace or drop them"
        )
    return array


def _labels(dataset: str, key: str, values) -> np.ndarray:
    """Class indices as int64, or `ValueError` unless whole numbers >= 0."""
    array = _numeric(dataset, key, values, "float64").ravel()
    if np.any(array < 0) or np.any(array != np.round(array)):
        raise ValueError(
            f"dataset {dataset!r}: {key} must hold class indices (ints >= 0). "
            f"Received: values from {array.min():g} to {array.max():g}"
        )
    return array.astype("int64")


# ----------------------------------------------------------------- runs


def build_mlp(
    n_inputs: int, n_classes: int, depth: int, width: int, activation: str
) -> keras.Model:
    """The compared network: `depth` hidden Dense layers and a softmax."""
    layers = [keras.Input((n_inputs,))]
    layers += [
        keras.layers.Dense(width, activation=activation, name=f"dense_{i}")
        for i in range(depth)
    ]
    layers.append(keras.layers.Dense(n_classes, activation="softmax", name="output"))
    return keras.Sequential(layers, name="mlp")


def build_resmlp(
    n_inputs: int, n_classes: int, depth: int, width: int, activation: str
) -> keras.Model:
    """A residual MLP: a stem, `depth` blocks `x + W2 f(W1 x)`, a softmax.

    No normalization, so every block adds its branch's variance to the
    trunk: the network the residual recipes are for.

    Example:

    >>> model = build_resmlp(64, 10, depth=2, width=16, activation="relu")
    >>> len(model.layers)
    9
    """
    inputs = keras.Input((n_inputs,))
    h = keras.layers.Dense(width, activation=activation, name="stem")(inputs)
    for i in range(depth):
        branch = keras.layers.Dense(width, activation=activation, name=f"block{i}_a")(h)
        branch = keras.layers.Dense(width, name=f"block{i}_b")(branch)
        h = keras.layers.Add(name=f"block{i}_add")([h, branch])
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="output")(h)
    return keras.Model(inputs, outputs, name="resmlp")


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """The comparison's optimizer: SGD with momentum 0.9, Adam or RMSprop."""
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    return keras.optimizers.RMSprop(learning_rate)


class _DiagnoseAtStart(keras.callbacks.Callback):
    """Diagnoses the model once its initialization is final (after DBN/LSUV)."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y, self.report = x, y, None

    def on_train_begin(self, logs=None):
        self.report = diagnose(self.model, self.x, self.y)


class Progress(keras.callbacks.Callback):
    """One line per run, rewritten in place on a terminal.

    A subclass words the line (`line`) for its own metrics.
    """

    def __init__(self, label: str, epochs: int, stream=None):
        super().__init__()
        self.label, self.epochs = label, epochs
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()

    def line(self, epoch: int, logs: dict) -> str:
        """The progress line after `epoch` (from 1) with that epoch's `logs`."""
        return (
            f"{self.label} epoch {epoch}/{self.epochs} "
            f"loss {logs.get('loss', float('nan')):.4f} "
            f"val_accuracy {logs.get('val_accuracy', float('nan')):.3f}"
        )

    def on_epoch_end(self, epoch, logs=None):
        if self.tty:
            self.stream.write("\r\033[K" + self.line(epoch + 1, logs or {}))
            self.stream.flush()
        self._last = (epoch + 1, logs or {})

    def on_train_end(self, logs=None):
        prefix = "\r\033[K" if self.tty else ""
        self.stream.write(prefix + self.line(*self._last) + "\n")
        self.stream.flush()


def _n_classes(data) -> int:
    """Number of classes of `(x_train, y_train, x_val, y_val)`: labels 0..n-1."""
    return int(max(data[1].max(), data[3].max())) + 1


def run_dirname(scheme: str) -> str:
    """The directory name of a scheme's runs: characters a path may hold."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", scheme)


def _run(scheme: str, seed: int, data, config: CompareConfig, label: str) -> dict:
    x_train, y_train, x_val, y_val = data
    keras.utils.set_random_seed(seed)
    n_classes = _n_classes(data)
    build = build_resmlp if config.model == "resmlp" else build_mlp
    model = build(
        x_train.shape[1], n_classes, config.depth, config.width, config.activation
    )
    base, _, recipe = scheme.partition("+")
    if base not in ("dbn", "lsuv"):
        # one initializer per layer, each with a seed of its own
        initialize(model, resolve_scheme(base), seed=seed, residual=recipe or None)
    model.compile(
        make_optimizer(config.optimizer, config.learning_rate),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        # same numbers, a third less time on a CPU; PyTorch's trainer runs one
        steps_per_execution=1 if keras.backend.backend() == "torch" else 8,
    )
    callbacks = []
    if scheme == "dbn":
        callbacks.append(
            DBNPretrain(x_train, epochs=config.dbn_epochs, verbose=0, seed=seed)
        )
    elif scheme == "lsuv":
        callbacks.append(LSUVInit(x_train[:256], seed=seed))
    probe = (x_train[:256], y_train[:256])
    run_dir = Path(config.logdir) / run_dirname(scheme) / f"seed{seed}"
    diagnosis = _DiagnoseAtStart(*probe)
    callbacks += [
        diagnosis,
        GradientHistograms(str(run_dir), probe),
        keras.callbacks.TensorBoard(str(run_dir), write_graph=False),
    ]
    if config.verbose:
        callbacks.append(Progress(label, config.epochs))
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=config.epochs,
        batch_size=config.batch_size,
        callbacks=callbacks,
        verbose=0,
    )
    report = diagnosis.report
    return {
        "seed": seed,
        "loss": [float(v) for v in history.history["loss"]],
        "val_accuracy": [float(v) for v in history.history["val_accuracy"]],
        "verdict": report.verdict,
        "gradient_ratio": float(report.gradient_ratio),
        "layers": [
            {
                "name": r["name"],
                "std": float(r["std"]),
                "grad_norm": float(r["grad_norm"]),
            }
            for r in report.rows
        ],
    }


# --------------------------------------------------------------- summary


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def json_safe(value):
    """Non-finite floats become null, so any JSON reader takes the file."""
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _summarize(scheme: str, runs: list[dict], target: float) -> dict:
    final_loss = np.array([r["loss"][-1] for r in runs])
    final_acc = np.array([r["val_accuracy"][-1] for r in runs])
    reached = [
        next((i + 1 for i, a in enumerate(r["val_accuracy"]) if a >= target), None)
        for r in runs
    ]
    hit = [e for e in reached if e is not None]
    ratios = np.array([r["gradient_ratio"] for r in runs])
    return {
        "scheme": scheme,
        "final_loss_mean": _finite(np.mean(final_loss)),
        "final_loss_std": _finite(np.std(final_loss)),
        "val_accuracy_mean": float(np.mean(final_acc)),
        "val_accuracy_std": float(np.std(final_acc)),
        "epochs_to_target": reached,
        "epochs_to_target_mean": float(np.mean(hit)) if hit else None,
        "runs_reaching_target": len(hit),
        "gradient_ratio_median": _finite(np.median(ratios)),
        "verdict": Counter(r["verdict"] for r in runs).most_common(1)[0][0],
        "runs": runs,
    }


def _fmt(value, spec: str) -> str:
    return "nan" if value is None else format(value, spec)


def format_summary(summary: dict) -> str:
    """The markdown table of `summary.md`."""
    c = summary["config"]
    target = c["target_accuracy"]
    lines = [
        "# keras-weightinit compare",
        "",
        f"{c['dataset']}, {c['depth']} x {c['width']} {c['activation']} "
        f"{'residual blocks' if c.get('model') == 'resmlp' else 'MLP'}, "
        f"{c['optimizer']} lr {c['learning_rate']}, batch {c['batch_size']}, "
        f"{c['epochs']} epochs, {c['seeds']} seed(s). Mean ± std over seeds.",
        "",
        "| scheme | final train loss | val accuracy | epochs to "
        f"{target:.0%} (runs) | grad ratio first/last at init | verdict at init |",
        "|---|---|---|---|---|---|",
    ]
    for s in summary["schemes"]:
        epochs = s["epochs_to_target_mean"]
        reached = (
            f"{epochs:.1f} ({s['runs_reaching_target']}/{len(s['runs'])})"
            if epochs is not None
            else f"never (0/{len(s['runs'])})"
        )
        lines.append(
            f"| {s['scheme']} "
            f"| {_fmt(s['final_loss_mean'], '.3f')} "
            f"± {_fmt(s['final_loss_std'], '.3f')} "
            f"| {s['val_accuracy_mean']:.3f} ± {s['val_accuracy_std']:.3f} "
            f"| {reached} | {_fmt(s['gradient_ratio_median'], '.2e')} "
            f"| {s['verdict']} |"
        )
    lines += [
        "",
        "Grad ratio: norm of the loss gradient w.r.t. the first hidden layer's "
        "output over the same for the last layer, on a probe batch, at "
        "initialization (after pretraining for dbn/lsuv), median over seeds; "
        "far below 1 means vanishing gradients.",
        "",
        f"TensorBoard: `tensorboard --logdir {c['logdir']}`",
        "",
    ]
    return "\n".join(lines)


def _plot(summary: dict, path: Path) -> None:
    """Accuracy curves, and per layer at initialization std and |dL/dh|."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    acc_ax, std_ax, grad_ax = axes
    styles = ["-", "--", "-.", ":"]
    panels = LayerPanels(std_ax, grad_ax)
    for i, s in enumerate(summary["schemes"]):
        curves = np.array([r["val_accuracy"] for r in s["runs"]], dtype=float)
        epochs = np.arange(1, curves.shape[1] + 1)
        style = {"ls": styles[i % len(styles)], "lw": 1.8}
        label = f"{s['scheme']} ({s['val_accuracy_mean']:.2f})"
        (line,) = acc_ax.plot(epochs, curves.mean(0), label=label, **style)
        acc_ax.fill_between(
            epochs, curves.min(0), curves.max(0), alpha=0.15, color=line.get_color()
        )
        panels.add(s, {**style, "color": line.get_color(), "ms": 3})
    acc_ax.axhline(summary["chance"], color="gray", lw=1, ls=(0, (1, 3)))
    acc_ax.set(
        xlabel="epoch",
        ylabel="validation accuracy",
        ylim=(0, 1),
        title="Validation accuracy (mean over seeds, band min-max)",
    )
    acc_ax.legend(fontsize=8, title="scheme (final)", title_fontsize=8)
    panels.label("Dense layer (last = output)")
    acc_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    acc_ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------- shared with the language model


def clear_logdir(logdir: Path, schemes) -> None:
    """Removes the runs of `schemes` and the summary files, creating `logdir`."""
    for scheme in schemes:
        shutil.rmtree(logdir / run_dirname(scheme), ignore_errors=True)
    for name in ("summary.json", "summary.md", "summary.png"):
        (logdir / name).unlink(missing_ok=True)
    logdir.mkdir(parents=True, exist_ok=True)


def write_summary(logdir: Path, summary: dict, markdown: str, plot) -> None:
    """Writes `summary.json`, `summary.md` and `plot(summary, summary.png)`."""
    (logdir / "summary.json").write_text(json.dumps(summary, indent=1, allow_nan=False))
    (logdir / "summary.md").write_text(markdown)
    plot(summary, logdir / "summary.png")


class LayerPanels:
    """The two per-layer plot panels at initialization: output std, |dL/dh|.

    Each scheme's first run is drawn layer by layer on a log scale; values
    that are 0 or not finite cannot be, and a scheme with none left is named
    on the panel instead.
    """

    _PANELS = (
        ("std", "std of layer output", "Forward: activation std at init"),
        ("grad_norm", "||dL / d layer output||", "Backward: gradient norm at init"),
    )

    def __init__(self, std_ax, grad_ax):
        self.axes = (std_ax, grad_ax)
        self.hidden: tuple[list, list] = ([], [])

    def add(self, scheme: dict, style: dict) -> None:
        """Draws `scheme`'s layers with the line `style` (matplotlib keywords)."""
        layers = scheme["runs"][0]["layers"]
        index = np.arange(1, len(layers) + 1)
        for ax, hidden, (key, _, _) in zip(
            self.axes, self.hidden, self._PANELS, strict=True
        ):
            values = np.array([layer[key] for layer in layers], dtype=float)
            values[~np.isfinite(values) | (values <= 0)] = np.nan
            if np.all(np.isnan(values)):
                hidden.append(scheme["scheme"])
            ax.plot(index, values, marker="o", **style)

    def label(self, xlabel: str) -> None:
        """Titles, log scales, a grid and the schemes not shown."""
        from matplotlib.ticker import MaxNLocator

        for ax, hidden, (_, ylabel, title) in zip(
            self.axes, self.hidden, self._PANELS, strict=True
        ):
            ax.set(xlabel=xlabel, ylabel=ylabel, yscale="log", title=title)
            if hidden:
                ax.text(
                    0.02,
                    0.02,
                    f"not shown (0 or not finite): {', '.join(hidden)}",
                    transform=ax.transAxes,
                    fontsize=8,
                    color="gray",
                )
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def compare(config: CompareConfig, data: tuple | None = None) -> dict:
    """Runs the comparison and writes the runs and summaries to `config.logdir`.

    Every setting is checked and the data loaded before anything is written.
    Previous runs of the same schemes and the previous summary under `logdir`
    are removed first, so a failed comparison leaves no stale summary.

    Args:
        config: The settings.
        data: `(x_train, y_train, x_val, y_val)` already loaded with
            `load_dataset` (default: loaded here from `config.dataset`);
            with `config.model == "gpt"`, `compare_lm`'s corpus.

    Returns:
        The summary that `summary.json` holds.

    Example:

    >>> summary = compare(CompareConfig(schemes=("small_random", "he"), depth=3,
    ...     width=32, epochs=2, seeds=1, max_train=256, verbose=0))
    >>> [s["scheme"] for s in summary["schemes"]]
    ['small_random', 'he']

    Reference:
        Glorot & Bengio 2010; He et al. 2015; Hinton et al. 2006.
    """
    if config.model == "gpt":  # the language model: its own module
        from keras_weightinit.compare_lm import compare_lm

        return compare_lm(config, data)
    validate(config)
    if data is None:
        data = load_dataset(config.dataset, config.max_train)
    logdir = Path(config.logdir)
    clear_logdir(logdir, config.schemes)
    total = len(config.schemes) * config.seeds
    results = []
    for i, scheme in enumerate(config.schemes):
        runs = []
        for seed in range(config.seeds):
            label = f"[{i * config.seeds + seed + 1}/{total}] {scheme} seed {seed}"
            runs.append(_run(scheme, seed, data, config, label))
        results.append(_summarize(scheme, runs, config.target_accuracy))
    chance = 1.0 / _n_classes(data)
    summary = {
        "config": dataclasses.asdict(config),
        "backend": keras.backend.backend(),
        "chance": chance,
        "schemes": results,
    }
    summary = json_safe(summary)
    write_summary(logdir, summary, format_summary(summary), _plot)
    return summary
