"""Tests of `keras_weightinit.checks`: one wording for every argument error."""

import math
import re

import numpy as np
import pytest

from keras_weightinit.checks import is_int, is_number, positive_int, positive_number


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
