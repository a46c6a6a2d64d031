"""Tests of `keras_weightinit.seeds`: checked seeds and independent children."""

import re

import keras
import pytest

from keras_weightinit.seeds import check_seed, spawn_seeds


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0", [0]])
def test_a_bad_seed_is_named_with_its_value(seed):
    with pytest.raises(
        ValueError, match=rf"`rng`.*Received: rng={re.escape(repr(seed))}"
    ):
        check_seed(seed, "rng")


def test_good_seeds_pass_and_a_serialized_generator_comes_back():
    generator = keras.random.SeedGenerator(4)
    assert check_seed(None) is None and check_seed(7) == 7
    assert check_seed(generator) is generator
    config = keras.saving.serialize_keras_object(generator)
    assert isinstance(check_seed(config), keras.random.SeedGenerator)


def test_children_are_distinct_reproducible_and_do_not_overlap_neighbours():
    assert spawn_seeds(0, 5) == spawn_seeds(0, 5)
    assert len(set(spawn_seeds(0, 5))) == 5
    assert not set(spawn_seeds(0, 5)) & set(spawn_seeds(1, 5))
    assert spawn_seeds(None, 3) == [None, None, None]


def test_a_generator_gives_ints_and_advances():
    generator = keras.random.SeedGenerator(1)
    first, second = spawn_seeds(generator, 2), spawn_seeds(generator, 2)
    assert all(isinstance(s, int) for s in first) and first != second
    assert spawn_seeds(keras.random.SeedGenerator(1), 2) == first
