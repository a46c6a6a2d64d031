"""Tests of `keras_weightinit.checks`: one wording for every argument error."""

import math
import pathlib
import re

import numpy as np
import pytest

from keras_weightinit.checks import (
    is_int,
    is_number,
    keras_model,
    known_keywords,
    number_in,
    optional_path,
    positive_int,
    positive_number,
    positive_shape,
    verbose_level,
)


def test_bools_are_neither_ints_nor_numbers():
    assert is_int(3) and is_int(np.int64(3)) and not is_int(True)
    assert is_number(0.5) and is_number(np.float32(2)) and not is_number(False)
    assert not is_int(3.0) and not is_number("1")


@pytest.mark.parametrize("value", [0, -1.5, math.inf, math.nan, True, "2", None])
def test_positive_number_names_the_argument_and_the_value(value):
    with pytest.raises(ValueError) as error:
        positive_number("stddev", value)
    assert str(error.value).startswith("Argument `stddev` must be a positive")
    assert str(error.value).endswith(f"Received: stddev={value!r}")


@pytest.mark.parametrize("value", [0, -2, 1.5, True, "3", None])
def test_positive_int_names_the_argument_and_the_value(value):
    with pytest.raises(
        ValueError, match=rf"`epochs`.*Received: epochs={re.escape(repr(value))}$"
    ):
        positive_int("epochs", value)


def test_good_values_come_back_as_python_numbers():
    assert positive_int("epochs", np.int32(3)) == 3
    assert type(positive_int("epochs", np.int32(3))) is int
    assert type(positive_number("stddev", np.float32(0.5))) is float


@pytest.mark.parametrize(
    "check, value",
    [
        (lambda v: number_in("beta_1", v, "[0, 1)"), 1.0),
        (lambda v: number_in("beta_1", v, "[0, 1)"), math.nan),
        (lambda v: number_in("epsilon", v, "(0, inf)"), 0),
        (lambda v: number_in("epsilon", v, "(0, inf)"), math.inf),
        (lambda v: verbose_level(v), "loud"),
        (lambda v: verbose_level(v), 3),
        (lambda v: optional_path("log_dir", v), 123),
        (lambda v: optional_path("log_dir", v), ""),
        (lambda v: positive_shape("shape", v), (-3, 4)),
        (lambda v: keras_model(v), None),
    ],
)
def test_the_shared_checks_name_the_argument_and_the_value(check, value):
    with pytest.raises(ValueError, match=r"^Argument `\w+` must be .*Received: "):
        check(value)


def test_the_shared_checks_pass_good_values_through():
    assert number_in("beta_1", 0, "[0, 1)") == 0.0
    assert [verbose_level(v) for v in (0, 1, 2, "auto", True)] == [0, 1, 2, 1, 1]
    assert optional_path("log_dir", pathlib.Path("logs")) == "logs"
    assert positive_shape("shape", [np.int64(3), 4]) == (3, 4)
    known_keywords("f", {"tol": 1}, ("tol",))
    with pytest.raises(ValueError, match="f: `foo`. Accepted: `tol`. Received: foo=1"):
        known_keywords("f", {"foo": 1}, ("tol",))
