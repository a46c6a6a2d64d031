"""Restricted Boltzmann machines in TensorFlow, one graph call per epoch.

An RBM with visible units `v` (biases `b`), hidden units `h` (biases `c`) and
weights `W` (shape `(visible, hidden)`, the layout of a Dense kernel) has the
energy `E(v, h) = -v.b - h.c - v W h` (Bernoulli visible units) or
`E(v, h) = ||v - b||^2 / 2 - h.c - v W h` (unit-variance Gaussian visible
units). Given `v`, the hidden units are independent with total input
`x = v W + c`:

- Bernoulli hidden units: `p(h_j = 1 | v) = sigmoid(x_j)`.
- Noisy rectified (ReLU) hidden units: `h_j = max(0, x_j + N(0, sigmoid(x_j)))`,
  mean taken as `max(0, x_j)` (Nair & Hinton 2010).

Training is contrastive divergence (CD-k) or persistent CD (Tieleman 2008),
with momentum and weight decay as in Hinton's practical guide (2010):

    g_W = <v h>_data - <v h>_model          (means over the batch)
    velocity <- momentum velocity + lr (g - weight_decay W)
    params <- params + velocity

The module is layered: pure functions of tensors for the math (`hidden_mean`,
`sample_hidden`, `visible_mean`, `sample_visible`, `free_energy`, and one
update, `train_step`, as `cd_gradients` then `apply_gradients`: the seam
where data-parallel training would all-reduce the `Gradients`), on named
state (`Params`, `State`); `train_epoch_fn`, the `tf.function` looping over
an epoch's batches; and the `RBM` estimator, which reads arrays in memory
and streams `tf.data.Dataset`s and `PyDataset`s block by block. All
randomness is stateless, derived from the `seed` argument.
"""

from __future__ import annotations

import functools
import itertools
import math
import random as python_random
from collections.abc import Sequence
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from keras_weightinit import distributed
from keras_weightinit.checks import (
    is_int,
    is_number,
    optional_path,
    positive_int,
    positive_number,
    verbose_level,
)
from keras_weightinit.data import (
    FeatureStats,
    Stream,
    as_array,
    as_tensor,
    is_stream,
    rechunk,
    shuffle_blocks,
)

__all__ = [
    "RBM",
    "Config",
    "Gradients",
    "Hyper",
    "Noise",
    "Params",
    "State",
    "apply_gradients",
    "cd_gradients",
    "draw_noise",
    "free_energy",
    "train_epoch_fn",
    "train_step",
]

VISIBLE_UNITS = ("bernoulli", "gaussian")
HIDDEN_UNITS = ("bernoulli", "relu")
# Sparsity (Hinton 2010, section 11): the running estimate of each hidden
# unit's mean activation decays with SPARSITY_DECAY; the penalty's weight is
# SPARSITY_COST.
SPARSITY_DECAY = 0.9
SPARSITY_COST = 0.1
# Visible bias init log(p / (1 - p)) with p clipped to [P_CLIP, 1 - P_CLIP].
P_CLIP = 1e-3
# The per-epoch monitors (free energy, pseudo-likelihood) use this many samples.
MONITOR_SAMPLES = 512
# Streaming (`fit` on a dataset): the default shuffle buffer holds this many
# bytes of float32 samples (8 MiB: 2,674 samples of 784 features), and the
# data go to the epoch function in blocks of about CHUNK_BYTES (a whole number
# of batches).
SHUFFLE_BYTES = 8 << 20
CHUNK_BYTES = 4 << 20
# Noise is drawn for many batches at once, at most about this many values
# per draw (float32: 16 MiB).
NOISE_VALUES = 1 << 22
METRICS = (
    "reconstruction_error",
    "free_energy",
    "pseudo_likelihood",
    "val_free_energy",
    "free_energy_gap",
    "val_pseudo_likelihood",
)


# --------------------------------------------------------------------------
# named state


class Params(NamedTuple):
    """The weights of an RBM, or anything shaped like them (a velocity)."""

    kernel: tf.Tensor  # W, (visible, hidden)
    hidden_bias: tf.Tensor  # c, (hidden,)
    visible_bias: tf.Tensor  # b, (visible,)


class Gradients(NamedTuple):
    """One batch's CD statistics, sums over its samples.

    The first three fields, divided by `samples`, are the log-likelihood
    gradient estimates for the `Params` of the same names, `<.>_data -
    <.>_model`; the next two are the data statistics the sparsity penalty
    needs. As sums, the statistics of the shards of a batch add up to the
    batch's (see `train_step`).
    """

    kernel: tf.Tensor  # sum of v0^T h0 - vk^T hk
    hidden_bias: tf.Tensor  # sum of h0 - hk
    visible_bias: tf.Tensor  # sum of v0 - vk
    hidden_data: tf.Tensor  # sum of h0
    visible_data: tf.Tensor | None  # sum of v0; None if no update needs it
    samples: tf.Tensor  # m, float32


class State(NamedTuple):
    """What one update carries to the next."""

    params: Params
    velocity: Params  # the momentum buffers
    chains: tf.Tensor  # persistent CD's fantasy particles, (batch_size, visible)
    activity: tf.Tensor  # q: running mean of each hidden unit's activation


class Config(NamedTuple):
    """The static settings of an update: one traced epoch function each."""

    visible: str = "bernoulli"
    hidden: str = "bernoulli"
    cd_steps: int = 1
    persistent: bool = False
    sparsity: bool = False
    sample_inputs: bool = False  # train on a Bernoulli sample of each input


class Hyper(NamedTuple):
    """The update's hyperparameters, float32 scalars (they change per epoch)."""

    learning_rate: tf.Tensor
    momentum: tf.Tensor
    weight_decay: tf.Tensor
    sparsity_target: tf.Tensor


class Noise(NamedTuple):
    """The random numbers of one update on `m` samples, in the order of use.

    Uniform on [0, 1) for Bernoulli units, standard normal for the others:
    `hidden` holds `k` draws `(m, hidden)` for CD-k from the data, `k + 1`
    for persistent CD; `visible` holds `k` draws `(m, visible)` for
    persistent CD (its chains sample the visibles), else none.
    """

    hidden: tuple[tf.Tensor, ...]
    visible: tuple[tf.Tensor, ...] = ()


# --------------------------------------------------------------------------
# the math: pure functions of tensors


def hidden_input(v: tf.Tensor, params: Params) -> tf.Tensor:
    """The hidden units' total input `x = v W + c`."""
    # MatMul + BiasAdd, which TensorFlow fuses into one op.
    return tf.nn.bias_add(tf.matmul(v, params.kernel), params.hidden_bias)


def hidden_mean(x: tf.Tensor, hidden: str) -> tf.Tensor:
    """`E[h | v]` from the total input `x`: `sigmoid(x)` or `max(0, x)`."""
    return tf.sigmoid(x) if hidden == "bernoulli" else tf.nn.relu(x)


def sample_hidden(x: tf.Tensor, mean: tf.Tensor, hidden: str, noise) -> tf.Tensor:
    """A sample of `h | v` from `noise` of `x`'s shape.

    Bernoulli: `bernoulli(mean, noise)`, uniform `noise`; noisy ReLU:
    `max(0, x + noise sqrt(sigmoid(x)))`, standard normal `noise`.
    """
    if hidden == "bernoulli":
        return bernoulli(mean, noise)
    return tf.nn.relu(x + noise * tf.sqrt(tf.sigmoid(x)))


def visible_mean(h: tf.Tensor, params: Params, visible: str) -> tf.Tensor:
    """`E[v | h]`: `sigmoid(h W^T + b)` (Bernoulli) or `h W^T + b` (Gaussian)."""
    x = tf.matmul(h, params.kernel, transpose_b=True)
    x = tf.nn.bias_add(x, params.visible_bias)
    return tf.sigmoid(x) if visible == "bernoulli" else x


def sample_visible(mean: tf.Tensor, visible: str, noise) -> tf.Tensor:
    """A sample of `v | h` from `noise` of `mean`'s shape.

    Bernoulli: `bernoulli(mean, noise)`, uniform `noise`; Gaussian:
    `mean + noise`, standard normal `noise`.
    """
    if visible == "bernoulli":
        return bernoulli(mean, noise)
    return mean + noise


def bernoulli(mean: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """A Bernoulli sample of probabilities `mean` from uniform `[0, 1)` noise.

    `1` where `noise < mean`, else `0` (`-0.0` for some), as
    `ceil(mean - noise)`: the difference lies in `(-1, 1]` and is positive
    exactly where `noise < mean`.

    Example:

    >>> bernoulli(tf.constant([0.0, 0.5, 1.0]), tf.constant([0.0, 0.7, 0.3])).numpy()
    array([ 0., -0.,  1.], dtype=float32)
    """
    return tf.math.ceil(mean - noise)


def _relu_log_partition(x: tf.Tensor, terms: int = 24) -> tf.Tensor:
    """`int_{-inf}^x softplus(u) du = -Li2(-e^x)`, the NReLU free-energy term.

    A noisy ReLU unit stands for infinitely many Bernoulli copies with biases
    `x - 0.5, x - 1.5, ...`; their free-energy term `sum_i softplus(x - i +
    0.5)` is approximated by the integral. With `z = e^-|x|` and `g(z) =
    sum_k (-1)^(k+1) z^k / k^2`: `g(z)` for `x <= 0`, `pi^2/6 + x^2/2 - g(z)`
    for `x > 0` (dilogarithm inversion), the alternating series averaged over
    its last two partial sums (error below 1e-4).
    """
    z = tf.exp(-tf.abs(x))
    total = tf.zeros_like(x)
    power = tf.ones_like(x)
    last = tf.zeros_like(x)
    for k in range(1, terms + 2):
        power = power * z
        last = (1.0 if k % 2 else -1.0) * power / float(k * k)
        total = total + last
    g = total - 0.5 * last
    return tf.where(x > 0, math.pi**2 / 6 + 0.5 * tf.square(x) - g, g)


def _hidden_term(x: tf.Tensor, hidden: str) -> tf.Tensor:
    """The hidden units' share of `F(v)`, from their total input `x`."""
    if hidden == "bernoulli":
        return -tf.reduce_sum(tf.math.softplus(x), axis=-1)
    return -tf.reduce_sum(_relu_log_partition(x), axis=-1)


def free_energy(
    v, params, visible: str = "bernoulli", hidden: str = "bernoulli"
) -> tf.Tensor:
    """`F(v) = -log sum_h exp(-E(v, h))` per sample (up to a constant).

    `F(v) = -v.b` (Bernoulli visible) or `||v - b||^2 / 2` (Gaussian), plus
    for each hidden unit, with input `x = v W + c`, `-softplus(x)`
    (Bernoulli) or `-int_{-inf}^x softplus(u) du` (noisy ReLU).

    Args:
        v: Samples, shape `(n, visible)`.
        params: `Params(kernel, hidden_bias, visible_bias)`, or those three
            arrays in that order.
        visible: `"bernoulli"` or `"gaussian"`.
        hidden: `"bernoulli"` or `"relu"`.

    Returns:
        The free energies, shape `(n,)`.

    Example:

    >>> params = Params(tf.zeros([3, 2]), tf.zeros([2]), tf.zeros([3]))
    >>> free_energy(tf.ones([1, 3]), params).numpy()  # -2 softplus(0)
    array([-1.3862944], dtype=float32)
    """
    params = Params(*params)
    v = tf.convert_to_tensor(v, tf.float32)
    if visible == "bernoulli":
        visible_term = -tf.linalg.matvec(v, params.visible_bias)
    else:
        visible_term = 0.5 * tf.reduce_sum(tf.square(v - params.visible_bias), -1)
    return visible_term + _hidden_term(hidden_input(v, params), hidden)


def draw_noise(seed, batches, m, n_visible: int, n_hidden: int, config: Config):
    """The `Noise` of `batches` updates on `m` samples each, drawn at once.

    One draw per kind of noise and Gibbs step, with a leading axis of
    `batches`; `_noise_at(noise, i)` is the `i`-th update's `Noise`. One
    large draw costs much less than many small.
    """

    def draw(units, count, width, seed):
        shape = [batches, m, width]
        sample = (
            tf.random.stateless_uniform
            if units == "bernoulli"
            else tf.random.stateless_normal
        )
        seeds = tf.random.experimental.stateless_split(seed, count)
        return tuple(sample(shape, seeds[j]) for j in range(count))

    k = config.cd_steps
    if not config.persistent:
        return Noise(draw(config.hidden, k, n_hidden, seed))
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    return Noise(
        draw(config.hidden, k + 1, n_hidden, seeds[0]),
        draw(config.visible, k, n_visible, seeds[1]),
    )


def _noise_at(noise: Noise, i) -> Noise:
    """The `i`-th update's `Noise` of `draw_noise`'s."""
    return Noise(*(tuple(tf.gather(d, i) for d in draws) for draws in noise))


def cd_gradients(params: Params, v0, chains, noise: Noise, config: Config):
    """The CD-k (or persistent CD-k) statistics of one batch `v0`.

    With `h0 = E[h | v0]` and `(vk, hk = E[h | vk])` after `k = cd_steps`
    Gibbs steps, each `h ~ p(h | v)` then `v = E[v | h]`: from a sample of
    `h | v0` (CD-k; the visibles stay probabilities) or from the persistent
    `chains` (PCD; the visibles are sampled, so that each chain is a Markov
    chain). Summed over the `m = len(v0)` samples:

        kernel = v0^T h0 - vk^T hk
        hidden_bias = sum(h0 - hk),  visible_bias = sum(v0 - vk)

    Args:
        params: The current `Params`.
        v0: The batch, `(m, visible)`.
        chains: PCD's `m` chains `(m, visible)`; None for CD-k.
        noise: The update's `Noise`.
        config: The `Config` (units, `cd_steps`, `persistent`).

    Returns:
        `(gradients, vk, squared_error)`: the `Gradients`, the negative
        samples (PCD's advanced chains), and the squared reconstruction
        error `||v0 - E[v | h ~ p(h | v0)]||^2` summed over the batch.
    """
    visible, hidden = config.visible, config.hidden
    hidden_noise, visible_noise = iter(noise.hidden), iter(noise.visible)

    x0 = hidden_input(v0, params)
    h0 = hidden_mean(x0, hidden)
    h = sample_hidden(x0, h0, hidden, next(hidden_noise))
    reconstruction = visible_mean(h, params, visible)
    if config.persistent:
        x = hidden_input(chains, params)
        h = sample_hidden(x, hidden_mean(x, hidden), hidden, next(hidden_noise))
    for step in range(config.cd_steps):
        if step == 0 and not config.persistent:
            vk = reconstruction
        else:
            vk = visible_mean(h, params, visible)
        if config.persistent:
            vk = sample_visible(vk, visible, next(visible_noise))
        x = hidden_input(vk, params)
        hk = hidden_mean(x, hidden)
        if step + 1 < config.cd_steps:
            h = sample_hidden(x, hk, hidden, next(hidden_noise))

    residual = v0 - reconstruction
    hidden_data = tf.reduce_sum(h0, 0)
    visible_data = None
    if config.sparsity or vk is not reconstruction:
        visible_data = tf.reduce_sum(v0, 0)
    if vk is reconstruction:
        visible_bias = tf.reduce_sum(residual, 0)
    else:
        visible_bias = visible_data - tf.reduce_sum(vk, 0)
    # a constant when the batch size is known
    samples = tf.cast(v0.shape[0] or tf.shape(v0)[0], tf.float32)
    gradients = Gradients(
        kernel=tf.matmul(v0, h0, transpose_a=True)
        - tf.matmul(vk, hk, transpose_a=True),
        hidden_bias=hidden_data - tf.reduce_sum(hk, 0),
        visible_bias=visible_bias,
        hidden_data=hidden_data,
        visible_data=visible_data,
        samples=samples,
    )
    return gradients, vk, 2.0 * tf.nn.l2_loss(residual)


def apply_gradients(
    state: State, gradients: Gradients, hyper: Hyper, sparsity: bool
) -> State:
    """The state after one momentum step along `gradients`.

    With `g = gradients / samples` (batch means), learning rate `lr`, the
    weight decay on the kernel only and, with `sparsity`, the penalty
    pulling the running mean activation `q` of the hidden units towards the
    target:

        q <- 0.9 q + 0.1 mean(h0)
        g_c <- g_c - 0.1 (q - target),  g_W <- g_W - 0.1 mean(v0) (q - target)^T
        velocity <- momentum velocity + lr (g - weight_decay W)
        params <- params + velocity

    Args:
        state: The `State` before the update.
        gradients: `cd_gradients`' `Gradients` (or their sum over replicas).
        hyper: The `Hyper` of this epoch.
        sparsity: Whether the sparsity penalty is on.

    Returns:
        The new `State` (its chains unchanged).
    """
    lr, momentum = hyper.learning_rate, hyper.momentum
    params, velocity, activity = state.params, state.velocity, state.activity
    inverse_m = 1.0 / gradients.samples
    step = lr * inverse_m
    # The scalars multiply each other before they multiply a tensor.
    kernel_terms = [
        momentum * velocity.kernel,
        step * gradients.kernel,
        (-lr * hyper.weight_decay) * params.kernel,
    ]
    hidden_gradient = gradients.hidden_bias * inverse_m
    if sparsity:
        activity = SPARSITY_DECAY * activity
        activity += (1 - SPARSITY_DECAY) * inverse_m * gradients.hidden_data
        penalty = SPARSITY_COST * (activity - hyper.sparsity_target)
        hidden_gradient -= penalty
        visible_mean = (-lr * inverse_m) * gradients.visible_data
        kernel_terms.append(tf.tensordot(visible_mean, penalty, 0))
    velocity = Params(
        kernel=tf.add_n(kernel_terms),
        hidden_bias=momentum * velocity.hidden_bias + lr * hidden_gradient,
        visible_bias=momentum * velocity.visible_bias + step * gradients.visible_bias,
    )
    params = Params(*(p + d for p, d in zip(params, velocity, strict=True)))
    return State(params, velocity, state.chains, activity)


def train_step(state: State, v0, noise: Noise, hyper: Hyper, config: Config):
    """One update on the batch `v0`: `cd_gradients`, then `apply_gradients`.

    Persistent CD advances only the first `m = len(v0)` chains, so a short
    last batch has negative statistics of its own size. The seam for
    data-parallel pretraining is between the two steps: each replica
    computes the `Gradients` of its shard, an all-reduce sums them (the
    sample counts too, so that unequal shards weigh right), and every
    replica applies the sum.

    Returns:
        `(new_state, squared reconstruction error summed over the batch)`.
    """
    m = v0.shape[0] or tf.shape(v0)[0]
    chains = state.chains[:m] if config.persistent else None
    gradients, vk, error = cd_gradients(state.params, v0, chains, noise, config)
    if config.persistent:
        if v0.shape[0] != state.chains.shape[0]:  # a short batch: the first m
            vk = tf.ensure_shape(
                tf.concat([vk, state.chains[m:]], 0), state.chains.shape
            )
        state = state._replace(chains=vk)
    return apply_gradients(state, gradients, hyper, config.sparsity), error


def _monitor(params: Params, v, seed, config: Config):
    """`(mean F(v), pseudo-likelihood of v)`, the per-epoch monitors.

    The pseudo-likelihood is `score_samples`' (one random visible bit `i`
    flipped per sample), NaN for Gaussian visible units; both NaN for an
    empty `v`. Flipping `v_i` by `d = 1 - 2 v_i` moves the hidden input by
    `d W_i` and the visible term by `-d b_i`, so `F(v_flipped)` needs no
    second matrix product.
    """
    if config.visible != "bernoulli":
        fe = free_energy(v, params, config.visible, config.hidden)
        return tf.reduce_mean(fe), tf.constant(math.nan)
    n_visible = v.shape[-1]
    columns = tf.random.stateless_uniform(
        [tf.shape(v)[0]], seed, minval=0, maxval=n_visible, dtype=tf.int32
    )
    d = 1.0 - 2.0 * tf.gather(v, columns[:, None], batch_dims=1)  # (n, 1)
    x = hidden_input(v, params)
    visible_term = -tf.linalg.matvec(v, params.visible_bias)
    fe = visible_term + _hidden_term(x, config.hidden)
    fe_flipped = (
        visible_term
        - d[:, 0] * tf.gather(params.visible_bias, columns)
        + _hidden_term(x + d * tf.gather(params.kernel, columns), config.hidden)
    )
    pl = n_visible * tf.reduce_mean(tf.math.log_sigmoid(fe_flipped - fe))
    return tf.reduce_mean(fe), pl


# --------------------------------------------------------------------------
# one epoch, in one graph call


@functools.cache
def train_epoch_fn(n_visible: int, n_hidden: int, batch_size: int, config: Config):
    """The `tf.function` training one epoch, one per shape and `Config`.

    The epoch shuffles `x` (with `config.sample_inputs`, replaces it by a
    Bernoulli sample of it), runs `train_step` over its full batches in a
    graph loop (the noise drawn for up to `NOISE_VALUES` values at a time),
    then once on the short last batch, if any: `fit` makes one call and one
    device-to-host copy per epoch. Cached, so every `RBM` of a shape and
    setting shares one function, traced once (its input signature is fixed).

    Args:
        n_visible: Visible units.
        n_hidden: Hidden units.
        batch_size: Samples per update (and persistent chains).
        config: The `Config`.

    Returns:
        A `tf.function` of `(state, x, seed, hyper, monitor_x, val_x)`: the
        `State`, the data `(n, n_visible)` (any `n`), a stateless seed of
        shape `(2,)`, the `Hyper`, and the samples of the per-epoch monitors
        (any number, possibly none) for the training and the validation
        data. It returns `(new_state, metrics)`, `metrics = [mean squared
        reconstruction error, mean F(monitor_x), pseudo-likelihood of
        monitor_x, mean F(val_x), pseudo-likelihood of val_x]` (NaN for an
        empty set).
    """
    k = config.cd_steps
    width = (k + config.persistent) * n_hidden + k * config.persistent * n_visible
    per_draw = max(1, NOISE_VALUES // (batch_size * width))  # batches per draw

    def epoch(state, x, seed, hyper, monitor_x, val_x):
        seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 6))
        shuffle_seed, input_seed, step_seed, last_seed, monitor_seed, val_seed = seeds
        n = tf.shape(x)[0]
        x = tf.gather(x, tf.argsort(tf.random.stateless_uniform([n], shuffle_seed)))
        if config.sample_inputs:
            noise = tf.random.stateless_uniform(tf.shape(x), input_seed)
            x = sample_visible(x, "bernoulli", noise)
        full = n // batch_size
        batches = tf.reshape(x[: full * batch_size], [full, batch_size, n_visible])
        error = tf.constant(0.0)
        for start in tf.range(0, full, per_draw):
            count = tf.minimum(per_draw, full - start)
            chunk_seed = tf.random.experimental.stateless_fold_in(step_seed, start)
            noise = draw_noise(
                chunk_seed, count, batch_size, n_visible, n_hidden, config
            )
            for i in tf.range(count):
                v0 = tf.gather(batches, start + i)  # one op; `batches[j]` makes more
                state, batch_error = train_step(
                    state, v0, _noise_at(noise, i), hyper, config
                )
                error += batch_error
        rest = n - full * batch_size
        if rest > 0:
            noise = draw_noise(last_seed, 1, rest, n_visible, n_hidden, config)
            state, batch_error = train_step(
                state, x[full * batch_size :], _noise_at(noise, 0), hyper, config
            )
            error += batch_error
        metrics = [
            error / (tf.cast(n, tf.float32) * n_visible),
            *_monitor(state.params, monitor_x, monitor_seed, config),
            *_monitor(state.params, val_x, val_seed, config),
        ]
        return state, tf.stack(metrics)

    def spec(*shape):
        return tf.TensorSpec(shape, tf.float32)

    params = Params(spec(n_visible, n_hidden), spec(n_hidden), spec(n_visible))
    data = spec(None, n_visible)
    signature = [
        State(params, params, spec(batch_size, n_visible), spec(n_hidden)),
        data,
        tf.TensorSpec([2], tf.int64),
        Hyper(*(spec() for _ in Hyper._fields)),
        data,
        data,
    ]
    function = tf.function(epoch, input_signature=signature)
    function.get_concrete_function()  # traced now, once
    return function


@functools.cache
def _concrete_epoch_fn(*args):
    """`train_epoch_fn(*args)`'s concrete function, whose calls cost less."""
    return train_epoch_fn(*args).get_concrete_function()


@functools.cache
def _step_fns(config: Config):
    """`(cd_gradients, apply_gradients, monitors)` as `tf.function`s of `config`.

    For training across processes (`RBM._shared_epoch`), which exchanges the
    gradient sums between the first two; shared by every `RBM` of a
    `Config`, traced once per shape.
    """
    gradients_of = tf.function(
        lambda params, v0, chains, noise: cd_gradients(
            params, v0, chains, noise, config
        ),
        reduce_retracing=True,
    )
    apply = tf.function(
        lambda state, gradients, hyper: apply_gradients(
            state, gradients, hyper, config.sparsity
        ),
        reduce_retracing=True,
    )
    monitor = tf.function(
        lambda params, v, seed: _monitor(params, v, seed, config),
        reduce_retracing=True,
    )
    return gradients_of, apply, monitor


def _checked_blocks(blocks, n_visible: int, data_visible: str):
    """`blocks` as read from a stream, each checked: features, [0, 1] range.

    Data may change between passes, so every epoch checks them again.
    """
    for block in blocks:
        _check_shape(block, "x", n_visible, "a batch of ")
        if data_visible == "bernoulli":
            _check_range(float(block.min()), float(block.max()), "x", "bernoulli")
        yield block


def _chunk_rows(n_visible: int, batch_size: int) -> int:
    """Samples per epoch-function call when streaming: whole batches, ~4 MiB."""
    return batch_size * max(1, CHUNK_BYTES // (4 * n_visible * batch_size))


def _with_last(iterable):
    """`(item, is_last)` for each item of `iterable`, reading one ahead."""
    iterator = iter(iterable)
    end = object()
    item = next(iterator, end)
    while item is not end:
        following = next(iterator, end)
        yield item, following is end
        item = following


def _logs(values: np.ndarray, epoch: int, validation: bool) -> dict[str, float]:
    """The epoch's metrics by name, from the epoch function's `values`."""
    logs = dict(zip(METRICS[:3], map(float, values[:3]), strict=True))
    if not math.isfinite(logs["reconstruction_error"]):
        raise FloatingPointError(
            f"RBM training diverged at epoch {epoch + 1} (reconstruction "
            f"error {logs['reconstruction_error']}); lower `learning_rate`."
        )
    if validation:
        logs["val_free_energy"] = float(values[3])
        logs["free_energy_gap"] = float(values[3] - values[1])
        logs["val_pseudo_likelihood"] = float(values[4])
    return logs


def _epoch_line(epoch: int, epochs: int, logs: dict[str, float]) -> str:
    """The line `verbose=2` prints after an epoch, formatted as Keras's."""
    values = [
        f"{key}: {value:.4f}" if abs(value) > 1e-3 else f"{key}: {value:.4e}"
        for key, value in logs.items()
    ]
    return " - ".join([f"Epoch {epoch + 1}/{epochs}", *values])


# --------------------------------------------------------------------------
# argument checks


def _momentum(value) -> tuple[float, float]:
    pair = (value, value) if is_number(value) else value
    if (
        not isinstance(pair, Sequence)
        or isinstance(pair, str)
        or len(pair) != 2
        or not all(is_number(m) and 0 <= m < 1 for m in pair)
    ):
        raise ValueError(
            "Argument `momentum` must be a number in [0, 1) or a pair "
            f"(initial, final) of them. Received: momentum={value!r}"
        )
    return float(pair[0]), float(pair[1])


def _check_args(rbm: RBM) -> None:
    positive_int("units", rbm.units)
    for name, allowed in (("visible", VISIBLE_UNITS), ("hidden", HIDDEN_UNITS)):
        if getattr(rbm, name) not in allowed:
            raise ValueError(
                f"Argument `{name}` must be one of {allowed}. "
                f"Received: {name}={getattr(rbm, name)!r}"
            )
    positive_int("cd_steps", rbm.cd_steps)
    if not isinstance(rbm.persistent, bool):
        raise ValueError(
            f"Argument `persistent` must be a bool. Received: "
            f"persistent={rbm.persistent!r}"
        )
    positive_number("learning_rate", rbm.learning_rate)
    _momentum(rbm.momentum)
    wd = rbm.weight_decay
    if not is_number(wd) or not math.isfinite(wd) or wd < 0:
        raise ValueError(
            "Argument `weight_decay` must be a non-negative number. "
            f"Received: weight_decay={wd!r}"
        )
    target = rbm.sparsity_target
    if target is not None and not (is_number(target) and 0 < target < 1):
        raise ValueError(
            "Argument `sparsity_target` must be None or a number in (0, 1). "
            f"Received: sparsity_target={target!r}"
        )
    positive_int("batch_size", rbm.batch_size)
    positive_int("epochs", rbm.epochs)
    buffer = rbm.shuffle_buffer
    if buffer is not None and not (is_int(buffer) and buffer >= 0):
        raise ValueError(
            "Argument `shuffle_buffer` must be None or a non-negative int (a "
            f"number of samples). Received: shuffle_buffer={buffer!r}"
        )
    if rbm.seed is not None and not (is_int(rbm.seed) and 0 <= rbm.seed < 2**63):
        raise ValueError(
            "Argument `seed` must be None or a non-negative int. "
            f"Received: seed={rbm.seed!r}"
        )


def _check_shape(x: np.ndarray, name: str, n_visible=None, what: str = ""):
    if x.ndim != 2:
        raise ValueError(
            f"Argument `{name}` must be 2-D, (samples, features). "
            f"Received: {what}{name} of shape {x.shape}"
        )
    if n_visible is not None and x.shape[1] != n_visible:
        raise ValueError(
            f"Argument `{name}` must have {n_visible} features. "
            f"Received: {what}{name} of shape {x.shape}"
        )


def _check_range(low: float, high: float, name: str, visible: str):
    if visible == "bernoulli" and (low < 0 or high > 1):
        raise ValueError(
            f"Bernoulli visible units need data in [0, 1]; argument `{name}` "
            f"ranges over [{low:g}, {high:g}]. Rescale it or use "
            "visible='gaussian' on standardized data."
        )


def _check_data(x: np.ndarray, name: str, visible: str, n_visible=None):
    _check_shape(x, name, n_visible)
    if visible == "bernoulli":
        _check_range(float(x.min()), float(x.max()), name, visible)


# --------------------------------------------------------------------------
# the estimator

# The constructor's arguments, in order: `get_config()` without the weights.
_ARGUMENTS = (
    "units",
    "visible",
    "hidden",
    "cd_steps",
    "persistent",
    "learning_rate",
    "momentum",
    "weight_decay",
    "sparsity_target",
    "batch_size",
    "epochs",
    "seed",
    "shuffle_buffer",
)


@keras.saving.register_keras_serializable(package="keras_weightinit")
class RBM:
    """A restricted Boltzmann machine trained by (persistent) contrastive divergence.

    With weights `W` (shape `(visible, units)`, Dense layout), hidden biases
    `c` and visible biases `b`: `p(h_j = 1 | v) = sigmoid((v W + c)_j)`, and
    `p(v_i = 1 | h) = sigmoid((h W^T + b)_i)` (Bernoulli visible) or
    `v | h ~ N(h W^T + b, I)` (Gaussian visible, for standardized data). Each
    update, on a batch of `m` samples:

        dW <- momentum dW + lr ((v0^T h0 - vk^T hk) / m - weight_decay W)

    with `h0 = E[h | v0]` on the data and `(vk, hk)` after `cd_steps` Gibbs
    steps from the data (CD-k, visible reconstructions as probabilities) or
    from persistent chains (PCD, Tieleman 2008; sampled visibles). Following
    Hinton's guide: `W ~ N(0, 0.01^2)`, hidden biases 0, visible biases
    `log(p / (1 - p))` of the data's means (Bernoulli; 0 for Gaussian),
    momentum `momentum[0]` for the first `min(5, epochs // 2)` epochs then
    `momentum[1]`, weight decay on `W` only, data reshuffled every epoch, and
    an optional sparsity target. `fit` starts from a fresh initialization.

    `get_config()` holds the constructor's arguments and, once fitted, the
    weights (`"weights"`), so that a Keras serialization round trip
    (`keras.saving.serialize_keras_object`) keeps a fitted RBM.

    Args:
        units: Number of hidden units.
        visible: `"bernoulli"` (data in [0, 1]) or `"gaussian"` (real data with
            unit variance, standardize it first).
        hidden: `"bernoulli"` or `"relu"` (noisy rectified units).
        cd_steps: Gibbs steps per update (the k of CD-k).
        persistent: Persistent CD: one chain per batch row, kept across
            updates.
        learning_rate: Step size; Gaussian visible or ReLU hidden units usually
            need a smaller one (about 0.01).
        momentum: A number, or `(initial, final)`.
        weight_decay: L2 coefficient on the weights (not the biases).
        sparsity_target: None, or the wanted mean activation of the hidden
            units (running estimate decayed by 0.9, penalty weight 0.1).
        batch_size: Samples per update, and persistent chains; `fit` caps
            it at the number of samples (one batch of all the data), so a
            batch larger than the data costs no more than the data.
        epochs: Passes over the data in `fit`.
        seed: An int for reproducible training, or None (drawn from Python's
            `random`, so `keras.utils.set_random_seed` fixes it).
        shuffle_buffer: For data `fit` streams (a `tf.data.Dataset` or
            `PyDataset`): the number of samples of the shuffle buffer (at
            least one block of about 4 MiB), 0 to keep the dataset's order
            (samples are still shuffled within each block); None (default)
            holds 8 MiB of float32 samples (`SHUFFLE_BYTES`: 2,674 samples of
            784 features, 32,768 of 64). Data of at most this many samples
            are read into memory and trained on exactly as an array. Arrays
            are always shuffled whole.

    Attributes:
        kernel: `(visible, units)` weights, as a Dense kernel.
        hidden_bias: `(units,)`, as a Dense bias.
        visible_bias: `(visible,)`.

    Example:

    >>> x = (load_digits().data / 16).astype("float32")
    >>> rbm = RBM(128, epochs=10, seed=0)
    >>> history = rbm.fit(x, verbose=0)
    >>> features = rbm.transform(x)      # (1797, 128) hidden means

    Reference:
        Hinton, "Training products of experts by minimizing contrastive
        divergence", Neural Computation 2002. Hinton, "A practical guide to
        training restricted Boltzmann machines", UTML TR 2010-003. Tieleman,
        "Training restricted Boltzmann machines using approximations to the
        likelihood gradient", ICML 2008. Nair & Hinton, "Rectified linear units
        improve restricted Boltzmann machines", ICML 2010.
    """

    def __init__(
        self,
        units: int,
        visible: str = "bernoulli",
        hidden: str = "bernoulli",
        cd_steps: int = 1,
        persistent: bool = False,
        learning_rate: float = 0.1,
        momentum: float | tuple[float, float] = (0.5, 0.9),
        weight_decay: float = 1e-4,
        sparsity_target: float | None = None,
        batch_size: int = 64,
        epochs: int = 10,
        seed: int | None = None,
        shuffle_buffer: int | None = None,
    ):
        self.units = units
        self.visible = visible
        self.hidden = hidden
        self.cd_steps = cd_steps
        self.persistent = persistent
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.sparsity_target = sparsity_target
        self.batch_size = batch_size
        self.epochs = epochs
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        _check_args(self)
        self._params: Params | None = None
        # How the last successful `fit` read its data.
        self._fit_info: dict | None = None

    # -- configuration ---------------------------------------------------

    def _arguments(self) -> dict:
        arguments = {name: getattr(self, name) for name in _ARGUMENTS}
        if not is_number(self.momentum):
            arguments["momentum"] = list(self.momentum)
        return arguments

    def get_config(self) -> dict:
        """The constructor's arguments, and `"weights"` once fitted."""
        config = self._arguments()
        if self._params is not None:  # as lists: JSON, exact for float32
            config["weights"] = {
                k: w.tolist() for k, w in self._params._asdict().items()
            }
        return config

    @classmethod
    def from_config(cls, config: dict) -> RBM:
        """The RBM of `get_config()`, fitted if the config holds weights."""
        config = dict(config)
        weights = config.pop("weights", None)
        rbm = cls(**config)
        if weights is not None:
            rbm._params = Params(
                *(np.asarray(weights[name], np.float32) for name in Params._fields)
            )
        return rbm

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._arguments().items())
        return f"RBM({args})"

    # -- fitted parameters -----------------------------------------------

    def _fitted(self) -> Params:
        if self._params is None:
            raise ValueError("This RBM is not fitted yet. Call `fit(x)` first.")
        return self._params

    @property
    def kernel(self) -> np.ndarray:
        return self._fitted().kernel

    @property
    def hidden_bias(self) -> np.ndarray:
        return self._fitted().hidden_bias

    @property
    def visible_bias(self) -> np.ndarray:
        return self._fitted().visible_bias

    def _data(self, x, name="x") -> tf.Tensor:
        array = as_array(x, name)
        _check_data(array, name, self.visible, self.kernel.shape[0])
        return tf.constant(array)

    # -- inference -------------------------------------------------------

    def transform(self, x) -> np.ndarray:
        """Hidden means `E[h | v]`: `sigmoid(v W + c)` or `max(0, v W + c)`."""
        x = hidden_input(self._data(x), self._fitted())
        return hidden_mean(x, self.hidden).numpy()

    def reconstruct(self, x) -> np.ndarray:
        """Mean-field reconstruction `E[v | h = E[h | v]]`."""
        h = tf.constant(self.transform(x))
        return visible_mean(h, self._fitted(), self.visible).numpy()

    def free_energy(self, x) -> np.ndarray:
        """Free energy `F(v)` per sample (lower is more probable)."""
        v = self._data(x)
        return free_energy(v, self._fitted(), self.visible, self.hidden).numpy()

    def score_samples(self, x, seed: int | None = None) -> np.ndarray:
        """Pseudo-likelihood per sample, as scikit-learn's `BernoulliRBM`.

        For each sample one visible unit `i` is drawn at random and flipped to
        `1 - v_i`: `score = n_visible * log sigmoid(F(v_flipped) - F(v))`.
        Bernoulli visible units only.

        Args:
            x: Samples, shape `(n, visible)`.
            seed: Seed of the flipped indices (default: the RBM's seed).
        """
        if self.visible != "bernoulli":
            raise ValueError(
                "score_samples (pseudo-likelihood) is defined for Bernoulli "
                f"visible units only. Received: visible={self.visible!r}"
            )
        v = self._data(x).numpy()
        rng = np.random.default_rng(self.seed if seed is None else seed)
        flipped = v.copy()
        rows, cols = np.arange(len(v)), rng.integers(0, v.shape[1], len(v))
        flipped[rows, cols] = 1 - flipped[rows, cols]
        fe = self.free_energy(v)
        fe_flipped = self.free_energy(flipped)
        return (v.shape[1] * tf.math.log_sigmoid(fe_flipped - fe)).numpy()

    # -- training --------------------------------------------------------

    def fit(
        self,
        x,
        validation_data=None,
        verbose: int = 1,
        log_dir: str | None = None,
        *,
        sample_inputs: bool = False,
        name: str = "rbm",
    ) -> dict[str, list[float]]:
        """Trains the RBM from a fresh initialization.

        An array is trained on in memory: each epoch shuffles all of it and
        runs the CD updates over its batches in one graph call. A dataset is
        streamed, in memory of the order of a batch, not of the dataset:

        1. One statistics pass (`FeatureStats`): the count, each feature's
           exact mean (for the visible biases, `log(p / (1 - p))`), the
           range (checked for Bernoulli units before any training), and a
           uniform random sample of `max(512, batch_size)` samples
           (reservoir sampling), the monitors' samples and the persistent
           chains' starting points. A dataset of at most `shuffle_buffer`
           samples is kept from this pass and trained on as an array, with
           the same result bit for bit.
        2. Each epoch reads the data again and shuffles it through a buffer
           of `shuffle_buffer` samples (`shuffle_blocks`; at least one
           block), into blocks of whole batches of about 4 MiB
           (`CHUNK_BYTES`), each shuffled again within itself and trained on
           by one call of the same epoch function as for arrays (one short
           batch at the end of the epoch at most, as for arrays; the last
           block's call computes the monitors). Every block is checked
           (features, the [0, 1] range), as data may change between passes.

        The result depends on the samples, their order, the seed and the
        shuffle buffer, not on the dataset's batch size nor on whether it is
        a `tf.data.Dataset` or a `PyDataset`. Memory when streaming: the
        buffer, a few blocks, the 512-sample monitor set, `O(features)`
        statistics, and the model (`O(features * units)`).

        Args:
            x: Training data `(samples, visible)`: an array, or a batched
                finite `tf.data.Dataset` of `x` or `(x, y)` or a `PyDataset`
                (streamed; an infinite one is refused: pass `.take(n)`).
            validation_data: Held-out data, same forms, for the free energy
                gap and the validation pseudo-likelihood; of a dataset only
                the first 512 samples are read (the monitors use no more).
            verbose: As in Keras: 0 silent, 1 a progress bar over the
                epochs, 2 one line per epoch, `"auto"` 1.
            log_dir: If given (a str or `os.PathLike`), TensorBoard scalars
                `<name>/<metric>` per epoch.
            sample_inputs: Treat `x` (in [0, 1]) as the probabilities of the
                layer below and train on a fresh Bernoulli sample of it each
                epoch (the DBN recipe for stacking RBMs).
            name: Title of the progress bar and prefix of the scalars.

        Returns:
            Per-epoch lists: `reconstruction_error` (mean squared, over the
            training batches), `free_energy` (mean over up to 512 training
            samples: for arrays a random subset, for datasets the random
            sample of the statistics pass), `pseudo_likelihood` (same
            samples; NaN for Gaussian visible units) and, with validation
            data, `val_free_energy`, `free_energy_gap` (`val_free_energy -
            free_energy`; growing means overfitting) and
            `val_pseudo_likelihood` (on its first 512 samples).

        Raises:
            ValueError: For a bad `verbose` or `log_dir`, data that are not
                2-D, hold no samples, NaN or infinite values, the wrong
                number of features, values outside [0, 1] for Bernoulli
                units, or an infinite dataset; the RBM keeps its previous
                fit.
            FloatingPointError: If training diverges.

        Example:

        >>> ds = tf.data.Dataset.from_tensor_slices(x_train).batch(256)
        >>> history = RBM(128, epochs=5, seed=0).fit(ds, verbose=0)
        """
        verbose = verbose_level(verbose)
        log_dir = optional_path("log_dir", log_dir)
        with distributed.together("RBM.fit"):  # over processes: fail together
            return self._fit(x, validation_data, verbose, log_dir, sample_inputs, name)

    def _fit(self, x, validation_data, verbose, log_dir, sample_inputs, name):
        """`fit` itself, its arguments as `fit` takes them."""
        data_visible = "bernoulli" if sample_inputs else self.visible
        stream = stats = None
        if is_stream(x):
            seed = self._fit_seed()
            stream, stats = self._stream_stats(x, data_visible, seed)
            data = stats.rows  # all of it, when it fits in the shuffle buffer
            if data is not None:
                stream = None
            n_visible = stats.n_features
        else:
            data = as_array(x, "x")
            _check_data(data, "x", data_visible)
            n_visible = data.shape[1]
        val = np.zeros([0, n_visible], "float32")
        if validation_data is not None:
            limit = MONITOR_SAMPLES if is_stream(validation_data) else None
            val = as_array(validation_data, "validation_data", max_samples=limit)
            _check_data(val, "validation_data", self.visible, n_visible)
        if stats is None:
            seed = self._fit_seed()
        rng = np.random.default_rng(seed)

        if data is not None:
            samples, means, pool = len(data), data.mean(axis=0), data
        else:  # the statistics pass's sample, uniform and random
            samples, means, pool = stats.count, stats.mean, stats.sample
        shared = distributed.process_count() > 1
        if shared:  # the means of the union of the processes' shards
            means = distributed.mean_across_processes(means * samples, count=samples)
            means = np.asarray(means, "float32")
            samples = int(distributed.sum_across_processes(float(samples)))
        # One batch of all the data at most: chains and noise sized by the data.
        batch_size = min(self.batch_size, samples)
        state = self._initial_state(rng, pool, means, batch_size)
        config = Config(
            self.visible,
            self.hidden,
            self.cd_steps,
            self.persistent,
            self.sparsity_target is not None,
            sample_inputs,
        )
        epoch_fn = _concrete_epoch_fn(n_visible, self.units, batch_size, config)
        if data is not None:  # the monitors' samples: a random subset
            pool = data[rng.permutation(len(data))[:MONITOR_SAMPLES]]
        monitors = tuple(tf.constant(a[:MONITOR_SAMPLES]) for a in (pool, val))
        info = {"streamed": stream is not None, "samples": samples}
        header = f"{name}: {n_visible} {self.visible} -> {self.units} {self.hidden}"
        if shared:
            run_epoch = self._shared_epoch(
                data if stream is None else stream, config, seed, monitors, batch_size
            )
        elif stream is None:
            x_tensor = tf.constant(data)

            def run_epoch(epoch, state):
                seeds = tf.constant([seed, epoch], tf.int64)
                hyper = self._hyper(epoch)
                state, values = epoch_fn(state, x_tensor, seeds, hyper, *monitors)
                return state, values.numpy()

        else:
            chunk = _chunk_rows(n_visible, batch_size)
            buffer = self.buffer_rows(n_visible)
            buffer = max(buffer, chunk) if buffer else 0  # as shuffle_blocks
            info.update(shuffle_buffer=buffer, chunk=chunk)
            header += f" (streaming {samples} samples, shuffle buffer {buffer})"
            run_epoch = self._stream_epoch(
                stream, epoch_fn, seed, (chunk, buffer, data_visible), monitors
            )

        if not distributed.is_writer():  # process 0 prints and writes
            verbose, log_dir = 0, None
        history, state = self._train(
            run_epoch,
            state,
            validation_data is not None,
            (verbose, log_dir, name, header),
        )
        self._params = Params(*(t.numpy() for t in state.params))
        self._fit_info = info
        return history

    def _train(self, run_epoch, state: State, validation: bool, output):
        """`(history, state)` after `self.epochs` calls of `run_epoch`.

        `output` is `(verbose, log_dir, name, header)`: `verbose` 1 shows a
        progress bar over the epochs, 2 one line per epoch (Keras's meanings).
        """
        verbose, log_dir, name, header = output
        if verbose:
            print(header)
        progbar = None
        if verbose == 1:
            progbar = keras.utils.Progbar(
                self.epochs,
                verbose=verbose,
                stateful_metrics=METRICS,
                unit_name="epoch",
            )
        history: dict[str, list[float]] = {}
        writer = tf.summary.create_file_writer(log_dir) if log_dir else None
        try:
            for epoch in range(self.epochs):
                state, values = run_epoch(epoch, state)
                logs = _logs(values, epoch, validation)
                for key, value in logs.items():
                    history.setdefault(key, []).append(value)
                if progbar is not None:
                    progbar.update(epoch + 1, list(logs.items()))
                elif verbose == 2:
                    print(_epoch_line(epoch, self.epochs, logs))
                if writer is not None:
                    with writer.as_default():
                        for key, value in logs.items():
                            tf.summary.scalar(f"{name}/{key}", value, step=epoch)
        finally:  # on failure the previous fit (if any) stays in place
            if writer is not None:
                writer.close()
        return history, state

    def _initial_state(
        self, rng, pool: np.ndarray, means: np.ndarray, batch_size: int
    ) -> State:
        """The state before the first update (Hinton 2010, section 8).

        `W ~ N(0, 0.01^2)`, `c = 0`, `b = log(p / (1 - p))` of the data's
        `means` (Bernoulli visible; else 0), no velocity, and `batch_size`
        chains started from random samples of `pool` (sampled for PCD).
        """
        n_visible, units = pool.shape[1], self.units
        kernel = rng.normal(0.0, 0.01, (n_visible, units)).astype("float32")
        visible_bias = np.zeros(n_visible, "float32")
        if self.visible == "bernoulli":
            p = np.clip(means, P_CLIP, 1 - P_CLIP)
            visible_bias = np.log(p / (1 - p)).astype("float32")
        chains = pool[rng.integers(0, len(pool), batch_size)]
        if self.visible == "bernoulli" and self.persistent:
            chains = (rng.random(chains.shape) < chains).astype("float32")
        zeros = Params(
            tf.zeros([n_visible, units]), tf.zeros([units]), tf.zeros([n_visible])
        )
        return State(
            params=Params(tf.constant(kernel), zeros[1], tf.constant(visible_bias)),
            velocity=zeros,
            chains=tf.constant(chains),
            activity=tf.fill([units], float(self.sparsity_target or 0.0)),
        )

    def _hyper(self, epoch: int) -> Hyper:
        """The `Hyper` of `epoch`: momentum `momentum[0]`, then `momentum[1]`.

        The switch comes after `min(5, epochs // 2)` epochs (Hinton 2010).
        """
        initial, final = _momentum(self.momentum)
        momentum = initial if epoch < min(5, self.epochs // 2) else final
        values = (self.learning_rate, momentum, self.weight_decay)
        values += (self.sparsity_target or 0.0,)
        return Hyper(*(tf.constant(float(value)) for value in values))

    # -- several processes ----------------------------------------------

    def _shared_epoch(self, source, config: Config, seed: int, monitors, batch_size):
        """The function `run(epoch, state)` training one epoch over processes.

        Data parallel (`keras.distribution`, several processes): every step,
        each process computes `cd_gradients` on a batch of its own shard
        (`source`: an array, or a `Stream`), the sums over the processes'
        batches are exchanged (`distributed.sum_across_processes`), and every
        process applies their mean, so all keep the same weights. A process
        whose shard has no batch left sends none; the epoch ends when no
        process has one. PCD's chains stay per process. The monitors are the
        mean of each process's on its own samples.
        """
        n_visible = monitors[0].shape[1]
        units = self.units
        me = distributed.process_index()
        data_visible = "bernoulli" if config.sample_inputs else config.visible
        gradients_of, apply, monitor = _step_fns(config)

        def batches(epoch):
            rng = np.random.default_rng([seed, 1, epoch, me])
            if isinstance(source, np.ndarray):
                order = rng.permutation(len(source))
                blocks = [source[order]]
            else:
                chunk = _chunk_rows(n_visible, batch_size)
                buffer = max(self.buffer_rows(n_visible), chunk)
                blocks = _checked_blocks(source.blocks(), n_visible, data_visible)
                blocks = shuffle_blocks(blocks, buffer, rng, chunk)
            for block in blocks:
                for start in range(0, len(block), batch_size):
                    yield block[start : start + batch_size]

        def run(epoch, state):
            hyper = self._hyper(epoch)
            mine = batches(epoch)
            error = count = 0.0
            for step in itertools.count():
                v0 = next(mine, None)
                m = 0 if v0 is None else len(v0)
                step_seed = tf.constant([seed, (epoch << 40) + (step << 12) + me])
                if m:
                    v0 = tf.constant(v0)
                    if config.sample_inputs:
                        uniform = tf.random.stateless_uniform(v0.shape, step_seed)
                        v0 = sample_visible(v0, "bernoulli", uniform)
                    noise = draw_noise(step_seed, 1, m, n_visible, units, config)
                    chains = state.chains[:m] if config.persistent else None
                    grads, vk, batch_error = gradients_of(
                        state.params, v0, chains, _noise_at(noise, 0)
                    )
                    sums = [float(batch_error)]
                    sums += [
                        np.zeros(n_visible) if g is None else g.numpy() for g in grads
                    ]
                else:  # this shard is done: nothing to add to the others'
                    sums = [0.0, np.zeros((n_visible, units)), np.zeros(units)]
                    sums += [np.zeros(n_visible), np.zeros(units), np.zeros(n_visible)]
                    sums += [0.0]
                batch_error, *summed = distributed.sum_across_processes(sums)
                total = summed[-1]  # `Gradients.samples`: the samples of all
                if total == 0:
                    break
                if m and config.persistent:
                    chains = tf.concat([vk, state.chains[m:]], 0)
                    state = state._replace(chains=chains)
                summed = Gradients(*(tf.constant(g, tf.float32) for g in summed))
                state = apply(state, summed, hyper)
                error += batch_error
                count += total
            values = [error / (count * n_visible)]
            for k, v in enumerate(monitors):
                values += [
                    float(t)
                    for t in monitor(
                        state.params, v, tf.constant([seed, (epoch << 8) + k])
                    )
                ]
            values[1:] = distributed.mean_across_processes(values[1:])
            if not np.all(np.isfinite(state.params.kernel.numpy())):
                raise FloatingPointError(
                    "RBM training diverged (non-finite weights). Lower "
                    f"`learning_rate`. Received: learning_rate={self.learning_rate}"
                )
            return state, np.asarray(values)

        return run

    # -- streaming -------------------------------------------------------

    def _fit_seed(self) -> int:
        if distributed.process_count() > 1:  # process 0's, for every process
            return distributed.shared_seed(self.seed)
        return self.seed if self.seed is not None else python_random.randrange(2**31)

    def buffer_rows(self, n_visible: int) -> int:
        """The shuffle buffer's size in samples for `n_visible` features."""
        if self.shuffle_buffer is not None:
            return self.shuffle_buffer
        return max(1, SHUFFLE_BYTES // (4 * n_visible))

    def _stream_stats(self, x, data_visible: str, seed: int):
        """`(stream, FeatureStats)` of `x`, checked, from one pass if needed.

        A `Stream` that carries its `stats` (computed by `pretrain_dbn` on
        the layer's input) is not read here.
        """
        stream = Stream(x, "x")
        stats = x.stats if isinstance(x, Stream) else None
        if stats is None:
            stats = FeatureStats(
                sample_size=max(MONITOR_SAMPLES, self.batch_size),
                keep=self.buffer_rows,
                seed=[seed, 2],
                variance=False,  # the means suffice
            )
            batches = stream.blocks()
            first = next(batches, None)
            if first is not None:
                _check_shape(first, "x", None, "a batch of ")
                width = first.shape[1]

                def checked():
                    for batch in itertools.chain([first], batches):
                        _check_shape(batch, "x", width, "a batch of ")
                        yield batch

                # In blocks of about CHUNK_BYTES: fewer, larger NumPy calls.
                for block in rechunk(checked(), max(1, CHUNK_BYTES // (4 * width))):
                    stats.update(block)
        if stats.count == 0:
            raise ValueError("Argument `x` holds no samples.")
        _check_range(stats.low, stats.high, "x", data_visible)
        return stream, stats

    def _stream_epoch(self, stream, epoch_fn, seed, sizes, monitors):
        """The function `run(epoch, state)` training one streamed epoch.

        It returns `(new state, metrics)` as the epoch function does for an
        array: the data block by block through `epoch_fn` (seed `[seed,
        epoch * 2^32 + block]`), the last block's call computing the
        monitors on the final weights.
        """
        chunk, buffer, data_visible = sizes
        n_visible = monitors[0].shape[1]
        empty = (tf.zeros([0, n_visible]),) * 2

        def run(epoch, state):
            rng = np.random.default_rng([seed, 1, epoch])
            blocks = _checked_blocks(stream.blocks(), n_visible, data_visible)
            blocks = shuffle_blocks(blocks, buffer, rng, chunk)
            hyper = self._hyper(epoch)
            total, count = 0.0, 0
            for j, (block, last) in enumerate(_with_last(blocks)):
                state, values = epoch_fn(
                    state,
                    as_tensor(block),  # no copy: shuffled blocks are aligned
                    tf.constant([seed, (epoch << 32) + j], tf.int64),
                    hyper,
                    *(monitors if last else empty),
                )
                values = values.numpy()
                total += float(values[0]) * len(block)
                count += len(block)
            if count == 0:
                raise ValueError(
                    f"Argument `x` holds no samples in epoch {epoch + 1} (the "
                    "dataset ended at once)."
                )
            return state, np.concatenate([[total / count], values[1:]])

        return run
