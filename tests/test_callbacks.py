"""Tests of `keras_weightinit.callbacks`.

`GradientHistograms`: tags and steps read back with TensorBoard's own reader,
and each correctness point checked against what the naive recipe (a
GradientTape around `model(x)` with `model.loss`) gets wrong.
"""

import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_weightinit import (
    DBNPretrain,
    GradientHistograms,
    HeNormal,
    LSUVInit,
    LSUVReport,
    SmallRandomNormal,
    pretrain_dbn,
)


def _mlp(seed=0, dropout=False, batchnorm=False, regularize=False):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((64,))]
    layers.append(
        keras.layers.Dense(
            16,
            activation="relu",
            name="h1",
            kernel_initializer=HeNormal(seed=seed),
            kernel_regularizer=keras.regularizers.L2(0.5) if regularize else None,
            activity_regularizer=keras.regularizers.L2(0.1) if regularize else None,
        )
    )
    if batchnorm:
        layers.append(keras.layers.BatchNormalization(name="bn"))
    if dropout:
        layers.append(keras.layers.Dropout(0.5, name="drop"))
    layers.append(keras.layers.Dense(10, activation="softmax", name="out"))
    model = keras.Sequential(layers, name="mlp")
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _naive_gradients(model, x, y):
    """The recipe found in blog posts, which these tests must reject."""
    with tf.GradientTape() as tape:
        pred = model(x, training=True)
        loss = tf.reduce_mean(keras.losses.get(model.loss)(y, pred))
    return tape.gradient(loss, model.trainable_variables)


# --------------------------------------------------------------------------
# tags, steps, run directory


def test_tags_and_steps_in_own_run_directory(tmp_path, digits, events):
    x, y = digits[0][:96], digits[1][:96]
    model = _mlp(dropout=True)
    callback = GradientHistograms(log_dir=tmp_path, data=(x[:32], y[:32]), freq=2)
    model.fit(
        x,
        y,
        epochs=3,
        batch_size=32,
        verbose=0,
        callbacks=[keras.callbacks.TensorBoard(str(tmp_path)), callback],
    )
    assert sorted(os.listdir(tmp_path)) == ["gradients", "train"]
    steps = events(str(tmp_path / "gradients")).steps()
    expected = {
        "mlp/h1/kernel/gradient",
        "mlp/h1/bias/gradient",
        "mlp/out/kernel/gradient",
        "mlp/out/bias/gradient",
        "gradient_norm/h1",
        "gradient_norm/out",
        "gradient_to_weight/h1",
        "gradient_to_weight/out",
        "h1/activation",
        "drop/activation",
        "out/activation",
        "activation_std/h1",
        "activation_std/drop",
        "activation_std/out",
    }
    assert set(steps) == expected
    # 0 before the first step, then epoch + 1 when (epoch + 1) % 2 == 0.
    assert all(s == [0, 2] for s in steps.values()), steps
    # Keras's own run holds none of our tags.
    train_tags = set(events(str(tmp_path / "train")).Tags()["tensors"])
    assert not train_tags & expected


def test_switches_and_dataset_probe(tmp_path, digits, events):
    x, y = digits[0][:96], digits[1][:96]
    model = _mlp()
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(24)
    callback = GradientHistograms(
        tmp_path, data, histograms=False, norms=True, activations=False
    )
    assert callback.x.shape == (24, 64)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[callback])
    steps = events(str(tmp_path / "gradients")).steps()
    assert set(steps) == {
        "gradient_norm/h1",
        "gradient_norm/out",
        "gradient_to_weight/h1",
        "gradient_to_weight/out",
    }
    assert steps["gradient_norm/h1"] == [0, 1]


def test_writes_beside_tensorboard_update_freq(tmp_path, digits, events):
    # TensorBoard(update_freq=2) sets a global record_if that is False at the
    # end of epochs 1 and 3 (3 batches per epoch): the naive writer loses them.
    x, y = digits[0][:96], digits[1][:96]
    model = _mlp()
    callback = GradientHistograms(tmp_path, (x[:16], y[:16]))
    model.fit(
        x[:48],
        y[:48],
        epochs=3,
        batch_size=16,
        verbose=0,
        callbacks=[keras.callbacks.TensorBoard(str(tmp_path), update_freq=2), callback],
    )
    steps = events(str(tmp_path / "gradients")).steps()
    assert steps["gradient_norm/h1"] == [0, 1, 2, 3]
    assert steps["mlp/h1/kernel/gradient"] == [0, 1, 2, 3]


# --------------------------------------------------------------------------
# correctness against the naive recipe


def test_loss_includes_regularization(tmp_path, digits, events):
    x, y = digits[0][:96], digits[1][:96]
    model = _mlp(regularize=True)
    callback = GradientHistograms(tmp_path, (x[:32], y[:32]), activations=False)
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    callback.on_train_end()
    logged = events(str(tmp_path / "gradients")).scalars("gradient_norm/h1")[0]

    with tf.GradientTape() as tape:
        pred = model(x[:32], training=True)
        loss = keras.losses.sparse_categorical_crossentropy(y[:32], pred)
        loss = tf.reduce_mean(loss) + tf.add_n(model.losses)  # weight + activity
    expected = float(tf.norm(tape.gradient(loss, model.layers[0].kernel)))
    naive = float(tf.norm(_naive_gradients(model, x[:32], y[:32])[0]))
    assert logged == pytest.approx(expected, rel=1e-4)
    assert abs(naive - expected) > 0.1 * expected  # the test can tell


def test_mixed_precision_scales_and_unscales(tmp_path, events):
    # Hidden layers in float16, output layer in float32, targets 1e-7 away
    # from the predictions: the backpropagated gradient (~1e-9) underflows in
    # float16 unless the loss is scaled, and is 2**15 too large if the scale
    # is not divided out again.
    rng = np.random.default_rng(0)
    x = rng.random((32, 8), dtype=np.float32)
    keras.config.set_dtype_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(8, activation="relu", name="h1"),
                keras.layers.Dense(8, activation="relu", name="h2"),
                keras.layers.Dense(1, name="out", dtype="float32"),
            ]
        )
        model.compile("sgd", "mse")
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        y = np.asarray(model(x)) + 1e-7
        callback = GradientHistograms(tmp_path, (x, y), activations=False)
        callback.set_model(model)
        callback.on_train_begin()
        callback.on_epoch_begin(0)
        callback.on_train_end()
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
            scaled = loss * 2.0**15
        reference = [
            float(tf.norm(g)) / 2.0**15
            for g in tape.gradient(scaled, model.trainable_variables)
        ]
        naive = [float(tf.norm(g)) for g in _naive_gradients(model, x, y)]
    finally:
        keras.config.set_dtype_policy("float32")
    acc = events(str(tmp_path / "gradients"))
    h1 = acc.scalars("gradient_norm/h1")[0]
    out = acc.scalars("gradient_norm/out")[0]
    assert naive[0] == 0.0 and reference[0] > 0  # underflow without scaling
    assert h1 == pytest.approx(reference[0], rel=1e-3)
    assert out == pytest.approx(reference[4], rel=1e-3)  # scale divided out


def test_mixed_precision_reads_the_loss_scale_of_the_moment(tmp_path, events):
    # Targets of 1e4: the first float16 gradients overflow at the initial
    # scale 2**15, and the optimizer halves its dynamic scale until they fit.
    # The probe must follow it, not keep the scale it saw when traced.
    x = np.ones((32, 4), "float32")
    y = np.full((32, 1), 1e4, "float32")
    keras.config.set_dtype_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, name="out")])
        model.compile(keras.optimizers.SGD(1e-6), "mse")
        callback = GradientHistograms(tmp_path, (x, y), activations=False)
        model.fit(x, y, epochs=2, batch_size=1, verbose=0, callbacks=[callback])
        final_scale = float(model.optimizer.scale_loss(tf.constant(1.0)))
    finally:
        keras.config.set_dtype_policy("float32")
    assert final_scale < 2.0**10  # the scale really dropped during fit
    norms = events(str(tmp_path / "gradients")).scalars("gradient_norm/out")
    assert sorted(norms) == [0, 1, 2]
    # At step 0 the first training step's scale overflows, as fit's own does.
    assert all(math.isfinite(norms[step]) and norms[step] > 1e3 for step in (1, 2))


def test_steps_over_several_fits(tmp_path, digits, events):
    x, y = digits[0][:96], digits[1][:96]
    model = _mlp()
    callback = GradientHistograms(tmp_path, (x[:32], y[:32]), freq=5)
    model.fit(x[:64], y[:64], epochs=2, verbose=0, callbacks=[callback])
    # Starting over: step 0 again, with the new weights (as TensorBoard does).
    model.fit(x[:64], y[:64], epochs=2, verbose=0, callbacks=[callback])
    assert events(str(tmp_path / "gradients")).steps()["gradient_norm/out"] == [0, 0]

    continued = tmp_path / "continued"
    callback = GradientHistograms(continued, (x[:32], y[:32]))
    model.fit(x[:64], y[:64], epochs=2, verbose=0, callbacks=[callback])
    model.fit(
        x[:64], y[:64], initial_epoch=2, epochs=4, verbose=0, callbacks=[callback]
    )
    # Continued: no second write at step 2, which the first fit logged last.
    steps = events(str(continued / "gradients")).steps()["gradient_norm/out"]
    assert steps == [0, 1, 2, 3, 4]


def test_state_unchanged_by_probe(tmp_path, digits, events):
    x, y = digits[0][:96], digits[1][:96]
    model = _mlp(dropout=True, batchnorm=True)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)  # moving stats != init
    before = [np.array(v) for v in model.non_trainable_variables]
    metrics = [np.array(v) for v in model.metrics_variables]
    callback = GradientHistograms(tmp_path, (x[:32], y[:32]))
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    callback.on_train_end()
    assert "activation_std/bn" in events(str(tmp_path / "gradients")).Tags()["tensors"]
    after = [np.array(v) for v in model.non_trainable_variables]
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(metrics, model.metrics_variables, strict=True):
        np.testing.assert_array_equal(a, np.array(b))
    _naive_gradients(model, x[:32], y[:32])
    changed = [
        not np.array_equal(a, np.array(b))
        for a, b in zip(before, model.non_trainable_variables, strict=True)
    ]
    assert any(changed)  # the naive probe moves BatchNorm and Dropout state


def test_history_identical_with_and_without_callback(tmp_path, digits, events):
    x, y = digits[0][:96], digits[1][:96]

    def run(callbacks):
        model = _mlp(seed=3, dropout=True, batchnorm=True)
        history = model.fit(
            x,
            y,
            epochs=3,
            batch_size=32,
            validation_split=0.25,
            verbose=0,
            callbacks=callbacks,
        )
        return history.history, [np.array(w) for w in model.weights]

    plain, plain_weights = run([])
    probe = GradientHistograms(tmp_path, (x[:32], y[:32]))
    logged, logged_weights = run([probe])
    assert plain == logged
    for a, b in zip(plain_weights, logged_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert events(str(tmp_path / "gradients")).steps()["gradient_norm/h1"] == [
        0,
        1,
        2,
        3,
    ]


def test_mirrored_strategy(tmp_path, digits, mirrored_strategy, events):
    x, y = digits[0][:96], digits[1][:96]
    probe = (x[:32], y[:32])
    single = GradientHistograms(tmp_path / "single", probe)
    model = _mlp(seed=5)
    single.set_model(model)
    single.on_train_begin()
    single.on_epoch_begin(0)
    single.on_train_end()
    expected = events(str(tmp_path / "single/gradients")).scalars("gradient_norm/h1")

    strategy = mirrored_strategy
    with strategy.scope():
        model = _mlp(seed=5)
        inside = GradientHistograms(tmp_path / "inside", probe)
        model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[inside])
        with pytest.raises(ValueError, match="replica context"):
            _naive_gradients(model, *probe)  # mirrored variables, no replica
    outside = GradientHistograms(tmp_path / "outside", probe)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[outside])

    acc = events(str(tmp_path / "inside/gradients"))
    got = acc.scalars("gradient_norm/h1")
    assert sorted(got) == [0, 1]
    # Keras divides the loss by the replica count inside the strategy; the
    # whole probe batch is one device's, so the value must not halve.
    assert got[0] == pytest.approx(expected[0], rel=1e-4)
    assert "h1/activation" in acc.Tags()["tensors"]
    after = events(str(tmp_path / "outside/gradients")).scalars("gradient_norm/h1")
    assert sorted(after) == [0, 1]  # a new fit starts at epoch 0
    assert after[0] == pytest.approx(got[1], rel=1e-4)  # same weights


# --------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("freq", [0, -1, 1.5, True, "2"])
def test_bad_freq(tmp_path, digits, freq):
    with pytest.raises(ValueError, match="freq"):
        GradientHistograms(tmp_path, digits, freq=freq)


def test_bad_data_at_construction(tmp_path):
    with pytest.raises(ValueError, match="data"):
        GradientHistograms(tmp_path, (np.zeros((0, 64)), np.zeros(0)))
    with pytest.raises(ValueError, match="data"):
        GradientHistograms(tmp_path, (np.full((4, 64), np.nan), np.zeros(4)))
    with pytest.raises(ValueError, match="log_dir"):
        GradientHistograms("", (np.zeros((4, 64)), np.zeros(4)))


def test_data_that_does_not_fit(tmp_path, digits):
    x, y = digits[0][:96], digits[1][:96]
    model = _mlp()
    callback = GradientHistograms(tmp_path, (x[:8, :10], y[:8]))
    with pytest.raises(ValueError, match=r"data.*\(8, 10\)"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    callback = GradientHistograms(tmp_path, (x[:8], np.zeros((8, 3, 2))))
    callback.set_model(model)
    with pytest.raises(ValueError, match="data"):
        callback.on_train_begin()


def test_uncompiled_model(tmp_path, digits):
    x, y = digits[0][:96], digits[1][:96]
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    callback = GradientHistograms(tmp_path, (x[:8], y[:8]))
    callback.set_model(model)
    with pytest.raises(RuntimeError, match="compile"):
        callback.on_train_begin()


# --------------------------------------------------------------------------
# a real TensorBoard server


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_tensorboard_server_serves_our_histograms(tmp_path, digits):
    x, y = digits[0][:96], digits[1][:96]
    model = _mlp()
    callback = GradientHistograms(tmp_path, (x[:16], y[:16]))
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[callback])
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(tmp_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--load_fast",
            "false",
            "--reload_interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/data/plugin/histograms/tags"
    tags = {}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert server.poll() is None, "tensorboard exited"
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    tags = json.load(response)
            except OSError:
                tags = {}
            if tags.get("gradients"):
                break
            time.sleep(1)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=20)
    assert "mlp/h1/kernel/gradient" in tags["gradients"]
    assert "h1/activation" in tags["gradients"]


def test_small_init_signal_collapse_is_visible(tmp_path, digits, events):
    # The point of the callback: with small random init the activations of a
    # deep net shrink layer by layer, and the logged values show it.
    x, y = digits[0][:96], digits[1][:96]
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,))]
        + [
            keras.layers.Dense(
                32,
                activation="relu",
                name=f"d{i}",
                kernel_initializer=SmallRandomNormal(seed=i),
            )
            for i in range(6)
        ]
        + [keras.layers.Dense(10, activation="softmax", name="out")]
    )
    model.compile("sgd", "sparse_categorical_crossentropy")
    callback = GradientHistograms(tmp_path, (x[:32], y[:32]), histograms=False)
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    callback.on_train_end()
    acc = events(str(tmp_path / "gradients"))
    first = acc.scalars("activation_std/d0")[0]
    last = acc.scalars("activation_std/d5")[0]
    assert 0 < last < 1e-5 * first


def test_all_zero_kernel_logs_without_warnings(tmp_path, digits, events):
    # The zeros scheme of the article: ||W|| = 0, so gradient_to_weight is
    # undefined (NaN or inf in the event file) and nothing warns.
    x, y = digits[0][:96], digits[1][:96]
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(8, activation="relu", kernel_initializer="zeros"),
            keras.layers.Dense(10, activation="softmax", name="out"),
        ]
    )
    model.compile("sgd", "sparse_categorical_crossentropy")
    callback = GradientHistograms(tmp_path, (x[:32], y[:32]), activations=False)
    callback.set_model(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        callback.on_train_begin()
        callback.on_epoch_begin(0)
        callback.on_train_end()
    acc = events(str(tmp_path / "gradients"))
    hidden = model.layers[0].name
    assert not np.isfinite(acc.scalars(f"gradient_to_weight/{hidden}")[0])
    assert np.isfinite(acc.scalars("gradient_to_weight/out")[0])


# --------------------------------------------------------------------------
# DBNPretrain

FAST = {"epochs": 2, "seed": 0}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "epochs=0"),
        ({"batch_size": -4}, "batch_size=-4"),
        ({"learning_rate": 0}, "learning_rate=0"),
        ({"layers": "dense"}, "layers"),
        ({"visible": "relu"}, "visible"),
        ({"nonsense": 1}, "nonsense"),
    ],
)
def test_dbn_pretrain_checks_arguments_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DBNPretrain(np.zeros((4, 64), "float32"), **kwargs)


def test_dbn_pretrain_pretrains_on_first_fit_only(digits, fitted_rbms, mlp):
    x, y = digits[0][:600], digits[1][:600]
    model = mlp()
    model.compile("sgd", "sparse_categorical_crossentropy")
    callback = DBNPretrain(x, verbose=0, **FAST)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    assert set(callback.result) == {lay.name for lay in model.layers[1:3]}
    assert len(fitted_rbms) == 2
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    assert len(fitted_rbms) == 2


@pytest.mark.parametrize("fit_in_scope", [False, True])
def test_dbn_pretrain_under_mirrored_strategy(
    digits, fit_in_scope, mirrored_strategy, mlp
):
    x, y = digits[0][:600], digits[1][:600]
    strategy = mirrored_strategy
    reference = mlp(name="reference")
    pretrain_dbn(reference, x, verbose=0, **FAST)
    with strategy.scope():
        model = mlp()
        model.set_weights(reference.get_weights())
        initial = [lay.kernel.numpy().copy() for lay in model.layers[1:3]]
        # Random weights for the pretrained layers: they must be replaced.
        for lay in model.layers[1:3]:
            lay.kernel.assign(np.random.default_rng(0).normal(size=lay.kernel.shape))
        model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    callback = DBNPretrain(x, verbose=0, **FAST)
    if fit_in_scope:
        with strategy.scope():
            model.fit(x, y, epochs=1, batch_size=100, verbose=0, callbacks=[callback])
    else:
        model.fit(x, y, epochs=1, batch_size=100, verbose=0, callbacks=[callback])
    for layer, want in zip(model.layers[1:3], initial, strict=True):
        replicas = layer.kernel.value.values
        assert len(replicas) == 2
        for replica in replicas:
            np.testing.assert_allclose(replica.numpy(), want, atol=1e-5)


# --------------------------------------------------------------------------
# LSUVInit


def test_lsuv_init_runs_once_on_an_unbuilt_sequential(digits):
    x, y = digits[0][:256], digits[1][:256] % 3
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)]
    )
    callback = LSUVInit(x[:64], seed=0, tol=0.05)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    assert isinstance(callback.result, LSUVReport)
    assert list(callback.result) == [layer.name for layer in model.layers]
    assert all(r["converged"] for r in callback.result.values())
    first = callback.result
    trained = [w.copy() for w in model.get_weights()]
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    assert callback.result is first  # not run again, training goes on
    assert not all(
        np.array_equal(a, b) for a, b in zip(trained, model.get_weights(), strict=True)
    )
    with pytest.raises(ValueError, match="Received: tol=-1"):
        LSUVInit(x, tol=-1)
