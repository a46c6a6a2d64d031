"""The settings of the three commands and their checks, without Keras.

`CompareConfig` (`compare`), `CoordCheckSettings` (`coord-check`) and
`TransferSettings` (`transfer`) hold a command's settings; `check` checks any
of them, with one wording: an error names the setting and the value received
(``Argument `depth` must be a positive int. Received: depth=0``), as the
package's errors name an argument. Nothing here imports Keras, TensorFlow or
NumPy, so the command line rejects a bad setting (a missing file, an unknown
scheme, a directory it cannot write) before they start.
`keras_weightinit.compare.validate` adds what needs Keras (the activation).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from pathlib import Path

__all__ = [
    "ARTICLE_SCHEMES",
    "DATASETS",
    "DATA_DEPENDENT",
    "KERAS_INITIALIZERS",
    "OPTIMIZERS",
    "PACKAGE_INITIALIZERS",
    "SCHEMES",
    "CompareConfig",
    "GPT_DEFAULTS",
    "LM_SCHEMES",
    "CoordCheckSettings",
    "TransferSettings",
    "check",
    "check_config",
    "gpt_config",
    "split_lm",
]

ARTICLE_SCHEMES = ("zeros", "random", "small_random", "xavier", "he", "dbn")
DATA_DEPENDENT = ("dbn", "lsuv", "auto")
# keras_weightinit.initializers.scheme_names() (a test keeps them equal)
SCHEMES = (
    "zeros",
    "random",
    "small_random",
    "xavier",
    "glorot",
    "he",
    "lecun",
    "orthogonal",
    "zero",
)
# The initializers `keras.initializers.get` knows by name and that draw a
# kernel without arguments (a test keeps the list equal to Keras's: Constant
# needs a value, STFT a 3-D kernel), and this package's registered ones.
KERAS_INITIALIZERS = (
    *("Identity", "identity", "IdentityInitializer"),
    *("Ones", "ones", "one", "Zeros", "zeros", "zero"),
    *("GlorotNormal", "glorot_normal", "GlorotUniform", "glorot_uniform"),
    *("HeNormal", "he_normal", "HeUniform", "he_uniform"),
    *("LecunNormal", "lecun_normal", "LecunUniform", "lecun_uniform"),
    *("Orthogonal", "orthogonal", "OrthogonalInitializer"),
    *("RandomNormal", "random_normal", "normal"),
    *("RandomUniform", "random_uniform", "uniform"),
    *("TruncatedNormal", "truncated_normal"),
    *("VarianceScaling", "variance_scaling"),
)
PACKAGE_INITIALIZERS = (
    "DeltaOrthogonal",
    "HeNormal",
    "HeUniform",
    "Orthogonal",
    "RandomNormal",
    "SmallRandomNormal",
    "XavierNormal",
    "XavierUniform",
    "ZerO",
)
DATASETS = ("digits", "mnist", "fashion_mnist")
OPTIMIZERS = ("sgd", "adam", "rmsprop")
MODELS = ("mlp", "resmlp", "gpt")
# model="gpt": the language model's schemes, architectures and corpora
LM_SCHEMES = (
    *("default", "zeros", "random", "auto", "gpt2", "neox", "t-fixup", "deepnet"),
    "default@post-ln",
)
LM_RECIPES = ("gpt2", "bert", "neox", "t-fixup", "deepnet")
LM_ARCHITECTURES = ("gpt2", "post-ln", "no-ln")
_LM_ARCHITECTURE_OF = {"t-fixup": "no-ln", "deepnet": "post-ln"}
LM_CORPORA = ("stdlib",)
# what `--model gpt` changes in `CompareConfig`'s defaults (`gpt_config`)
GPT_DEFAULTS = {
    "schemes": LM_SCHEMES,
    "dataset": "stdlib",
    "depth": 2,
    "width": 64,
    "optimizer": "adam",
    "learning_rate": 0.003,
    "batch_size": 16,
    "logdir": "logs/compare_gpt",
}
# keras_weightinit.residual.RECIPES, here without importing Keras
RECIPES = ("zero", "fixup", "scaled", "deepnorm")
VERBOSE = (0, 1)


@dataclasses.dataclass
class CompareConfig:
    """Settings of one comparison; the defaults are the README's run.

    The command line's defaults are these. `check_config` (no Keras) and
    `keras_weightinit.compare.validate` (all checks) say which is bad.

    Attributes:
        schemes: Scheme names (`get_scheme`'s, `dbn`, `lsuv`, `auto`) or
            initializer strings (`"keras_weightinit>HeNormal"`, `"glorot_uniform"`).
        dataset: `digits`, `mnist`, `fashion_mnist` or a path to an `.npz`
            with `x_train, y_train, x_test, y_test`.
        model: `mlp` (`depth` hidden Dense layers) or `resmlp` (a stem, then
            `depth` residual blocks `x + Dense(f(Dense(x)))` without
            normalization). With `resmlp` a scheme may carry a residual
            recipe: `he+zero`, `he+fixup`, `he+scaled`, `auto+deepnorm`
            (`initialize(..., residual=...)`).
        depth: Number of hidden Dense layers.
        width: Units per hidden layer.
        activation: Activation of the hidden layers.
        optimizer: `sgd` (with momentum 0.9), `adam` or `rmsprop`.
        learning_rate: The optimizer's learning rate.
        epochs: Training epochs per run.
        batch_size: Minibatch size.
        seeds: Runs per scheme, with seeds `0 .. seeds - 1`.
        logdir: Where the runs and the summary go.
        target_accuracy: The validation accuracy whose first epoch is reported.
        dbn_epochs: RBM epochs per layer for the `dbn` scheme.
        max_train: Use at most this many training samples (None: all).
        verbose: 1 prints a progress line per run, 0 is silent.
        steps: Training steps per run (`model="gpt"`).
        target_loss: The training loss whose first step is reported
            (`model="gpt"`).

    With `model="gpt"` (`gpt_config`: its defaults) the runs are a byte-level
    language model's (`keras_weightinit.compare_lm`): `schemes` from
    `LM_SCHEMES` and `initialize`'s recipes, each with an optional
    `@gpt2|post-ln|no-ln`; `dataset` is `stdlib` or a text file; `depth`
    and `width` are the Transformer's.

    Example:

    >>> config = CompareConfig(schemes=("small_random", "he"), seeds=1)
    >>> config.depth, config.width
    (10, 128)
    """

    schemes: tuple[str, ...] = ARTICLE_SCHEMES
    dataset: str = "digits"
    model: str = "mlp"
    depth: int = 10
    width: int = 128
    activation: str = "relu"
    optimizer: str = "sgd"
    learning_rate: float = 0.003
    epochs: int = 20
    batch_size: int = 32
    seeds: int = 3
    logdir: str = "logs/compare"
    target_accuracy: float = 0.9
    dbn_epochs: int = 5
    max_train: int | None = None
    verbose: int = 1
    steps: int = 200
    target_loss: float = 2.8


def split_lm(scheme: str) -> tuple[str, str]:
    """A language-model scheme's initialization and architecture.

    `"deepnet"` runs on the Post-LN Transformer, `"t-fixup"` on the one
    without normalization, every other scheme on KerasHub's GPT-2, unless
    `@architecture` says otherwise.

    Example:

    >>> split_lm("deepnet"), split_lm("default@post-ln"), split_lm("gpt2")
    (('deepnet', 'post-ln'), ('default', 'post-ln'), ('gpt2', 'gpt2'))
    """
    base, _, architecture = scheme.partition("@")
    return base, architecture or _LM_ARCHITECTURE_OF.get(base, "gpt2")


def gpt_config(**settings) -> CompareConfig:
    """A `CompareConfig` for `model="gpt"`: `GPT_DEFAULTS`, then `settings`.

    Example:

    >>> gpt_config(seeds=1).schemes[:3], gpt_config().steps
    (('default', 'zeros', 'random'), 200)
    """
    return CompareConfig(**{"model": "gpt", **GPT_DEFAULTS, **settings})


@dataclasses.dataclass
class CoordCheckSettings:
    """Settings of `coord-check`: µP's coordinate check on the digits MLP.

    Attributes:
        widths: At least two distinct widths.
        steps: Training steps per width.
        optimizer: `adam` or `sgd`.
        learning_rate: None: 0.03 for Adam, 0.1 for SGD.
        logdir: Where `summary.png` and `summary.json` go.
        verbose: 1 prints a progress line per width, 0 is silent.
        model: `mlp` (the digits MLP) or `gpt` (KerasHub GPT-2 on the
            standard library's bytes, `transfer.gpt_coord_check`).
        over: `width` or `depth` (`model="gpt"` only; `widths` are then
            depths).

    Example:

    >>> CoordCheckSettings().widths
    (64, 128, 256, 512, 1024, 2048)
    """

    widths: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)
    steps: int = 3
    optimizer: str = "adam"
    learning_rate: float | None = None
    logdir: str = "logs/coord_check"
    verbose: int = 1
    model: str = "mlp"
    over: str = "width"


@dataclasses.dataclass
class TransferSettings:
    """Settings of `transfer`: the learning-rate sweep per width (or depth).

    Attributes:
        widths: At least two distinct widths (depths with `over="depth"`).
        learning_rates: None: 8 log-spaced, 1e-4..0.32 (Adam) or 3e-3..10 (SGD).
        epochs: Epochs per run (`model="mlp"`).
        seeds: Non-negative ints; the losses are their mean.
        optimizer: `adam` or `sgd` (`model="gpt"`: `adam`).
        logdir: Where `summary.png` and `summary.json` go.
        verbose: 1 prints a line per run, 0 is silent.
        model: `mlp` (the digits MLP, `transfer.lr_transfer`) or `gpt`
            (KerasHub GPT-2 on the standard library's bytes,
            `transfer.gpt_lr_transfer`, held-out loss).
        over: `width` or `depth` (`model="gpt"` only; `widths` are then
            depths at width 64; over width the depth is 2).
        steps: Adam steps per run (`model="gpt"`).

    Example:

    >>> TransferSettings().seeds
    (0, 1, 2)
    """

    widths: tuple[int, ...] = (64, 256, 1024)
    learning_rates: tuple[float, ...] | None = None
    epochs: int = 3
    seeds: tuple[int, ...] = (0, 1, 2)
    optimizer: str = "adam"
    logdir: str = "logs/transfer"
    verbose: int = 1
    model: str = "mlp"
    over: str = "width"
    steps: int = 200


# ---------------------------------------------------------------- wording


def _fail(name: str, must: str, value) -> None:
    raise ValueError(f"Argument `{name}` {must}. Received: {name}={value!r}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_positive(value) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _positive_int(name: str, value) -> None:
    if not _is_int(value) or value <= 0:
        _fail(name, "must be a positive int", value)


def _positive_number(name: str, value) -> None:
    if not _is_positive(value):
        _fail(name, "must be a positive finite number", value)


def _one_of(name: str, value, options: tuple) -> None:
    if value not in options:
        _fail(name, f"must be one of {options}", value)


# ------------------------------------------------------------------ parts


def is_known_scheme(name: str) -> bool:
    """Whether `name` is a scheme `compare` knows, decided without Keras.

    A `get_scheme` name, a data-dependent one (`dbn`, `lsuv`, `auto`), a
    Keras initializer by name or one of this package's
    (`"keras_weightinit>HeNormal"`). Another package's registered name
    (`"mypackage>MyInit"`) is left to Keras (`compare.validate`).

    Example:

    >>> is_known_scheme("glorot_uniform"), is_known_scheme("kaiming")
    (True, False)
    """
    package, _, cls = name.rpartition(">")
    if package:
        return package != "keras_weightinit" or cls in PACKAGE_INITIALIZERS
    return name in SCHEMES or name in DATA_DEPENDENT or name in KERAS_INITIALIZERS


def _check_schemes(schemes, model: str) -> None:
    if (
        not isinstance(schemes, (tuple, list))
        or not schemes
        or not all(isinstance(s, str) and s.strip() for s in schemes)
    ):
        _fail(
            "schemes",
            "must be a non-empty tuple of scheme names or initializer strings",
            schemes,
        )
    received = f"Received: schemes={tuple(schemes)!r}"
    twice = sorted({s for s in schemes if schemes.count(s) > 1})
    if twice:
        raise ValueError(
            f"Argument `schemes` names {', '.join(map(repr, twice))} twice (its "
            f"runs would share a directory). {received}"
        )
    if model == "gpt":
        return _check_lm_schemes(schemes)
    for scheme in schemes:
        base, _, recipe = scheme.partition("+")
        if not is_known_scheme(base):
            raise ValueError(
                f"Argument `schemes` has an unknown scheme {scheme!r}. Known "
                f"schemes: {', '.join(SCHEMES + DATA_DEPENDENT)}, or an "
                "initializer string such as 'keras_weightinit>HeNormal' or "
                f"'glorot_uniform'. {received}"
            )
        if recipe and (recipe not in RECIPES or model != "resmlp"):
            raise ValueError(
                f"Argument `schemes`: {scheme!r} asks for the residual recipe "
                f"{recipe!r}; recipes ({', '.join(RECIPES)}) need "
                f"model='resmlp'. {received}, model={model!r}"
            )
        if recipe and base in ("dbn", "lsuv"):
            raise ValueError(
                "Argument `schemes`: a residual recipe goes with a scheme "
                f"initialize draws, not {base!r}. {received}"
            )


def _check_lm_schemes(schemes) -> None:
    known = ("default", "auto", *SCHEMES, *LM_RECIPES)
    for scheme in schemes:
        base, architecture = split_lm(scheme)
        if base not in known or architecture not in LM_ARCHITECTURES:
            raise ValueError(
                f"Argument `schemes` has an unknown scheme {scheme!r} for "
                f"model='gpt'. Known: {', '.join(known)}, each with an optional "
                f"@{'|@'.join(LM_ARCHITECTURES)}. Received: schemes={tuple(schemes)!r}"
            )


def _check_corpus(dataset) -> None:
    if not isinstance(dataset, (str, os.PathLike)) or not (
        os.fspath(dataset) in LM_CORPORA or Path(dataset).is_file()
    ):
        _fail("dataset", "must be 'stdlib' or an existing text file's path", dataset)


def _check_dataset(dataset) -> None:
    if not isinstance(dataset, (str, os.PathLike)) or not (
        os.fspath(dataset) in DATASETS or Path(dataset).suffix == ".npz"
    ):
        _fail(
            "dataset", f"must be one of {DATASETS} or a path to an .npz file", dataset
        )
    if os.fspath(dataset) not in DATASETS and not Path(dataset).is_file():
        _fail("dataset", "names an .npz file that does not exist", dataset)


def _check_logdir(logdir) -> None:
    """A non-empty path whose nearest existing folder can be written to."""
    if not isinstance(logdir, (str, os.PathLike)) or not os.fspath(logdir):
        _fail("logdir", "must be a non-empty path", logdir)
    path = Path(os.path.abspath(logdir))
    existing = next(p for p in (path, *path.parents) if os.path.exists(p))
    if not existing.is_dir():
        _fail("logdir", f"cannot be created: {str(existing)!r} is not a folder", logdir)
    if not os.access(existing, os.W_OK | os.X_OK):
        _fail("logdir", f"cannot be written: {str(existing)!r} is read-only", logdir)


def _check_widths(widths) -> None:
    if (
        not isinstance(widths, (tuple, list))
        or len(widths) < 2
        or not all(_is_int(w) and w > 0 for w in widths)
        or len(set(widths)) != len(widths)
    ):
        _fail("widths", "must be at least two distinct positive ints", widths)


def _check_verbose(verbose) -> None:
    if verbose not in VERBOSE or isinstance(verbose, bool):
        _fail("verbose", "must be 0 or 1", verbose)


# -------------------------------------------------------------- commands


def check_config(config: CompareConfig) -> None:
    """Checks every setting of a `CompareConfig` that needs no Keras.

    That is all of them but whether Keras knows the activation, which
    `keras_weightinit.compare.validate` adds. The error names the setting, as
    the package's errors name an argument.

    Args:
        config: The settings.

    Raises:
        ValueError: For the first bad setting, e.g.
            ``Argument `depth` must be a positive int. Received: depth=0``.

    Example:

    >>> check_config(CompareConfig(depth=4))
    >>> check_config(CompareConfig(depth=0))
    Traceback (most recent call last):
    ...
    ValueError: Argument `depth` must be a positive int. Received: depth=0
    """
    if not isinstance(config, CompareConfig):
        raise ValueError(
            "Argument `config` must be a CompareConfig. "
            f"Received: config of type {type(config).__name__}"
        )
    _one_of("model", config.model, MODELS)
    _check_schemes(config.schemes, config.model)
    (_check_corpus if config.model == "gpt" else _check_dataset)(config.dataset)
    for name in ("depth", "width", "epochs", "batch_size", "seeds", "dbn_epochs"):
        _positive_int(name, getattr(config, name))
    if not isinstance(config.activation, str) or not config.activation:
        _fail("activation", "must be the name of a Keras activation", config.activation)
    _one_of("optimizer", config.optimizer, OPTIMIZERS)
    _positive_number("learning_rate", config.learning_rate)
    _check_logdir(config.logdir)
    target = config.target_accuracy
    if not _is_positive(target) or target > 1:
        _fail("target_accuracy", "must be a number in (0, 1]", target)
    if config.max_train is not None:
        _positive_int("max_train", config.max_train)
    _check_verbose(config.verbose)
    _positive_int("steps", config.steps)
    _positive_number("target_loss", config.target_loss)


def check(settings: CompareConfig | CoordCheckSettings | TransferSettings) -> None:
    """Checks the settings of any command; `ValueError` names the first bad one.

    Args:
        settings: A `CompareConfig`, `CoordCheckSettings` or `TransferSettings`.

    Raises:
        ValueError: For the first bad setting.

    Example:

    >>> check(TransferSettings(seeds=(-1,)))
    Traceback (most recent call last):
    ...
    ValueError: Argument `seeds` must be non-negative ints, at least one. Received: seeds=(-1,)
    """  # noqa: E501 (a doctest's output is one line)
    if isinstance(settings, CompareConfig):
        return check_config(settings)
    if not isinstance(settings, (CoordCheckSettings, TransferSettings)):
        raise ValueError(
            "Argument `settings` must be a CompareConfig, CoordCheckSettings or "
            f"TransferSettings. Received: settings of type {type(settings).__name__}"
        )
    _check_widths(settings.widths)
    _one_of("optimizer", settings.optimizer, ("adam", "sgd"))
    _check_logdir(settings.logdir)
    _check_verbose(settings.verbose)
    _one_of("model", settings.model, ("mlp", "gpt"))
    _one_of("over", settings.over, ("width", "depth"))
    if settings.over == "depth" and settings.model != "gpt":
        _fail("over", "must be 'width' unless model='gpt'", settings.over)
    _positive_int("steps", settings.steps)
    if isinstance(settings, CoordCheckSettings):
        if settings.learning_rate is not None:
            _positive_number("learning_rate", settings.learning_rate)
        return None
    if settings.model == "gpt" and settings.optimizer != "adam":
        _fail("optimizer", "must be 'adam' with model='gpt'", settings.optimizer)
    _positive_int("epochs", settings.epochs)
    rates = settings.learning_rates
    if rates is not None and (
        not isinstance(rates, (tuple, list))
        or not rates
        or not all(_is_positive(v) for v in rates)
    ):
        _fail("learning_rates", "must be positive finite numbers", rates)
    seeds = settings.seeds
    if (
        not isinstance(seeds, (tuple, list))
        or not seeds
        or not all(_is_int(s) and s >= 0 for s in seeds)
    ):
        _fail("seeds", "must be non-negative ints, at least one", seeds)
    return None
