"""Argument checks shared by the modules: one wording for every error.

Errors name the argument and the value received, as Keras does:
``Argument `stddev` must be a positive finite number. Received: stddev=0``.
"""

from __future__ import annotations

import math
import numbers
import os
import reprlib
from collections.abc import Sequence

import numpy as np

__all__ = [
    "boolean",
    "VERBOSE",
    "is_int",
    "is_number",
    "keras_model",
    "known_keywords",
    "number_in",
    "one_of",
    "optional_path",
    "positive_int",
    "positive_number",
    "positive_shape",
    "verbose_level",
]

# Keras's `verbose` values (`Model.fit`): 0 silent, 1 a progress bar, 2 one
# line per epoch, "auto" 1.
VERBOSE = (0, 1, 2, "auto")


def is_number(value) -> bool:
    """A real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_int(value) -> bool:
    """An integer that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def boolean(name: str, value) -> bool:
    """Returns `value` as a bool, or raises `ValueError` unless True or False.

    NumPy's bools are taken; `"no"`, 0 or None are not (a truthy string
    would otherwise read as True).

    Example:

    >>> boolean("training", False)
    False
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(
            f"Argument `{name}` must be True or False. Received: {name}={value!r}"
        )
    return bool(value)


def one_of(name: str, value, options: Sequence) -> object:
    """Returns `value`, or raises `ValueError` unless it is one of `options`.

    Example:

    >>> one_of("mode", "fan_in", ("fan_in", "fan_out"))
    'fan_in'
    """
    if value not in options:
        raise ValueError(
            f"Argument `{name}` must be one of {list(options)}. "
            f"Received: {name}={value!r}"
        )
    return value


def positive_number(name: str, value) -> float:
    """Returns `value` as a float, or raises `ValueError` unless finite and > 0.

    Example:

    >>> positive_number("stddev", 0.5)
    0.5
    """
    if not is_number(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"Argument `{name}` must be a positive finite number. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def positive_int(name: str, value) -> int:
    """Returns `value` as an int, or raises `ValueError` unless an int > 0.

    Example:

    >>> positive_int("epochs", 3)
    3
    """
    if not is_int(value) or value <= 0:
        raise ValueError(
            f"Argument `{name}` must be a positive int. Received: {name}={value!r}"
        )
    return int(value)


def positive_shape(name: str, value) -> tuple[int, ...]:
    """Returns `value` as a tuple of ints, or raises `ValueError` unless each > 0.

    Example:

    >>> positive_shape("shape", [3, 4])
    (3, 4)
    """
    try:
        dims = tuple(value)
    except TypeError:
        dims = None
    if dims is None or not all(is_int(d) and d > 0 for d in dims):
        raise ValueError(
            f"Argument `{name}` must be a sequence of positive ints. "
            f"Received: {name}={value!r}"
        )
    return tuple(int(d) for d in dims)


def number_in(name: str, value, interval: str) -> float:
    """Returns `value` as a float, or raises `ValueError` unless in `interval`.

    `interval` is written as in mathematics, its bounds finite or `inf`:
    `"[0, 1)"`, `"(0, inf)"`. NaN and bools are refused.

    Example:

    >>> number_in("beta_1", 0.9, "[0, 1)")
    0.9
    """
    low, high = (float(bound) for bound in interval[1:-1].split(","))
    inside = is_number(value) and not math.isnan(value)
    if inside:
        above = value > low if interval[0] == "(" else value >= low
        below = value < high if interval[-1] == ")" else value <= high
        inside = above and below
    if not inside:
        raise ValueError(
            f"Argument `{name}` must be a number in {interval}. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def verbose_level(value, name: str = "verbose") -> int:
    """Returns Keras's `verbose` as an int, or raises `ValueError`.

    As `keras.Model.fit` takes it: 0 silent, 1 a progress bar, 2 one line
    per epoch (or step) instead of a bar, `"auto"` 1 (and, as there, False
    0 and True 1).

    Example:

    >>> verbose_level("auto"), verbose_level(2)
    (1, 2)
    """
    if isinstance(value, str) and value == "auto":
        return 1
    if isinstance(value, bool):
        return int(value)
    if not is_int(value) or value not in (0, 1, 2):
        raise ValueError(
            f"Argument `{name}` must be 0 (silent), 1 (a progress bar), 2 (one "
            f"line per epoch) or 'auto' (1), as in Keras. Received: {name}={value!r}"
        )
    return int(value)


def optional_path(name: str, value) -> str | None:
    """Returns None or `value` as a str path, or raises `ValueError`.

    A path is a non-empty `str` or `os.PathLike` of one.

    Example:

    >>> optional_path("log_dir", None) is None
    True
    """
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if isinstance(path, str) and path:
            return path
    raise ValueError(
        f"Argument `{name}` must be None or a non-empty path (a str or "
        f"os.PathLike). Received: {name}={value!r}"
    )


def known_keywords(what: str, received: dict, accepted) -> None:
    """Raises `ValueError` naming the keywords of `received` not `accepted`.

    Example:

    >>> known_keywords("lsuv", {"tol": 0.1}, ("tol", "max_iters"))
    """
    unknown = [key for key in received if key not in accepted]
    if unknown:
        given = ", ".join(f"{key}={received[key]!r}" for key in unknown)
        raise ValueError(
            f"Unknown argument(s) of {what}: "
            f"{', '.join(f'`{key}`' for key in unknown)}. Accepted: "
            f"{', '.join(f'`{key}`' for key in accepted)}. Received: {given}"
        )


def keras_model(value, name: str = "model"):
    """Returns `value`, or raises `ValueError` unless it is a `keras.Model`.

    Example:

    >>> keras_model(None)
    Traceback (most recent call last):
    ...
    ValueError: Argument `model` must be a keras.Model. Received: model=None
    """
    import keras  # here: the command line parses its arguments without Keras

    if not isinstance(value, keras.Model):
        raise ValueError(
            f"Argument `{name}` must be a keras.Model. "
            f"Received: {name}={reprlib.repr(value)}"
        )
    return value
