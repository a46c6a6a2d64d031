"""The settings of `compare` and the checks that need no Keras.

`CompareConfig` and `check_config` import only the standard library and
`keras_weightinit.checks`, so the command line takes its defaults from
`CompareConfig` and rejects a bad setting before TensorFlow starts.
`keras_weightinit.compare.validate` runs `check_config`, then the checks that
need Keras (the activation and the schemes). Both are re-exported by
`keras_weightinit.compare`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

from keras_weightinit.checks import is_int, is_number, positive_int, positive_number

__all__ = [
    "ARTICLE_SCHEMES",
    "DATASETS",
    "DATA_DEPENDENT",
    "OPTIMIZERS",
    "CompareConfig",
    "check_config",
]

ARTICLE_SCHEMES = ("zeros", "random", "small_random", "xavier", "he", "dbn")
DATA_DEPENDENT = ("dbn", "lsuv", "auto")
DATASETS = ("digits", "mnist", "fashion_mnist")
OPTIMIZERS = ("sgd", "adam", "rmsprop")


MODELS = ("mlp", "resmlp")
# keras_weightinit.residual.RECIPES, here without importing Keras
RECIPES = ("zero", "fixup", "scaled", "deepnorm")


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


def _check_schemes(schemes) -> None:
    if (
        not isinstance(schemes, (tuple, list))
        or not schemes
        or not all(isinstance(s, str) and s.strip() for s in schemes)
    ):
        raise ValueError(
            "Argument `schemes` must be a non-empty tuple of scheme names or "
            f"initializer strings. Received: schemes={schemes!r}"
        )
    twice = sorted({s for s in schemes if schemes.count(s) > 1})
    if twice:
        raise ValueError(
            f"Argument `schemes` names {', '.join(map(repr, twice))} twice (its "
            f"runs would share a directory). Received: schemes={tuple(schemes)!r}"
        )


def _check_dataset(dataset) -> None:
    if not isinstance(dataset, (str, os.PathLike)) or not (
        os.fspath(dataset) in DATASETS or Path(dataset).suffix == ".npz"
    ):
        raise ValueError(
            f"Argument `dataset` must be one of {DATASETS} or a path to an .npz "
            f"file. Received: dataset={dataset!r}"
        )


def check_config(config: CompareConfig) -> None:
    """Checks every setting of `config` that needs no Keras.

    That is all of them but whether Keras knows the activation and the
    schemes, which `keras_weightinit.compare.validate` adds. The error names
    the setting, as the package's errors name an argument.

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
    _check_schemes(config.schemes)
    _check_dataset(config.dataset)
    if config.model not in MODELS:
        raise ValueError(
            f"Argument `model` must be one of {MODELS}. "
            f"Received: model={config.model!r}"
        )
    for scheme in config.schemes:
        base, _, recipe = scheme.partition("+")
        if recipe and (recipe not in RECIPES or config.model != "resmlp"):
            raise ValueError(
                f"Argument `schemes`: {scheme!r} asks for the residual recipe "
                f"{recipe!r}; recipes ({', '.join(RECIPES)}) need "
                f"model='resmlp'. Received: schemes={tuple(config.schemes)!r}, "
                f"model={config.model!r}"
            )
        if recipe and base in ("dbn", "lsuv"):
            raise ValueError(
                f"Argument `schemes`: a residual recipe goes with a scheme "
                f"initialize draws, not {base!r}. Received: "
                f"schemes={tuple(config.schemes)!r}"
            )
    for name in ("depth", "width", "epochs", "batch_size", "seeds", "dbn_epochs"):
        positive_int(name, getattr(config, name))
    if not isinstance(config.activation, str) or not config.activation:
        raise ValueError(
            "Argument `activation` must be the name of a Keras activation. "
            f"Received: activation={config.activation!r}"
        )
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(
            f"Argument `optimizer` must be one of {OPTIMIZERS}. "
            f"Received: optimizer={config.optimizer!r}"
        )
    positive_number("learning_rate", config.learning_rate)
    logdir = config.logdir
    if not isinstance(logdir, (str, os.PathLike)) or not os.fspath(logdir):
        raise ValueError(
            f"Argument `logdir` must be a non-empty path. Received: logdir={logdir!r}"
        )
    target = config.target_accuracy
    if not is_number(target) or not math.isfinite(target) or not 0 < target <= 1:
        raise ValueError(
            "Argument `target_accuracy` must be a number in (0, 1]. "
            f"Received: target_accuracy={target!r}"
        )
    if config.max_train is not None and (
        not is_int(config.max_train) or config.max_train < 1
    ):
        raise ValueError(
            "Argument `max_train` must be None or a positive int. "
            f"Received: max_train={config.max_train!r}"
        )
    if config.verbose not in (0, 1):
        raise ValueError(
            f"Argument `verbose` must be 0 or 1. Received: verbose={config.verbose!r}"
        )
