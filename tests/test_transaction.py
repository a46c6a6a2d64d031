"""`transaction.atomic`: all or nothing, bit-exactly, with no host copy.

Each check runs on TensorFlow in this process and on JAX and PyTorch in a
subprocess (this file run as a script prints `{check: "ok" | error}`).
"""

import json
import os
import sys
import traceback
from unittest import mock

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import pytest

import keras_weightinit as kwi
from keras_weightinit import transaction

CHECKS = {}


def check(function):
    CHECKS[function.__name__] = function
    return function


def mlp():
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(16, activation="tanh"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def values(model):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in model.weights]


def same(before, model):
    after = values(model)
    assert len(before) == len(after)
    for old, new in zip(before, after, strict=True):
        assert old.dtype == new.dtype
        np.testing.assert_array_equal(old.view(np.uint8), new.view(np.uint8))


def failing_assign(after: int, error: type[BaseException]):
    """Patches `keras.Variable.assign` to raise `error` on call `after + 1` only."""
    kind = type(keras.Variable(0.0))
    original = kind.assign
    calls = []

    def assign(self, value):
        calls.append(self.path)
        if len(calls) == after + 1:
            raise error("stop")
        return original(self, value)

    return mock.patch.object(kind, "assign", assign)


@check
def initialize_failing_half_way_restores_bit_exactly():
    for error in (RuntimeError, KeyboardInterrupt):
        model = mlp()
        before = values(model)
        with failing_assign(4, error):
            try:
                kwi.initialize(model, "auto", seed=0)
            except error:
                pass
            else:
                raise AssertionError("no error")
        same(before, model)
        kwi.initialize(model, "auto", seed=0)  # and it still works
        assert not np.array_equal(values(model)[0], before[0])


@check
def lsuv_interrupted_half_way_restores_bit_exactly():
    inner = mlp()
    calls = []

    def interrupted(t):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return t

    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Lambda(interrupted), *inner.layers]
    )
    before = values(model)
    x = np.random.default_rng(0).standard_normal((64, 8)).astype("float32")
    try:
        kwi.lsuv(model, x, seed=0, verbose=0)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("no KeyboardInterrupt")
    assert len(calls) == 5
    same(before, model)


@check
def the_first_kept_value_comes_back():
    model = mlp()
    before = values(model)
    kernel = model.layers[0].kernel
    try:
        with transaction.atomic("test") as keep:
            keep.assign(kernel, keras.ops.zeros(kernel.shape))
            keep(kernel)  # kept already: the first value stays kept
            kernel.assign(kernel + 1.0)
            keep(model.weights)
            for variable in model.weights:
                keep.assign(variable, keras.ops.ones(variable.shape))
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    same(before, model)


@check
def success_keeps_the_new_values_and_drops_the_kept():
    model = mlp()
    kernel = model.layers[0].kernel
    with transaction.atomic("test") as keep:
        keep.assign(kernel, keras.ops.zeros(kernel.shape))
        assert len(keep) == 1
    assert len(keep) == 0
    assert not np.any(keras.ops.convert_to_numpy(kernel))


@check
def nothing_goes_to_the_host():
    model = mlp()
    model.fit(
        np.zeros((8, 8), "float32"), np.zeros(8, "int32"), epochs=1, verbose=0
    )  # the optimizer holds the variables
    before = values(model)
    variables = list(model.weights)
    originals = [v.value for v in variables]
    pointers = [_pointer(v) for v in variables]
    news = [keras.random.normal(v.shape, seed=1) for v in variables]

    def no_host(*args, **kwargs):
        raise AssertionError("a host copy")

    with (
        mock.patch.object(keras.ops, "convert_to_numpy", no_host),
        mock.patch.object(np, "asarray", no_host),
        mock.patch.object(np, "array", no_host),
    ):
        try:
            with transaction.atomic("test") as keep:
                keep(variables[:2])
                kept = list(keep._kept.values())
                for variable, new in zip(variables, news, strict=True):
                    keep.assign(variable, new)
                kept = list(keep._kept.values())
                raise RuntimeError("stop")
        except RuntimeError:
            pass
    _on_the_device(kept, originals)
    if keras.backend.backend() == "torch":  # assign kept the old buffer: no clone
        assert [value.data_ptr() for _, value in kept[2:]] == pointers[2:]
    same(before, model)
    if keras.backend.backend() == "torch":  # the same parameters, for optimizers
        assert all(v.value is o for v, o in zip(variables, originals, strict=True))


def _pointer(variable):
    value = variable.value
    return value.data_ptr() if hasattr(value, "data_ptr") else None


def _on_the_device(kept, originals):
    backend = keras.backend.backend()
    for (_, value), original in zip(kept, originals[: len(kept)], strict=True):
        assert not isinstance(value, np.ndarray), type(value)
        if backend == "jax":
            assert value is original  # immutable: the array itself
        else:
            assert value.device == original.device, (value.device, original.device)


def run_checks() -> dict:
    results = {}
    for name, function in CHECKS.items():
        try:
            function()
            results[name] = "ok"
        except BaseException:
            results[name] = traceback.format_exc()[-2000:]
    return results


@pytest.mark.parametrize("name", list(CHECKS))
def test_on_tensorflow(name):
    CHECKS[name]()


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_on_another_backend(run_on_backend, backend):
    results = run_on_backend(backend, __file__)
    failed = {k: v for k, v in results.items() if v != "ok"}
    assert not failed, failed
    assert set(results) == set(CHECKS)


if __name__ == "__main__":
    print(json.dumps(run_checks()))
    sys.stdout.flush()
