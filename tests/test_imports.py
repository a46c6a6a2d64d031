"""TensorFlow only where it is needed: the tools on JAX and PyTorch run without it.

Keras fixes its backend when it is imported, so each check runs in a
subprocess of its own (`run_on_backend`) and reports which modules it found
imported at the end.
"""

import glob
import os

import numpy as np
import pytest

_TOOLS = """
import json, sys
import numpy as np
import keras
import keras_weightinit as kwi

rng = np.random.default_rng(0)
x = rng.normal(size=(64, 8)).astype("float32")
y = rng.integers(0, 3, size=64)

def mlp():
    dense = keras.layers.Dense
    model = keras.Sequential([
        keras.Input((8,)),
        dense(16, activation="relu", kernel_initializer=kwi.HeNormal(seed=0)),
        dense(16, activation="tanh", kernel_initializer=kwi.XavierUniform(seed=1)),
        dense(3, activation="softmax", kernel_initializer=kwi.Orthogonal()),
    ])
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model

model = mlp()
kwi.initialize(model, "auto", seed=0)
lsuv = kwi.lsuv(model, x, seed=0)
report = kwi.diagnose(model, x, y)
histograms = kwi.GradientHistograms(sys.argv[1], data=(x, y))
model.fit(x, y, epochs=2, verbose=0, callbacks=[kwi.LSUVInit(x, seed=0), histograms])
print(json.dumps({
    "tensorflow": "tensorflow" in sys.modules,
    "lsuv": sorted(lsuv),
    "diagnosed": type(report).__name__,
    "loss": histograms.last_loss,
}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_tools_never_import_tensorflow_on_jax_and_torch(
    backend, tmp_path, run_on_backend, events
):
    result = run_on_backend(backend, "-c", _TOOLS, str(tmp_path))
    assert result["tensorflow"] is False
    assert result["lsuv"] == ["dense", "dense_1", "dense_2"]
    assert result["diagnosed"] == "DiagnosisReport"
    assert np.isfinite(result["loss"])
    # The events written without TensorFlow read back with TensorBoard's reader.
    (path,) = glob.glob(os.path.join(tmp_path, "gradients", "events.out.tfevents.*"))
    acc = events(os.path.dirname(path))
    assert "gradient_norm/dense" in acc.Tags()["tensors"]
    assert sorted(acc.scalars("gradient_norm/dense")) == [0, 1, 2]


_BLOCKED = """
import importlib.abc, json, sys

class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoTensorFlow())
import numpy as np
import keras
import keras_weightinit as kwi

model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="relu"),
                          keras.layers.Dense(2)])
report = kwi.lsuv(model, np.ones((32, 4), "float32") + np.arange(4), seed=0)
rbm = kwi.RBM(4, epochs=2, seed=0)
history = rbm.fit(np.random.default_rng(0).random((50, 6)).astype("float32"), verbose=0)
print(json.dumps({"lsuv": sorted(report), "rbm": history["reconstruction_error"]}))
"""


def test_the_package_imports_where_tensorflow_is_not_installed(run_on_backend):
    result = run_on_backend("jax", "-c", _BLOCKED)
    assert result["lsuv"] == ["dense", "dense_1"]
    # The RBM trains on JAX without it.
    assert len(result["rbm"]) == 2 and np.all(np.isfinite(result["rbm"]))


_PRETRAINING = """
import json, sys
import numpy as np
import keras
import keras_weightinit as kwi

x = np.random.default_rng(0).random((200, 16)).astype("float32")
rbm = kwi.RBM(8, epochs=2, seed=0)
history = rbm.fit(x, validation_data=x[:50], verbose=0, log_dir=sys.argv[1])
model = keras.Sequential([
    keras.Input((16,)),
    keras.layers.Dense(8, activation="sigmoid"),
    keras.layers.Dense(6, activation="relu"),
    keras.layers.Dense(2),
])
histories = kwi.pretrain_dbn(model, x, epochs=2, verbose=0, seed=0, log_dir=sys.argv[1])
model.compile("sgd", "mse")
dbn = kwi.DBNPretrain(x, epochs=1, verbose=0, seed=0)
model.fit(x, x[:, :2], epochs=1, verbose=0, callbacks=[dbn])
print(json.dumps({
    "tensorflow": "tensorflow" in sys.modules,
    "rbm": history["pseudo_likelihood"],
    "layers": sorted(histories),
}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_rbm_and_pretraining_never_import_tensorflow_on_jax_and_torch(
    backend, tmp_path, run_on_backend
):
    result = run_on_backend(backend, "-c", _PRETRAINING, str(tmp_path))
    assert result["tensorflow"] is False
    assert np.all(np.isfinite(result["rbm"]))
    assert result["layers"] == ["dense", "dense_1"]
    # The RBM's scalars and pretraining's, written without TensorFlow.
    assert len(glob.glob(os.path.join(tmp_path, "events.out.tfevents.*"))) >= 2
