"""Every feature on the Keras backend this process runs on (`KERAS_BACKEND`).

Run by `tests/test_backends.py` once per backend, in a subprocess (the
backend is fixed when Keras is imported). Each check asserts against NumPy
references, so the results do not depend on the backend; the script prints
one JSON line: `{check: "ok" | "<error>"}`.
"""

import json
import math
import os
import sys
import tempfile
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

import keras_weightinit as kwi
from keras_weightinit import graph

RNG = np.random.default_rng(0)
X = RNG.standard_normal((64, 8)).astype("float32")
Y = (np.arange(64) % 3).astype("int32")
CHECKS = {}


def check(function):
    CHECKS[function.__name__] = function
    return function


def numpy(value):
    return keras.ops.convert_to_numpy(value)


def mlp(init=None, activation="relu", compile=True):
    init = init or kwi.HeNormal(seed=1)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation=activation, kernel_initializer=init),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    if compile:
        model.compile("sgd", "sparse_categorical_crossentropy")
    return model


@check
def initializers_in_fit_seeds_and_save(tmp):
    first, second = mlp(kwi.HeNormal(seed=3)), mlp(kwi.HeNormal(seed=3))
    np.testing.assert_array_equal(
        numpy(first.layers[0].kernel), numpy(second.layers[0].kernel)
    )
    first.fit(X, Y, epochs=1, verbose=0)
    path = os.path.join(tmp, "model.keras")
    first.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_array_equal(
        numpy(first.layers[0].kernel), numpy(again.layers[0].kernel)
    )
    values = numpy(kwi.HeNormal(seed=0)((256, 256)))
    assert abs(values.std() - math.sqrt(2 / 256)) < 0.002, values.std()
    unseeded = kwi.HeNormal()
    assert not np.array_equal(numpy(unseeded((4, 4))), numpy(unseeded((4, 4))))
    q = numpy(kwi.Orthogonal(seed=0)((32, 16)))
    np.testing.assert_allclose(q.T @ q, np.eye(16), atol=1e-5)


@check
def an_unbuilt_model_with_a_seed_generator(tmp):
    model = keras.Sequential(
        [
            keras.layers.Dense(
                16, kernel_initializer=kwi.HeNormal(seed=keras.random.SeedGenerator(1))
            ),
            keras.layers.Dense(3),
        ]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(X, Y, epochs=1, verbose=0)
    assert np.all(np.isfinite(numpy(model.layers[0].kernel)))


@check
def initialize_redraws_with_the_fans(tmp):
    model = mlp()
    used = kwi.initialize(model, "auto", seed=0)
    # the softmax head is the readout, drawn near uniform
    assert [type(i).__name__ for i in used.values()] == ["HeNormal", "RandomNormal"]
    kernel = numpy(model.layers[0].kernel)
    again = mlp()
    kwi.initialize(again, "auto", seed=0)
    np.testing.assert_array_equal(kernel, numpy(again.layers[0].kernel))
    lstm = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4)])
    kwi.initialize(lstm, "auto", seed=0)
    recurrent = numpy(lstm.layers[0].cell.recurrent_kernel)
    for gate in range(4):
        block = recurrent[:, 4 * gate : 4 * gate + 4]
        np.testing.assert_allclose(block.T @ block, np.eye(4), atol=1e-5)


@check
def lsuv_and_its_callback(tmp):
    model = mlp()
    report = kwi.lsuv(model, X, seed=0)
    assert report.not_converged == [] and len(report) == 2, str(report)
    h = X @ numpy(model.layers[0].kernel)
    assert abs(h.var() - 1) < 0.1, h.var()
    callback = kwi.LSUVInit(X, seed=0)
    mlp().fit(X, Y, epochs=1, verbose=0, callbacks=[callback])
    assert callback.result.not_converged == []


def softmax_regression():
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(3, activation="softmax")]
    )
    model.layers[0].kernel.assign(RNG.standard_normal((8, 3)).astype("float32"))
    model.layers[0].bias.assign(np.zeros(3, "float32"))
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def expected_gradients(model):
    """dL/dz and dL/dW of mean cross-entropy on a softmax regression, in NumPy."""
    w = numpy(model.layers[0].kernel).astype("float64")
    z = X @ w
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dz = (p - np.eye(3)[Y]) / len(X)
    return dz, X.T @ dz


@check
def diagnose_gradients_equal_numpy(tmp):
    model = softmax_regression()
    dz, dw = expected_gradients(model)
    report = kwi.diagnose(model, X, Y)
    (row,) = report.rows
    assert math.isclose(row["grad_norm"], np.linalg.norm(dz), rel_tol=1e-4), row
    w = numpy(model.layers[0].kernel)
    ratio = np.linalg.norm(dw) / np.linalg.norm(w)
    assert math.isclose(row["kernel_grad_ratio"], ratio, rel_tol=1e-4), row
    deep = mlp()
    assert kwi.diagnose(deep, X, Y).verdict == "healthy"
    assert kwi.diagnose(mlp(compile=False), X, Y).loss_name == (
        "sparse_categorical_crossentropy"
    )


@check
def gradient_histograms_log_numpy_gradients(tmp):
    from tensorboard.backend.event_processing import event_accumulator

    model = softmax_regression()
    _, dw = expected_gradients(model)
    callback = kwi.GradientHistograms(tmp, (X, Y), freq=1)
    model.fit(X, Y, epochs=1, batch_size=64, verbose=0, callbacks=[callback])
    events = event_accumulator.EventAccumulator(
        os.path.join(tmp, "gradients"), {"tensors": 0}
    )
    events.Reload()
    name = graph.layer_path(model.layers[0], model)
    (first, _) = events.Tensors(f"gradient_norm/{name}")
    logged = float(np.frombuffer(first.tensor_proto.tensor_content, "float32")[0])
    assert first.step == 0
    assert math.isclose(logged, np.linalg.norm(dw), rel_tol=1e-4), logged


@check
def dbn_pretraining(tmp):
    model = mlp(activation="sigmoid")
    before = numpy(model.layers[0].kernel)
    data = (X - X.min()) / (X.max() - X.min())
    model.fit(
        data,
        Y,
        epochs=1,
        verbose=0,
        callbacks=[kwi.DBNPretrain(data, epochs=2, verbose=0, seed=0)],
    )
    after = numpy(model.layers[0].kernel)
    assert not np.allclose(before, after) and np.all(np.isfinite(after))


@check
def labels_are_checked_before_the_probe(tmp):
    model = softmax_regression()
    before = numpy(model.layers[0].kernel)
    for bad in (Y + 10, Y - 5, Y + 0.5):
        try:
            kwi.diagnose(model, X, bad)
        except ValueError as error:
            assert "Argument `y`" in str(error), str(error)
        else:
            raise AssertionError(f"labels {bad[:3]} were accepted")
    callback = kwi.GradientHistograms(tmp, (X, Y + 10))
    try:
        model.fit(X, Y, epochs=1, verbose=0, callbacks=[callback])
    except ValueError as error:
        assert "Argument `data[1]`" in str(error), str(error)
    else:
        raise AssertionError("GradientHistograms took labels out of range")
    np.testing.assert_array_equal(before, numpy(model.layers[0].kernel))


@check
def a_keras_hub_language_model_with_dict_inputs(tmp):
    import keras_hub

    backbone = keras_hub.models.LlamaBackbone(
        vocabulary_size=50,
        num_layers=2,
        num_query_heads=4,
        num_key_value_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
    )
    model = keras_hub.models.LlamaCausalLM(backbone=backbone, preprocessor=None)
    x = {
        "token_ids": RNG.integers(0, 50, (4, 8)).astype("int32"),
        "padding_mask": np.ones((4, 8), "int32"),
    }
    report = kwi.initialize(model, "auto", seed=0, residual="zero")
    assert set(report.rules) == {v.path for v in model.trainable_variables}
    hidden = numpy(backbone(x))
    final = numpy(backbone.layers[-1](backbone.token_embedding(x["token_ids"])))
    np.testing.assert_allclose(hidden, final, atol=1e-5)  # every block: identity
    kwi.initialize(model, "auto", seed=0)
    y = RNG.integers(0, 50, (4, 8))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert kwi.diagnose(backbone, x).verdict == "healthy"
    report = kwi.diagnose(model, x, y, loss=loss)
    assert abs(report.loss - math.log(50)) < 0.1 * math.log(50), report.loss
    assert kwi.lsuv(backbone, x, seed=0).not_converged == []


def main():
    results = {}
    for name, function in CHECKS.items():
        with tempfile.TemporaryDirectory() as tmp:
            try:
                function(tmp)
                results[name] = "ok"
            except Exception:
                results[name] = traceback.format_exc(limit=4)[-1500:]
    print(json.dumps({"backend": keras.backend.backend(), "results": results}))


if __name__ == "__main__":
    sys.exit(main())
