"""The RBM on one Keras backend, reported as one line of JSON.

Run as `KERAS_BACKEND=jax python tests/rbm_checks.py` (`test_rbm.py` runs
it on JAX and PyTorch and compares with TensorFlow in its own process):

- `gradients`: the largest difference between `cd_gradients` and
  `apply_gradients` on a fixed batch and fixed noise and their NumPy
  computation, per field;
- `history`: the curves of one fit on scikit-learn's digits (`curve_fit`);
- `behaviour`: seeds, the config round trip, a `PyDataset` that fits the
  shuffle buffer and one streamed block by block, the other unit types;
- `tensorflow`: whether TensorFlow was imported.
"""

from __future__ import annotations

import json
import sys

import keras
import numpy as np
from keras import ops
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from keras_weightinit import RBM
from keras_weightinit.rbm import (
    Config,
    Gradients,
    Hyper,
    Noise,
    Params,
    State,
    apply_gradients,
    cd_gradients,
)


def digits():
    x = (load_digits().data / 16).astype("float32")
    return train_test_split(x, test_size=0.2, random_state=0)


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def numpy_update(w, c, b, v0, noise, velocity, lr, momentum, decay):
    """CD-1 from the data with momentum and weight decay, in NumPy."""
    h0 = sigmoid(v0 @ w + c)
    v1 = sigmoid((noise < h0).astype("float32") @ w.T + b)
    h1 = sigmoid(v1 @ w + c)
    sums = (v0.T @ h0 - v1.T @ h1, (h0 - h1).sum(0), (v0 - v1).sum(0))
    m = len(v0)
    grads = (sums[0] / m - decay * w, sums[1] / m, sums[2] / m)
    new_velocity = [momentum * u + lr * g for u, g in zip(velocity, grads, strict=True)]
    params = [p + u for p, u in zip((w, c, b), new_velocity, strict=True)]
    return sums, h0.sum(0), float(((v0 - v1) ** 2).sum()), params


def gradient_errors() -> dict:
    """`cd_gradients` and `apply_gradients` against `numpy_update`."""
    rng = np.random.default_rng(0)
    v0 = digits()[0][:32]
    w = rng.normal(0, 0.3, (64, 16)).astype("float32")
    c = rng.normal(0, 0.3, 16).astype("float32")
    b = rng.normal(0, 0.3, 64).astype("float32")
    velocity = [rng.normal(0, 0.01, p.shape).astype("float32") for p in (w, c, b)]
    noise = rng.random((32, 16), dtype=np.float32)
    lr, momentum, decay = 0.1, 0.5, 1e-3
    tensor = ops.convert_to_tensor
    params = Params(tensor(w), tensor(c), tensor(b))
    gradients, _, error = cd_gradients(
        params, tensor(v0), None, Noise((tensor(noise),)), Config()
    )
    state = State(params, Params(*map(tensor, velocity)), tensor(v0), tensor(c))
    hyper = Hyper(*(tensor(np.float32(h)) for h in (lr, momentum, decay, 0.0)))
    new = apply_gradients(state, gradients, hyper, False)
    sums, hidden_data, want_error, want_params = numpy_update(
        w, c, b, v0, noise, velocity, lr, momentum, decay
    )
    got = {name: ops.convert_to_numpy(g) for name, g in gradients._asdict().items()}
    errors = {
        name: float(np.abs(got[name] - want).max())
        for name, want in zip(Gradients._fields, sums, strict=False)
    }
    errors["hidden_data"] = float(np.abs(got["hidden_data"] - hidden_data).max())
    errors["samples"] = abs(float(gradients.samples) - 32.0)
    errors["squared_error"] = abs(float(ops.convert_to_numpy(error)) - want_error)
    errors["params"] = max(
        float(np.abs(ops.convert_to_numpy(p) - q).max())
        for p, q in zip(new.params, want_params, strict=True)
    )
    return errors


def curve_fit(epochs: int = 10) -> dict:
    """The history of `RBM(64)` on the digits, and its held-out scores."""
    x_train, x_val = digits()
    rbm = RBM(64, epochs=epochs, seed=0)
    history = rbm.fit(x_train, validation_data=x_val, verbose=0)
    history["score_samples"] = float(rbm.score_samples(x_val, seed=0).mean())
    return history


class Batches(keras.utils.PyDataset):
    def __init__(self, x, batch):
        super().__init__()
        self.x, self.batch = x, batch

    def __len__(self):
        return -(-len(self.x) // self.batch)

    def __getitem__(self, i):
        return self.x[i * self.batch : (i + 1) * self.batch]


def weights(rbm: RBM) -> list[np.ndarray]:
    return [rbm.kernel, rbm.hidden_bias, rbm.visible_bias]


def same(a: RBM, b: RBM) -> bool:
    return all(
        np.array_equal(p, q) for p, q in zip(weights(a), weights(b), strict=True)
    )


def behaviour() -> dict:
    """What must hold on every backend, each as a bool or a number."""
    x_train, x_val = digits()
    x = x_train[:400]
    fits = [RBM(8, epochs=2, seed=s) for s in (5, 5, 6)]
    histories = [rbm.fit(x, verbose=0) for rbm in fits]
    out = {
        "same_seed_same_fit": same(fits[0], fits[1]) and histories[0] == histories[1],
        "other_seed_differs": not np.allclose(fits[0].kernel, fits[2].kernel),
    }
    restored = RBM.from_config(fits[0].get_config())
    out["round_trip"] = np.array_equal(restored.transform(x), fits[0].transform(x))
    array = RBM(16, epochs=2, seed=1, persistent=True)
    array.fit(x, validation_data=x_val, verbose=0)
    kept = RBM(16, epochs=2, seed=1, persistent=True)
    kept.fit(Batches(x, 37), validation_data=x_val, verbose=0)
    out["fitting_dataset_is_the_array"] = same(array, kept)
    streamed = RBM(16, epochs=2, seed=1, shuffle_buffer=100, batch_size=50)
    history = streamed.fit(Batches(x_train, 64), verbose=0)
    out["streamed"] = streamed.fit_data_["streamed"]
    out["streamed_error"] = history["reconstruction_error"][-1]
    runs = {
        "pcd_cd2": RBM(16, persistent=True, cd_steps=2, epochs=2, seed=0),
        "sparse": RBM(16, sparsity_target=0.05, epochs=2, seed=0),
        "relu": RBM(16, hidden="relu", learning_rate=0.01, epochs=2, seed=0),
    }
    for name, rbm in runs.items():
        errors = rbm.fit(x, verbose=0)["reconstruction_error"]
        out[name] = bool(np.all(np.isfinite(errors)))
    gaussian = RBM(8, visible="gaussian", hidden="relu", learning_rate=0.01, seed=0)
    standard = (x - x.mean(0)) / (x.std(0) + 1e-3)
    errors = gaussian.fit(standard, verbose=0)["reconstruction_error"]
    out["gaussian_falls"] = errors[-1] < errors[0]
    return out


def main() -> None:
    result = {
        "backend": keras.backend.backend(),
        "gradients": gradient_errors(),
        "history": curve_fit(),
        "behaviour": behaviour(),
        "tensorflow": "tensorflow" in sys.modules,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
