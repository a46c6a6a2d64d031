"""Test set-up and the fixtures the test modules share.

Quiet TensorFlow and two logical CPUs for MirroredStrategy; digits, MLP
builders, a custom layer without a role, a recorder of RBM fits,
TensorBoard event readers and a runner for the other Keras backends.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)


import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One MirroredStrategy over the two logical CPUs for the whole session.

    Every `MirroredStrategy` numbers its collective ops from the same start, so
    two of them in one process (two tests) collide on mismatched shapes; a
    process normally has one, and so does the test session.
    """
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits in [0, 1], shuffled once: `(x, y)`, all 1797.

    Tests that want fewer samples slice it (`x[:600]`).
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.data))
    x = (data.data[order] / 16.0).astype("float32")
    return x, data.target[order].astype("int32")


@pytest.fixture(scope="session")
def mlp():
    """`mlp(activation, widths, n_in=64, name=None, outputs=10, softmax=True)`.

    A functional MLP `n_in -> widths... -> outputs` with `activation` on the
    hidden layers and a softmax (or linear) output layer.
    """
    import keras

    def build(
        activation="sigmoid",
        widths=(24, 24),
        n_in=64,
        name=None,
        outputs=10,
        softmax=True,
    ):
        inputs = keras.Input((n_in,))
        h = inputs
        for width in widths:
            h = keras.layers.Dense(width, activation=activation)(h)
        out = keras.layers.Dense(outputs, activation="softmax" if softmax else None)
        return keras.Model(inputs, out(h), name=name)

    return build


@pytest.fixture(scope="session")
def scaled_layer():
    """`Scaled`: a custom layer `x * w` whose random vector `w` has no role.

    The core cannot tell how to set `w` (`graph.weights` reads it as
    `unknown`), so `initialize` and `lsuv` ask for a `rules=` entry.
    """
    import keras

    class Scaled(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1],), name="w")

        def call(self, x):
            return x * self.w

    return Scaled


@pytest.fixture
def fitted_rbms(monkeypatch):
    """Records every RBM that `fit`s: a list of `(rbm, x as array, kwargs)`."""
    from keras_weightinit import RBM

    calls = []
    original = RBM.fit

    def recording_fit(self, x, *args, **kwargs):
        calls.append((self, np.array(x), kwargs))
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(RBM, "fit", recording_fit)
    return calls


class Events:
    """TensorBoard's own reader of a run directory's tensor events.

    `tags`, `steps()`, `scalars(tag)` and `tensor(tag)` read what tests check
    most; any other attribute is the `EventAccumulator`'s (`Tensors`,
    `SummaryMetadata`, ...).
    """

    def __init__(self, run_dir):
        from tensorboard.backend.event_processing import plugin_event_accumulator

        self.acc = plugin_event_accumulator.EventAccumulator(
            str(run_dir), size_guidance={"tensors": 0}
        )
        self.acc.Reload()

    def __getattr__(self, name):
        return getattr(self.acc, name)

    @property
    def tags(self) -> list[str]:
        return self.acc.Tags()["tensors"]

    def steps(self) -> dict:
        """`tag -> [step, ...]` in the order written."""
        return {tag: [e.step for e in self.acc.Tensors(tag)] for tag in self.tags}

    def scalars(self, tag: str) -> dict:
        """`step -> value` of a scalar tag."""
        return {
            e.step: float(tf.make_ndarray(e.tensor_proto))
            for e in self.acc.Tensors(tag)
        }

    def tensor(self, tag: str, index: int = 0) -> np.ndarray:
        """The `index`-th tensor written under `tag`."""
        return tf.make_ndarray(self.acc.Tensors(tag)[index].tensor_proto)


@pytest.fixture(scope="session")
def events():
    """`events(run_dir) -> Events`, TensorBoard's reader of a run directory."""
    return Events


@pytest.fixture(scope="session")
def run_on_backend():
    """`run(backend, *args) -> dict`: runs Python on another Keras backend.

    Keras fixes its backend when it is imported, so a check on JAX or PyTorch
    runs in a subprocess with `KERAS_BACKEND` set (`args` as `python`'s
    arguments: a script path, or `"-c", code`); the last line of its output
    that starts with `{` is returned, parsed as JSON.
    """
    import json
    import subprocess
    import sys

    def run(backend: str, *args: str) -> dict:
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run(
            [sys.executable, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        assert done.returncode == 0 and lines, done.stderr[-3000:]
        return json.loads(lines[-1])

    return run
