"""Tests of `keras_weightinit.RBM`: training behaviour, math, speed hooks, args."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import BernoulliRBM

from keras_weightinit import RBM
from keras_weightinit import rbm as rbm_module


@pytest.fixture(scope="module")
def digits():
    x = (load_digits().data / 16).astype("float32")
    return train_test_split(x, test_size=0.2, random_state=0)


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
    sigmoid = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
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


@pytest.mark.parametrize("hidden", ["bernoulli", "relu"])
def test_monitor_pseudo_likelihood_flips_one_bit(hidden):
    # The epoch's monitor computes F(v_flipped) from F(v)'s hidden input; it
    # must equal the free energy of the explicitly flipped samples.
    rng = np.random.default_rng(0)
    n, n_visible, n_hidden = 40, 12, 7
    params = (
        tf.constant(rng.normal(0, 0.5, (n_visible, n_hidden)).astype("float32")),
        tf.constant(rng.normal(0, 0.5, n_hidden).astype("float32")),
        tf.constant(rng.normal(0, 0.5, n_visible).astype("float32")),
    )
    v = tf.constant((rng.random((n, n_visible)) < 0.4).astype("float32"))
    seed = tf.constant([3, 4], tf.int64)
    mean_fe, pl = rbm_module._monitor(params, v, seed, "bernoulli", hidden)
    columns = tf.random.stateless_uniform(
        [n], seed, minval=0, maxval=n_visible, dtype=tf.int32
    ).numpy()
    flipped = v.numpy().copy()
    flipped[np.arange(n), columns] = 1 - flipped[np.arange(n), columns]
    fe = rbm_module.free_energy(v, *params, "bernoulli", hidden).numpy()
    fe_flipped = rbm_module.free_energy(flipped, *params, "bernoulli", hidden)
    expected = n_visible * np.mean(np.log(1 / (1 + np.exp(fe - fe_flipped.numpy()))))
    assert float(mean_fe) == pytest.approx(fe.mean(), rel=1e-5)
    assert float(pl) == pytest.approx(expected, rel=1e-4)


def test_relu_free_energy_term_is_integral_of_softplus():
    x = np.linspace(-8, 8, 33).astype("float32")
    got = rbm_module._relu_log_partition(tf.constant(x)).numpy()
    grid = np.linspace(-40, 8, 200001)
    dense = np.logaddexp(0, grid)
    cumulative = np.concatenate([[0], np.cumsum((dense[1:] + dense[:-1]) / 2)])
    cumulative *= grid[1] - grid[0]
    expected = np.interp(x, grid, cumulative)
    np.testing.assert_allclose(got, expected, atol=2e-3)


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


def test_short_last_batch_uses_negatives_of_its_size():
    """PCD on a batch of 3 with 8 chains: advance and average 3 chains only."""
    rng = np.random.default_rng(0)
    n_visible, n_hidden, n_chains = 6, 5, 8
    kernel = rng.normal(0, 0.1, (n_visible, n_hidden)).astype("float32")
    chains = (rng.random((n_chains, n_visible)) < 0.5).astype("float32")
    state = (
        tf.constant(kernel),
        tf.zeros([n_hidden]),
        tf.zeros([n_visible]),
        tf.zeros([n_visible, n_hidden]),
        tf.zeros([n_hidden]),
        tf.zeros([n_visible]),
        tf.constant(chains),
        tf.zeros([n_hidden]),
    )
    v0 = tf.constant((rng.random((3, n_visible)) < 0.5).astype("float32"))
    seeds = tf.random.experimental.stateless_split(tf.constant([1, 2], tf.int64), 4)
    hyper = (1.0, 0.0, 0.0, 0.0)
    config = {
        "visible": "bernoulli",
        "hidden": "bernoulli",
        "cd_steps": 1,
        "persistent": True,
        "sparsity": False,
    }
    new, _ = rbm_module.cd_update(state, v0, seeds, hyper, config)
    new_chains = new[6].numpy()
    np.testing.assert_array_equal(new_chains[3:], chains[3:])
    expected_vbias = v0.numpy().mean(0) - new_chains[:3].mean(0)
    np.testing.assert_allclose(new[2].numpy(), expected_vbias, atol=1e-6)


@pytest.mark.parametrize("hidden", ["bernoulli", "relu"])
def test_cd_2_update_matches_a_numpy_reference(hidden):
    """CD-2 from the data: v0 -> h0 -> v1 -> h1 -> v2 -> h2, on the same noise."""
    rng = np.random.default_rng(1)
    n_visible, n_hidden, m = 7, 5, 4
    kernel = rng.normal(0, 0.5, (n_visible, n_hidden)).astype("float32")
    hbias = rng.normal(0, 0.1, n_hidden).astype("float32")
    vbias = rng.normal(0, 0.1, n_visible).astype("float32")
    v0 = (rng.random((m, n_visible)) < 0.5).astype("float32")
    state = (
        tf.constant(kernel),
        tf.constant(hbias),
        tf.constant(vbias),
        tf.zeros([n_visible, n_hidden]),
        tf.zeros([n_hidden]),
        tf.zeros([n_visible]),
        tf.zeros([m, n_visible]),
        tf.zeros([n_hidden]),
    )
    seeds = tf.random.experimental.stateless_split(tf.constant([3, 4], tf.int64), 6)
    config = {
        "visible": "bernoulli",
        "hidden": hidden,
        "cd_steps": 2,
        "persistent": False,
        "sparsity": False,
    }
    learning_rate = 0.5
    new, error = rbm_module.cd_update(
        state, v0, seeds, (learning_rate, 0.0, 0.0, 0.0), config
    )

    # The update draws one hidden sample per step but the last, from seeds[i].
    draw = (
        tf.random.stateless_uniform
        if hidden == "bernoulli"
        else (tf.random.stateless_normal)
    )
    noise = [draw([m, n_hidden], seeds[i]).numpy() for i in range(2)]

    def sigmoid(a):
        return 1 / (1 + np.exp(-a))

    def up(v):
        pre = v @ kernel + hbias
        return pre, sigmoid(pre) if hidden == "bernoulli" else np.maximum(pre, 0)

    def sample(pre, mean, u):
        if hidden == "bernoulli":
            return (u < mean).astype("float32")
        return np.maximum(0, pre + u * np.sqrt(sigmoid(pre)))

    def down(h):
        return sigmoid(h @ kernel.T + vbias)

    pre0, h0 = up(v0)
    v1 = down(sample(pre0, h0, noise[0]))
    pre1, h1 = up(v1)
    v2 = down(sample(pre1, h1, noise[1]))
    _, h2 = up(v2)
    scale = learning_rate / m
    np.testing.assert_allclose(
        new[0].numpy(), kernel + scale * (v0.T @ h0 - v2.T @ h2), atol=1e-5
    )
    np.testing.assert_allclose(
        new[1].numpy(), hbias + scale * (h0 - h2).sum(0), atol=1e-5
    )
    np.testing.assert_allclose(
        new[2].numpy(), vbias + scale * (v0 - v2).sum(0), atol=1e-5
    )
    # The reconstruction error is that of the first reconstruction, v1.
    assert float(error) == pytest.approx(float(np.sum((v0 - v1) ** 2)), rel=1e-5)


def test_epoch_is_traced_once_per_shape(digits):
    x_train, x_val = digits
    key = (64, 37, 32, "bernoulli", "bernoulli", 1, False, False, False)
    before = rbm_module.TRACE_COUNTS.get(key, 0)
    # Several epochs, a short last batch, a different sample count and a
    # second RBM of the same shape: one trace in all.
    RBM(37, batch_size=32, epochs=3, seed=0).fit(x_train[:100], verbose=0)
    RBM(37, batch_size=32, epochs=2, seed=1, learning_rate=0.05).fit(x_val, verbose=0)
    assert rbm_module.TRACE_COUNTS[key] - before == 1


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


def test_config_round_trip():
    rbm = RBM(12, hidden="relu", momentum=0.7, epochs=3, seed=4)
    config = rbm.get_config()
    import inspect

    assert set(config) == set(inspect.signature(RBM.__init__).parameters) - {"self"}
    clone = RBM.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(rbm)
    )
    assert isinstance(restored, RBM)
    assert restored.get_config() == config


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
        ({"units": 4, "momentum": (0.5, 1.5)}, "momentum"),
        ({"units": 4, "weight_decay": -1.0}, "weight_decay"),
        ({"units": 4, "sparsity_target": 1.0}, "sparsity_target"),
        ({"units": 4, "seed": "a"}, "seed"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=f"Argument `{match}`"):
        RBM(**kwargs)


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


def test_a_failed_refit_keeps_the_previous_fit(digits, monkeypatch):
    x_train, _ = digits
    rbm = RBM(16, epochs=2, seed=0)
    rbm.fit(x_train, verbose=0)
    kernel = rbm.kernel.copy()

    def broken(*args, **kwargs):
        def epoch(*args):
            raise RuntimeError("interrupted")

        return epoch

    monkeypatch.setattr(rbm_module, "train_epoch_fn", broken)
    with pytest.raises(RuntimeError, match="interrupted"):
        rbm.fit(x_train[:100], verbose=0)
    np.testing.assert_array_equal(rbm.kernel, kernel)


def test_negative_seeds_fail_at_construction():
    with pytest.raises(ValueError, match="seed=-1"):
        RBM(4, seed=-1)


def test_monitor_function_draws_what_the_epoch_function_draws(digits):
    # Streaming computes the monitors apart from the epoch function; for the
    # same seed and weights the numbers are the epoch function's.
    x_train, x_val = digits
    n_visible, n_hidden = 64, 9
    rng = np.random.default_rng(0)
    params = (
        tf.constant(rng.normal(0, 0.1, (n_visible, n_hidden)).astype("float32")),
        tf.constant(rng.normal(0, 0.1, n_hidden).astype("float32")),
        tf.constant(rng.normal(0, 0.1, n_visible).astype("float32")),
    )
    state = (
        *params,
        tf.zeros([n_visible, n_hidden]),
        tf.zeros([n_hidden]),
        tf.zeros([n_visible]),
        tf.zeros([32, n_visible]),
        tf.zeros([n_hidden]),
    )
    seed = tf.constant([5, 2], tf.int64)
    hyper = tuple(tf.constant(0.0) for _ in range(4))
    epoch_fn = rbm_module.train_epoch_fn(n_visible, n_hidden, 32)
    monitor_x, val_x = tf.constant(x_train[:200]), tf.constant(x_val[:100])
    _, metrics = epoch_fn(
        state, tf.zeros([0, n_visible]), seed, hyper, monitor_x, val_x
    )
    alone = rbm_module._monitor_fn(n_visible, n_hidden, "bernoulli", "bernoulli")
    np.testing.assert_array_equal(
        alone(params, monitor_x, val_x, seed).numpy(), metrics.numpy()[1:]
    )
