"""Test set-up: quiet TensorFlow and two logical CPUs for MirroredStrategy."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: E402

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

    Test modules that want fewer samples define their own `digits`.
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.data))
    x = (data.data[order] / 16.0).astype("float32")
    return x, data.target[order].astype("int32")


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
