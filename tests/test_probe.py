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
