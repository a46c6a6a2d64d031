"""`CompareConfig` and its checks: errors name the setting, as the package's do."""

import dataclasses
import re
import subprocess
import sys

import pytest

from keras_weightinit.compare import CompareConfig, compare, validate
from keras_weightinit_cli import settings as config_module
from keras_weightinit_cli.settings import check_config


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"depth": 0}, "Argument `depth` must be a positive int. Received: depth=0"),
        ({"width": -2}, "Argument `width` must be a positive int. Received: width=-2"),
        ({"epochs": 1.5}, "Argument `epochs` must be a positive int."),
        ({"batch_size": True}, "Argument `batch_size` must be a positive int."),
        ({"seeds": 0}, "Received: seeds=0"),
        ({"dbn_epochs": 0}, "Received: dbn_epochs=0"),
        (
            {"learning_rate": float("nan")},
            "Argument `learning_rate` must be a positive finite number. "
            "Received: learning_rate=nan",
        ),
        ({"optimizer": "lbfgs"}, "Received: optimizer='lbfgs'"),
        ({"schemes": ()}, "Received: schemes=()"),
        ({"schemes": "he"}, "Received: schemes='he'"),
        ({"schemes": ("he", "he")}, "Argument `schemes` names 'he' twice"),
        ({"dataset": "cifar"}, "Received: dataset='cifar'"),
        ({"logdir": ""}, "Argument `logdir` must be a non-empty path."),
        ({"target_accuracy": 1.5}, "Received: target_accuracy=1.5"),
        ({"max_train": 0}, "Received: max_train=0"),
        ({"verbose": 2}, "Argument `verbose` must be 0 or 1. Received: verbose=2"),
        ({"activation": None}, "Received: activation=None"),
        (
            {"schemes": ("he", "kaiming")},
            "Argument `schemes` has an unknown scheme 'kaiming'.",
        ),
        ({"dataset": "missing.npz"}, "Received: dataset='missing.npz'"),
    ],
)
def test_a_bad_setting_is_named_without_keras_and_by_compare(
    tmp_path, settings, message
):
    logdir = tmp_path / "out"
    config = CompareConfig(**{"logdir": str(logdir), **settings})
    for check in (check_config, validate, compare):
        with pytest.raises(ValueError, match=re.escape(message)):
            check(config)
    assert not logdir.exists()


@pytest.mark.parametrize(
    "settings, message",
    [
        (
            {"activation": "wiggle"},
            "Argument `activation` must be the name of a Keras activation. "
            "Received: activation='wiggle'",
        ),
        (
            {"activation": "gelu"},
            "Argument `activation` must be one of ('sigmoid', 'tanh', 'relu') "
            "with the 'dbn' scheme",
        ),
    ],
)
def test_what_needs_keras_is_checked_by_validate(tmp_path, settings, message):
    config = CompareConfig(logdir=str(tmp_path / "out"), **settings)
    check_config(config)
    for check in (validate, compare):
        with pytest.raises(ValueError, match=re.escape(message)):
            check(config)
    assert not (tmp_path / "out").exists()


def test_gelu_is_fine_without_dbn():
    validate(CompareConfig(schemes=("he", "keras_weightinit>HeUniform")))
    validate(CompareConfig(schemes=("he", "lsuv"), activation="gelu"))


def test_the_config_is_the_same_class_from_both_modules():
    assert CompareConfig is config_module.CompareConfig
    assert dataclasses.asdict(CompareConfig())["depth"] == 10


def test_the_config_and_its_checks_need_no_keras():
    script = """
import sys
from keras_weightinit_cli.settings import CompareConfig, check_config
check_config(CompareConfig())
try:
    check_config(CompareConfig(depth=0))
except ValueError as error:
    print(error)
print(sorted(m for m in ("keras", "tensorflow", "numpy") if m in sys.modules))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Argument `depth` must be a positive int. Received: depth=0",
        "[]",
    ]


def test_the_fixed_scheme_lists_are_keras_and_the_packages():
    import keras

    from keras_weightinit.initializers import scheme_names

    assert tuple(scheme_names()) == config_module.SCHEMES
    for name in config_module.KERAS_INITIALIZERS:
        assert keras.initializers.get(name)((4, 4)).shape == (4, 4)
    base = keras.initializers.Initializer
    public = {
        name
        for name, value in vars(keras.initializers).items()
        if isinstance(value, type) and issubclass(value, base)
    }
    unusable = {
        "Initializer",
        "Constant",
        "constant",
        "STFT",
        "stft",
        "STFTInitializer",
    }
    assert public - unusable <= set(config_module.KERAS_INITIALIZERS)
    for name in config_module.PACKAGE_INITIALIZERS:
        init = keras.initializers.get(f"keras_weightinit>{name}")
        assert type(init).__name__ == name
