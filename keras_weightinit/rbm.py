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

Training is contrastive divergence (CD-k) or persistent CD (Tieleman 2008):
`dW = <v h>_data - <v h>_model`, each expectation the mean over the batch,
with momentum and weight decay as in Hinton's practical guide (2010).

Everything in the training loop is a small pure function of tensors (`hidden`
and `visible` means and samples, `free_energy`, `cd_update`); one epoch is
`train_epoch`, a loop over the batches inside one `tf.function`, traced once
per (layer shape, configuration) and shared by every `RBM` of that shape. All
randomness is stateless, derived from the `seed` argument.

`fit` takes arrays, which it trains on in memory (one `train_epoch` call per
epoch), and `tf.data.Dataset`s and `PyDataset`s, which it streams: one
statistics pass, then per epoch the data read block by block, shuffled
through a bounded buffer and fed to the same `train_epoch` block after
block, so that memory stays of the order of a batch (see `RBM.fit`).
"""

from __future__ import annotations

import itertools
import math
import random as python_random
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_weightinit.checks import is_int, is_number, positive_int, positive_number
from keras_weightinit.data import (
    FeatureStats,
    Stream,
    as_array,
    as_tensor,
    is_stream,
    rechunk,
    shuffle_blocks,
)

__all__ = ["RBM", "free_energy", "cd_update", "train_epoch_fn"]

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
METRICS = (
    "reconstruction_error",
    "free_energy",
    "pseudo_likelihood",
    "val_free_energy",
    "free_energy_gap",
    "val_pseudo_likelihood",
)
# Number of traces of `train_epoch` per configuration key (read by the tests).
TRACE_COUNTS: dict[tuple, int] = {}

_register = keras.saving.register_keras_serializable(package="keras_weightinit")


# --------------------------------------------------------------------------
# the math: pure functions of tensors


def _hidden_input(v, kernel, hidden_bias):
    """`v W + c` as MatMul + BiasAdd, which Grappler fuses into one op."""
    return tf.nn.bias_add(tf.matmul(v, kernel), hidden_bias)


def hidden_mean(pre: tf.Tensor, hidden: str) -> tf.Tensor:
    """`E[h | v]` from the total input `pre = v W + c`."""
    return tf.sigmoid(pre) if hidden == "bernoulli" else tf.nn.relu(pre)


def sample_hidden(pre: tf.Tensor, mean: tf.Tensor, hidden: str, noise) -> tf.Tensor:
    """A sample of `h | v` from pre-drawn `noise` of `pre`'s shape.

    Bernoulli: `noise` uniform on [0, 1), the states `noise < mean`. Noisy
    ReLU (Nair & Hinton): `noise` standard normal,
    `max(0, pre + noise * sqrt(sigmoid(pre)))`.
    """
    if hidden == "bernoulli":
        return tf.cast(noise < mean, mean.dtype)
    return tf.nn.relu(pre + noise * tf.sqrt(tf.sigmoid(pre)))


def visible_mean(h: tf.Tensor, kernel, visible_bias, visible: str) -> tf.Tensor:
    """`E[v | h]`: `sigmoid(h W^T + b)` (Bernoulli) or `h W^T + b` (Gaussian)."""
    pre = tf.nn.bias_add(tf.matmul(h, kernel, transpose_b=True), visible_bias)
    return tf.sigmoid(pre) if visible == "bernoulli" else pre


def sample_visible(mean: tf.Tensor, visible: str, noise) -> tf.Tensor:
    """A sample of `v | h` from pre-drawn `noise` of `mean`'s shape: Bernoulli
    states `noise < mean` (uniform noise) or `mean + noise` (standard normal)."""
    if visible == "bernoulli":
        return tf.cast(noise < mean, mean.dtype)
    return mean + noise


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


def _hidden_term(pre: tf.Tensor, hidden: str) -> tf.Tensor:
    """The hidden units' share of `F(v)`, from their total input `pre`."""
    if hidden == "bernoulli":
        return -tf.reduce_sum(tf.math.softplus(pre), axis=-1)
    return -tf.reduce_sum(_relu_log_partition(pre), axis=-1)


def free_energy(v, kernel, hidden_bias, visible_bias, visible, hidden) -> tf.Tensor:
    """`F(v) = -log sum_h exp(-E(v, h))` per sample (up to a constant).

    Bernoulli visible: `-v.b`; Gaussian visible: `||v - b||^2 / 2`; plus, per
    hidden unit with input `x = v W + c`, `-softplus(x)` (Bernoulli) or
    `-int softplus` (noisy ReLU, see `_relu_log_partition`).
    """
    v = tf.convert_to_tensor(v, tf.float32)
    pre = _hidden_input(v, kernel, hidden_bias)
    if visible == "bernoulli":
        visible_term = -tf.linalg.matvec(v, visible_bias)
    else:
        visible_term = 0.5 * tf.reduce_sum(tf.square(v - visible_bias), axis=-1)
    return visible_term + _hidden_term(pre, hidden)


def _noise_layout(config, sample_inputs: bool = False) -> list[tuple[str, str]]:
    """The per-sample random draws of one update, in order: `(unit, kind)`.

    `unit` is `"hidden"` or `"visible"` (the draw's width), `kind` is
    `"uniform"` (Bernoulli units) or `"normal"` (noisy ReLU, Gaussian).
    """
    kind = {
        "hidden": "uniform" if config["hidden"] == "bernoulli" else "normal",
        "visible": "uniform" if config["visible"] == "bernoulli" else "normal",
    }
    units = ["hidden"]
    if config["persistent"]:
        units.append("hidden")
    for step in range(config["cd_steps"]):
        if config["persistent"]:
            units.append("visible")
        if step + 1 < config["cd_steps"]:
            units.append("hidden")
    layout = [(unit, kind[unit]) for unit in units]
    if sample_inputs:
        layout.append(("visible", "uniform"))
    return layout


def _draw_noise(seed, rows, layout, n_visible, n_hidden):
    """All the draws of `layout` for `rows` samples, one random op per kind.

    Returns `(uniform, normal)`: blocks of shape `(rows, total width of that
    kind)`, None when that kind is unused (cut them with `_split_noise`).
    """
    widths = {"hidden": n_hidden, "visible": n_visible}
    uniform_width = sum(widths[u] for u, k in layout if k == "uniform")
    normal_width = sum(widths[u] for u, k in layout if k == "normal")
    uniform_seed, normal_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 2)
    )
    uniform = normal = None
    if uniform_width:
        uniform = tf.random.stateless_uniform([rows, uniform_width], uniform_seed)
    if normal_width:
        normal = tf.random.stateless_normal([rows, normal_width], normal_seed)
    return uniform, normal


def _split_noise(uniform, normal, layout, n_visible, n_hidden) -> list:
    """Per-draw noise tensors, in layout order, cut from the blocks."""
    widths = {"hidden": n_hidden, "visible": n_visible}
    pieces = {}
    for kind, block in (("uniform", uniform), ("normal", normal)):
        sizes = [widths[u] for u, k in layout if k == kind]
        if len(sizes) == 1:
            pieces[kind] = [block]
        elif sizes:
            pieces[kind] = tf.split(block, sizes, axis=-1)
    counters = {"uniform": 0, "normal": 0}
    noise = []
    for _, kind in layout:
        noise.append(pieces[kind][counters[kind]])
        counters[kind] += 1
    return noise


def _coefficients(hyper, m):
    """The update's scalar coefficients for a batch of `m` samples.

    Computed once per epoch, outside the batch loop, with the signs the update
    needs, so that the loop holds no scalar arithmetic.
    """
    learning_rate, momentum, weight_decay, target = (
        tf.convert_to_tensor(h, tf.float32) for h in hyper
    )
    m = tf.cast(m, tf.float32)
    return {
        "scale": learning_rate / m,
        "minus_scale": -learning_rate / m,
        "momentum": momentum,
        "minus_decay": -learning_rate * weight_decay,
        "sparsity_rate": (1.0 - SPARSITY_DECAY) / m,
        "sparsity_cost": learning_rate * SPARSITY_COST,
        "minus_inverse_m": -1.0 / m,
        "target": target,
    }


def _cd_step(state, v0, noise, coefficients, config):
    """`cd_update` on pre-drawn noise (see `_noise_layout`) and coefficients.

    Written for few graph ops per batch (on small layers each op's fixed cost
    adds up): fused MatMul + BiasAdd, the scale `lr / m` on the
    `(m, hidden)` factors, and the kernel's momentum step as one AddN.
    Returns half the batch's summed squared reconstruction error
    (`tf.nn.l2_loss`), doubled once per epoch by the caller.
    """
    kernel, hbias, vbias, d_kernel, d_hbias, d_vbias, chains, q = state
    visible, hidden = config["visible"], config["hidden"]
    momentum = coefficients["momentum"]
    noise = iter(noise)

    pre0 = _hidden_input(v0, kernel, hbias)
    h0 = hidden_mean(pre0, hidden)
    h_state = sample_hidden(pre0, h0, hidden, next(noise))
    reconstruction = visible_mean(h_state, kernel, vbias, visible)
    if config["persistent"]:
        m = tf.shape(v0)[0]
        vk = chains[:m]
        pre = _hidden_input(vk, kernel, hbias)
        h_state = sample_hidden(pre, hidden_mean(pre, hidden), hidden, next(noise))
    for step in range(config["cd_steps"]):
        if step > 0 or config["persistent"]:
            vk = visible_mean(h_state, kernel, vbias, visible)
        else:
            vk = reconstruction
        if config["persistent"]:
            # A persistent chain must be a Markov chain: sample the visibles.
            vk = sample_visible(vk, visible, next(noise))
        pre = _hidden_input(vk, kernel, hbias)
        hk = hidden_mean(pre, hidden)
        if step + 1 < config["cd_steps"]:
            h_state = sample_hidden(pre, hk, hidden, next(noise))

    residual = v0 - reconstruction
    visible_diff = residual if vk is reconstruction else v0 - vk
    h0_scaled = coefficients["scale"] * h0
    hk_scaled = coefficients["minus_scale"] * hk
    d_kernel = tf.add_n(
        [
            momentum * d_kernel,
            tf.matmul(v0, h0_scaled, transpose_a=True),
            tf.matmul(vk, hk_scaled, transpose_a=True),
            coefficients["minus_decay"] * kernel,
        ]
    )
    d_hbias = momentum * d_hbias + tf.reduce_sum(h0_scaled + hk_scaled, axis=0)
    d_vbias = momentum * d_vbias + tf.reduce_sum(
        coefficients["scale"] * visible_diff, axis=0
    )
    if config["sparsity"]:
        q = SPARSITY_DECAY * q + coefficients["sparsity_rate"] * tf.reduce_sum(h0, 0)
        penalty = coefficients["sparsity_cost"] * (q - coefficients["target"])
        d_hbias -= penalty
        d_kernel += tf.tensordot(
            coefficients["minus_inverse_m"] * tf.reduce_sum(v0, 0), penalty, axes=0
        )
    if config["persistent"]:
        chains = tf.ensure_shape(tf.concat([vk, chains[m:]], 0), chains.shape)
    new_state = (
        kernel + d_kernel,
        hbias + d_hbias,
        vbias + d_vbias,
        d_kernel,
        d_hbias,
        d_vbias,
        chains,
        q,
    )
    return new_state, tf.nn.l2_loss(residual)


def cd_update(state, v0, seeds, hyper, config):
    """One CD-k / PCD-k update on the batch `v0`; returns the new state.

    `state = (W, c, b, dW, dc, db, chains, q)` (weights, hidden and visible
    biases, their momentum buffers, the persistent chains, the running mean of
    the hidden units); `seeds` one stateless seed per random draw (at least
    `2 + 2 * cd_steps`); `hyper = (learning_rate, momentum, weight_decay,
    sparsity_target)`; `config` the static settings. With `m = len(v0)`, all
    statistics are means over `m` samples; persistent CD advances only the
    first `m` chains, so a short last batch has negatives of its own size.

        dW <- momentum dW + lr ((v0^T h0 - vk^T hk) / m - weight_decay W)
        dc <- momentum dc + lr (mean(h0) - mean(hk)),  db likewise with v
    plus `- sparsity_cost (q - target)` on `dc` and `dW` when sparsity is on.

    The epoch function runs the same update (`_cd_step`) on noise drawn for
    many batches at once.

    Returns:
        `(new_state, squared reconstruction error summed over the batch)`.
    """
    v0 = tf.convert_to_tensor(v0, tf.float32)
    n_visible, n_hidden = state[0].shape
    m = tf.shape(v0)[0]
    noise = []
    for i, (unit, kind) in enumerate(_noise_layout(config)):
        shape = [m, n_hidden if unit == "hidden" else n_visible]
        draw = (
            tf.random.stateless_uniform
            if kind == "uniform"
            else (tf.random.stateless_normal)
        )
        noise.append(draw(shape, seeds[i]))
    new_state, half_error = _cd_step(state, v0, noise, _coefficients(hyper, m), config)
    return new_state, 2.0 * half_error


def _monitor(params, v, seed, visible: str, hidden: str):
    """`(mean F(v), pseudo-likelihood of v)` of `fit`'s per-epoch monitors.

    The pseudo-likelihood is `score_samples`' (one random visible bit `i`
    flipped per sample), NaN for Gaussian visible units; both NaN for an
    empty `v`. Flipping `v_i` by `d = 1 - 2 v_i` moves the hidden input by
    `d W_i` and the visible term by `-d b_i`, so `F(v_flipped)` needs no
    second matrix product.
    """
    kernel, hidden_bias, visible_bias = params
    if visible != "bernoulli":
        fe = free_energy(v, *params, visible, hidden)
        return tf.reduce_mean(fe), tf.constant(math.nan)
    n_visible = v.shape[-1]
    columns = tf.random.stateless_uniform(
        [tf.shape(v)[0]], seed, minval=0, maxval=n_visible, dtype=tf.int32
    )
    d = 1.0 - 2.0 * tf.gather(v, columns[:, None], batch_dims=1)  # (n, 1)
    pre = _hidden_input(v, kernel, hidden_bias)
    visible_term = -tf.linalg.matvec(v, visible_bias)
    fe = visible_term + _hidden_term(pre, hidden)
    fe_flipped = (
        visible_term
        - d[:, 0] * tf.gather(visible_bias, columns)
        + _hidden_term(pre + d * tf.gather(kernel, columns), hidden)
    )
    pl = n_visible * tf.reduce_mean(tf.math.log_sigmoid(fe_flipped - fe))
    return tf.reduce_mean(fe), pl


_EPOCH_FNS: dict[tuple, tf.types.experimental.ConcreteFunction] = {}
# Random numbers are drawn for many batches at once, at most about this many
# per draw (float32: 16 MiB).
NOISE_CHUNK = 1 << 22


def train_epoch_fn(
    n_visible: int,
    n_hidden: int,
    batch_size: int,
    visible: str = "bernoulli",
    hidden: str = "bernoulli",
    cd_steps: int = 1,
    persistent: bool = False,
    sparsity: bool = False,
    sample_inputs: bool = False,
):
    """The traced `tf.function` that trains one epoch, one per shape and setting.

    It takes `(state, x, seed, hyper, monitor_x, val_x)`: the state tuple of
    `cd_update`, the data `x` of shape `(n, n_visible)` (any `n`), a stateless
    seed of shape `(2,)`, the four hyperparameters as float32 scalars, and
    the samples of the per-epoch monitors (any number, possibly none) for the
    training and the validation data. It returns `(new_state, metrics)`,
    `metrics = [mean squared reconstruction error, mean F(monitor_x),
    pseudo-likelihood of monitor_x, mean F(val_x), pseudo-likelihood of
    val_x]` (NaN for an empty set; see `_monitor`), so `fit` makes one call
    and one device-to-host copy per epoch.

    The data are shuffled, then a graph loop runs the update over the full
    batches of `batch_size` (static shapes; the random numbers drawn for up
    to `NOISE_CHUNK` values at a time) and then once on the shorter last
    batch, if any. With `sample_inputs`, each batch is replaced by a fresh
    Bernoulli sample of it (DBN training on the states of the layer below).
    """
    key = (
        n_visible,
        n_hidden,
        batch_size,
        visible,
        hidden,
        cd_steps,
        persistent,
        sparsity,
        sample_inputs,
    )
    if key in _EPOCH_FNS:
        return _EPOCH_FNS[key]
    config = {
        "visible": visible,
        "hidden": hidden,
        "cd_steps": cd_steps,
        "persistent": persistent,
        "sparsity": sparsity,
    }
    f32 = tf.float32
    state_spec = (
        tf.TensorSpec([n_visible, n_hidden], f32),
        tf.TensorSpec([n_hidden], f32),
        tf.TensorSpec([n_visible], f32),
        tf.TensorSpec([n_visible, n_hidden], f32),
        tf.TensorSpec([n_hidden], f32),
        tf.TensorSpec([n_visible], f32),
        tf.TensorSpec([batch_size, n_visible], f32),
        tf.TensorSpec([n_hidden], f32),
    )
    signature = [
        state_spec,
        tf.TensorSpec([None, n_visible], f32),
        tf.TensorSpec([2], tf.int64),
        tuple(tf.TensorSpec([], f32) for _ in range(4)),
        tf.TensorSpec([None, n_visible], f32),
        tf.TensorSpec([None, n_visible], f32),
    ]
    layout = _noise_layout(config, sample_inputs)
    width = sum(n_hidden if unit == "hidden" else n_visible for unit, _ in layout)
    chunk = max(1, NOISE_CHUNK // (batch_size * width))  # batches per draw

    def update(state, v0, uniform, normal, coefficients):
        noise = _split_noise(uniform, normal, layout, n_visible, n_hidden)
        if sample_inputs:
            v0 = sample_visible(v0, "bernoulli", noise.pop())
        return _cd_step(state, v0, noise, coefficients, config)

    def batch_step(state, error, i, batches, uniform, normal, coefficients):
        # tf.gather: one op, where `batches[i]` builds its slice bounds in ops
        state, batch_error = update(
            state,
            tf.gather(batches, i),
            None if uniform is None else tf.gather(uniform, i),
            None if normal is None else tf.gather(normal, i),
            coefficients,
        )
        return state, error + batch_error

    def epoch(state, x, seed, hyper, monitor_x, val_x):
        TRACE_COUNTS[key] = TRACE_COUNTS.get(key, 0) + 1
        n = tf.shape(x)[0]
        shuffle_seed, chunk_seed, last_seed, monitor_seed, val_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, 5)
        )
        order = tf.argsort(tf.random.stateless_uniform([n], shuffle_seed))
        x = tf.gather(x, order)
        n_full = n // batch_size
        coefficients = _coefficients(hyper, batch_size)
        error = tf.constant(0.0)
        for start in tf.range(0, n_full, chunk):
            count = tf.minimum(chunk, n_full - start)
            rows = count * batch_size
            uniform, normal = _draw_noise(
                tf.random.experimental.stateless_fold_in(chunk_seed, start),
                rows,
                layout,
                n_visible,
                n_hidden,
            )
            batches = tf.reshape(
                x[start * batch_size : start * batch_size + rows],
                [count, batch_size, n_visible],
            )
            if uniform is not None:
                uniform = tf.reshape(uniform, [count, batch_size, uniform.shape[-1]])
            if normal is not None:
                normal = tf.reshape(normal, [count, batch_size, normal.shape[-1]])
            for i in tf.range(count):
                state, error = batch_step(
                    state, error, i, batches, uniform, normal, coefficients
                )
        rest = n - n_full * batch_size
        if rest > 0:
            uniform, normal = _draw_noise(last_seed, rest, layout, n_visible, n_hidden)
            state, batch_error = update(
                state,
                x[n_full * batch_size :],
                uniform,
                normal,
                _coefficients(hyper, rest),
            )
            error += batch_error
        params = state[:3]
        metrics = [
            2.0 * error / tf.cast(n * n_visible, f32),
            *_monitor(params, monitor_x, monitor_seed, visible, hidden),
            *_monitor(params, val_x, val_seed, visible, hidden),
        ]
        return state, tf.stack(metrics)

    # Traced now, once; a concrete function's call costs half a polymorphic
    # one's (0.5 ms less per epoch here, which digits' 12 ms epochs feel).
    function = tf.function(epoch, input_signature=signature, autograph=True)
    _EPOCH_FNS[key] = function.get_concrete_function()
    return _EPOCH_FNS[key]


_MONITOR_FNS: dict[tuple, tf.types.experimental.ConcreteFunction] = {}


def _monitor_fn(n_visible: int, n_hidden: int, visible: str, hidden: str):
    """The per-epoch monitors of `train_epoch_fn`, alone (for streamed data).

    Takes `(params, monitor_x, val_x, seed)` and returns `[mean F(monitor_x),
    pseudo-likelihood of monitor_x, mean F(val_x), pseudo-likelihood of
    val_x]`, with the random bits the epoch function draws for the same
    `seed`.
    """
    key = (n_visible, n_hidden, visible, hidden)
    if key not in _MONITOR_FNS:
        f32 = tf.float32
        signature = [
            (
                tf.TensorSpec([n_visible, n_hidden], f32),
                tf.TensorSpec([n_hidden], f32),
                tf.TensorSpec([n_visible], f32),
            ),
            tf.TensorSpec([None, n_visible], f32),
            tf.TensorSpec([None, n_visible], f32),
            tf.TensorSpec([2], tf.int64),
        ]

        def monitors(params, monitor_x, val_x, seed):
            seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 5))
            return tf.stack(
                [
                    *_monitor(params, monitor_x, seeds[3], visible, hidden),
                    *_monitor(params, val_x, seeds[4], visible, hidden),
                ]
            )

        function = tf.function(monitors, input_signature=signature)
        _MONITOR_FNS[key] = function.get_concrete_function()
    return _MONITOR_FNS[key]


def _chunk_rows(n_visible: int, batch_size: int) -> int:
    """Samples per epoch-function call when streaming: whole batches, ~4 MiB."""
    return batch_size * max(1, CHUNK_BYTES // (4 * n_visible * batch_size))


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
    if rbm.visible not in VISIBLE_UNITS:
        raise ValueError(
            f"Argument `visible` must be one of {VISIBLE_UNITS}. "
            f"Received: visible={rbm.visible!r}"
        )
    if rbm.hidden not in HIDDEN_UNITS:
        raise ValueError(
            f"Argument `hidden` must be one of {HIDDEN_UNITS}. "
            f"Received: hidden={rbm.hidden!r}"
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


@_register
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
        batch_size: Samples per update.
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
        self._params = None
        # How the last successful `fit` read its data (read by the tests).
        self._fit_info: dict | None = None

    # -- configuration ---------------------------------------------------

    def get_config(self) -> dict:
        momentum = self.momentum
        return {
            "units": self.units,
            "visible": self.visible,
            "hidden": self.hidden,
            "cd_steps": self.cd_steps,
            "persistent": self.persistent,
            "learning_rate": self.learning_rate,
            "momentum": list(momentum) if not is_number(momentum) else momentum,
            "weight_decay": self.weight_decay,
            "sparsity_target": self.sparsity_target,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "seed": self.seed,
            "shuffle_buffer": self.shuffle_buffer,
        }

    @classmethod
    def from_config(cls, config: dict) -> RBM:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"RBM({args})"

    # -- fitted parameters -----------------------------------------------

    def _fitted(self):
        if self._params is None:
            raise ValueError("This RBM is not fitted yet. Call `fit(x)` first.")
        return self._params

    @property
    def kernel(self) -> np.ndarray:
        return self._fitted()[0]

    @property
    def hidden_bias(self) -> np.ndarray:
        return self._fitted()[1]

    @property
    def visible_bias(self) -> np.ndarray:
        return self._fitted()[2]

    def _data(self, x, name="x") -> tf.Tensor:
        array = as_array(x, name)
        _check_data(array, name, self.visible, self.kernel.shape[0])
        return tf.constant(array)

    # -- inference -------------------------------------------------------

    def transform(self, x) -> np.ndarray:
        """Hidden means `E[h | v]`: `sigmoid(v W + c)` or `max(0, v W + c)`."""
        v = self._data(x)
        pre = _hidden_input(v, self.kernel, self.hidden_bias)
        return hidden_mean(pre, self.hidden).numpy()

    def reconstruct(self, x) -> np.ndarray:
        """Mean-field reconstruction `E[v | h = E[h | v]]`."""
        h = tf.constant(self.transform(x))
        return visible_mean(h, self.kernel, self.visible_bias, self.visible).numpy()

    def free_energy(self, x) -> np.ndarray:
        """Free energy `F(v)` per sample (lower is more probable)."""
        return free_energy(
            self._data(x), *self._fitted(), self.visible, self.hidden
        ).numpy()

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
        return self._pseudo_likelihood(v, self.seed if seed is None else seed)

    def _pseudo_likelihood(self, v: np.ndarray, seed) -> np.ndarray:
        rng = np.random.default_rng(seed)
        flipped = v.copy()
        rows = np.arange(len(v))
        cols = rng.integers(0, v.shape[1], len(v))
        flipped[rows, cols] = 1 - flipped[rows, cols]
        params = self._fitted()
        fe = free_energy(v, *params, self.visible, self.hidden)
        fe_flipped = free_energy(flipped, *params, self.visible, self.hidden)
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
           batch at the end of the epoch at most, as for arrays). Every
           block is checked (features, the [0, 1] range), as data may change
           between passes.

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
            verbose: 1 shows a progress bar over the epochs, 0 is silent.
            log_dir: If given, TensorBoard scalars `<name>/<metric>` per epoch.
            sample_inputs: Treat `x` (in [0, 1]) as the probabilities of the
                layer below and train on a fresh Bernoulli sample of each batch
                (the DBN recipe for stacking RBMs).
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
            ValueError: For data that are not 2-D, hold no samples, NaN or
                infinite values, the wrong number of features, values
                outside [0, 1] for Bernoulli units, or an infinite dataset;
                the RBM keeps its previous fit.
            FloatingPointError: If training diverges.

        Example:

        >>> ds = tf.data.Dataset.from_tensor_slices(x_train).batch(256)
        >>> history = RBM(128, epochs=5, seed=0).fit(ds, verbose=0)
        """
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
        val = None
        if validation_data is not None:
            limit = MONITOR_SAMPLES if is_stream(validation_data) else None
            val = as_array(validation_data, "validation_data", max_samples=limit)
            _check_data(val, "validation_data", self.visible, n_visible)
        if stats is None:
            seed = self._fit_seed()
        rng = np.random.default_rng(seed)

        # Initialization (Hinton 2010, section 8).
        kernel = rng.normal(0.0, 0.01, (n_visible, self.units)).astype("float32")
        if self.visible == "bernoulli":
            means = data.mean(axis=0) if data is not None else stats.mean
            p = np.clip(means, P_CLIP, 1 - P_CLIP)
            vbias = np.log(p / (1 - p)).astype("float32")
        else:
            vbias = np.zeros(n_visible, "float32")
        pool = data if data is not None else stats.sample
        chains = pool[rng.integers(0, len(pool), self.batch_size)]
        if self.visible == "bernoulli" and self.persistent:
            chains = (rng.random(chains.shape) < chains).astype("float32")
        state = (
            tf.constant(kernel),
            tf.zeros([self.units]),
            tf.constant(vbias),
            tf.zeros([n_visible, self.units]),
            tf.zeros([self.units]),
            tf.zeros([n_visible]),
            tf.constant(chains),
            tf.fill([self.units], float(self.sparsity_target or 0.0)),
        )
        epoch_fn = train_epoch_fn(
            n_visible,
            self.units,
            self.batch_size,
            self.visible,
            self.hidden,
            self.cd_steps,
            self.persistent,
            self.sparsity_target is not None,
            sample_inputs,
        )
        if data is not None:
            x_tensor = tf.constant(data)
            monitor_x = tf.constant(data[rng.permutation(len(data))[:MONITOR_SAMPLES]])
        else:
            monitor_x = tf.constant(stats.sample[:MONITOR_SAMPLES])
        val_x = tf.zeros([0, n_visible]) if val is None else val[:MONITOR_SAMPLES]
        val_x = tf.constant(val_x)
        initial, final = _momentum(self.momentum)
        switch = min(5, self.epochs // 2)
        buffer = self._buffer_rows(n_visible)
        info = {"streamed": stream is not None, "samples": len(pool)}

        if stream is None:

            def run_epoch(epoch, state, hyper):
                state, values = epoch_fn(
                    state,
                    x_tensor,
                    tf.constant([seed, epoch], tf.int64),
                    hyper,
                    monitor_x,
                    val_x,
                )
                return state, values.numpy()

        else:
            chunk = _chunk_rows(n_visible, self.batch_size)
            buffer = max(buffer, chunk) if buffer else 0  # as shuffle_blocks
            info.update(samples=stats.count, shuffle_buffer=buffer, chunk=chunk)
            run_epoch = self._stream_epoch(
                stream,
                epoch_fn,
                seed,
                (chunk, buffer, n_visible, data_visible),
                (
                    _monitor_fn(n_visible, self.units, self.visible, self.hidden),
                    monitor_x,
                    val_x,
                ),
            )

        history: dict[str, list[float]] = {}
        progbar = None
        if verbose:
            streamed = ""
            if stream is not None:
                streamed = (
                    f" (streaming {stats.count} samples, shuffle buffer {buffer})"
                )
            print(
                f"{name}: {n_visible} {self.visible} -> {self.units} "
                f"{self.hidden}{streamed}"
            )
            progbar = keras.utils.Progbar(
                self.epochs,
                verbose=verbose,
                unit_name="epoch",
                stateful_metrics=list(METRICS),
            )
        writer = tf.summary.create_file_writer(log_dir) if log_dir else None
        try:
            for epoch in range(self.epochs):
                hyper = tuple(
                    tf.constant(float(h), tf.float32)
                    for h in (
                        self.learning_rate,
                        initial if epoch < switch else final,
                        self.weight_decay,
                        self.sparsity_target or 0.0,
                    )
                )
                state, values = run_epoch(epoch, state, hyper)
                logs = {
                    "reconstruction_error": float(values[0]),
                    "free_energy": float(values[1]),
                    "pseudo_likelihood": float(values[2]),
                }
                if not math.isfinite(logs["reconstruction_error"]):
                    raise FloatingPointError(
                        f"RBM training diverged at epoch {epoch + 1} "
                        f"(reconstruction error {logs['reconstruction_error']}); "
                        "lower `learning_rate`."
                    )
                if val is not None:
                    logs["val_free_energy"] = float(values[3])
                    logs["free_energy_gap"] = float(values[3] - values[1])
                    logs["val_pseudo_likelihood"] = float(values[4])
                for key, value in logs.items():
                    history.setdefault(key, []).append(value)
                if progbar is not None:
                    progbar.update(epoch + 1, list(logs.items()))
                if writer is not None:
                    with writer.as_default():
                        for key, value in logs.items():
                            tf.summary.scalar(f"{name}/{key}", value, step=epoch)
        finally:  # on failure the previous fit (if any) stays in place
            if writer is not None:
                writer.close()
        self._params = tuple(t.numpy() for t in state[:3])
        self._fit_info = info
        return history

    # -- streaming -------------------------------------------------------

    def _fit_seed(self) -> int:
        return self.seed if self.seed is not None else python_random.randrange(2**31)

    def _buffer_rows(self, n_visible: int) -> int:
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
                keep=self._buffer_rows,
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
        """The function `run(epoch, state, hyper)` training one streamed epoch.

        It returns `(new state, metrics)` as the epoch function does for an
        array: the data block by block through `epoch_fn` (seed `[seed,
        epoch * 2^32 + block]`, no monitors), then the monitors once on the
        final weights (`monitors = (function, monitor_x, val_x)`, seed
        `[seed, epoch]`).
        """
        chunk, buffer, n_visible, data_visible = sizes
        monitor_fn, monitor_x, val_x = monitors
        empty = tf.zeros([0, n_visible])

        def checked(blocks):
            for block in blocks:  # as read, before the shuffle buffer
                _check_shape(block, "x", n_visible, "a batch of ")
                if data_visible == "bernoulli":
                    low, high = float(block.min()), float(block.max())
                    _check_range(low, high, "x", "bernoulli")
                yield block

        def run(epoch, state, hyper):
            rng = np.random.default_rng([seed, 1, epoch])
            blocks = shuffle_blocks(checked(stream.blocks()), buffer, rng, chunk)
            total, count = 0.0, 0
            for j, block in enumerate(blocks):
                state, values = epoch_fn(
                    state,
                    as_tensor(block),  # no copy: shuffled blocks are aligned
                    tf.constant([seed, (epoch << 32) + j], tf.int64),
                    hyper,
                    empty,
                    empty,
                )
                total += float(values[0]) * len(block)
                count += len(block)
            if count == 0:
                raise ValueError(
                    f"Argument `x` holds no samples in epoch {epoch + 1} (the "
                    "dataset ended at once)."
                )
            metrics = monitor_fn(
                state[:3], monitor_x, val_x, tf.constant([seed, epoch], tf.int64)
            )
            return state, np.concatenate([[total / count], metrics.numpy()])

        return run
