"""Restricted Boltzmann machines on the active Keras backend, compiled per epoch.

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

The module is layered:

- the math, pure functions of tensors written once in `keras.ops`
  (`hidden_mean`, `sample_hidden`, `visible_mean`, `sample_visible`,
  `free_energy`, `pseudo_likelihood`, and one update, `train_step`, as
  `cd_gradients` then `apply_gradients`: the seam where data-parallel
  training sums the `Gradients` over processes), on named state (`Params`,
  `State`);
- `Keys`, counter-based random numbers on the backend's device: the one part
  written per backend (TensorFlow's stateless ops, JAX's keys, a seeded
  `torch.Generator` per draw), as `keras.random` takes traced seeds on JAX
  only;
- `train_epoch`, one epoch over a block of samples (shuffled, looped over
  batch by batch with `keras.ops.fori_loop`), and `epoch_fn`, that function
  compiled for the active backend: `tf.function` on TensorFlow, `jax.jit`
  (the loop a `lax.scan`) on JAX, and eager PyTorch under `no_grad` (an
  update through `torch.compile` runs faster once compiled, but its
  compilation, about 20 s per shape on a 2-core CPU, costs more than it
  saves on fits of minutes; see `benchmarks/README.md`);
- the `RBM` estimator, whose one epoch driver (`_Epochs`) reads arrays in
  memory, streams `tf.data.Dataset`s and `PyDataset`s block by block, and
  trains over several processes.

All randomness derives from the `seed` argument through `Keys`; the same
seed gives the same training on one backend and device.
"""

from __future__ import annotations

import functools
import itertools
import math
import random as python_random
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import keras
import numpy as np
from keras import ops

from keras_weightinit import distributed
from keras_weightinit.checks import (
    boolean,
    is_int,
    is_number,
    one_of,
    optional_path,
    positive_int,
    positive_number,
    verbose_level,
)
from keras_weightinit.data import (
    FeatureStats,
    Stream,
    as_array,
    is_stream,
    rechunk,
    shuffle_blocks,
)

__all__ = [
    "RBM",
    "Config",
    "Gradients",
    "Hyper",
    "Keys",
    "Noise",
    "Params",
    "State",
    "apply_gradients",
    "cd_gradients",
    "draw_noise",
    "epoch_fn",
    "free_energy",
    "pseudo_likelihood",
    "train_epoch",
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

    kernel: Any  # W, (visible, hidden)
    hidden_bias: Any  # c, (hidden,)
    visible_bias: Any  # b, (visible,)


class Gradients(NamedTuple):
    """One batch's CD statistics, sums over its samples.

    The first three fields, divided by `samples`, are the log-likelihood
    gradient estimates for the `Params` of the same names, `<.>_data -
    <.>_model`; the next two are the data statistics the sparsity penalty
    needs. As sums, the statistics of the shards of a batch add up to the
    batch's (see `train_step`).
    """

    kernel: Any  # sum of v0^T h0 - vk^T hk
    hidden_bias: Any  # sum of h0 - hk
    visible_bias: Any  # sum of v0 - vk
    hidden_data: Any  # sum of h0
    visible_data: Any  # sum of v0
    samples: Any  # m


class State(NamedTuple):
    """What one update carries to the next."""

    params: Params
    velocity: Params  # the momentum buffers
    chains: Any  # persistent CD's fantasy particles, (batch_size, visible)
    activity: Any  # q: running mean of each hidden unit's activation


class Config(NamedTuple):
    """The static settings of an update: one compiled epoch function each."""

    visible: str = "bernoulli"
    hidden: str = "bernoulli"
    cd_steps: int = 1
    persistent: bool = False
    sparsity: bool = False
    sample_inputs: bool = False  # train on a Bernoulli sample of each input


class Hyper(NamedTuple):
    """The update's hyperparameters, float32 scalars (they change per epoch)."""

    learning_rate: Any
    momentum: Any
    weight_decay: Any
    sparsity_target: Any


class Noise(NamedTuple):
    """The random numbers of one update on `m` samples, in the order of use.

    Uniform on [0, 1) for Bernoulli units, standard normal for the others:
    `hidden` holds `k` draws `(m, hidden)` for CD-k from the data, `k + 1`
    for persistent CD; `visible` holds `k` draws `(m, visible)` for
    persistent CD (its chains sample the visibles), else none.
    """

    hidden: tuple
    visible: tuple = ()


# --------------------------------------------------------------------------
# random numbers on the backend


class Keys:
    """Counter-based random numbers of the active backend, on its device.

    A key is two 32-bit words (`key(*counters)` on the host, `to_device`
    for the compiled functions). `split` and `fold_in` derive keys; `uniform`,
    `normal` and `randint` draw from one. TensorFlow: its stateless ops;
    JAX: `jax.random` on raw `uint32[2]` keys; PyTorch: keys stay on the
    host (NumPy `SeedSequence`) and each draw seeds a `torch.Generator` on
    the device. The draws differ between backends; on one backend a key
    always gives the same numbers.

    Example:

    >>> keys = Keys.active()
    >>> u = keys.uniform(keys.to_device(Keys.key(0, 1)), (2, 3))
    >>> tuple(u.shape)
    (2, 3)
    """

    def __init__(self, backend: str):
        self.backend = backend

    @staticmethod
    @functools.cache
    def active() -> Keys:
        """The `Keys` of Keras's backend."""
        return Keys(keras.backend.backend())

    @staticmethod
    def key(*counters: int) -> np.ndarray:
        """The host key of non-negative ints `counters`, `uint32[2]`."""
        return np.random.SeedSequence([int(c) for c in counters]).generate_state(2)

    def to_device(self, key: np.ndarray):
        """A host key as the compiled functions take it."""
        if self.backend == "tensorflow":
            import tensorflow as tf

            return tf.constant(key.astype(np.int64))
        if self.backend == "jax":
            import jax.numpy as jnp

            return jnp.asarray(key, jnp.uint32)
        return np.asarray(key, np.uint32)

    def split(self, key, count: int) -> list:
        """`count` independent keys from `key`."""
        if self.backend == "tensorflow":
            import tensorflow as tf

            return tf.unstack(tf.random.experimental.stateless_split(key, count))
        if self.backend == "jax":
            import jax

            return list(jax.random.split(key, count))
        return [Keys.key(*key, 0, j) for j in range(count)]

    def fold_in(self, key, i: int):
        """The key of `key` and the int `i`."""
        if self.backend == "tensorflow":
            import tensorflow as tf

            return tf.random.experimental.stateless_fold_in(key, i)
        if self.backend == "jax":
            import jax

            return jax.random.fold_in(key, i)
        return Keys.key(*key, 1, i)

    def _generator(self, key):
        import torch

        device = _torch_device()
        generator = torch.Generator(device=device)
        generator.manual_seed((int(key[0]) << 32) | int(key[1]))
        return generator, device

    def uniform(self, key, shape: tuple):
        """float32 uniform on [0, 1) of `shape`."""
        if self.backend == "tensorflow":
            import tensorflow as tf

            return tf.random.stateless_uniform(shape, key)
        if self.backend == "jax":
            import jax

            return jax.random.uniform(key, shape)
        import torch

        generator, device = self._generator(key)
        return torch.rand(shape, generator=generator, device=device)

    def normal(self, key, shape: tuple):
        """float32 standard normal of `shape`."""
        if self.backend == "tensorflow":
            import tensorflow as tf

            return tf.random.stateless_normal(shape, key)
        if self.backend == "jax":
            import jax

            return jax.random.normal(key, shape)
        import torch

        generator, device = self._generator(key)
        return torch.randn(shape, generator=generator, device=device)

    def randint(self, key, shape: tuple, high: int):
        """int32 uniform on `0, ..., high - 1` of `shape`."""
        if self.backend == "tensorflow":
            import tensorflow as tf

            return tf.random.stateless_uniform(
                shape, key, minval=0, maxval=high, dtype=tf.int32
            )
        if self.backend == "jax":
            import jax

            return jax.random.randint(key, shape, 0, high)
        import torch

        generator, device = self._generator(key)
        return torch.randint(0, high, shape, generator=generator, device=device)


def _tensor(x):
    """`x` as a float32 tensor of the backend; a tensor as it is (no call)."""
    return x if ops.is_tensor(x) else ops.convert_to_tensor(x, "float32")


@functools.cache
def _torch_device():
    """The device Keras puts new PyTorch tensors on."""
    return ops.convert_to_tensor(np.zeros(1, np.float32)).device


# --------------------------------------------------------------------------
# the math: pure functions of tensors


def _affine(x, kernel, bias, transpose: bool = False):
    """`x W + bias`, or `x W^T + bias` with `transpose`.

    On TensorFlow as one `MatMul` with its transpose flag and a `BiasAdd`,
    which its graph optimizer fuses; `keras.ops` writes the transpose and
    the addition as ops of their own, which cost a step of the epoch loop
    a measurable share of its time on small batches. On PyTorch, whose
    loop runs op by op, the tensors' own operators (no `keras.ops`
    dispatch).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.nn.bias_add(tf.matmul(x, kernel, transpose_b=transpose), bias)
    if backend == "torch":
        return x @ (kernel.T if transpose else kernel) + bias
    return ops.matmul(x, ops.transpose(kernel) if transpose else kernel) + bias


def _outer_sum(a, b):
    """`a^T b`: the sum over the batch of the outer products of its rows."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.matmul(a, b, transpose_a=True)
    if backend == "torch":
        return a.T @ b
    return ops.matmul(ops.transpose(a), b)


def _row(x, i):
    """`x[i]` for a traced index `i` (TensorFlow: one `Gather`, no index fix-up)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.gather(x, i)
    if backend == "torch":
        return x[i]
    return ops.take(x, i, axis=0)


class _TorchStepOps:
    """The elementwise ops and sums of one CD step as PyTorch's own methods.

    PyTorch runs the CD loop op by op, where `keras.ops`'s dispatch costs
    more than the op itself on small batches; the same names and axes.
    """

    @staticmethod
    def sigmoid(x):
        return x.sigmoid()

    @staticmethod
    def ceil(x):
        return x.ceil()

    @staticmethod
    def square(x):
        return x.square()

    @staticmethod
    def sum(x, axis=None):
        return x.sum() if axis is None else x.sum(axis)


def _step_ops():
    """`_TorchStepOps` on PyTorch, `keras.ops` elsewhere (traced once)."""
    return _TorchStepOps if keras.backend.backend() == "torch" else ops


def hidden_input(v, params: Params):
    """The hidden units' total input `x = v W + c`."""
    return _affine(v, params.kernel, params.hidden_bias)


def hidden_mean(x, hidden: str):
    """`E[h | v]` from the total input `x`: `sigmoid(x)` or `max(0, x)`."""
    return _step_ops().sigmoid(x) if hidden == "bernoulli" else ops.relu(x)


def sample_hidden(x, mean, hidden: str, noise):
    """A sample of `h | v` from `noise` of `x`'s shape.

    Bernoulli: `bernoulli(mean, noise)`, uniform `noise`; noisy ReLU:
    `max(0, x + noise sqrt(sigmoid(x)))`, standard normal `noise`.
    """
    if hidden == "bernoulli":
        return bernoulli(mean, noise)
    return ops.relu(x + noise * ops.sqrt(ops.sigmoid(x)))


def visible_mean(h, params: Params, visible: str):
    """`E[v | h]`: `sigmoid(h W^T + b)` (Bernoulli) or `h W^T + b` (Gaussian)."""
    x = _affine(h, params.kernel, params.visible_bias, transpose=True)
    return _step_ops().sigmoid(x) if visible == "bernoulli" else x


def sample_visible(mean, visible: str, noise):
    """A sample of `v | h` from `noise` of `mean`'s shape.

    Bernoulli: `bernoulli(mean, noise)`, uniform `noise`; Gaussian:
    `mean + noise`, standard normal `noise`.
    """
    if visible == "bernoulli":
        return bernoulli(mean, noise)
    return mean + noise


def bernoulli(mean, noise):
    """A Bernoulli sample of probabilities `mean` from uniform `[0, 1)` noise.

    `1` where `noise < mean`, else `0` (`-0.0` for some), as
    `ceil(mean - noise)`: the difference lies in `(-1, 1]` and is positive
    exactly where `noise < mean`.

    Example:

    >>> mean, noise = np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.7, 0.3])
    >>> ops.convert_to_numpy(bernoulli(mean, noise))
    array([ 0., -0.,  1.])
    """
    return _step_ops().ceil(mean - noise)


def _relu_log_partition(x, terms: int = 24):
    """`int_{-inf}^x softplus(u) du = -Li2(-e^x)`, the NReLU free-energy term.

    A noisy ReLU unit stands for infinitely many Bernoulli copies with biases
    `x - 0.5, x - 1.5, ...`; their free-energy term `sum_i softplus(x - i +
    0.5)` is approximated by the integral. With `z = e^-|x|` and `g(z) =
    sum_k (-1)^(k+1) z^k / k^2`: `g(z)` for `x <= 0`, `pi^2/6 + x^2/2 - g(z)`
    for `x > 0` (dilogarithm inversion), the alternating series averaged over
    its last two partial sums (error below 1e-4).
    """
    z = ops.exp(-ops.abs(x))
    total = ops.zeros_like(x)
    power = ops.ones_like(x)
    last = ops.zeros_like(x)
    for k in range(1, terms + 2):
        power = power * z
        last = power * ((1.0 if k % 2 else -1.0) / float(k * k))
        total = total + last
    g = total - 0.5 * last
    return ops.where(x > 0, math.pi**2 / 6 + 0.5 * ops.square(x) - g, g)


def _hidden_term(x, hidden: str):
    """The hidden units' share of `F(v)`, from their total input `x`."""
    if hidden == "bernoulli":
        return -ops.sum(ops.softplus(x), axis=-1)
    return -ops.sum(_relu_log_partition(x), axis=-1)


def _visible_term(v, params: Params, visible: str):
    """The visible units' share of `F(v)`: `-v.b` or `||v - b||^2 / 2`."""
    if visible == "bernoulli":
        return -ops.matmul(v, params.visible_bias)
    return 0.5 * ops.sum(ops.square(v - params.visible_bias), axis=-1)


def free_energy(v, params, visible: str = "bernoulli", hidden: str = "bernoulli"):
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
        The free energies, shape `(n,)`, a tensor of the backend.

    Example:

    >>> params = Params(np.zeros((3, 2)), np.zeros(2), np.zeros(3))
    >>> ops.convert_to_numpy(free_energy(np.ones((1, 3)), params))  # -2 softplus(0)
    array([-1.3862944], dtype=float32)
    """
    params = Params(*(ops.convert_to_tensor(p, "float32") for p in params))
    v = ops.convert_to_tensor(v, "float32")
    x = hidden_input(v, params)
    return _visible_term(v, params, visible) + _hidden_term(x, hidden)


def pseudo_likelihood(v, params, columns, hidden: str = "bernoulli"):
    """Pseudo-likelihood per sample, flipping bit `columns[i]` of sample `i`.

    With `v~` the sample with its bit `i` flipped to `1 - v_i` (Bernoulli
    visible units), as scikit-learn's `BernoulliRBM.score_samples`:

        score = n_visible * log sigmoid(F(v~) - F(v))

    Flipping `v_i` by `d = 1 - 2 v_i` moves the hidden input by `d W_i` and
    the visible term by `-d b_i`, so `F(v~)` needs no second matrix product.

    Args:
        v: Samples in {0, 1} (or [0, 1]), shape `(n, visible)`.
        params: `Params` (or the three arrays).
        columns: int, shape `(n,)`: the bit flipped in each sample.
        hidden: `"bernoulli"` or `"relu"`.

    Returns:
        The scores, shape `(n,)`.

    Example:

    >>> params = Params(np.zeros((3, 2)), np.zeros(2), np.zeros(3))
    >>> v, columns = np.ones((1, 3), "float32"), np.array([0])
    >>> ops.convert_to_numpy(pseudo_likelihood(v, params, columns))  # 3 log(1/2)
    array([-2.0794415], dtype=float32)

    Reference:
        Besag, "Statistical analysis of non-lattice data", The Statistician
        1975.
    """
    params = Params(*(ops.convert_to_tensor(p, "float32") for p in params))
    v = ops.convert_to_tensor(v, "float32")
    columns = ops.convert_to_tensor(columns, "int32")
    n_visible = v.shape[-1]
    d = 1.0 - 2.0 * ops.take_along_axis(v, columns[:, None], axis=1)  # (n, 1)
    x = hidden_input(v, params)
    visible_term = _visible_term(v, params, "bernoulli")
    fe = visible_term + _hidden_term(x, hidden)
    shift = d * ops.take(params.kernel, columns, axis=0)
    fe_flipped = (
        visible_term
        - d[:, 0] * ops.take(params.visible_bias, columns, axis=0)
        + _hidden_term(x + shift, hidden)
    )
    return n_visible * ops.log_sigmoid(fe_flipped - fe)


def draw_noise(keys: Keys, key, batches: int, m: int, shape, config: Config) -> Noise:
    """The `Noise` of `batches` updates on `m` samples each, drawn at once.

    One draw per kind of noise and Gibbs step, each with a leading axis of
    `batches` (one large draw costs much less than many small).

    Args:
        keys: The backend's `Keys`.
        key: A device key.
        batches: Updates.
        m: Samples per update.
        shape: `(n_visible, n_hidden)`.
        config: The `Config`.
    """
    n_visible, n_hidden = shape

    def draw(units, count, width, key):
        sample = keys.uniform if units == "bernoulli" else keys.normal
        return tuple(sample(k, (batches, m, width)) for k in keys.split(key, count))

    k = config.cd_steps
    if not config.persistent:
        return Noise(draw(config.hidden, k, n_hidden, key))
    hidden_key, visible_key = keys.split(key, 2)
    return Noise(
        draw(config.hidden, k + 1, n_hidden, hidden_key),
        draw(config.visible, k, n_visible, visible_key),
    )


def _noise_at(noise: Noise, i) -> Noise:
    """The `i`-th update's `Noise` of `draw_noise`'s (`i` may be traced)."""
    return Noise(*(tuple(_row(d, i) for d in draws) for draws in noise))


def _gibbs_chain(params: Params, start, h, noise: Noise, config: Config):
    """`(vk, hk)` after `cd_steps` Gibbs steps from the hidden sample `h`.

    Each step is `v = E[v | h]` (sampled for PCD, so that each chain is a
    Markov chain), then `hk = E[h | v]`, and a sample of `h | v` for the
    next step. `start` is the first step's `E[v | h]` when already known
    (CD-k's reconstruction), else None. `noise` holds the draws left for the
    chain: `cd_steps - 1` hidden ones, and the visible ones for PCD.
    """
    visible, hidden = config.visible, config.hidden
    hidden_noise, visible_noise = iter(noise.hidden), iter(noise.visible)
    vk = hk = None
    for step in range(config.cd_steps):
        vk = start if step == 0 and start is not None else None
        if vk is None:
            vk = visible_mean(h, params, visible)
        if config.persistent:
            vk = sample_visible(vk, visible, next(visible_noise))
        x = hidden_input(vk, params)
        hk = hidden_mean(x, hidden)
        if step + 1 < config.cd_steps:
            h = sample_hidden(x, hk, hidden, next(hidden_noise))
    return vk, hk


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
        `(gradients, vk, squared_error)`: the `Gradients` (`visible_data`
        None when no update needs it), the negative samples (PCD's advanced
        chains), and the squared reconstruction error
        `||v0 - E[v | h ~ p(h | v0)]||^2` summed over the batch.

    Example:

    >>> params = Params(np.zeros((3, 2)), np.zeros(2), np.zeros(3))
    >>> noise = Noise((np.full((4, 2), 0.5, "float32"),))
    >>> gradients, _, _ = cd_gradients(params, np.ones((4, 3)), None, noise, Config())
    >>> float(gradients.samples)
    4.0
    """
    params = Params(*(_tensor(p) for p in params))
    v0 = _tensor(v0)
    noise = Noise(*(tuple(_tensor(d) for d in draws) for draws in noise))
    hidden = config.hidden
    x0 = hidden_input(v0, params)
    h0 = hidden_mean(x0, hidden)
    h = sample_hidden(x0, h0, hidden, noise.hidden[0])
    reconstruction = visible_mean(h, params, config.visible)
    start = reconstruction
    if config.persistent:
        x = hidden_input(_tensor(chains), params)
        h = sample_hidden(x, hidden_mean(x, hidden), hidden, noise.hidden[1])
        start = None
    rest = Noise(noise.hidden[1 + config.persistent :], noise.visible)
    vk, hk = _gibbs_chain(params, start, h, rest, config)

    residual = v0 - reconstruction
    step_ops = _step_ops()
    hidden_data = step_ops.sum(h0, axis=0)
    visible_data = None
    if config.sparsity or vk is not reconstruction:
        visible_data = step_ops.sum(v0, axis=0)
    if vk is reconstruction:
        visible_bias = step_ops.sum(residual, axis=0)
    else:
        visible_bias = visible_data - step_ops.sum(vk, axis=0)
    gradients = Gradients(
        kernel=_outer_sum(v0, h0) - _outer_sum(vk, hk),
        hidden_bias=hidden_data - step_ops.sum(hk, axis=0),
        visible_bias=visible_bias,
        hidden_data=hidden_data,
        visible_data=visible_data,
        samples=float(v0.shape[0]),
    )
    return gradients, vk, step_ops.sum(step_ops.square(residual))


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
        gradients: `cd_gradients`' `Gradients` (or their sum over processes).
        hyper: The `Hyper` of this epoch.
        sparsity: Whether the sparsity penalty is on.

    Returns:
        The new `State` (its chains unchanged).

    Example:

    >>> zeros = Params(np.zeros((3, 2)), np.zeros(2), np.zeros(3))
    >>> state = State(zeros, zeros, np.zeros((1, 3)), np.zeros(2))
    >>> sums = Gradients(np.ones((3, 2)), np.ones(2), np.ones(3), None, None, 2.0)
    >>> new = apply_gradients(state, sums, Hyper(0.1, 0.0, 0.0, 0.0), False)
    >>> float(ops.convert_to_numpy(new.params.kernel)[0, 0])  # 0.1 * 1 / 2
    0.05
    """
    lr, momentum = hyper.learning_rate, hyper.momentum
    params, velocity, activity = state.params, state.velocity, state.activity
    inverse_m = 1.0 / gradients.samples
    step = lr * inverse_m
    # The scalars multiply each other before they multiply a tensor.
    kernel = (
        momentum * velocity.kernel
        + step * gradients.kernel
        + (-lr * hyper.weight_decay) * params.kernel
    )
    hidden_gradient = gradients.hidden_bias * inverse_m
    if sparsity:
        activity = SPARSITY_DECAY * activity
        activity = activity + (1 - SPARSITY_DECAY) * inverse_m * gradients.hidden_data
        penalty = SPARSITY_COST * (activity - hyper.sparsity_target)
        hidden_gradient = hidden_gradient - penalty
        data_mean = (-lr * inverse_m) * gradients.visible_data
        kernel = kernel + ops.outer(data_mean, penalty)
    velocity = Params(
        kernel=kernel,
        hidden_bias=momentum * velocity.hidden_bias + lr * hidden_gradient,
        visible_bias=momentum * velocity.visible_bias + step * gradients.visible_bias,
    )
    params = Params(*(p + d for p, d in zip(params, velocity, strict=True)))
    return State(params, velocity, state.chains, activity)


def train_step(state: State, v0, noise: Noise, hyper: Hyper, config: Config):
    """One update on the batch `v0`: `cd_gradients`, then `apply_gradients`.

    Persistent CD advances only the first `m = len(v0)` chains, so a short
    last batch has negative statistics of its own size. The seam for
    data-parallel pretraining is between the two steps: each process
    computes the `Gradients` of its shard, their sum over the processes
    (the sample counts too, so that unequal shards weigh right) is applied
    on every process.

    Returns:
        `(new_state, squared reconstruction error summed over the batch)`.
    """
    m = v0.shape[0]
    chains = state.chains[:m] if config.persistent else None
    gradients, vk, error = cd_gradients(state.params, v0, chains, noise, config)
    if config.persistent:
        if m != state.chains.shape[0]:  # a short batch: the first m
            vk = ops.concatenate([vk, state.chains[m:]], axis=0)
        state = state._replace(chains=vk)
    return apply_gradients(state, gradients, hyper, config.sparsity), error


def _monitor(keys: Keys, params: Params, v, key, config: Config):
    """`(mean F(v), mean pseudo-likelihood of v)`, the per-epoch monitors.

    The pseudo-likelihood flips one random bit per sample
    (`pseudo_likelihood`), NaN for Gaussian visible units; both NaN for an
    empty `v`.
    """
    nan = ops.convert_to_tensor(math.nan, "float32")
    n, n_visible = v.shape
    if n == 0:
        return nan, nan
    fe = ops.mean(free_energy(v, params, config.visible, config.hidden))
    if config.visible != "bernoulli":
        return fe, nan
    columns = keys.randint(key, (n,), n_visible)
    return fe, ops.mean(pseudo_likelihood(v, params, columns, config.hidden))


# --------------------------------------------------------------------------
# one epoch, in one compiled call


def _train_batches(keys: Keys, state: State, x, key, hyper, config, batch_size):
    """`(state, summed squared error)` after one update per batch of `x`.

    The full batches in a loop (`keras.ops.fori_loop`: a `tf.while_loop`, a
    `lax.fori_loop` over static bounds, which JAX lowers to a scan, a Python
    loop on PyTorch), the noise drawn for up to `NOISE_VALUES` values at a
    time, then the short last batch, if any.
    """
    n, n_visible = x.shape
    n_hidden = state.params.kernel.shape[1]
    k = config.cd_steps
    width = (k + config.persistent) * n_hidden + k * config.persistent * n_visible
    per_draw = max(1, NOISE_VALUES // (batch_size * width))  # batches per draw
    step_key, last_key = keys.split(key, 2)

    def step(batches, noise, i, carry):
        state, total = carry
        v0 = _row(batches, i)
        noise = _noise_at(noise, i)
        state, error = train_step(state, v0, noise, hyper, config)
        return state, total + error

    full = n // batch_size
    errors = []
    for c, start in enumerate(range(0, full, per_draw)):
        count = min(per_draw, full - start)
        chunk_key = keys.fold_in(step_key, c)
        shape = (n_visible, n_hidden)
        noise = draw_noise(keys, chunk_key, count, batch_size, shape, config)
        rows = x[start * batch_size : (start + count) * batch_size]
        batches = ops.reshape(rows, (count, batch_size, n_visible))
        body = functools.partial(step, batches, noise)
        carry = (state, ops.zeros((), "float32"))
        state, total = ops.fori_loop(0, count, body, carry)
        errors.append(total)
    rest = n - full * batch_size
    if rest:
        noise = draw_noise(keys, last_key, 1, rest, (n_visible, n_hidden), config)
        v0 = x[full * batch_size :]
        state, error = train_step(state, v0, _noise_at(noise, 0), hyper, config)
        errors.append(error)
    return state, sum(errors[1:], errors[0])


def train_epoch(
    state: State, x, key, hyper: Hyper, monitor_x, val_x, config, batch_size
):
    """One epoch over the samples `x`, then the monitors: pure, for compiling.

    The epoch shuffles `x` (with `config.sample_inputs`, replaces it by a
    Bernoulli sample of it), runs `train_step` over its batches of
    `batch_size` (a short last one included), then computes the monitors on
    the final weights.

    Args:
        state: The `State`.
        x: The samples `(n, visible)`, float32; `n` may be 0.
        key: A device key (`Keys.to_device`).
        hyper: The `Hyper`.
        monitor_x: The training samples of the monitors `(any, visible)`.
        val_x: The validation samples of the monitors (possibly none).
        config: The `Config`.
        batch_size: Samples per update (and persistent chains).

    Returns:
        `(new_state, metrics)`, `metrics = [mean squared reconstruction
        error, mean F(monitor_x), pseudo-likelihood of monitor_x, mean
        F(val_x), pseudo-likelihood of val_x]` (NaN for an empty set).
    """
    keys = Keys.active()
    n, n_visible = x.shape
    shuffle_key, input_key, step_key, monitor_key, val_key = keys.split(key, 5)
    error = ops.convert_to_tensor(math.nan, "float32")
    if n:
        x = ops.take(x, ops.argsort(keys.uniform(shuffle_key, (n,))), axis=0)
        if config.sample_inputs:
            x = bernoulli(x, keys.uniform(input_key, (n, n_visible)))
        state, error = _train_batches(
            keys, state, x, step_key, hyper, config, batch_size
        )
        error = error / float(n * n_visible)
    metrics = [
        error,
        *_monitor(keys, state.params, monitor_x, monitor_key, config),
        *_monitor(keys, state.params, val_x, val_key, config),
    ]
    return state, ops.stack(metrics)


def _compile(function):
    """`function` compiled for the active backend.

    `tf.function` on TensorFlow, `jax.jit` on JAX (both trace once per
    input shape), eager PyTorch under `no_grad`, the function itself
    elsewhere.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function, autograph=False)
    if backend == "jax":
        import jax

        return jax.jit(function)
    if backend == "torch":
        import torch

        return torch.no_grad()(function)
    return function


@functools.cache
def epoch_fn(config: Config, batch_size: int, backend: str):
    """`train_epoch` of `config` and `batch_size`, compiled for `backend`.

    Cached: every `RBM` of a setting shares one function, traced once per
    data shape (a fit's blocks have one or two shapes).

    Args:
        config: The `Config`.
        batch_size: Samples per update.
        backend: The active Keras backend's name (a part of the cache key).

    Returns:
        A function of `(state, x, key, hyper, monitor_x, val_x)` returning
        `(new_state, metrics)` (see `train_epoch`).

    Example:

    >>> run = epoch_fn(Config(), 32, keras.backend.backend())
    """
    return _compile(
        functools.partial(train_epoch, config=config, batch_size=batch_size)
    )


@functools.cache
def _step_fns(config: Config, backend: str):
    """`(cd_gradients, apply_gradients, monitors)` compiled for `config`.

    For training across processes, which sums the gradients over the
    processes between the first two.
    """
    gradients_of = _compile(
        lambda params, v0, chains, noise: cd_gradients(
            params, v0, chains, noise, config
        )
    )
    apply = _compile(
        lambda state, gradients, hyper: apply_gradients(
            state, gradients, hyper, config.sparsity
        )
    )
    monitor = _compile(
        lambda params, v, key: _monitor(Keys.active(), params, v, key, config)
    )
    return gradients_of, apply, monitor


# --------------------------------------------------------------------------
# the epoch driver: arrays, streams, several processes


class _FitSetup(NamedTuple):
    """What every epoch of one `fit` trains with."""

    seed: int
    config: Config
    batch_size: int
    n_visible: int
    units: int
    monitors: tuple  # device tensors: the training and validation samples
    chunk: int  # samples per block when streaming
    buffer: int  # the shuffle buffer when streaming, in samples


def _device(block):
    """A block of samples as a tensor of the backend (no copy on TensorFlow)."""
    if ops.is_tensor(block):
        return block
    if keras.backend.backend() == "tensorflow":
        from keras_weightinit.data import as_tensor

        return as_tensor(block)  # shuffled blocks are aligned
    return ops.convert_to_tensor(block, "float32")


class _Epochs:
    """The one epoch driver: an epoch's blocks of samples, then its updates.

    `blocks(epoch)` reads the epoch's samples: an array whole (the epoch
    function shuffles it), a stream through `shuffle_blocks` (blocks of
    whole batches, about `CHUNK_BYTES`); with several processes, each
    process's shard, shuffled on the host. `run(epoch, state)` trains on
    them: on one process, one call of the compiled epoch function per block
    (the last block's call computes the monitors); on several, batch by
    batch in step with the other processes (`_shared_updates`). Every key
    is `Keys.key(seed, purpose, epoch, index, process)`.
    """

    def __init__(self, hyper: Callable[[int], Hyper], source, setup: _FitSetup):
        self.hyper, self.source, self.setup = hyper, source, setup
        self.shared = distributed.process_count() > 1
        self.me = distributed.process_index()
        self.data_visible = (
            "bernoulli" if setup.config.sample_inputs else setup.config.visible
        )
        self._on_device = None  # an array's device copy

    def blocks(self, epoch: int) -> Iterator:
        """The epoch's blocks of samples, each checked when streamed.

        One process's array is one block, on the device (converted once for
        all epochs); streamed blocks are NumPy arrays.
        """
        setup = self.setup
        rng = np.random.default_rng([setup.seed, 1, epoch, self.me])
        if isinstance(self.source, np.ndarray):
            if not self.shared:  # on the device once, for every epoch
                if self._on_device is None:
                    self._on_device = _device(self.source)
                return iter([self._on_device])
            return iter([self.source[rng.permutation(len(self.source))]])
        blocks = _checked_blocks(
            self.source.blocks(), setup.n_visible, self.data_visible
        )
        return shuffle_blocks(blocks, setup.buffer, rng, setup.chunk)

    def run(self, epoch: int, state: State) -> tuple[State, np.ndarray]:
        """`(state, metrics)` after one epoch (metrics as `train_epoch`'s)."""
        hyper = self.hyper(epoch)
        if self.shared:
            return self._shared_updates(epoch, state, hyper)
        return self._local_updates(epoch, state, hyper)

    def _local_updates(self, epoch: int, state: State, hyper: Hyper):
        """One process's epoch; the metrics stay on the device (no wait)."""
        setup = self.setup
        function = epoch_fn(setup.config, setup.batch_size, keras.backend.backend())
        keys = Keys.active()
        empty = (ops.zeros((0, setup.n_visible)),) * 2
        total, count, values = 0.0, 0, None
        for j, (block, last) in enumerate(_with_last(self.blocks(epoch))):
            key = keys.to_device(Keys.key(setup.seed, 0, epoch, j, 0))
            monitors = setup.monitors if last else empty
            state, values = function(state, _device(block), key, hyper, *monitors)
            total = total + values[0] * float(block.shape[0])
            count += block.shape[0]
        if count == 0:
            raise ValueError(
                f"Argument `x` holds no samples in epoch {epoch + 1} (the "
                "dataset ended at once)."
            )
        if j == 0:  # one block: its metrics as they are
            return state, values
        return state, ops.concatenate([ops.reshape(total / count, (1,)), values[1:]])

    def _batches(self, epoch: int) -> Iterator[np.ndarray]:
        size = self.setup.batch_size
        for block in self.blocks(epoch):
            for start in range(0, len(block), size):
                yield block[start : start + size]

    def _shared_updates(self, epoch: int, state: State, hyper: Hyper):
        """One epoch over the processes' shards, data parallel.

        Every step, each process computes `cd_gradients` on a batch of its
        own shard, the sums over the processes' batches are exchanged
        (`distributed.sum_across_processes`), and every process applies
        them, so all keep the same weights. A process whose shard has no
        batch left sends zeros; the epoch ends when no process has one.
        PCD's chains stay per process. The monitors are the mean of each
        process's on its own samples.
        """
        setup, keys = self.setup, Keys.active()
        gradients_of, apply, monitor = _step_fns(setup.config, keras.backend.backend())
        mine = self._batches(epoch)
        error = count = 0.0
        for step in itertools.count():
            v0 = next(mine, None)
            key = keys.to_device(Keys.key(setup.seed, 0, epoch, step, self.me))
            sums, vk = self._local_sums(state, v0, key, gradients_of)
            batch_error, *summed = distributed.sum_across_processes(sums)
            if summed[-1] == 0:  # `Gradients.samples`: no process had a batch
                break
            if vk is not None:
                m = vk.shape[0]
                chains = ops.concatenate([vk, state.chains[m:]], axis=0)
                state = state._replace(chains=chains)
            summed = Gradients(*(ops.convert_to_tensor(g, "float32") for g in summed))
            state = apply(state, summed, hyper)
            error += batch_error
            count += summed.samples
        values = [float(error / (count * setup.n_visible))]
        for k, v in enumerate(setup.monitors):
            key = keys.to_device(Keys.key(setup.seed, 1, epoch, k, 0))
            values += [
                float(ops.convert_to_numpy(t)) for t in monitor(state.params, v, key)
            ]
        values[1:] = distributed.mean_across_processes(values[1:])
        return state, np.asarray(values)

    def _local_sums(self, state: State, v0, key, gradients_of):
        """This process's `[error, *Gradients]` sums on `v0` (zeros for None).

        Also the advanced chains (PCD), else None.
        """
        setup = self.setup
        n_visible, units = setup.n_visible, setup.units
        if v0 is None:  # this shard is done: nothing to add to the others'
            zeros = [np.zeros((n_visible, units)), np.zeros(units), np.zeros(n_visible)]
            return [0.0, *zeros, np.zeros(units), np.zeros(n_visible), 0.0], None
        keys = Keys.active()
        m = len(v0)
        input_key, noise_key = keys.split(key, 2)
        v0 = ops.convert_to_tensor(v0, "float32")
        if setup.config.sample_inputs:
            v0 = bernoulli(v0, keys.uniform(input_key, (m, n_visible)))
        shape = (n_visible, units)
        noise = _noise_at(draw_noise(keys, noise_key, 1, m, shape, setup.config), 0)
        chains = state.chains[:m] if setup.config.persistent else None
        gradients, vk, error = gradients_of(state.params, v0, chains, noise)
        sums = [float(ops.convert_to_numpy(error))]
        sums += [
            np.zeros(n_visible) if g is None else ops.convert_to_numpy(g)
            for g in gradients
        ]
        return sums, (vk if setup.config.persistent else None)


class _Log:
    """A fit's output: the header, a progress bar or lines, TensorBoard scalars.

    `verbose` 1 shows a progress bar over the epochs, 2 one line per epoch
    (Keras's meanings); `log_dir` gets the scalars `<name>/<metric>` per
    epoch, written without TensorFlow (`tensorboard.EventWriter`).
    """

    def __init__(self, verbose: int, log_dir, name: str, epochs: int):
        self.verbose, self.name, self.epochs = verbose, name, epochs
        self.progbar = self.writer = None
        if verbose == 1:
            self.progbar = keras.utils.Progbar(
                epochs, verbose=verbose, stateful_metrics=METRICS, unit_name="epoch"
            )
        if log_dir:
            from keras_weightinit.tensorboard import EventWriter

            self.writer = EventWriter(log_dir)

    def header(self, text: str) -> None:
        if self.verbose:
            print(text)

    def epoch(self, epoch: int, logs: dict[str, float]) -> None:
        if self.progbar is not None:
            self.progbar.update(epoch + 1, list(logs.items()))
        elif self.verbose == 2:
            print(_epoch_line(epoch, self.epochs, logs))
        if self.writer is not None:
            from keras_weightinit.tensorboard import summary_bytes

            scalars = {f"{self.name}/{key}": value for key, value in logs.items()}
            self.writer.write(epoch, summary_bytes({}, scalars))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


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


def _with_last(iterable: Iterable):
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
    one_of("visible", rbm.visible, VISIBLE_UNITS)
    one_of("hidden", rbm.hidden, HIDDEN_UNITS)
    positive_int("cd_steps", rbm.cd_steps)
    boolean("persistent", rbm.persistent)
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

    Training runs on the active Keras backend and its device: each epoch (or
    streamed block) is one call of a function compiled for the backend
    (`epoch_fn`); TensorFlow is not imported on JAX or PyTorch.

    Attributes:
        kernel: `(visible, units)` weights, as a Dense kernel.
        hidden_bias: `(units,)`, as a Dense bias.
        visible_bias: `(visible,)`.
        history_: The last successful `fit`'s history (what it returned).
        fit_data_: How the last successful `fit` read its data: `streamed`
            (whether it read a dataset block by block), `samples` (over all
            processes) and, when streamed, `shuffle_buffer` and `chunk` (the
            samples per compiled call).

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
        self.history_: dict[str, list[float]] | None = None
        self.fit_data_: dict | None = None

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

    def _data(self, x, name: str = "x"):
        """`x` checked against the fitted RBM, as a float32 tensor."""
        array = as_array(x, name)
        _check_data(array, name, self.visible, self.kernel.shape[0])
        return ops.convert_to_tensor(array, "float32")

    def _device_params(self) -> Params:
        return Params(*(ops.convert_to_tensor(p) for p in self._fitted()))

    # -- inference -------------------------------------------------------

    def transform(self, x) -> np.ndarray:
        """Hidden means `E[h | v]`: `sigmoid(v W + c)` or `max(0, v W + c)`."""
        x = hidden_input(self._data(x), self._device_params())
        return ops.convert_to_numpy(hidden_mean(x, self.hidden))

    def reconstruct(self, x) -> np.ndarray:
        """Mean-field reconstruction `E[v | h = E[h | v]]`."""
        params = self._device_params()
        h = hidden_mean(hidden_input(self._data(x), params), self.hidden)
        return ops.convert_to_numpy(visible_mean(h, params, self.visible))

    def free_energy(self, x) -> np.ndarray:
        """Free energy `F(v)` per sample (lower is more probable)."""
        fe = free_energy(self._data(x), self._fitted(), self.visible, self.hidden)
        return ops.convert_to_numpy(fe)

    def score_samples(self, x, seed: int | None = None) -> np.ndarray:
        """Pseudo-likelihood per sample, as scikit-learn's `BernoulliRBM`.

        For each sample one visible unit `i` is drawn at random and flipped to
        `1 - v_i`: `score = n_visible * log sigmoid(F(v_flipped) - F(v))`
        (`pseudo_likelihood`). Bernoulli visible units only.

        Args:
            x: Samples, shape `(n, visible)`.
            seed: Seed of the flipped indices, drawn by
                `np.random.default_rng(seed).integers(0, visible, n)`
                (default: the RBM's seed).
        """
        if self.visible != "bernoulli":
            raise ValueError(
                "score_samples (pseudo-likelihood) is defined for Bernoulli "
                f"visible units only. Received: visible={self.visible!r}"
            )
        v = self._data(x)
        rng = np.random.default_rng(self.seed if seed is None else seed)
        columns = rng.integers(0, v.shape[1], v.shape[0])
        scores = pseudo_likelihood(v, self._fitted(), columns, self.hidden)
        return ops.convert_to_numpy(scores)

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
        runs the CD updates over its batches in one compiled call. A dataset is
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
        training = _Training(self, sample_inputs, name)
        with distributed.together("RBM.fit"):  # over processes: fail together
            self._params = training.run(x, validation_data, verbose, log_dir)
        self.history_, self.fit_data_ = training.history, training.info
        return training.history

    def buffer_rows(self, n_visible: int) -> int:
        """The shuffle buffer's size in samples for `n_visible` features.

        Args:
            n_visible: Features per sample.

        Returns:
            `shuffle_buffer` when given, else the samples of `SHUFFLE_BYTES`
            (at least 1).

        Example:

        >>> RBM(8).buffer_rows(784)
        2674
        """
        if self.shuffle_buffer is not None:
            return self.shuffle_buffer
        return max(1, SHUFFLE_BYTES // (4 * n_visible))


class _Training:
    """One `RBM.fit`: reads and checks the data, starts the state, runs the epochs.

    Reads the RBM's arguments and changes nothing of it: `run` returns the
    fitted parameters, and `history` and `info` are the fit's history and
    `fit_data_`.
    """

    def __init__(self, rbm: RBM, sample_inputs: bool, name: str):
        self.rbm, self.sample_inputs, self.name = rbm, sample_inputs, name
        self.data_visible = "bernoulli" if sample_inputs else rbm.visible
        self.history: dict[str, list[float]] = {}
        self.info: dict = {}

    def run(self, x, validation_data, verbose: int, log_dir) -> Params:
        """The fitted parameters; sets `history` and `info`.

        The arguments are `RBM.fit`'s, checked.
        """
        rbm, name = self.rbm, self.name
        seed = self._seed()
        source, stats = self._read(x, seed)
        n_visible = stats.n_features if stats is not None else source.shape[1]
        val = self._validation(validation_data, n_visible)
        rng = np.random.default_rng(seed)
        samples, means, pool = self._statistics(source, stats)
        # One batch of all the data at most: chains and noise sized by the data.
        batch_size = min(rbm.batch_size, samples)
        state = self._initial_state(rng, pool, means, batch_size)
        if isinstance(source, np.ndarray):  # the monitors' samples: a random subset
            pool = source[rng.permutation(len(source))[:MONITOR_SAMPLES]]
        chunk = _chunk_rows(n_visible, batch_size)
        buffer = rbm.buffer_rows(n_visible)
        setup = _FitSetup(
            seed=seed,
            config=Config(
                rbm.visible,
                rbm.hidden,
                rbm.cd_steps,
                rbm.persistent,
                rbm.sparsity_target is not None,
                self.sample_inputs,
            ),
            batch_size=batch_size,
            n_visible=n_visible,
            units=rbm.units,
            monitors=tuple(
                ops.convert_to_tensor(a[:MONITOR_SAMPLES], "float32")
                for a in (pool, val)
            ),
            chunk=chunk,
            buffer=max(buffer, chunk) if buffer else 0,  # as shuffle_blocks
        )
        info = {"streamed": not isinstance(source, np.ndarray), "samples": samples}
        header = f"{name}: {n_visible} {rbm.visible} -> {rbm.units} {rbm.hidden}"
        if info["streamed"]:
            info.update(shuffle_buffer=setup.buffer, chunk=chunk)
            header += f" (streaming {samples} samples, shuffle buffer {setup.buffer})"
        if not distributed.is_writer():  # process 0 prints and writes
            verbose, log_dir = 0, None
        log = _Log(verbose, log_dir, name, rbm.epochs)
        log.header(header)
        history, state = self._train(
            _Epochs(self.hyper, source, setup), state, validation_data is not None, log
        )
        self.history, self.info = history, info
        return Params(*(ops.convert_to_numpy(t) for t in state.params))

    def _read(self, x, seed: int):
        """`(source, stats)`: the training data, checked.

        `source` is an array (in memory), or a `Stream` when the data are
        a dataset larger than the shuffle buffer; `stats` is the statistics
        pass's `FeatureStats` of a dataset, None for an array.
        """
        if not is_stream(x):
            data = as_array(x, "x")
            _check_data(data, "x", self.data_visible)
            return data, None
        stream, stats = self._stream_stats(x, seed)
        if stats.rows is not None:  # all of it: it fits in the shuffle buffer
            return stats.rows, stats
        return stream, stats

    def _validation(self, validation_data, n_visible: int) -> np.ndarray:
        """The validation samples, checked (none when None)."""
        if validation_data is None:
            return np.zeros([0, n_visible], "float32")
        rbm = self.rbm
        limit = MONITOR_SAMPLES if is_stream(validation_data) else None
        val = as_array(validation_data, "validation_data", max_samples=limit)
        _check_data(val, "validation_data", rbm.visible, n_visible)
        return val

    @staticmethod
    def _statistics(source, stats):
        """`(samples, feature means, pool)` of the data, over all processes.

        `pool` is where the chains start: the array (a dataset that fits the
        shuffle buffer is one), or the statistics pass's uniform random
        sample.
        """
        if isinstance(source, np.ndarray):  # all of it, a dataset's too
            samples, means, pool = len(source), source.mean(axis=0), source
        else:
            samples, means, pool = stats.count, stats.mean, stats.sample
        if distributed.process_count() > 1:  # the union of the processes' shards
            means = distributed.mean_across_processes(means * samples, count=samples)
            means = np.asarray(means, "float32")
            samples = int(distributed.sum_across_processes(float(samples)))
        return samples, means, pool

    def _train(self, epochs: _Epochs, state: State, validation: bool, log: _Log):
        """`(history, state)` after the RBM's `epochs` epochs of `epochs`.

        Each epoch's metrics are read back (and checked, logged) once the
        next epoch is on its way, so that a backend that dispatches
        asynchronously (JAX, a GPU) never waits for the host in between.
        """
        history: dict[str, list[float]] = {}
        epoch_count = self.rbm.epochs

        def record(epoch: int, values) -> None:
            logs = _logs(ops.convert_to_numpy(values), epoch, validation)
            for key, value in logs.items():
                history.setdefault(key, []).append(value)
            log.epoch(epoch, logs)

        try:  # each epoch's metrics read after the next epoch starts
            pending = None
            for epoch in range(epoch_count):
                state, values = epochs.run(epoch, state)
                if pending is not None:
                    record(*pending)
                pending = (epoch, values)
            record(*pending)
        finally:  # on failure the previous fit (if any) stays in place
            log.close()
        return history, state

    def _initial_state(
        self, rng, pool: np.ndarray, means: np.ndarray, batch_size: int
    ) -> State:
        """The state before the first update (Hinton 2010, section 8).

        `W ~ N(0, 0.01^2)`, `c = 0`, `b = log(p / (1 - p))` of the data's
        `means` (Bernoulli visible; else 0), no velocity, and `batch_size`
        chains started from random samples of `pool` (sampled for PCD).
        """
        rbm = self.rbm
        n_visible, units = pool.shape[1], rbm.units
        kernel = rng.normal(0.0, 0.01, (n_visible, units)).astype("float32")
        visible_bias = np.zeros(n_visible, "float32")
        if rbm.visible == "bernoulli":
            p = np.clip(means, P_CLIP, 1 - P_CLIP)
            visible_bias = np.log(p / (1 - p)).astype("float32")
        chains = pool[rng.integers(0, len(pool), batch_size)]
        if rbm.visible == "bernoulli" and rbm.persistent:
            chains = (rng.random(chains.shape) < chains).astype("float32")
        activity = np.full(units, float(rbm.sparsity_target or 0.0), "float32")
        zeros = Params(
            np.zeros((n_visible, units), "float32"),
            np.zeros(units, "float32"),
            np.zeros(n_visible, "float32"),
        )
        state = State(
            Params(kernel, zeros.hidden_bias, visible_bias),
            zeros,
            np.asarray(chains, "float32"),
            activity,
        )
        return keras.tree.map_structure(ops.convert_to_tensor, state)

    def hyper(self, epoch: int) -> Hyper:
        """The `Hyper` of `epoch`: momentum `momentum[0]`, then `momentum[1]`.

        The switch comes after `min(5, epochs // 2)` epochs (Hinton 2010).
        """
        rbm = self.rbm
        initial, final = _momentum(rbm.momentum)
        momentum = initial if epoch < min(5, rbm.epochs // 2) else final
        values = (rbm.learning_rate, momentum, rbm.weight_decay)
        values += (rbm.sparsity_target or 0.0,)
        return Hyper(*(ops.convert_to_tensor(np.float32(v)) for v in values))

    def _seed(self) -> int:
        rbm = self.rbm
        if distributed.process_count() > 1:  # process 0's, for every process
            return distributed.shared_seed(rbm.seed)
        return rbm.seed if rbm.seed is not None else python_random.randrange(2**31)

    def _stream_stats(self, x, seed: int):
        """`(stream, FeatureStats)` of `x`, checked, from one pass if needed.

        A `Stream` that carries its `stats` (computed by `pretrain_dbn` on
        the layer's input) is not read here.
        """
        rbm = self.rbm
        stream = Stream(x, "x")
        stats = x.stats if isinstance(x, Stream) else None
        if stats is None:
            stats = FeatureStats(
                sample_size=max(MONITOR_SAMPLES, rbm.batch_size),
                keep=rbm.buffer_rows,
                seed=[seed, 2],
                variance=False,  # the means suffice
            )
            for block in _stream_blocks(stream):
                stats.update(block)
        if stats.count == 0:
            raise ValueError("Argument `x` holds no samples.")
        _check_range(stats.low, stats.high, "x", self.data_visible)
        return stream, stats


def _stream_blocks(stream: Stream) -> Iterator[np.ndarray]:
    """A stream's samples in blocks of about `CHUNK_BYTES`, each checked 2-D.

    Fewer, larger NumPy calls for the statistics pass; every batch must have
    the first one's features.
    """
    batches = stream.blocks()
    first = next(batches, None)
    if first is None:
        return
    _check_shape(first, "x", None, "a batch of ")
    width = first.shape[1]

    def checked():
        for batch in itertools.chain([first], batches):
            _check_shape(batch, "x", width, "a batch of ")
            yield batch

    yield from rechunk(checked(), max(1, CHUNK_BYTES // (4 * width)))
