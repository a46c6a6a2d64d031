"""LSUV's passes on models that are not chains: final outputs kept, same result."""

import keras
import numpy as np
import pytest

import keras_weightinit as kw


def _residual(seed: int) -> keras.Model:
    """Residual blocks with biased layers (each rescaling measures again)."""
    keras.utils.set_random_seed(seed)
    bias = keras.initializers.RandomNormal(0.0, 0.5)
    inputs = keras.Input((16,))
    h = keras.layers.Dense(12, activation="relu", bias_initializer=bias)(inputs)
    for _ in range(3):
        branch = keras.layers.Dense(12, activation="tanh", bias_initializer=bias)(h)
        branch = keras.layers.Dense(12, bias_initializer=bias)(branch)
        h = keras.layers.Add()([h, branch])
        h = keras.layers.LayerNormalization()(h)
    return keras.Model(inputs, keras.layers.Dense(4, bias_initializer=bias)(h))


def test_lsuv_keeps_final_outputs_and_gets_the_prefix_reruns_result(monkeypatch):
    x = np.random.default_rng(0).normal(size=(64, 16)).astype("float32")
    model = _residual(3)
    first = model.layers[1]
    calls = {"n": 0}
    original = type(first).call

    def counted(self, *args, **kwargs):
        if self is first:
            calls["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(first), "call", counted)
    report = kw.lsuv(model, x, tol=0.01, orthogonal=False, seed=0)
    monkeypatch.undo()
    # The reference: the same model as the one step of a Sequential, run
    # whole up to each unit for every measure.
    reference = keras.Sequential([keras.Input((16,)), _residual(3)])
    expected = kw.lsuv(reference, x, tol=0.01, orthogonal=False, seed=0)
    assert sum(row["iterations"] for row in report.values()) > 5
    assert [
        {k: v for k, v in row.items() if k != "weight"} for row in report.values()
    ] == [{k: v for k, v in row.items() if k != "weight"} for row in expected.values()]
    for a, b in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # The first layer: the order pass, its measures, then computed once
    # more; rerunning the prefix would call it once per measure of any unit.
    measures = len(report) + sum(row["iterations"] for row in report.values())
    own = next(iter(report.values()))["iterations"]
    assert calls["n"] <= own + 3 < measures, (calls, own, measures)


@pytest.mark.parametrize("orthogonal", [True, False])
def test_lsuv_on_a_subclassed_model_keeps_its_result(orthogonal):
    import zoo

    model, x, _ = zoo.subclassed()
    report = kw.lsuv(model, x, seed=0, orthogonal=orthogonal, tol=0.05)
    assert report.not_converged == []
    assert len(report) >= 3
