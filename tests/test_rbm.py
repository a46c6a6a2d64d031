"""Tests of `keras_weightinit.rbm`: the math, one update, the epoch, `RBM`."""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import BernoulliRBM

from keras_weightinit import RBM
from keras_weightinit.rbm import (
    Config,
    Gradients,
    Hyper,
    Noise,
    Params,
    State,
    apply_gradients,
    bernoulli,
    cd_gradients,
    free_energy,
    train_epoch_fn,
    train_step,
)


@pytest.fixture(scope="module")
def digits():
    x = (load_digits().data / 16).astype("float32")
    return train_test_split(x, test_size=0.2, random_state=0)


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def random_params(rng, n_visible, n_hidden, scale=0.5):
    return Params(
        *(
            tf.constant(rng.normal(0, scale, shape).astype("float32"))
            for shape in ((n_visible, n_hidden), n_hidden, n_visible)
        )
    )


def fresh_state(params, chains):
    zeros = Params(*(tf.zeros_like(p) for p in params))
    return State(params, zeros, tf.constant(chains), tf.zeros_like(params[1]))


def hyper(learning_rate=1.0, momentum=0.0, weight_decay=0.0, target=0.0):
    return Hyper(
        *(
            tf.constant(float(h))
            for h in (learning_rate, momentum, weight_decay, target)
        )
    )


# --------------------------------------------------------------------------
# the math


def test_bernoulli_samples_are_noise_below_the_mean():
    rng = np.random.default_rng(0)
    mean = rng.random((200, 300), dtype=np.float32)
    mean[:, :3] = [0.0, 1.0, 0.5]
    noise = rng.random((200, 300), dtype=np.float32)
    noise[:100, :3] = [0.0, 0.0, 0.5]
    noise[100:, :3] = np.float32(1 - 2**-24)  # the largest float below 1
    sample = bernoulli(tf.constant(mean), tf.constant(noise)).numpy()
    np.testing.assert_array_equal(sample, (noise < mean).astype("float32"))


def test_free_energy_formulas():
    rng = np.random.default_rng(0)
    params = random_params(rng, 6, 4)
    w, c, b = (p.numpy() for p in params)
    v = (rng.random((5, 6)) < 0.5).astype("float32")
    bernoulli = -v @ b - np.logaddexp(0, v @ w + c).sum(1)
    np.testing.assert_allclose(free_energy(v, params), bernoulli, rtol=1e-5)
    gaussian = 0.5 * ((v - b) ** 2).sum(1) - np.logaddexp(0, v @ w + c).sum(1)
    np.testing.assert_allclose(free_energy(v, params, "gaussian"), gaussian, rtol=1e-5)


def test_relu_free_energy_term_is_the_integral_of_softplus():
    # One Gaussian visible unit v, one ReLU hidden unit of input x = v:
    # F(v) = v^2 / 2 - int_{-inf}^v softplus(u) du.
    x = np.linspace(-8, 8, 33).astype("float32")
    params = Params(tf.ones([1, 1]), tf.zeros([1]), tf.zeros([1]))
    got = 0.5 * x**2 - free_energy(x[:, None], params, "gaussian", "relu").numpy()
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
    w, c, b = (p.numpy() for p in params)
    v0 = (rng.random((m, n_visible)) < 0.5).astype("float32")
    if hidden == "bernoulli":
        noise = rng.random((2, m, n_hidden)).astype("float32")
    else:
        noise = rng.normal(size=(2, m, n_hidden)).astype("float32")
    config = Config(hidden=hidden, cd_steps=2)
    gradients, vk, error = cd_gradients(params, v0, None, Noise(tuple(noise)), config)

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
        np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(vk, v2, atol=1e-6)
    # The reconstruction error is that of the first reconstruction, v1.
    assert float(error) == pytest.approx(float(np.sum((v0 - v1) ** 2)), rel=1e-5)


def test_persistent_gradients_sample_the_chains():
    rng = np.random.default_rng(2)
    params = random_params(rng, 6, 5)
    w, c, b = (p.numpy() for p in params)
    v0 = (rng.random((3, 6)) < 0.5).astype("float32")
    chains = (rng.random((3, 6)) < 0.5).astype("float32")
    noise = Noise(
        tuple(rng.random((2, 3, 5)).astype("float32")),
        tuple(rng.random((1, 3, 6)).astype("float32")),
    )
    gradients, vk, _ = cd_gradients(params, v0, chains, noise, Config(persistent=True))
    h_chain = (noise.hidden[1] < sigmoid(chains @ w + c)).astype("float32")
    v1 = (noise.visible[0] < sigmoid(h_chain @ w.T + b)).astype("float32")
    np.testing.assert_array_equal(vk, v1)  # a sample: a Markov chain
    h0, h1 = sigmoid(v0 @ w + c), sigmoid(v1 @ w + c)
    np.testing.assert_allclose(gradients.kernel, v0.T @ h0 - v1.T @ h1, atol=1e-5)
    np.testing.assert_allclose(gradients.visible_bias, (v0 - v1).sum(0), atol=1e-5)


def test_apply_gradients_momentum_weight_decay_and_sparsity():
    rng = np.random.default_rng(3)
    params = random_params(rng, 4, 3)
    velocity = random_params(rng, 4, 3, scale=0.1)
    m = 5  # the gradients are sums over 5 samples
    sums = random_params(rng, 4, 3)
    data = (tf.fill([3], 0.3 * m), tf.fill([4], 0.5 * m))
    gradients = Gradients(*sums, *data, tf.constant(float(m)))
    activity = tf.constant([0.1, 0.2, 0.3])
    state = State(params, velocity, tf.zeros([2, 4]), activity)
    lr, momentum, decay, target = 0.1, 0.9, 0.01, 0.05
    new = apply_gradients(state, gradients, hyper(lr, momentum, decay, target), True)
    q = 0.9 * activity.numpy() + 0.1 * 0.3
    penalty = 0.1 * (q - target)
    g = [t.numpy() / m for t in sums]
    want_velocity = (
        momentum * velocity.kernel.numpy()
        + lr * (g[0] - np.outer(np.full(4, 0.5), penalty))
        - lr * decay * params.kernel.numpy(),
        momentum * velocity.hidden_bias.numpy() + lr * (g[1] - penalty),
        momentum * velocity.visible_bias.numpy() + lr * g[2],
    )
    np.testing.assert_allclose(new.activity, q, rtol=1e-6)
    for got, want in zip(new.velocity, want_velocity, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    for got, want, before in zip(new.params, want_velocity, params, strict=True):
        np.testing.assert_allclose(got, before.numpy() + want, atol=1e-6)
    # Without sparsity, the running mean is left alone.
    plain = apply_gradients(state, gradients, hyper(lr, momentum, decay), False)
    np.testing.assert_array_equal(plain.activity, activity)


def test_short_last_batch_uses_negatives_of_its_size():
    """PCD on a batch of 3 with 8 chains: advance and average 3 chains only."""
    rng = np.random.default_rng(0)
    n_visible, n_hidden = 6, 5
    params = random_params(rng, n_visible, n_hidden, scale=0.1)
    params = params._replace(visible_bias=tf.zeros([n_visible]))
    chains = (rng.random((8, n_visible)) < 0.5).astype("float32")
    v0 = (rng.random((3, n_visible)) < 0.5).astype("float32")
    noise = Noise(
        tuple(rng.random((2, 3, n_hidden)).astype("float32")),
        tuple(rng.random((1, 3, n_visible)).astype("float32")),
    )
    config = Config(persistent=True)
    new, _ = train_step(fresh_state(params, chains), v0, noise, hyper(), config)
    new_chains = new.chains.numpy()
    np.testing.assert_array_equal(new_chains[3:], chains[3:])
    assert not np.array_equal(new_chains[:3], chains[:3])
    # lr 1, no momentum: b = mean(v0) - mean(vk) over the 3 advanced chains
    expected = v0.mean(0) - new_chains[:3].mean(0)
    np.testing.assert_allclose(new.params.visible_bias, expected, atol=1e-6)


# --------------------------------------------------------------------------
# the epoch function


def test_one_epoch_function_per_shape_traced_once(digits):
    x_train, x_val = digits
    # Several epochs, a short last batch, another sample count and a second
    # RBM of the same shape: one function, traced once.
    RBM(37, batch_size=32, epochs=3, seed=0).fit(x_train[:100], verbose=0)
    function = train_epoch_fn(64, 37, 32, Config())
    RBM(37, batch_size=32, epochs=2, seed=1, learning_rate=0.05).fit(x_val, verbose=0)
    assert train_epoch_fn(64, 37, 32, Config()) is function
    assert function.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("hidden", ["bernoulli", "relu"])
def test_monitors_estimate_the_free_energy_and_pseudo_likelihood(hidden):
    # The epoch's pseudo-likelihood flips one random bit per sample: an
    # unbiased estimate of the mean over all bits, computed here exactly.
    rng = np.random.default_rng(0)
    n, n_visible, n_hidden, copies = 20, 12, 7, 300
    params = random_params(rng, n_visible, n_hidden)
    v = (rng.random((n, n_visible)) < 0.4).astype("float32")
    epoch = train_epoch_fn(n_visible, n_hidden, 8, Config(hidden=hidden))
    state = fresh_state(params, np.zeros((8, n_visible), "float32"))
    empty = tf.zeros([0, n_visible])
    monitor_x = np.tile(v, (copies, 1))
    _, metrics = epoch(
        state, empty, tf.constant([1, 2], tf.int64), hyper(0.0), monitor_x, v
    )
    metrics = metrics.numpy()
    fe = free_energy(v, params, "bernoulli", hidden).numpy()
    flipped = np.repeat(v[:, None], n_visible, 1)  # (n, bit, visible)
    flipped[:, np.arange(n_visible), np.arange(n_visible)] = 1 - v
    fe_flipped = free_energy(
        flipped.reshape(-1, n_visible), params, "bernoulli", hidden
    )
    terms = n_visible * np.log(
        sigmoid(fe_flipped.numpy().reshape(n, n_visible) - fe[:, None])
    )
    standard_error = np.sqrt(terms.var(1).sum() / copies) / n
    assert np.isnan(metrics[0])  # no training data
    assert metrics[1] == pytest.approx(fe.mean(), rel=1e-5)
    assert metrics[3] == pytest.approx(fe.mean(), rel=1e-5)
    assert abs(metrics[2] - terms.mean()) < 5 * standard_error


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
