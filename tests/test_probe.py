"""The probe pass and the observation hooks every tool looks inside a model with."""

import keras
import numpy as np
import pytest
import zoo

from keras_weightinit import graph
from keras_weightinit.probe import forward, observe, probe


def test_observing_leaves_every_layer_as_it_was_also_on_an_error():
    model, x, _ = zoo.subclassed()
    layers = graph.layers(model)
    before = [dict(vars(layer)) for layer in layers]
    with pytest.raises(RuntimeError, match="boom"), observe(layers) as seen:
        model(x)
        raise RuntimeError("boom")
    assert {id(layer) for layer in seen.order} == {id(layer) for layer in layers}
    for layer, attributes in zip(layers, before, strict=True):
        assert "call" not in vars(layer)
        assert vars(layer).get("activation") is attributes.get("activation")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(model(x))
    )


def test_observe_records_the_sublayers_of_a_subclassed_model_in_call_order():
    model, x, _ = zoo.subclassed()
    kernels = graph.kernel_weights(model)
    units = [w.unit for w in kernels]
    seen = forward(model, x, units[::-1])  # order of the list does not matter
    assert seen.order == units
    block = model.blocks[0]
    inner = seen.outputs[id(block.inner)]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(inner),
        keras.ops.convert_to_numpy(
            keras.ops.relu(
                seen.inputs[id(block.inner)] @ block.inner.kernel + block.inner.bias
            )
        ),
        rtol=1e-5,
        atol=1e-6,
    )


def test_forward_stops_after_the_layer_asked_for():
    calls = []
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4),
            keras.layers.Lambda(lambda t: calls.append(1) or t),
        ]
    )
    calls.clear()
    seen = forward(model, np.ones((2, 3), "float32"), model.layers[:1], model.layers[0])
    assert id(model.layers[0]) in seen.outputs
    assert calls == []


def test_probe_takes_the_gradient_at_a_softmax_outputs_logits_and_changes_nothing():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(6, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(8, 5)).astype("float32")
    y = np.arange(8) % 3
    state = [np.array(v) for v in model.variables]
    out = model.layers[-1]
    result = probe(model, x, y, units=[model.layers[0], out], loss="fit")
    for a, b in zip(state, model.variables, strict=True):
        np.testing.assert_array_equal(a, np.asarray(b))
    # d(mean cross-entropy)/d(logits) = (softmax - onehot) / batch
    probs = keras.ops.convert_to_numpy(result.outputs[id(out)])
    onehot = np.eye(3)[y]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(result.signal[id(out)]),
        (probs - onehot) / 8,
        atol=1e-6,
    )
    assert float(result.loss) == pytest.approx(
        -np.mean(np.log(probs[np.arange(8), y])), rel=1e-5
    )


_COMPILED_AGAINST_EAGER = r"""
import json

import keras
import numpy as np

from keras_weightinit.probe import Projection, probe

rng = np.random.default_rng(0)
keras.utils.set_random_seed(0)


def numpy(t):
    return np.asarray(keras.ops.convert_to_numpy(t), dtype="float64")


def gap(a, b):
    a, b = numpy(a), numpy(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    top = np.max(np.abs(b), initial=0.0) + 1e-12
    return float(np.max(np.abs(a - b), initial=0.0) / top)


def stats(t):
    t = numpy(t)
    return np.array([t.mean(), t.std(), np.linalg.norm(t), np.mean(t == 0)])


def compare(model, x, y, loss):
    units = [layer for layer in model.layers if layer.weights]
    args = dict(units=units, variables=model.trainable_variables, loss=loss)
    fast = probe(model, x, y, **args)
    again = probe(model, x, y, **args)  # the cached function
    slow = probe(model, x, y, compiled=False, **args)
    assert [u.name for u in fast.order] == [u.name for u in slow.order]
    assert set(fast.pre) == set(slow.pre) and set(fast.signal) == set(slow.signal)
    gaps = [gap(again.loss, fast.loss)] if fast.loss is not None else []
    if fast.loss is not None:
        gaps.append(gap(fast.loss, slow.loss))
    for part in ("outputs", "pre", "signal"):
        a, b = getattr(fast, part), getattr(slow, part)
        gaps += [gap(a[k], b[k]) for k in b]
        gaps += [gap(stats(a[k]), stats(b[k])) for k in b]
    gaps += [gap(a, b) for a, b in zip(fast.weight_grads, slow.weight_grads)]
    return max(gaps), len(fast.order)


def mlp():
    model = keras.Sequential([
        keras.Input((12,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.Dropout(0.3, seed=1),  # unseeded on PyTorch: its global RNG
        keras.layers.Dense(16, activation="tanh"),
        keras.layers.Dense(4, activation="softmax"),
    ])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = rng.normal(size=(32, 12)).astype("float32")
    return model, x, (np.arange(32) % 4).astype("int32")


def conv():
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(6, 3, padding="same", activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(5, activation="softmax"),
    ])
    return model, rng.normal(size=(16, 8, 8, 3)).astype("float32")


def dict_inputs():
    a, b = keras.Input((5,), name="a"), keras.Input((3,), name="b")
    h = keras.layers.Concatenate()([
        keras.layers.Dense(7, activation="gelu", name="da")(a),
        keras.layers.Dense(7, activation="relu", name="db")(b),
    ])
    out = keras.layers.Dense(2, name="out")(h)
    model = keras.Model({"a": a, "b": b}, out)
    x = {
        "a": rng.normal(size=(10, 5)).astype("float32"),
        "b": rng.normal(size=(10, 3)).astype("float32"),
    }
    return model, x, rng.normal(size=(10, 2)).astype("float32")


def tensors(x):
    return keras.tree.map_structure(keras.ops.convert_to_tensor, x)


found = {}
model, x, y = mlp()
found["mlp fit"] = compare(model, tensors(x), keras.ops.convert_to_tensor(y), "fit")
model.layers[0].kernel.assign(model.layers[0].kernel * 3.0)  # no stale values
found["mlp fit, new weights"] = compare(
    model, tensors(x), keras.ops.convert_to_tensor(y), "fit"
)
model, x = conv()
found["conv sum"] = compare(model, tensors(x), None, "sum")
found["conv projection"] = compare(
    model, tensors(x), None,
    Projection(model.layers[-1], rng.normal(size=8).astype("float32")),
)
model, x, y = dict_inputs()
found["dict mse"] = compare(
    model, tensors(x), keras.ops.convert_to_tensor(y), keras.losses.MeanSquaredError()
)
print(json.dumps(found))
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_the_compiled_probe_computes_what_the_eager_one_does(backend, run_on_backend):
    found = run_on_backend(backend, "-c", _COMPILED_AGAINST_EAGER)
    assert set(found) == {
        "mlp fit",
        "mlp fit, new weights",
        "conv sum",
        "conv projection",
        "dict mse",
    }
    for case, (gap, observed) in found.items():
        assert observed >= 3, case
        assert gap < 1e-4, (case, gap)
