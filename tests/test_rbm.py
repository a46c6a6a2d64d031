"""Tests of `keras_weightinit.rbm`: the math, one update, the epoch, `RBM`.

The module's own process runs on TensorFlow (`conftest.py`); the RBM on JAX
and PyTorch runs `rbm_checks.py` in a subprocess each, compared with NumPy
and with the TensorFlow RBM's curves on the digits.
"""

import inspect
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import BernoulliRBM

from keras_weightinit import RBM
from keras_weightinit.rbm import (
    Config,
    Gradients,
    Hyper,
    Keys,
    Noise,
    Params,
    State,
    apply_gradients,
    bernoulli,
    cd_gradients,
    epoch_fn,
    free_energy,
    pseudo_likelihood,
    train_step,
)

CHECKS = Path(__file__).with_name("rbm_checks.py")


@pytest.fixture(scope="module")
def digits():
    x = (load_digits().data / 16).astype("float32")
    return train_test_split(x, test_size=0.2, random_state=0)


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def tensor(a):
    return ops.convert_to_tensor(np.asarray(a, "float32"))


def numpy(x):
    return ops.convert_to_numpy(x)


def random_params(rng, n_visible, n_hidden, scale=0.5):
    return Params(
        *(
            tensor(rng.normal(0, scale, shape))
            for shape in ((n_visible, n_hidden), n_hidden, n_visible)
        )
    )


def fresh_state(params, chains):
    zeros = Params(*(ops.zeros_like(p) for p in params))
    return State(params, zeros, tensor(chains), ops.zeros_like(params[1]))


def hyper(learning_rate=1.0, momentum=0.0, weight_decay=0.0, target=0.0):
    return Hyper(*(tensor(h) for h in (learning_rate, momentum, weight_decay, target)))


# --------------------------------------------------------------------------
# the math


def test_bernoulli_samples_are_noise_below_the_mean():
    rng = np.random.default_rng(0)
    mean = rng.random((200, 300), dtype=np.float32)
    mean[:, :3] = [0.0, 1.0, 0.5]
    noise = rng.random((200, 300), dtype=np.float32)
    noise[:100, :3] = [0.0, 0.0, 0.5]
    noise[100:, :3] = np.float32(1 - 2**-24)  # the largest float below 1
    sample = numpy(bernoulli(tensor(mean), tensor(noise)))
    np.testing.assert_array_equal(sample, (noise < mean).astype("float32"))


def test_free_energy_formulas():
    rng = np.random.default_rng(0)
    params = random_params(rng, 6, 4)
    w, c, b = (numpy(p) for p in params)
    v = (rng.random((5, 6)) < 0.5).astype("float32")
    bernoulli = -v @ b - np.logaddexp(0, v @ w + c).sum(1)
    np.testing.assert_allclose(numpy(free_energy(v, params)), bernoulli, rtol=1e-5)
    gaussian = 0.5 * ((v - b) ** 2).sum(1) - np.logaddexp(0, v @ w + c).sum(1)
    got = numpy(free_energy(v, params, "gaussian"))
    np.testing.assert_allclose(got, gaussian, rtol=1e-5)


def test_relu_free_energy_term_is_the_integral_of_softplus():
    # One Gaussian visible unit v, one ReLU hidden unit of input x = v:
    # F(v) = v^2 / 2 - int_{-inf}^v softplus(u) du.
    x = np.linspace(-8, 8, 33).astype("float32")
    params = Params(np.ones((1, 1)), np.zeros(1), np.zeros(1))
    fe = numpy(free_energy(x[:, None], params, "gaussian", "relu"))
    got = 0.5 * x**2 - fe
    grid = np.linspace(-40, 8, 200001)
    dense = np.logaddexp(0, grid)
    cumulative = np.concatenate([[0], np.cumsum((dense[1:] + dense[:-1]) / 2)])
    expected = np.interp(x, grid, cumulative * (grid[1] - grid[0]))
    np.testing.assert_allclose(got, expected, atol=2e-3)


@pytest.mark.parametrize("hidden", ["bernoulli", "relu"])
def test_cd_2_gradients_match_a_numpy_reference(hidden):
    """CD-2 from the data: v0 -> h0 -> v1 -> h1 -> v2 -> h2, on given noise."""
    rng = np.random.default_rng(1)
    n_visible, n_hidden, m = 7, 5, 4
    params = random_params(rng, n_visible, n_hidden)
    w, c, b = (numpy(p) for p in params)
    v0 = (rng.random((m, n_visible)) < 0.5).astype("float32")
    if hidden == "bernoulli":
        noise = rng.random((2, m, n_hidden)).astype("float32")
    else:
        noise = rng.normal(size=(2, m, n_hidden)).astype("float32")
    config = Config(hidden=hidden, cd_steps=2)
    noise_tensors = Noise(tuple(tensor(d) for d in noise))
    gradients, vk, error = cd_gradients(params, v0, None, noise_tensors, config)

    def up(v):
        x = v @ w + c
        return x, sigmoid(x) if hidden == "bernoulli" else np.maximum(x, 0)

    def sample(x, mean, u):
        if hidden == "bernoulli":
            return (u < mean).astype("float32")
        return np.maximum(0, x + u * np.sqrt(sigmoid(x)))

    x0, h0 = up(v0)
    v1 = sigmoid(sample(x0, h0, noise[0]) @ w.T + b)
    x1, h1 = up(v1)
    v2 = sigmoid(sample(x1, h1, noise[1]) @ w.T + b)
    _, h2 = up(v2)
    want = (  # sums over the batch
        v0.T @ h0 - v2.T @ h2,
        (h0 - h2).sum(0),
        (v0 - v2).sum(0),
        h0.sum(0),
        v0.sum(0),
        m,
    )
    for got, expected in zip(gradients, want, strict=True):
        np.testing.assert_allclose(numpy(got), expected, atol=1e-5)
    np.testing.assert_allclose(numpy(vk), v2, atol=1e-6)
    # The reconstruction error is that of the first reconstruction, v1.
    assert float(numpy(error)) == pytest.approx(float(np.sum((v0 - v1) ** 2)), rel=1e-5)


def test_persistent_gradients_sample_the_chains():
    rng = np.random.default_rng(2)
    params = random_params(rng, 6, 5)
    w, c, b = (numpy(p) for p in params)
    v0 = (rng.random((3, 6)) < 0.5).astype("float32")
    chains = (rng.random((3, 6)) < 0.5).astype("float32")
    hidden_noise = rng.random((2, 3, 5)).astype("float32")
    visible_noise = rng.random((1, 3, 6)).astype("float32")
    noise = Noise(tuple(map(tensor, hidden_noise)), tuple(map(tensor, visible_noise)))
    gradients, vk, _ = cd_gradients(params, v0, chains, noise, Config(persistent=True))
    h_chain = (hidden_noise[1] < sigmoid(chains @ w + c)).astype("float32")
    v1 = (visible_noise[0] < sigmoid(h_chain @ w.T + b)).astype("float32")
    np.testing.assert_array_equal(numpy(vk), v1)  # a sample: a Markov chain
    h0, h1 = sigmoid(v0 @ w + c), sigmoid(v1 @ w + c)
    kernel = v0.T @ h0 - v1.T @ h1
    np.testing.assert_allclose(numpy(gradients.kernel), kernel, atol=1e-5)
    visible_bias = (v0 - v1).sum(0)
    np.testing.assert_allclose(numpy(gradients.visible_bias), visible_bias, atol=1e-5)


def test_apply_gradients_momentum_weight_decay_and_sparsity():
    rng = np.random.default_rng(3)
    params = random_params(rng, 4, 3)
    velocity = random_params(rng, 4, 3, scale=0.1)
    m = 5  # the gradients are sums over 5 samples
    sums = random_params(rng, 4, 3)
    data = (tensor(np.full(3, 0.3 * m)), tensor(np.full(4, 0.5 * m)))
    gradients = Gradients(*sums, *data, float(m))
    activity = tensor([0.1, 0.2, 0.3])
    state = State(params, velocity, tensor(np.zeros((2, 4))), activity)
    lr, momentum, decay, target = 0.1, 0.9, 0.01, 0.05
    new = apply_gradients(state, gradients, hyper(lr, momentum, decay, target), True)
    q = 0.9 * numpy(activity) + 0.1 * 0.3
    penalty = 0.1 * (q - target)
    g = [numpy(t) / m for t in sums]
    want_velocity = (
        momentum * numpy(velocity.kernel)
        + lr * (g[0] - np.outer(np.full(4, 0.5), penalty))
        - lr * decay * numpy(params.kernel),
        momentum * numpy(velocity.hidden_bias) + lr * (g[1] - penalty),
        momentum * numpy(velocity.visible_bias) + lr * g[2],
    )
    np.testing.assert_allclose(numpy(new.activity), q, rtol=1e-6)
    for got, want in zip(new.velocity, want_velocity, strict=True):
        np.testing.assert_allclose(numpy(got), want, atol=1e-6)
    for got, want, before in zip(new.params, want_velocity, params, strict=True):
        np.testing.assert_allclose(numpy(got), numpy(before) + want, atol=1e-6)
    # Without sparsity, the running mean is left alone.
    plain = apply_gradients(state, gradients, hyper(lr, momentum, decay), False)
    np.testing.assert_array_equal(numpy(plain.activity), numpy(activity))


def test_short_last_batch_uses_negatives_of_its_size():
    """PCD on a batch of 3 with 8 chains: advance and average 3 chains only."""
    rng = np.random.default_rng(0)
    n_visible, n_hidden = 6, 5
    params = random_params(rng, n_visible, n_hidden, scale=0.1)
    params = params._replace(visible_bias=tensor(np.zeros(n_visible)))
    chains = (rng.random((8, n_visible)) < 0.5).astype("float32")
    v0 = tensor(rng.random((3, n_visible)) < 0.5)
    noise = Noise(
        tuple(map(tensor, rng.random((2, 3, n_hidden)))),
        tuple(map(tensor, rng.random((1, 3, n_visible)))),
    )
    config = Config(persistent=True)
    new, _ = train_step(fresh_state(params, chains), v0, noise, hyper(), config)
    new_chains = numpy(new.chains)
    np.testing.assert_array_equal(new_chains[3:], chains[3:])
    assert not np.array_equal(new_chains[:3], chains[:3])
    # lr 1, no momentum: b = mean(v0) - mean(vk) over the 3 advanced chains
    expected = numpy(v0).mean(0) - new_chains[:3].mean(0)
    np.testing.assert_allclose(numpy(new.params.visible_bias), expected, atol=1e-6)


# --------------------------------------------------------------------------
# the epoch function


def test_one_compiled_epoch_function_per_setting(digits):
    x_train, x_val = digits
    # Several epochs, a short last batch, another sample count and a second
    # RBM of the same setting: one function, traced once per data shape.
    # Earlier tests share the cache; this one starts from an empty one.
    epoch_fn.cache_clear()
    RBM(37, batch_size=32, epochs=3, seed=0).fit(x_train[:100], verbose=0)
    function = epoch_fn(Config(), 32, "tensorflow")
    RBM(37, batch_size=32, epochs=2, seed=1, learning_rate=0.05).fit(x_val, verbose=0)
    RBM(37, batch_size=32, epochs=1, seed=2).fit(x_train[200:300], verbose=0)
    assert epoch_fn(Config(), 32, "tensorflow") is function
    assert isinstance(function, tf.types.experimental.GenericFunction)
    assert function.experimental_get_tracing_count() == 2  # 100 and 360 samples


@pytest.mark.parametrize("hidden", ["bernoulli", "relu"])
def test_monitors_estimate_the_free_energy_and_pseudo_likelihood(hidden):
    # The epoch's pseudo-likelihood flips one random bit per sample: an
    # unbiased estimate of the mean over all bits, computed here exactly.
    rng = np.random.default_rng(0)
    n, n_visible, n_hidden, copies = 20, 12, 7, 300
    params = random_params(rng, n_visible, n_hidden)
    v = (rng.random((n, n_visible)) < 0.4).astype("float32")
    epoch = epoch_fn(Config(hidden=hidden), 8, keras.backend.backend())
    state = fresh_state(params, np.zeros((8, n_visible), "float32"))
    empty = tensor(np.zeros((0, n_visible)))
    key = Keys.active().to_device(Keys.key(1, 2))
    monitor_x = tensor(np.tile(v, (copies, 1)))
    _, metrics = epoch(state, empty, key, hyper(0.0), monitor_x, tensor(v))
    metrics = numpy(metrics)
    fe = numpy(free_energy(v, params, "bernoulli", hidden))
    flipped = np.repeat(v[:, None], n_visible, 1)  # (n, bit, visible)
    flipped[:, np.arange(n_visible), np.arange(n_visible)] = 1 - v
    fe_flipped = numpy(
        free_energy(flipped.reshape(-1, n_visible), params, "bernoulli", hidden)
    )
    terms = n_visible * np.log(sigmoid(fe_flipped.reshape(n, n_visible) - fe[:, None]))
    standard_error = np.sqrt(terms.var(1).sum() / copies) / n
    assert np.isnan(metrics[0])  # no training data
    assert metrics[1] == pytest.approx(fe.mean(), rel=1e-5)
    assert metrics[3] == pytest.approx(fe.mean(), rel=1e-5)
    assert abs(metrics[2] - terms.mean()) < 5 * standard_error
    # Each bit flipped in turn: the exact per-bit terms.
    for bit in (0, n_visible - 1):
        columns = np.full(n, bit)
        got = numpy(pseudo_likelihood(v, params, columns, hidden))
        np.testing.assert_allclose(got, terms[:, bit], rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------
# the RBM on JAX and PyTorch: NumPy's gradients, TensorFlow's curves


@pytest.fixture(scope="module")
def tensorflow_curves():
    """The curves of `rbm_checks.curve_fit` on TensorFlow, in this process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("rbm_checks", CHECKS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.curve_fit(), module.gradient_errors()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_rbm_on_other_backends_matches_numpy_and_tensorflow(
    backend, run_on_backend, tensorflow_curves
):
    result = run_on_backend(backend, str(CHECKS))
    assert result["backend"] == backend
    assert result["tensorflow"] is False  # trained without importing it
    # One CD-1 update on a fixed batch and noise: NumPy's sums and weights.
    for name, error in result["gradients"].items():
        assert error < (1e-4 if name == "squared_error" else 2e-5), (name, error)
    # The same fit on the digits as TensorFlow's, up to the random draws
    # (measured 2026-12-05, seed 0: the reconstruction errors within 2% per
    # epoch, the monitors' pseudo-likelihoods within 3 nats, the held-out
    # score within 0.15; the bounds are about twice that).
    ours, (theirs, tf_gradients) = result["history"], tensorflow_curves
    assert max(tf_gradients.values()) < 1e-4
    np.testing.assert_allclose(
        ours["reconstruction_error"], theirs["reconstruction_error"], rtol=0.04
    )
    for key in ("pseudo_likelihood", "val_pseudo_likelihood"):
        np.testing.assert_allclose(ours[key], theirs[key], atol=6.0)
        assert np.mean(ours[key][-3:]) > np.mean(ours[key][:3]) + 3  # it learns
    assert ours["score_samples"] == pytest.approx(theirs["score_samples"], abs=0.4)
    np.testing.assert_allclose(  # measured within 9%: free energies drift
        ours["val_free_energy"], theirs["val_free_energy"], rtol=0.2
    )
    behaviour = result["behaviour"]
    assert behaviour["streamed"] and 0 < behaviour["streamed_error"] < 0.08
    del behaviour["streamed_error"]
    assert all(behaviour.values()), behaviour


# --------------------------------------------------------------------------
# the estimator


def test_reconstruction_error_falls_and_history(digits):
    x_train, x_val = digits
    rbm = RBM(64, epochs=8, seed=1)
    history = rbm.fit(x_train, validation_data=x_val, verbose=0)
    expected = {
        "reconstruction_error",
        "free_energy",
        "pseudo_likelihood",
        "val_free_energy",
        "free_energy_gap",
        "val_pseudo_likelihood",
    }
    assert set(history) == expected
    assert all(len(values) == 8 for values in history.values())
    error = history["reconstruction_error"]
    assert error[-1] < 0.75 * error[0]
    assert history["pseudo_likelihood"][-1] > history["pseudo_likelihood"][0]
    gap = np.array(history["free_energy_gap"])
    np.testing.assert_allclose(
        gap, np.array(history["val_free_energy"]) - history["free_energy"], rtol=1e-5
    )
    # Held-out digits come from the same distribution: no big overfitting gap
    # relative to the free energies themselves.
    assert np.all(np.abs(gap) < 0.1 * np.abs(history["free_energy"]))
    assert rbm.kernel.shape == (64, 64)
    assert rbm.hidden_bias.shape == (64,)
    assert rbm.visible_bias.shape == (64,)
    assert rbm.history_ == history
    assert rbm.fit_data_ == {"streamed": False, "samples": len(x_train)}


@pytest.mark.parametrize("streamed", [False, True])
def test_monitors_read_the_final_weights(digits, streamed):
    x_train, x_val = digits
    data = x_train
    if streamed:  # more samples than the buffer: read block by block
        data = tf.data.Dataset.from_tensor_slices(x_train).batch(100)
    rbm = RBM(16, epochs=2, seed=0, shuffle_buffer=200)
    history = rbm.fit(data, validation_data=x_val, verbose=0)
    assert history["val_free_energy"][-1] == pytest.approx(
        rbm.free_energy(x_val).mean(), rel=1e-5
    )


def test_pseudo_likelihood_at_least_sklearn(digits):
    x_train, x_val = digits
    ours = RBM(256, batch_size=64, epochs=10, seed=0)
    ours.fit(x_train, verbose=0)
    theirs = BernoulliRBM(n_components=256, batch_size=64, n_iter=10, random_state=0)
    theirs.fit(x_train)
    our_pl = ours.score_samples(x_val, seed=0).mean()
    their_pl = theirs.score_samples(x_val).mean()
    assert our_pl >= their_pl, (our_pl, their_pl)


def test_inference_formulas(digits):
    x_train, _ = digits
    rbm = RBM(16, epochs=1, seed=0)
    rbm.fit(x_train[:200], verbose=0)
    w, c, b = rbm.kernel, rbm.hidden_bias, rbm.visible_bias
    v = x_train[:10]
    h = sigmoid(v @ w + c)
    np.testing.assert_allclose(rbm.transform(v), h, atol=1e-5)
    np.testing.assert_allclose(rbm.reconstruct(v), sigmoid(h @ w.T + b), atol=1e-5)
    fe = -v @ b - np.logaddexp(0, v @ w + c).sum(axis=1)
    np.testing.assert_allclose(rbm.free_energy(v), fe, rtol=1e-4)
    # Pseudo-likelihood as scikit-learn defines it: flip one visible unit.
    scores = rbm.score_samples(v, seed=3)
    cols = np.random.default_rng(3).integers(0, 64, 10)
    flipped = v.copy()
    flipped[np.arange(10), cols] = 1 - flipped[np.arange(10), cols]
    fe_flipped = -flipped @ b - np.logaddexp(0, flipped @ w + c).sum(axis=1)
    expected = -64 * np.logaddexp(0, -(fe_flipped - fe))
    np.testing.assert_allclose(scores, expected, rtol=1e-4)


def test_gaussian_visible_relu_hidden_learns():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(4, 20))
    x = (rng.normal(size=(600, 4)) @ basis).astype("float32")
    x = (x - x.mean(0)) / x.std(0)
    rbm = RBM(16, visible="gaussian", hidden="relu", learning_rate=0.01, seed=0)
    history = rbm.fit(x, verbose=0)
    error = history["reconstruction_error"]
    assert np.all(np.isfinite(error))
    assert error[-1] < 0.6 * error[0]
    assert np.all(np.isnan(history["pseudo_likelihood"]))
    assert np.all(rbm.transform(x) >= 0)
    with pytest.raises(ValueError, match="Bernoulli visible units only"):
        rbm.score_samples(x)


def test_seed_makes_training_reproducible(digits):
    x_train, _ = digits
    a = RBM(8, epochs=2, seed=5)
    a.fit(x_train[:300], verbose=0)
    b = RBM(8, epochs=2, seed=5)
    b.fit(x_train[:300], verbose=0)
    c = RBM(8, epochs=2, seed=6)
    c.fit(x_train[:300], verbose=0)
    np.testing.assert_array_equal(a.kernel, b.kernel)
    assert not np.allclose(a.kernel, c.kernel)


def test_persistent_sparsity_and_cd_k_run(digits):
    x_train, _ = digits
    sparse = RBM(32, sparsity_target=0.05, epochs=6, seed=0)
    sparse.fit(x_train, verbose=0)
    dense = RBM(32, epochs=6, seed=0)
    dense.fit(x_train, verbose=0)
    assert sparse.transform(x_train).mean() < dense.transform(x_train).mean()
    history = RBM(32, persistent=True, cd_steps=2, epochs=3, seed=0).fit(
        x_train, verbose=0
    )
    assert np.all(np.isfinite(history["pseudo_likelihood"]))


def test_sampled_inputs_train_on_fresh_states_each_epoch(digits):
    x_train, _ = digits
    gray = np.full_like(x_train[:256], 0.5)
    rbm = RBM(8, epochs=4, seed=0)
    history = rbm.fit(gray, sample_inputs=True, verbose=0)
    # Reconstructing Bernoulli(0.5) samples: about 1/4 + (p - 1/2)^2 per value
    # for reconstructions p, never the near-0 error of the constant input.
    assert min(history["reconstruction_error"]) > 0.2
    again = RBM(8, epochs=4, seed=0)
    np.testing.assert_equal(again.fit(gray, sample_inputs=True, verbose=0), history)


def test_config_round_trip_keeps_the_fitted_weights(digits):
    x_train, _ = digits
    rbm = RBM(12, hidden="relu", momentum=0.7, epochs=3, seed=4)
    config = rbm.get_config()
    assert set(config) == set(inspect.signature(RBM.__init__).parameters) - {"self"}
    assert RBM.from_config(config).get_config() == config
    rbm.fit(x_train[:200], verbose=0)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(rbm)
    )
    assert isinstance(restored, RBM)
    assert repr(restored) == repr(rbm)
    assert RBM.from_config(rbm.get_config()).get_config() == rbm.get_config()
    for name in ("kernel", "hidden_bias", "visible_bias"):
        np.testing.assert_array_equal(getattr(restored, name), getattr(rbm, name))
    np.testing.assert_array_equal(restored.transform(x_train), rbm.transform(x_train))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"units": 0}, "units"),
        ({"units": 4, "epochs": 0}, "epochs"),
        ({"units": 4, "batch_size": -1}, "batch_size"),
        ({"units": 4, "learning_rate": 0.0}, "learning_rate"),
        ({"units": 4, "visible": "binary"}, "visible"),
        ({"units": 4, "hidden": "tanh"}, "hidden"),
        ({"units": 4, "cd_steps": 0}, "cd_steps"),
        ({"units": 4, "persistent": 1}, "persistent"),
        ({"units": 4, "momentum": (0.5, 1.5)}, "momentum"),
        ({"units": 4, "weight_decay": -1.0}, "weight_decay"),
        ({"units": 4, "sparsity_target": 1.0}, "sparsity_target"),
        ({"units": 4, "shuffle_buffer": -1}, "shuffle_buffer"),
        ({"units": 4, "seed": "a"}, "seed"),
    ],
)
def test_bad_arguments(kwargs, match):
    name, value = list(kwargs.items())[-1]
    with pytest.raises(ValueError, match=f"Argument `{match}`") as error:
        RBM(**kwargs)
    assert str(error.value).endswith(f"Received: {name}={value!r}")


def test_bad_data():
    rbm = RBM(4, epochs=1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rbm.fit(np.full((10, 3), 2.0, "float32"), verbose=0)
    with pytest.raises(ValueError, match="NaN"):
        rbm.fit(np.array([[0.5, np.nan]], "float32"), verbose=0)
    with pytest.raises(ValueError, match="2-D"):
        rbm.fit(np.zeros((4, 2, 2), "float32"), verbose=0)
    with pytest.raises(ValueError, match="no samples"):
        rbm.fit(np.zeros((0, 3), "float32"), verbose=0)
    with pytest.raises(ValueError, match="not fitted"):
        rbm.transform(np.zeros((2, 3), "float32"))
    rbm.fit(np.zeros((10, 3), "float32"), verbose=0)
    with pytest.raises(ValueError, match="3 features"):
        rbm.transform(np.zeros((2, 4), "float32"))


def test_diverging_training_fails_and_keeps_the_previous_fit(digits):
    x_train, _ = digits
    rbm = RBM(16, epochs=2, seed=0)
    rbm.fit(x_train, verbose=0)
    kernel = rbm.kernel.copy()
    rbm.learning_rate = 1e38
    with pytest.raises(FloatingPointError, match="diverged at epoch"):
        rbm.fit(x_train[:100], verbose=0)
    np.testing.assert_array_equal(rbm.kernel, kernel)


def test_negative_seeds_fail_at_construction():
    with pytest.raises(ValueError, match="seed=-1"):
        RBM(4, seed=-1)
