"""Every tool on the models Keras users train (`tests/zoo.py`).

For each model: `initialize(..., "auto")` re-draws every kernel-like weight
with the std the fan table gives (the fans computed here, from the shapes),
recurrent gate blocks are orthonormal, no two kernel-like variables are equal;
`lsuv` converges on every layer it reports and names the rest; `diagnose` has
a row per layer with a kernel-like weight; `GradientHistograms` logs a norm
per kernel-like weight.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import zoo
from tensorboard.backend.event_processing import event_accumulator as pea

import keras_weightinit as kw
from keras_weightinit import graph

SMALL = list(zoo.SMALL)
LARGE = [pytest.param(name, marks=pytest.mark.slow) for name in zoo.LARGE]
ALL = SMALL + LARGE
BUILD = {**zoo.SMALL, **zoo.LARGE}

RELU_LIKE = {"relu", "relu6", "gelu", "silu", "swish", "elu"}


def expected_fans(weight):
    """The fan table of the README, written out again from the shapes."""
    shape, layer = weight.shape, weight.layer
    if weight.role == "embeddings":
        return 1, shape[-1]
    if weight.role == "depthwise_kernel":
        field = math.prod(shape[:-2])
        return field, field * shape[-1]
    if isinstance(layer, keras.layers.EinsumDense):
        # MultiHeadAttention: query/key/value (d, heads, key_dim), output
        # (heads, key_dim, d)
        if layer.name == "attention_output":
            return shape[0] * shape[1], shape[2]
        return shape[0], shape[1] * shape[2]
    if isinstance(layer, keras.layers.Conv2DTranspose):
        field = math.prod(shape[:-2])
        return field * shape[-1], field * shape[-2]
    recurrent = getattr(layer, "recurrent_kernel", None)
    if recurrent is not None:
        units = recurrent.shape[0]
        return shape[0], units
    field = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return field * shape[-2], field * shape[-1]


def expected_std(weight, model, heads=()):
    fan_in, fan_out = expected_fans(weight)
    layer = weight.layer
    glorot = math.sqrt(2 / (fan_in + fan_out))
    if id(weight.variable) in heads:  # the readout: logits of spread 0.1 ln(C)
        classes = max(weight.shape[-1], 2)
        return math.sqrt(min(1.0, 0.1 * math.log(classes)) / fan_in)
    if weight.role == "embeddings":
        return 1.0
    if getattr(layer, "recurrent_kernel", None) is not None:
        return glorot
    if weight.role == "depthwise_kernel" and hasattr(layer, "pointwise_kernel"):
        return glorot
    activation, _ = graph.following_activation(layer, model)
    if activation in RELU_LIKE:
        return math.sqrt(2 / fan_in)
    if activation == "tanh":
        return 5 / 3 * glorot
    return glorot


def kernel_like(model):
    return [w for w in graph.weights(model) if w.kernel_like]


@pytest.mark.parametrize("name", ALL)
def test_initialize_auto_redraws_every_kernel_like_weight_by_the_table(name):
    model, x, _ = BUILD[name]()
    kernels = kernel_like(model)
    assert kernels, name
    used = kw.initialize(model, "auto", seed=0)
    assert list(used) == [w.path for w in kernels]
    # the readout is the kernel of the layer making the output, if it is linear,
    # softmax or sigmoid: the last kernel of these models
    heads = {
        id(w.variable)
        for w in kernels
        if used.rules[w.path].startswith("auto (readout")
    }
    assert heads <= {id(kernels[-1].variable)}, name
    for weight in kernels:
        values = np.asarray(weight.variable)
        assert (weight.fan_in, weight.fan_out) == expected_fans(weight), weight.path
        if weight.role == "recurrent_kernel":
            units = values.shape[0]
            for gate in range(values.shape[1] // units):
                block = values[:, gate * units : (gate + 1) * units]
                np.testing.assert_allclose(
                    block.T @ block, np.eye(units), atol=1e-5, err_msg=weight.path
                )
            continue
        std = expected_std(weight, model, heads)
        tolerance = 5 / math.sqrt(2 * values.size)  # 5 standard errors
        assert np.std(values) == pytest.approx(std, rel=tolerance), weight.path
    flat = [np.asarray(w.variable).ravel() for w in kernels]
    for i in range(len(flat)):
        for j in range(i + 1, len(flat)):
            if flat[i].shape == flat[j].shape:
                assert not np.array_equal(flat[i], flat[j]), (
                    kernels[i].path,
                    kernels[j].path,
                )


@pytest.mark.parametrize("name", SMALL)
def test_initialize_with_an_int_seed_is_reproducible_and_sets_the_rest(name):
    model, _, _ = BUILD[name]()
    kw.initialize(model, "auto", seed=3)
    first = [np.array(v) for v in model.weights]
    kw.initialize(model, "auto", seed=3)
    for a, b in zip(first, model.weights, strict=True):
        np.testing.assert_array_equal(a, np.asarray(b))
    for weight in graph.weights(model):
        value = np.asarray(weight.variable)
        if weight.role == "gamma":
            assert np.all(value == 1), weight.path
        elif weight.role == "beta":
            assert np.all(value == 0), weight.path
        elif weight.role == "bias" and getattr(weight.layer, "unit_forget_bias", 0):
            units = value.shape[-1] // 4
            assert np.all(value[units : 2 * units] == 1), weight.path
            assert np.all(np.delete(value, np.s_[units : 2 * units]) == 0)
        elif weight.role == "bias":
            assert np.all(value == 0), weight.path


@pytest.mark.parametrize("name", ALL)
def test_lsuv_converges_on_every_layer_it_reports(name):
    model, x, _ = BUILD[name]()
    report = kw.lsuv(model, x, seed=0)
    units = {graph.layer_path(w.unit, model) for w in kernel_like(model)}
    assert set(report) | set(report.skipped) == units
    assert report, name
    assert report.not_converged == [], str(report)
    assert all(abs(row["var_after"] - 1) < 0.1 for row in report.values())


@pytest.mark.parametrize("name", ALL)
def test_diagnose_has_a_row_per_kernel_like_layer(name):
    model, x, y = BUILD[name]()
    report = kw.diagnose(model, x, None if name == "autoencoder" else y)
    units = [graph.layer_path(w.unit, model) for w in kernel_like(model)]
    assert sorted(row["name"] for row in report.rows) == sorted(set(units))
    assert all(math.isfinite(row["grad_norm"]) for row in report.rows)


@pytest.mark.parametrize("name", [*LARGE])
def test_the_stock_nets_are_healthy_at_their_default_initialization(name):
    model, x, y = BUILD[name]()
    report = kw.diagnose(model, x, y)
    assert report.verdict == "healthy", str(report)
    # the criterion made for plain MLPs, normalization ignored, would call
    # these exploding: the test can tell the two apart
    raw = report.rows[0]["grad_norm"] / report.rows[-1]["grad_norm"]
    assert raw > kw.diagnostics.EXPLODING_GRADIENT_RATIO
    assert any(row["normalized_by"] for row in report.rows)


@pytest.mark.parametrize("name", SMALL)
def test_gradient_histograms_log_a_norm_per_kernel_like_weight(name, tmp_path):
    model, x, y = BUILD[name]()
    model.compile(
        "sgd", "mse" if name == "autoencoder" else "sparse_categorical_crossentropy"
    )
    callback = kw.GradientHistograms(tmp_path, (x, y), histograms=False)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    acc = pea.EventAccumulator(str(tmp_path / "gradients"), {"tensors": 0})
    acc.Reload()
    tags = set(acc.Tags()["tensors"])
    kernels = kernel_like(model)
    per_layer = {}
    for weight in kernels:
        per_layer[id(weight.layer)] = per_layer.get(id(weight.layer), 0) + 1
    for weight in kernels:
        name_ = weight.name
        if per_layer[id(weight.layer)] > 1:
            name_ = f"{weight.name}/{weight.role}"
        assert f"gradient_norm/{name_}" in tags, (name_, sorted(tags))
        assert f"gradient_to_weight/{name_}" in tags
        norm = float(
            tf.make_ndarray(acc.Tensors(f"gradient_norm/{name_}")[0].tensor_proto)
        )
        assert math.isfinite(norm)
    assert len([t for t in tags if t.startswith("gradient_norm/")]) == len(kernels)


def test_mha_projections_are_named_by_their_layer_path():
    model, x, y = zoo.transformer()
    report = kw.diagnose(model, x, y)
    names = [row["name"] for row in report.rows]
    mha = next(
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.MultiHeadAttention)
    )
    embedding, ffn = model.layers[1].name, model.layers[5].name
    projections = [
        f"{mha.name}/{p}" for p in ("query", "key", "value", "attention_output")
    ]
    # forward order: the table, the projections in call order, the FFN
    assert names[:6] == [embedding, *projections, ffn]
