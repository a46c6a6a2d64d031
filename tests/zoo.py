"""The models Keras users train, tiny: one builder per family, for every tool.

Each builder returns `(model, x, y)`: a built model, a small input batch and
integer labels for 10 classes.
"""

import keras
import numpy as np

RNG = np.random.default_rng(0)


def _labels(n):
    return (np.arange(n) % 10).astype("int32")


def resnet50(n=4):
    model = keras.applications.ResNet50(
        weights=None, input_shape=(32, 32, 3), classes=10
    )
    return model, RNG.standard_normal((n, 32, 32, 3)).astype("float32"), _labels(n)


def mobilenet_v2(n=4):
    model = keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), classes=10
    )
    return model, RNG.standard_normal((n, 32, 32, 3)).astype("float32"), _labels(n)


def transformer(n=8, vocab=50, length=12, dim=16, heads=2):
    tokens = keras.Input((length,), dtype="int32")
    h = keras.layers.Embedding(vocab, dim)(tokens)
    attended = keras.layers.MultiHeadAttention(heads, dim // heads)(h, h)
    h = keras.layers.LayerNormalization()(keras.layers.Add()([h, attended]))
    ffn = keras.layers.Dense(4 * dim, activation="gelu")(h)
    ffn = keras.layers.Dense(dim)(ffn)
    h = keras.layers.LayerNormalization()(keras.layers.Add()([h, ffn]))
    h = keras.layers.GlobalAveragePooling1D()(h)
    out = keras.layers.Dense(10, activation="softmax")(h)
    x = RNG.integers(0, vocab, (n, length)).astype("int32")
    return keras.Model(tokens, out), x, _labels(n)


def _recurrent(layer, n=8):
    model = keras.Sequential(
        [
            keras.Input((6, 5)),
            layer,
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    return model, RNG.standard_normal((n, 6, 5)).astype("float32"), _labels(n)


def lstm(n=8):
    return _recurrent(keras.layers.LSTM(8), n)


def gru(n=8):
    return _recurrent(keras.layers.GRU(8), n)


def bidirectional_lstm(n=8):
    return _recurrent(keras.layers.Bidirectional(keras.layers.LSTM(4)), n)


def conv1d(n=8):
    model = keras.Sequential(
        [
            keras.Input((20, 3)),
            keras.layers.Conv1D(8, 3, activation="relu"),
            keras.layers.Conv1D(8, 3, padding="causal", activation="tanh"),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    return model, RNG.standard_normal((n, 20, 3)).astype("float32"), _labels(n)


def conv3d(n=4):
    model = keras.Sequential(
        [
            keras.Input((6, 6, 6, 2)),
            keras.layers.Conv3D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    return model, RNG.standard_normal((n, 6, 6, 6, 2)).astype("float32"), _labels(n)


def separable(n=8):
    model = keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            keras.layers.SeparableConv2D(8, 3, depth_multiplier=2, activation="relu"),
            keras.layers.DepthwiseConv2D(3),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    return model, RNG.standard_normal((n, 12, 12, 3)).astype("float32"), _labels(n)


def autoencoder(n=8):
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2DTranspose(
                2, 3, strides=2, padding="same", activation="relu"
            ),
            keras.layers.Conv2D(1, 3, padding="same"),
        ]
    )
    x = RNG.standard_normal((n, 8, 8, 1)).astype("float32")
    return model, x, x


@keras.saving.register_keras_serializable(package="keras_weightinit_tests")
class Block(keras.layers.Layer):
    """A custom residual block holding its own Dense sublayers."""

    def __init__(self, units=16, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.inner = keras.layers.Dense(units, activation="relu")
        self.outer = keras.layers.Dense(units)

    def call(self, x):
        return keras.ops.relu(x + self.outer(self.inner(x)))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="keras_weightinit_tests")
class Subclassed(keras.Model):
    """A subclassed model: stem, two custom blocks, classifier."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.stem = keras.layers.Dense(16, activation="relu")
        self.blocks = [Block(16), Block(16)]
        self.head = keras.layers.Dense(10, activation="softmax")

    def call(self, x):
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        return self.head(h)


def subclassed(n=16):
    model = Subclassed()
    x = RNG.standard_normal((n, 12)).astype("float32")
    model(x[:1])
    return model, x, _labels(n)


def nested(n=16):
    inner = keras.Sequential(
        [
            keras.Input((12,)),
            keras.layers.Dense(16, activation="tanh"),
            keras.layers.Dense(16, activation="relu"),
        ],
        name="inner",
    )
    inp = keras.Input((12,))
    out = keras.layers.Dense(10, activation="softmax")(inner(inp))
    x = RNG.standard_normal((n, 12)).astype("float32")
    return keras.Model(inp, out), x, _labels(n)


SMALL = {
    "transformer": transformer,
    "lstm": lstm,
    "gru": gru,
    "bidirectional_lstm": bidirectional_lstm,
    "conv1d": conv1d,
    "conv3d": conv3d,
    "separable": separable,
    "autoencoder": autoencoder,
    "subclassed": subclassed,
    "nested": nested,
}
LARGE = {"resnet50": resnet50, "mobilenet_v2": mobilenet_v2}
