"""The model-reading core: layers at any depth, roles, fans, the layer graph."""

import re
import sys

import keras
import numpy as np
import pytest
import zoo

import keras_weightinit as kw
from keras_weightinit import graph, probe


def test_the_private_keras_names_the_core_uses_still_exist():
    # If this fails, Keras changed `Layer._flatten_layers` or the name-scope
    # stack: graph.layers and the initializers' seed rule for copies break.
    block = keras.layers.MultiHeadAttention(2, 4)
    block(np.zeros((1, 3, 8), "float32"), np.zeros((1, 3, 8), "float32"))
    names = {layer.name for layer in graph.layers(block)}
    assert {"query", "key", "value", "attention_output"} <= names
    assert set(graph.attention_projections(block)) == {
        "query",
        "key",
        "value",
        "output",
    }
    assert block._inverse_sqrt_key_dim == pytest.approx(1 / 2)  # key_dim 4
    graph.set_attention_scale(block, 0.25)
    assert block._inverse_sqrt_key_dim == 0.25

    seen = []

    class Spy(keras.initializers.Initializer):
        def __call__(self, shape, dtype=None):
            seen.append(graph.current_scope())
            return keras.ops.zeros(shape, dtype)

    dense = keras.layers.Dense(2, kernel_initializer=Spy(), name="spied")
    dense.build((None, 3))
    assert seen == [dense]
    assert graph.current_scope() is None

    # MHA's initializers, cloned into its projections when it builds
    fresh = keras.layers.MultiHeadAttention(2, 4)
    graph.set_attention_initializer(fresh, "kernel", keras.initializers.Zeros())
    fresh(np.ones((1, 3, 8), "float32"), np.ones((1, 3, 8), "float32"))
    assert not np.any(np.asarray(fresh.query_dense.kernel))

    # an optimizer's index of a variable
    optimizer = keras.optimizers.Adam()
    variables = [keras.Variable(np.zeros(2)), keras.Variable(np.zeros(3))]
    optimizer.build(variables)
    assert [graph.variable_index(optimizer, v) for v in variables] == [0, 1]
    optimizer.exclude_from_weight_decay(var_list=variables[:1])
    assert [graph.uses_weight_decay(optimizer, v) for v in variables] == [False, True]

    # a layer's build initializers, read in a StatelessScope without drawing
    norm = keras.layers.LayerNormalization()
    norm.build((None, 4))
    inits = graph.build_initializers(norm)
    kinds = sorted(type(i).__name__ for i in inits.values())
    assert kinds == ["Ones", "Zeros"]

    # a plain chain, read from each layer's call; a masked one is not plain
    steps = keras.Input((3, 2))
    step, after_mask = keras.layers.Dense(2), keras.layers.Dense(2)
    assert graph.chain(keras.Model(steps, step(steps))) == [step]
    masked = after_mask(keras.layers.Masking()(steps))
    assert graph.chain(keras.Model(steps, masked)) is None

    # each node of a functional graph, nested ones too, runs through the wrap
    inner_in = keras.Input((3, 2))
    inner = keras.Model(inner_in, keras.layers.Dense(2, name="inner")(inner_in))
    outer = keras.Model(steps, step(inner(steps)))
    seen = []

    def wrap(op, call):
        seen.append(op.name)
        return (lambda *a, **k: keras.ops.ones((1, 3, 2))) if op is inner else call

    with graph.shadow_operations(outer, wrap):
        out = outer(np.zeros((1, 3, 2), "float32"))
    assert seen == [inner.name, step.name]  # the inner graph: never run
    expected = step(keras.ops.ones((1, 3, 2)))
    np.testing.assert_allclose(*map(keras.ops.convert_to_numpy, (out, expected)))
    assert "_run_through_graph" not in vars(outer)
    with graph.shadow_operations(outer, wrap):
        inner(np.zeros((1, 3, 2), "float32"))
    assert seen[-1] == "inner"

    # the order a functional graph runs its operations, nested graphs too
    x_in = keras.Input((4,))
    left = keras.layers.Dense(4, name="left")
    right = keras.layers.Dense(4, name="right")
    branch_in = keras.Input((4,))
    branch = keras.Model(branch_in, right(branch_in), name="branch")
    last = keras.layers.Dense(2, name="last")
    merged = last(keras.layers.Add()([left(x_in), branch(x_in)]))
    model = keras.Model(x_in, merged)
    units = [last, right, left]
    observed = probe.forward(model, np.ones((2, 4), "float32"), units).order
    ranked = [op for op in graph.run_order(model) if op in units]
    assert ranked == observed and len(observed) == 3
    assert graph.run_order(keras.Sequential([keras.layers.Dense(2)])) == []

    # Keras's lazy TensorFlow module answers "not available" inside the block
    from keras.src.utils import module_utils

    lazy = module_utils.tensorflow
    assert hasattr(lazy, "_available")
    with graph.configs_without_tensorflow():
        assert "tensorflow" in sys.modules or lazy._available is False
        assert keras.activations.serialize(keras.activations.gelu) == "gelu"

    x = keras.Input((3,))
    shared = keras.layers.Dense(3)
    keras.Model(x, shared(shared(x)))
    assert not graph.called_once(shared)
    assert graph.called_once(dense) is False  # built, never called in a graph


def test_roles_and_fans_of_every_kernel_like_weight():
    model, _, _ = zoo.transformer(dim=16, heads=2)
    by_layer = {}
    for w in graph.weights(model):
        by_layer.setdefault(type(w.layer).__name__, []).append(w)
    (table,) = by_layer["Embedding"]
    assert (table.role, table.fan_in, table.fan_out) == ("embeddings", 1, 16)
    einsum = {w.layer.name: w for w in by_layer["EinsumDense"] if w.role == "kernel"}
    assert (einsum["query"].fan_in, einsum["query"].fan_out) == (16, 2 * 8)
    output = einsum["attention_output"]
    assert output.shape == (2, 8, 16)
    assert (output.fan_in, output.fan_out) == (2 * 8, 16)
    norms = [w.role for w in by_layer["LayerNormalization"]]
    assert sorted(norms) == ["beta", "beta", "gamma", "gamma"]


@pytest.mark.parametrize(
    "layer, input_shape, expected",
    [
        (keras.layers.DepthwiseConv2D(3, depth_multiplier=2), (8, 8, 5), [(9, 18)]),
        (
            keras.layers.SeparableConv2D(4, 3, depth_multiplier=2),
            (8, 8, 3),
            [(9, 18), (6, 4)],
        ),
        (keras.layers.Conv2DTranspose(7, 3), (8, 8, 2), [(18, 63)]),
        (keras.layers.Conv1D(4, 5, groups=2), (9, 6), [(15, 20)]),
        (keras.layers.EinsumDense("abc,cd->abd", (None, 12)), (5, 8), [(8, 12)]),
    ],
    ids=["depthwise", "separable", "transpose", "grouped", "einsum"],
)
def test_fans_follow_what_one_output_sees(layer, input_shape, expected):
    model = keras.Sequential([keras.Input(input_shape), layer])
    kernels = graph.kernel_weights(model)
    assert [(w.fan_in, w.fan_out) for w in kernels] == expected


@pytest.mark.parametrize(
    "rnn, gates",
    [(keras.layers.LSTM, 4), (keras.layers.GRU, 3), (keras.layers.SimpleRNN, 1)],
)
def test_recurrent_kernels_are_split_per_gate(rnn, gates):
    model = keras.Sequential([keras.Input((6, 5)), rnn(8)])
    kernel, recurrent = graph.kernel_weights(model)
    assert (kernel.role, kernel.gates, kernel.fan_in, kernel.fan_out) == (
        "kernel",
        gates,
        5,
        8,
    )
    assert (recurrent.role, recurrent.gates) == ("recurrent_kernel", gates)
    assert kernel.unit is model.layers[0]  # the RNN layer, not its cell


def test_layers_and_weights_reach_custom_blocks_and_nested_models():
    model, _, _ = zoo.subclassed()
    names = [w.name for w in graph.kernel_weights(model)]
    assert len(names) == 6  # stem, 2 x (inner, outer), head
    assert sum("block" in name for name in names) == 4
    nested, _, _ = zoo.nested()
    assert [w.name.split("/")[0] for w in graph.kernel_weights(nested)][:2] == [
        "inner",
        "inner",
    ]


def test_following_activation_reads_the_graph_through_normalization():
    x = keras.Input((4,))
    dense = keras.layers.Dense(3)
    h = keras.layers.BatchNormalization()(dense(x))
    h = keras.layers.Dropout(0.1)(h)
    model = keras.Model(x, keras.layers.LeakyReLU(0.3)(h))
    assert graph.following_activation(dense, model) == ("leaky_relu", 0.3)
    assert graph.normalization_after(dense, model) is model.layers[2]

    branch = keras.layers.Dense(4)
    y = keras.Input((4,))
    two = keras.Model(y, [keras.layers.ReLU()(branch(y)), branch(y) * 2])
    assert graph.following_activation(branch, two) == ("linear", 0.0)


def test_residual_adds_are_found_in_resnets_and_transformers():
    model, _, _ = zoo.transformer()
    blocks = graph.residual_blocks(model)
    assert len(blocks) == 2  # attention and FFN blocks
    x = keras.Input((4,))
    plain = keras.Model(x, keras.layers.Add()([x * 1.0, x * 2.0]))
    two_inputs = keras.Input((4,)), keras.Input((4,))
    merge = keras.Model(two_inputs, keras.layers.Add()(list(two_inputs)))
    assert graph.residual_blocks(merge) == []
    assert len(graph.residual_blocks(plain)) == 1


def test_keras_rms_normalization_scale_is_a_gamma_set_to_one():
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(6), keras.layers.RMSNormalization()]
    )
    norm = model.layers[-1]
    norm.scale.assign(np.full(6, 3.0, "float32"))
    roles = {w.path: w.role for w in graph.weights(model)}
    assert roles[norm.scale.path] == "gamma"
    report = kw.initialize(model, "auto", seed=0)
    assert report.rules[norm.scale.path].startswith("gamma: 1")
    np.testing.assert_array_equal(np.array(norm.scale), np.ones(6))


def test_declared_initializers_give_what_the_build_gives():
    # For the layers whose `<attribute>_initializer` is read instead of
    # rebuilding them, each constant equals the one their rebuild gives; an
    # LSTM cell's bias (its own build initializer) is still rebuilt.
    shapes = {1: (7, 3), 2: (6, 6, 3), 3: (4, 4, 4, 3)}
    const = keras.initializers.Constant(0.25)
    for cls in graph._DECLARING:
        kwargs = {"bias_initializer": const}
        if cls is keras.layers.Dense:
            kwargs["units"] = 4
        elif cls is keras.layers.EinsumDense:
            kwargs.update(equation="ab,bc->ac", output_shape=4, bias_axes="c")
        elif "Normalization" in cls.__name__:
            kwargs = {"beta_initializer": const, "gamma_initializer": "ones"}
            if cls is keras.layers.GroupNormalization:
                kwargs["groups"] = 1
        elif "Depthwise" in cls.__name__:
            kwargs["kernel_size"] = 2
        else:
            kwargs.update(filters=4, kernel_size=2)
        rank = int(next(iter(re.findall(r"(\d)D", cls.__name__)), 1))
        layer = cls(**kwargs)
        model = keras.Sequential([keras.Input(shapes[rank]), layer])
        rebuilt = graph.build_initializers(layer)
        for weight in graph.weights(model):
            if weight.kernel_like:
                continue
            expected = graph._constant(rebuilt[id(weight.variable)], weight.variable)
            assert weight.initial is not None, (cls.__name__, weight.role)
            np.testing.assert_array_equal(weight.initial, expected)
    lstm = keras.Sequential([keras.Input((3, 2)), keras.layers.LSTM(4)])
    (bias,) = [w for w in graph.weights(lstm) if w.role == "bias"]
    np.testing.assert_array_equal(bias.initial, None)


def test_a_random_vector_of_an_unknown_layer_is_named_with_the_rules_fix(
    scaled_layer,
):
    Scaled = scaled_layer
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(4), Scaled(name="scaled")]
    )
    roles = {w.name: w.role for w in graph.weights(model)}
    assert roles["scaled"] == "unknown"
    before = [np.array(v) for v in model.weights]
    for tool in (kw.initialize, lambda m: kw.lsuv(m, np.ones((4, 4), "float32"))):
        with pytest.raises(ValueError, match=r"scaled/w \(in a Scaled\).*rules="):
            tool(model)
    for a, b in zip(before, model.weights, strict=True):
        np.testing.assert_array_equal(a, np.asarray(b))
    report = kw.initialize(model, "auto", seed=0, rules={"*scaled/*": "keep"})
    assert report.rules[model.layers[-1].w.path] == "rules['*scaled/*']: kept"
    np.testing.assert_array_equal(before[-1], np.asarray(model.weights[-1]))


def test_a_random_matrix_of_an_unknown_name_is_a_kernel_with_fans_from_its_shape():
    class Mixer(keras.layers.Layer):
        def build(self, shape):
            self.mix = self.add_weight(shape=(shape[-1], 3), name="mix")
            self.gain = self.add_weight(shape=(3,), initializer="ones", name="gain")

        def call(self, x):
            return (x @ self.mix) * self.gain

    model = keras.Sequential([keras.Input((4,)), Mixer(name="mixer")])
    mix, gain = graph.weights(model)
    assert (mix.role, mix.fan_in, mix.fan_out) == ("kernel", 4, 3)
    assert gain.role == "constant"
    np.testing.assert_array_equal(gain.initial, np.ones(3))


def test_a_model_with_nothing_to_initialize_is_refused():
    model = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
    for tool in (
        kw.initialize,
        lambda m: kw.lsuv(m, np.ones((4, 4), "float32")),
        lambda m: kw.diagnose(m, np.ones((4, 4), "float32")),
    ):
        with pytest.raises(ValueError, match="at least one kernel-like weight"):
            tool(model)


def test_layer_paths_drop_the_model_name():
    model, _, _ = zoo.lstm()
    assert graph.layer_path(model.layers[0], model) == model.layers[0].name
    cell = model.layers[0].cell
    assert graph.layer_path(cell, model) == f"{model.layers[0].name}/{cell.name}"
