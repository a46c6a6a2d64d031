"""Argument checks shared by the modules: one wording for every error.

Errors name the argument and the value received, as Keras does:
``Argument `stddev` must be a positive finite number. Received: stddev=0``.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["is_int", "is_number", "positive_int", "positive_number"]


def is_number(value) -> bool:
    """A real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_int(value) -> bool:
    """An integer that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


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
