"""The mistakes of issue 26's sweep, as claims: each a clear error or the right answer.

One test per class of mistake, parametrized over the sweep's cases. An error
is a `ValueError` whose message names the argument and the value received;
where a model is involved, its weights are bit-identical after the error.
The backend-specific cases run on JAX and PyTorch in a subprocess too.
"""

import math
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_weightinit as kwi
from keras_weightinit import DBNPretrain, LSUVInit

RNG = np.random.default_rng(0)
X = RNG.random((256, 64)).astype("float32")
FAST = {"epochs": 2, "seed": 0}


def _model(activation="relu", widths=(32, 16)):
    layers = [keras.layers.Dense(w, activation=activation) for w in widths]
    return keras.Sequential([keras.Input((64,)), *layers, keras.layers.Dense(10)])


def _weights(model) -> list[np.ndarray]:
    return [np.array(keras.ops.convert_to_numpy(v)) for v in model.weights]


def _raises_naming(call, name: str, value) -> None:
    """`call()` raises ValueError naming `name` and `value` as received."""
    with pytest.raises(ValueError) as error:
        call()
    message = str(error.value)
    assert f"`{name}`" in message, message
    assert f"Received: {name}={value!r}" in message, message


def _unchanged(model, call, name: str, value) -> None:
    """As `_raises_naming`, and `model`'s weights are bit-identical after."""
    before = _weights(model)
    _raises_naming(call, name, value)
    after = _weights(model)
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize("shape", [(-3, 4), (3, 0), (2.5, 3), (3, None), None, 5])
def test_compute_fans_refuses_a_dimension_that_is_not_a_positive_int(shape):
    _raises_naming(lambda: kwi.compute_fans(shape), "shape", shape)


@pytest.mark.parametrize(
    "optimizer, name, value",
    [
        (optimizer, "learning_rate", value)
        for optimizer in (kwi.MuAdam, kwi.MuAdamW, kwi.MuSGD)
        for value in (math.nan, -0.01, 0.0, math.inf, "fast", None)
    ]
    + [
        (kwi.MuAdam, "beta_1", 1.0),
        (kwi.MuAdam, "beta_1", math.nan),
        (kwi.MuAdamW, "beta_2", -0.1),
        (kwi.MuAdam, "epsilon", 0.0),
        (kwi.MuAdam, "weight_decay", -1e-4),
        (kwi.MuAdamW, "weight_decay", math.nan),
        (kwi.MuSGD, "momentum", 1.5),
        (kwi.MuSGD, "momentum", -0.5),
    ],
)
def test_a_mu_optimizer_refuses_a_hyperparameter_that_trains_to_nan_or_uphill(
    optimizer, name, value
):
    _raises_naming(lambda: optimizer(**{name: value}), name, value)


def test_the_mu_optimizers_still_take_what_keras_takes():
    kwi.MuAdam(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9))
    assert kwi.MuSGD(0.1, 0.9).momentum == 0.9  # positional, as Keras's SGD
    assert kwi.MuSGD(0.1, momentum=0).momentum == 0.0  # an int: Keras refuses it
    kwi.MuAdamW(lambda: 1e-3, weight_decay=0.0, epsilon=1e-8)
    optimizer = kwi.MuAdam(3e-3, beta_1=0.8)
    assert kwi.MuAdam.from_config(optimizer.get_config()).beta_1 == 0.8


@pytest.mark.parametrize("model", [None, "model", X])
def test_pretrain_dbn_refuses_what_is_not_a_model(model):
    with pytest.raises(ValueError) as error:
        kwi.pretrain_dbn(model, X, verbose=0, **FAST)
    message = str(error.value)
    assert "`model` must be a keras.Model" in message
    assert "Received: model=" in message
    if model is None:
        assert message.endswith("Received: model=None")


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("data", ["ones", "fives", "half constant"])
def test_zero_variance_inputs_never_give_runaway_weights(activation, data):
    x = {
        "ones": np.ones((256, 64), "float32"),
        "fives": np.full((256, 64), 5.0, "float32"),
        "half constant": np.concatenate([X[:, :32] * 4 - 2, np.ones((256, 32)) * 3], 1),
    }[data].astype("float32")
    model = _model(activation)
    kwi.pretrain_dbn(model, x, verbose=0, epochs=10, seed=0)
    for layer in model.layers[:2]:
        for weight in (layer.kernel, layer.bias):
            value = keras.ops.convert_to_numpy(weight)
            assert np.all(np.isfinite(value)) and np.abs(value).max() < 10, layer.name
    assert kwi.diagnose(model, X[:64]).verdict != "exploding"


@pytest.mark.parametrize("batch_size", [10**9, 2_000_000, 257])
@pytest.mark.parametrize("persistent", [False, True])
def test_a_batch_larger_than_the_data_is_capped_at_the_data(batch_size, persistent):
    x = X[:, :16]
    capped = kwi.RBM(8, batch_size=batch_size, persistent=persistent, **FAST)
    capped.fit(x, verbose=0)  # 10**9 once tried to allocate 238 GiB
    whole = kwi.RBM(8, batch_size=256, persistent=persistent, **FAST)
    whole.fit(x, verbose=0)
    np.testing.assert_array_equal(capped.kernel, whole.kernel)  # one batch of 256
    streamed = kwi.RBM(8, batch_size=batch_size, persistent=persistent, **FAST)
    streamed.fit(tf.data.Dataset.from_tensor_slices(x).batch(100), verbose=0)
    np.testing.assert_array_equal(streamed.kernel, whole.kernel)


@pytest.mark.parametrize("log_dir", [123, b"logs", "", ["logs"]])
def test_a_log_dir_that_is_not_a_path_is_refused_before_anything_runs(log_dir):
    model = _model()
    _raises_naming(lambda: DBNPretrain(X, log_dir=log_dir), "log_dir", log_dir)
    _raises_naming(lambda: kwi.RBM(8).fit(X, log_dir=log_dir), "log_dir", log_dir)
    _unchanged(
        model,
        lambda: kwi.pretrain_dbn(model, X, log_dir=log_dir, **FAST),
        "log_dir",
        log_dir,
    )


@pytest.mark.parametrize("verbose", ["loud", 3, -1, 1.5, None])
def test_verbose_is_kerass_zero_one_two_everywhere(verbose):
    model = _model()
    _raises_naming(lambda: DBNPretrain(X, verbose=verbose), "verbose", verbose)
    _raises_naming(lambda: LSUVInit(X, verbose=verbose), "verbose", verbose)
    _raises_naming(lambda: kwi.RBM(8).fit(X, verbose=verbose), "verbose", verbose)
    for run in (kwi.lsuv, kwi.pretrain_dbn):
        _unchanged(
            model, lambda run=run: run(model, X, verbose=verbose), "verbose", verbose
        )


def test_verbose_two_prints_a_line_per_epoch_and_callbacks_follow_fit(capsys):
    kwi.RBM(8, epochs=3, seed=0).fit(X, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[0] for line in lines[1:]] == [
        "Epoch 1/3",
        "Epoch 2/3",
        "Epoch 3/3",
    ]
    kwi.lsuv(_model(), X, verbose=2)
    assert "LSUV" in capsys.readouterr().out
    y = np.arange(256) % 10
    for fit_verbose in (0, 2):
        model = _model("sigmoid")
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(True))
        callbacks = [DBNPretrain(X, epochs=1, seed=0), LSUVInit(X, verbose="auto")]
        model.fit(X, y, epochs=1, verbose=fit_verbose, callbacks=callbacks)
        out = capsys.readouterr().out
        assert ("reconstruction_error" in out) == (fit_verbose == 2), out
        assert ("LSUV" in out) == (fit_verbose == 2), out


@pytest.mark.parametrize(
    "make, accepted",
    [
        (lambda: LSUVInit(X, foo=1), "`tol`, `max_iters`"),
        (lambda: DBNPretrain(X, foo=1), "`epochs`"),
        (lambda: kwi.pretrain_dbn(_model(), X, foo=1), "`learning_rate`"),
    ],
)
def test_an_unknown_keyword_is_named_with_the_accepted_ones(make, accepted):
    with pytest.raises(ValueError) as error:
        make()
    message = str(error.value)
    assert "`foo`" in message and "Received: foo=1" in message, message
    assert "Accepted: " in message and accepted in message, message
    assert "check_lsuv_args" not in message and "__init__" not in message


@pytest.mark.parametrize("tol", [1e-12, 1e-7, 0.0, -1.0, math.nan])
def test_a_tol_lsuv_can_never_meet_is_refused(tol):
    model = _model()
    _raises_naming(lambda: LSUVInit(X, tol=tol), "tol", tol)
    _unchanged(model, lambda: kwi.lsuv(model, X, tol=tol), "tol", tol)


def _compiled():
    model = _model()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


Y = RNG.integers(0, 10, 256)


@pytest.mark.parametrize(
    "labels, said",
    [
        (Y + 10, "class indices in [0, 10)"),
        (Y - 3, "class indices in [0, 10)"),
        (Y + 0.5, "integer class indices"),
        (np.array(["a"] * 256), "must hold numbers"),
        (Y[:100], "samples"),
    ],
)
def test_labels_that_do_not_fit_the_output_are_refused_before_the_probe(
    labels, said, tmp_path
):
    model = _compiled()
    before = _weights(model)
    for call in (
        lambda: kwi.diagnose(model, X, labels),
        lambda: model.fit(
            X,
            Y,
            epochs=1,
            verbose=0,
            callbacks=[kwi.GradientHistograms(str(tmp_path), (X, labels))],
        ),
    ):
        pattern = r"Arguments? `(x` and `y|y|data|data\[1\])`"
        with pytest.raises(ValueError, match=pattern) as e:
            call()
        assert said in str(e.value), str(e.value)
    after = _weights(model)
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize("training", ["no", 1, None, "False"])
def test_diagnose_takes_training_as_a_bool_only(training):
    model = _compiled()
    _unchanged(
        model,
        lambda: kwi.diagnose(model, X, Y, training=training),
        "training",
        training,
    )


@pytest.mark.parametrize(
    "x, said",
    [
        (None, "Received: x of type NoneType"),
        ((row for row in X), "Received: x of type generator"),
        ("digits.npz", "Received: x of type str"),
        (np.array([{"a": 1}] * 4), "must hold numbers"),
    ],
)
def test_inputs_that_are_not_data_say_what_is_accepted(x, said):
    model = _compiled()
    for call in (lambda: kwi.diagnose(model, x), lambda: kwi.lsuv(model, x)):
        with pytest.raises(ValueError) as error:
            call()
        message = str(error.value)
        assert "Argument `x`" in message and said in message, message
        if "numbers" not in said:
            assert "a list, tuple or dict of arrays" in message, message


def test_frozen_layers_are_rows_marked_frozen_and_a_frozen_model_says_so():
    model = _compiled()
    model.layers[0].trainable = False
    report = kwi.diagnose(model, X, Y)
    assert [row["frozen"] for row in report.rows] == [True, False, False]
    assert math.isnan(report.rows[0]["kernel_grad_ratio"])
    assert report.span == (report.rows[0]["name"], report.rows[-1]["name"])
    assert "ratios from" in str(report) and "frozen" in str(report)
    for layer in model.layers:
        layer.trainable = False
    report = kwi.diagnose(model, X, Y)
    assert any("every layer is frozen" in r for r in report.reasons)
    before = _weights(model)
    for tool in (kwi.initialize, lambda m: kwi.lsuv(m, X)):
        with pytest.raises(ValueError, match="every layer .* is frozen"):
            tool(model)
    after = _weights(model)
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


_ON_A_BACKEND = textwrap.dedent(
    """
    import json, math
    import keras, numpy as np
    import keras_weightinit as kwi

    x = np.ones((128, 16), "float32")
    relu = [keras.layers.Dense(8, activation="relu") for _ in range(2)]
    model = keras.Sequential([keras.Input((16,)), *relu, keras.layers.Dense(3)])
    before = [keras.ops.convert_to_numpy(v).copy() for v in model.weights]
    errors = []
    y = np.arange(128) % 3
    for call in (
        lambda: kwi.pretrain_dbn(None, x),
        lambda: kwi.diagnose(model, x, y + 10),
        lambda: kwi.diagnose(model, x, y, training="no"),
        lambda: kwi.MuAdam(math.nan),
        lambda: kwi.pretrain_dbn(model, x, verbose="loud"),
        lambda: kwi.lsuv(model, x, tol=1e-12),
        lambda: kwi.compute_fans((-3, 4)),
    ):
        try:
            call()
            errors.append("accepted")
        except ValueError as error:
            errors.append(str(error).split("Received: ")[-1])
    same = all(np.array_equal(a, keras.ops.convert_to_numpy(v))
               for a, v in zip(before, model.weights))
    kwi.pretrain_dbn(model, x, verbose=0, epochs=5, seed=0)
    kernel = max(float(np.abs(keras.ops.convert_to_numpy(l.kernel)).max())
                 for l in model.layers[:2])
    print(json.dumps({"errors": errors, "same": same, "kernel": kernel}))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_mistakes_are_the_same_on_every_backend(backend, run_on_backend):
    report = run_on_backend(backend, "-c", _ON_A_BACKEND)
    assert report["errors"] == [
        "model=None",
        "labels from 10 to 12",
        "training='no'",
        "learning_rate=nan",
        "verbose='loud'",
        "tol=1e-12",
        "shape=(-3, 4)",
    ]
    assert report["same"]
    assert math.isfinite(report["kernel"]) and report["kernel"] < 10
