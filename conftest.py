"""The names the docstring examples of `keras_weightinit` use, for doctest.

`pytest` runs every `>>>` example of the package (`--doctest-modules`). The
examples of a tool that takes a model and data use `model` (a compiled
64-32-32-10 ReLU MLP, fresh for each example), `x`, `y`, `x_train`,
`y_train` (256 digits in [0, 1]) and `x_unlabeled`, and run in a temporary
working directory so that what they write goes nowhere.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest


@pytest.fixture(autouse=True)
def _doctest_names(request):
    if not isinstance(request.node, pytest.DoctestItem):
        return
    import keras
    import numpy as np
    import tensorflow as tf
    from sklearn.datasets import load_digits

    import keras_weightinit as kwi

    digits = load_digits()
    x = (digits.data[:256] / 16.0).astype("float32")
    y = digits.target[:256].astype("int32")
    keras.backend.clear_session()  # layer names from "dense" again
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("sgd", "sparse_categorical_crossentropy")
    request.getfixturevalue("monkeypatch").chdir(request.getfixturevalue("tmp_path"))
    request.getfixturevalue("doctest_namespace").update(
        keras=keras,
        np=np,
        tf=tf,
        kwi=kwi,
        load_digits=load_digits,
        model=model,
        x=x,
        y=y,
        x_train=x,
        y_train=y,
        x_unlabeled=(digits.data[256:512] / 16.0).astype("float32"),
    )
