"""Weight initializers: the article's schemes as Keras 3 initializers.

Every class here is a `keras.initializers.Initializer`, so it drops into
`Dense(..., kernel_initializer=...)` or `Conv2D(...)` unchanged, and it is
registered under the package name, so `"keras_weightinit>HeNormal"` works as a
string and saved models reload after `import keras_weightinit`. The values
are drawn on the backend's device with `keras.random` (stateless draws from
explicit seeds) and `keras.ops` (QR from `keras.ops.linalg` for
`Orthogonal`), on TensorFlow, JAX and PyTorch alike: a traced draw is a few
ops, never a constant holding the kernel.

Seeds differ from Keras on purpose. A Keras initializer created without a seed
returns the same values on every call, so one instance shared by two layers
gives both the same kernel: the symmetry that the article warns about. And a
Keras initializer with an int seed gives the same values to every copy of it,
so the query, key and value projections of a `MultiHeadAttention` (which
clones its initializer for each) start equal. Here:

- `seed=None`: fresh values on every call. Each call's seed comes from
  Python's `random` module, so `keras.utils.set_random_seed` still makes a
  run reproducible; inside a TensorFlow graph (a layer built in `fit`'s
  traced step) the draw uses Keras's global `SeedGenerator`, a state
  variable, so every run of the graph draws anew. (Inside a traced JAX
  function, as for any JAX random op without a `SeedGenerator`, the values
  are fixed when it is traced.)
- `seed=<int>`: the whole sequence of calls is reproducible; a new instance
  with the same seed replays it from the start, and so does a `clone()` or a
  deserialized copy called directly (`init(shape)`).
- A copy that a layer creates its weight with (the copies
  `MultiHeadAttention` makes for its query, key, value and output
  projections, those of `keras.models.clone_model` and of deserializing a
  model whose layers shared one instance) draws instead from the seed, the
  name of that layer (`"query"`, `"dense_1"`) and how many weights that layer
  has drawn from the seed before. So no two variables get the same values
  from copies of one instance, and the same code with the same seeds still
  gives the same weights.
- `seed=keras.random.SeedGenerator(...)`: each call draws from the generator.

Under a `keras.distribution` distribution (JAX) Keras passes each call the
variable's `layout`; a sharded layout (a `ModelParallel` `LayoutMap`) is
drawn shard by shard, no full copy on one device, with the same values as
without it. With several processes each one draws its own copy of a
variable, so they must draw alike: an int seed does; `seed=None` does while
the processes' Python `random` streams agree, as `keras.distribution.initialize`
leaves them (the rule Keras's own unseeded initializers follow).
`keras_weightinit.initialize` agrees on a seed itself.
"""

from __future__ import annotations

import functools
import math
import random as python_random
import weakref
import zlib
from collections.abc import Callable
from typing import Literal

import keras
import numpy as np

from keras_weightinit.checks import is_number, one_of, positive_number, positive_shape
from keras_weightinit.distributed import draw_sharded
from keras_weightinit.gains import calculate_gain, compute_fans, nonlinearity_name
from keras_weightinit.graph import current_scope
from keras_weightinit.seeds import Seed, check_seed

__all__ = [
    "DeltaOrthogonal",
    "draw_with_fans",
    "HeNormal",
    "HeUniform",
    "Orthogonal",
    "RandomNormal",
    "SmallRandomNormal",
    "XavierNormal",
    "XavierUniform",
    "ZerO",
    "get_scheme",
    "scheme_names",
]

Gain = float | str | Callable
_register = keras.saving.register_keras_serializable(package="keras_weightinit")


# --------------------------------------------------------------------------
# argument checks


def _gain(gain: Gain) -> tuple[float, float | str]:
    """`(scale, config value)` of a number, nonlinearity name or function.

    The scale is the number or the `calculate_gain`. A function is kept in
    the config by its name when the name gives the same gain, else as the
    number (Keras's `leaky_relu` function has slope 0.2, the name 0.01).
    """
    if isinstance(gain, str) or callable(gain):
        try:
            scale = calculate_gain(gain)
        except ValueError as error:
            raise ValueError(
                "Argument `gain` must be a positive number or a nonlinearity "
                f"name known to `calculate_gain`. Received: gain={gain!r}"
            ) from error
        if callable(gain):
            name = nonlinearity_name(gain)
            return scale, name if calculate_gain(name) == scale else scale
        return scale, gain
    scale = positive_number("gain", gain)
    return scale, gain


def _shape(shape) -> tuple[int, ...]:
    return positive_shape("shape", shape)


# --------------------------------------------------------------------------
# base classes


class _Initializer(keras.initializers.Initializer):
    """Checks shape and dtype; draws on the backend's device with `keras.ops`."""

    def __call__(self, shape, dtype=None, layout=None, fans=None):
        """The values for a weight of `shape`, distributed as `layout`.

        Keras passes `layout` (a JAX sharding) when it creates a variable
        under a `keras.distribution` distribution; a sharded layout's values
        are drawn shard by shard (`distributed.draw_sharded`), the same values as
        without it. `fans`, `(fan_in, fan_out)`, replaces the fans read from
        the shape (`compute_fans`), for weights whose shape miscounts them
        (`draw_with_fans`).
        """
        if fans is not None:
            fans = positive_shape("fans", fans)
            if len(fans) != 2:
                raise ValueError(
                    "Argument `fans` must be a pair (fan_in, fan_out). "
                    f"Received: fans={fans!r}"
                )
        if layout is None:
            return self._call(shape, dtype, fans)
        traceable = not isinstance(
            getattr(self, "seed", None), keras.random.SeedGenerator
        )
        return draw_sharded(
            lambda: self._call(shape, dtype, fans), layout, jit=traceable
        )

    def _call(self, shape, dtype, fans: tuple[int, int] | None):
        shape = _shape(shape)
        dtype = keras.backend.standardize_dtype(dtype or keras.config.floatx())
        if not keras.backend.is_float_dtype(dtype):
            raise ValueError(
                f"{type(self).__name__} only creates floating point weights. "
                f"Received: dtype={dtype}"
            )
        work = "float64" if dtype == "float64" else "float32"
        values = self._sample(shape, work, fans or compute_fans(shape))
        return keras.ops.cast(values, dtype)

    def _sample(self, shape: tuple[int, ...], dtype: str, fans):
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _RandomInitializer(_Initializer):
    """Owns the random stream described in the module docstring."""

    def __init__(self, seed: Seed = None):
        self.seed = check_seed(seed)
        self._calls = 0
        self._copy = False

    @classmethod
    def from_config(cls, config: dict):
        """A copy from `get_config()`: see the module docstring for its draws."""
        copy = cls(**config)
        copy._copy = True
        return copy

    def _next_seed(self):
        """The `seed` of this call's `keras.random` draw.

        A `SeedGenerator` (it advances); an int derived from the int seed and
        the call (or, for a copy called by a layer, the layer's name and
        draw count); for `seed=None`, an int from Python's `random`, or, while
        TensorFlow traces a graph, None: Keras's global generator, a state
        variable, so each run of the graph draws anew.
        """
        if isinstance(self.seed, keras.random.SeedGenerator):
            return self.seed
        if self.seed is None:
            if _tracing_tensorflow():
                return None
            return python_random.getrandbits(31)
        layer = current_scope() if self._copy else None
        if layer is not None:  # a layer is creating its weight
            drawn = _LAYER_DRAWS.setdefault(layer, {})
            count = drawn.get(self.seed, 0)
            drawn[self.seed] = count + 1
            entropy = [self.seed, zlib.crc32(layer.name.encode()), count]
        else:
            entropy = [self.seed, self._calls]
            self._calls += 1
        return int(np.random.SeedSequence(entropy).generate_state(1)[0] >> 1)

    def _draw(self, shape, dtype, std: float, distribution: str):
        seed = self._next_seed()
        if distribution == "normal":
            return keras.random.normal(shape, stddev=std, dtype=dtype, seed=seed)
        limit = math.sqrt(3.0) * std  # U(-limit, limit) has standard deviation std
        return keras.random.uniform(
            shape, minval=-limit, maxval=limit, dtype=dtype, seed=seed
        )

    def _drawn(self, draw: Callable, *args):
        """`draw(*args, seed)` with this call's seed.

        On JAX with an int seed, `draw` runs as one compiled function per
        `args` (cached; the seed is its only input), not op by op.
        """
        seed = self._next_seed()
        if keras.backend.backend() != "jax" or not isinstance(seed, int):
            return draw(*args, seed)
        key = keras.ops.convert_to_tensor([seed, 0], dtype="uint32")
        return _compiled(draw, *args)(key)

    def get_config(self) -> dict:
        return {"seed": keras.saving.serialize_keras_object(self.seed)}


@functools.lru_cache(maxsize=256)
def _compiled(draw: Callable, *args):
    """`seed -> draw(*args, seed)` as one `jax.jit` function."""
    import jax

    return jax.jit(functools.partial(draw, *args))


def _orthogonal(rows: int, cols: int, dtype: str, seed):
    """A Haar-random `(rows, cols)` matrix with orthonormal rows or columns."""
    a = keras.random.normal((max(rows, cols), min(rows, cols)), dtype=dtype, seed=seed)
    q = _haar(a)
    return q if rows >= cols else keras.ops.transpose(q)


def _orthogonal_kernel(shape: tuple[int, ...], dtype: str, scale: float, seed):
    """`scale` times `_orthogonal` of the flattened `shape`, in `shape`."""
    q = _orthogonal(math.prod(shape[:-1]), shape[-1], dtype, seed)
    return keras.ops.reshape(scale * q, shape)


def _delta_kernel(shape: tuple[int, ...], dtype: str, scale: float, seed):
    """`scale` times an orthogonal `(in, out)` matrix at the kernel's centre."""
    q = _orthogonal(shape[-2], shape[-1], dtype, seed)
    return _at_centre(scale * q, shape)


_HAAR_LEAF = 512
_CHOLESKY_MIN = 32


def _haar(a):
    """The orthonormal columns `Q` of `a = QR` with `diag(R) > 0`, for normal `a`.

    For a standard normal `(n, k)` matrix `a` (`n >= k`), `Q` is Haar-random
    (uniform over matrices with orthonormal columns). For a near-square `a`
    the same distribution is built from a QR of half the columns:
    `Q = [Q1, C @ M]`, with `Q1` the first `b = k // 2` columns of the QR of
    `a[:, :b]`, `C` the rest of that QR's complete `Q` (an orthonormal basis of
    the complement of `Q1`), and `M = _haar(a[b:, b:])`, Haar-random and
    independent of `Q1`, so that `C @ M` is uniform over the bases of the
    complement. The work moves from the QR into one matrix product. A tall
    `a` (`n >= 2k`) takes the same `Q` from matrix products instead
    (`_cholesky_q` twice, CholeskyQR2: Fukaya et al., "CholeskyQR2: a
    simple and communication-avoiding algorithm for computing a tall-skinny
    QR factorization", ScalA 2014).
    """
    n, k = a.shape
    if k >= _CHOLESKY_MIN and 2 * k <= n:
        return _cholesky_q(_cholesky_q(a))
    if k <= _HAAR_LEAF or 8 * k <= 7 * n:
        q, r = keras.ops.linalg.qr(a)
        return q * _signs(r)
    b = k // 2
    q, r = keras.ops.linalg.qr(a[:, :b], mode="complete")
    rest = keras.ops.matmul(q[:, b:], _haar(a[b:, b:]))
    return keras.ops.concatenate([q[:, :b] * _signs(r), rest], axis=1)


def _cholesky_q(a):
    """`a R^-1`, with `R^T R = a^T a` the Cholesky factorization.

    For an `a` of full column rank, the `Q` of `a = QR` with `diag(R) > 0`
    (CholeskyQR): two matrix products and a triangular solve. Applied twice,
    the second on the first's `Q`, it is orthonormal to working precision
    for a well-conditioned `a`, such as a standard normal `(n, k)` one with
    `n >= 2k`; and `R2 R1` keeps a positive diagonal, so the result is the
    same `Q`.
    """
    ops = keras.ops
    lower = ops.linalg.cholesky(ops.matmul(ops.transpose(a), a))
    return ops.transpose(ops.linalg.solve_triangular(lower, ops.transpose(a), True))


def _signs(r):
    """The signs of `diag(r)`, 0 counted as +1."""
    return keras.ops.where(keras.ops.diagonal(r) < 0, -1.0, 1.0)


# layer -> {int seed: weights that layer has drawn from the seed}
_LAYER_DRAWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _tracing_tensorflow() -> bool:
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return not tf.executing_eagerly()


def _at_centre(matrix, shape: tuple[int, ...]):
    """A conv kernel of `shape`: `matrix` at the spatial centre, 0 elsewhere."""
    pads = [[k // 2, k - 1 - k // 2] for k in shape[:-2]] + [[0, 0], [0, 0]]
    return keras.ops.pad(
        keras.ops.reshape(matrix, (1,) * (len(shape) - 2) + tuple(matrix.shape)), pads
    )


# --------------------------------------------------------------------------
# the schemes


@_register
class RandomNormal(_RandomInitializer):
    """Plain normal weights: `W ~ N(0, stddev^2)`, whatever the layer's fans.

    The article's "random" initialization (`stddev=1`): the weights ignore
    the size of the layer, so a wide or deep network's activations blow up
    and training stalls. Unlike `keras.initializers.RandomNormal`, an unseeded
    instance gives fresh values on every call.

    Args:
        stddev: Standard deviation of the weights, positive.
        seed: None, a non-negative int or a `keras.random.SeedGenerator`.

    Example:

    >>> init = RandomNormal(stddev=1.0, seed=0)
    >>> layer = keras.layers.Dense(8, kernel_initializer=init)

    Reference:
        LeCun et al., "Efficient BackProp", 1998, section 4.6 (why the scale
        must follow the fan-in).
    """

    def __init__(self, stddev: float = 1.0, seed: Seed = None):
        super().__init__(seed)
        self.stddev = positive_number("stddev", stddev)

    def _sample(self, shape, dtype, fans):
        return self._draw(shape, dtype, self.stddev, "normal")

    def get_config(self) -> dict:
        return {"stddev": self.stddev, **super().get_config()}


@_register
class SmallRandomNormal(RandomNormal):
    """Small normal weights near zero: `W ~ N(0, stddev^2)`, `stddev=0.01`.

    The article's "small random" initialization. It breaks the symmetry of
    all-zero weights, but every layer shrinks the signal by about
    `stddev * sqrt(fan_in)`, so in a deep network the activations and the
    backpropagated gradients vanish.

    Args:
        stddev: Standard deviation of the weights, positive.
        seed: None, a non-negative int or a `keras.random.SeedGenerator`.

    Example:

    >>> layer = keras.layers.Dense(8, kernel_initializer=SmallRandomNormal())

    Reference:
        Glorot & Bengio, "Understanding the difficulty of training deep
        feedforward neural networks", AISTATS 2010.
    """

    def __init__(self, stddev: float = 0.01, seed: Seed = None):
        super().__init__(stddev=stddev, seed=seed)


def _fan(fans: tuple[int, int], mode: str) -> float:
    """The fan a variance-scaling `mode` reads from `(fan_in, fan_out)`.

    Example:

    >>> _fan((4, 8), "fan_in"), _fan((4, 8), "fan_out"), _fan((4, 8), "fan_avg")
    (4, 8, 6.0)
    """
    fan_in, fan_out = fans
    return {"fan_in": fan_in, "fan_out": fan_out}.get(mode, (fan_in + fan_out) / 2)


class _VarianceScaling(_RandomInitializer):
    """`Var(W) = scale / fan`, `fan` the `mode`'s of the weight's fans.

    Keras's `VarianceScaling` (untruncated) with this module's seeds; each
    scaled scheme is a subclass that picks `scale` and `mode` from its own
    arguments, and its Normal or Uniform twin sets `distribution`. The fans
    are the shape's (`compute_fans`), or those passed as `fans=`.
    """

    distribution = "normal"

    def __init__(self, scale: float, mode: str, seed: Seed = None):
        super().__init__(seed)
        self._variance = scale
        self.mode = mode

    def _sample(self, shape, dtype, fans):
        std = math.sqrt(self._variance / _fan(fans, self.mode))
        return self._draw(shape, dtype, std, self.distribution)


class _Xavier(_VarianceScaling):
    def __init__(
        self,
        gain: Gain = 1.0,
        mode: Literal["fan_in", "fan_out", "fan_avg"] = "fan_avg",
        seed: Seed = None,
    ):
        scale, self.gain = _gain(gain)
        mode = one_of("mode", mode, ("fan_in", "fan_out", "fan_avg"))
        super().__init__(scale=scale * scale, mode=mode, seed=seed)

    def get_config(self) -> dict:
        return {"gain": self.gain, "mode": self.mode, **super().get_config()}


@_register
class XavierNormal(_Xavier):
    """Xavier/Glorot normal: `W ~ N(0, std^2)`, `std = gain / sqrt(fan)`.

    With the default `mode="fan_avg"`, `fan = (fan_in + fan_out) / 2`, so
    `std = gain * sqrt(2 / (fan_in + fan_out))` (Glorot & Bengio). With
    `mode="fan_in"` it is exactly the article's
    `randn(fan_in, fan_out) / sqrt(fan_in)` (also LeCun normal); `"fan_out"`
    uses the fan-out. Not truncated.

    Args:
        gain: A positive number or a nonlinearity name (`"tanh"`, ...) whose
            `calculate_gain` is used.
        mode: `"fan_avg"`, `"fan_in"` or `"fan_out"`.
        seed: None, a non-negative int or a `keras.random.SeedGenerator`.

    Example:

    >>> article = XavierNormal(mode="fan_in")
    >>> layer = keras.layers.Dense(8, activation="tanh",
    ...                            kernel_initializer=XavierNormal(gain="tanh"))

    Reference:
        Glorot & Bengio, "Understanding the difficulty of training deep
        feedforward neural networks", AISTATS 2010.
    """


@_register
class XavierUniform(_Xavier):
    """Xavier/Glorot uniform: `W ~ U(-limit, limit)`, `limit = sqrt(3) * std`.

    `std = gain / sqrt(fan)` as in `XavierNormal`; with the default
    `mode="fan_avg"`, `limit = gain * sqrt(6 / (fan_in + fan_out))`.

    Args:
        gain: A positive number or a nonlinearity name.
        mode: `"fan_avg"`, `"fan_in"` or `"fan_out"`.
        seed: None, a non-negative int or a `keras.random.SeedGenerator`.

    Example:

    >>> layer = keras.layers.Dense(8, kernel_initializer=XavierUniform(seed=1))

    Reference:
        Glorot & Bengio, "Understanding the difficulty of training deep
        feedforward neural networks", AISTATS 2010.
    """

    distribution = "uniform"


class _He(_VarianceScaling):
    def __init__(
        self,
        negative_slope: float = 0.0,
        mode: Literal["fan_in", "fan_out"] = "fan_in",
        seed: Seed = None,
    ):
        if not is_number(negative_slope) or not math.isfinite(negative_slope):
            raise ValueError(
                "Argument `negative_slope` must be a finite number. "
                f"Received: negative_slope={negative_slope!r}"
            )
        self.negative_slope = float(negative_slope)
        mode = one_of("mode", mode, ("fan_in", "fan_out"))
        scale = 2.0 / (1.0 + self.negative_slope * self.negative_slope)
        super().__init__(scale=scale, mode=mode, seed=seed)

    def get_config(self) -> dict:
        return {
            "negative_slope": self.negative_slope,
            "mode": self.mode,
            **super().get_config(),
        }


@_register
class HeNormal(_He):
    """He/Kaiming normal: `W ~ N(0, std^2)`, `std = sqrt(2 / ((1 + a^2) * fan))`.

    At `negative_slope=a=0` and `mode="fan_in"` this is the article's
    `randn(fan_in, fan_out) / sqrt(fan_in / 2)`, the right scale for ReLU: half
    of the units are zero, so the weights make up for the lost variance.
    A plain (not truncated) normal, matching PyTorch's `kaiming_normal_`;
    `a > 0` is for leaky ReLU with that slope.

    Args:
        negative_slope: The slope `a` of the leaky ReLU after the layer.
        mode: `"fan_in"` keeps the forward signal's variance, `"fan_out"` the
            backward gradient's.
        seed: None, a non-negative int or a `keras.random.SeedGenerator`.

    Example:

    >>> layer = keras.layers.Dense(8, activation="relu",
    ...                            kernel_initializer=HeNormal())

    Reference:
        He et al., "Delving Deep into Rectifiers: Surpassing Human-Level
        Performance on ImageNet Classification", ICCV 2015.
    """


@_register
class HeUniform(_He):
    """He/Kaiming uniform: `W ~ U(-l, l)`, `l = sqrt(6 / ((1 + a^2) * fan))`.

    The uniform twin of `HeNormal` with the same standard deviation, matching
    PyTorch's `kaiming_uniform_`.

    Args:
        negative_slope: The slope `a` of the leaky ReLU after the layer.
        mode: `"fan_in"` or `"fan_out"`.
        seed: None, a non-negative int or a `keras.random.SeedGenerator`.

    Example:

    >>> layer = keras.layers.Dense(8, kernel_initializer=HeUniform(seed=3))

    Reference:
        He et al., "Delving Deep into Rectifiers", ICCV 2015.
    """

    distribution = "uniform"


@_register
class Orthogonal(_RandomInitializer):
    """Random orthogonal weights: `W = gain * Q`, `Q` Haar-random orthogonal.

    The kernel is flattened to `(prod(shape[:-1]), shape[-1])` (a Dense kernel
    as is, a conv kernel as `(k... * in, out)`); that matrix has orthonormal
    columns when it has at least as many rows as columns
    (`W^T W = gain^2 I`), orthonormal rows otherwise.

    Args:
        gain: A positive number or a nonlinearity name (`"relu"`, `"tanh"`,
            ...) whose `calculate_gain` is used.
        seed: None, a non-negative int or a `keras.random.SeedGenerator`.

    Example:

    >>> layer = keras.layers.Dense(64, activation="relu",
    ...                            kernel_initializer=Orthogonal(gain="relu"))

    Reference:
        Saxe et al., "Exact solutions to the nonlinear dynamics of learning in
        deep linear neural networks", ICLR 2014.
    """

    def __init__(self, gain: Gain = 1.0, seed: Seed = None):
        super().__init__(seed)
        self._scale, self.gain = _gain(gain)

    def _sample(self, shape, dtype, fans):
        if len(shape) < 2:
            raise ValueError(
                f"Orthogonal needs a kernel of rank 2 or more. Received: shape={shape}"
            )
        return self._drawn(_orthogonal_kernel, shape, dtype, self._scale)

    def get_config(self) -> dict:
        return {"gain": self.gain, **super().get_config()}


@_register
class DeltaOrthogonal(_RandomInitializer):
    """Delta-orthogonal conv kernels: zero except `gain * Q` at the centre.

    For a kernel of shape `(*kernel_size, in, out)`,
    `W[centre] = gain * Q` with `Q` a Haar-random `(in, out)` matrix with
    orthonormal rows, and `W = 0` at every other spatial position, so at
    initialization the convolution is an orthogonal map of the channels at each
    pixel and the network is dynamically isometric. Needs a conv kernel
    (rank 3 to 5) with `in <= out`.

    Args:
        gain: A positive number or a nonlinearity name.
        seed: None, a non-negative int or a `keras.random.SeedGenerator`.

    Example:

    >>> conv = keras.layers.Conv2D(32, 3, padding="same",
    ...                            kernel_initializer=DeltaOrthogonal())

    Reference:
        Xiao et al., "Dynamical Isometry and a Mean Field Theory of CNNs: How
        to Train 10,000-Layer Vanilla Convolutional Neural Networks", ICML 2018.
    """

    def __init__(self, gain: Gain = 1.0, seed: Seed = None):
        super().__init__(seed)
        self._scale, self.gain = _gain(gain)

    def _sample(self, shape, dtype, fans):
        if not 3 <= len(shape) <= 5:
            raise ValueError(
                "DeltaOrthogonal needs a conv kernel of rank 3, 4 or 5 "
                f"(*kernel_size, in, out). Received: shape={shape}"
            )
        if shape[-2] > shape[-1]:
            raise ValueError(
                "DeltaOrthogonal needs in_channels <= out_channels to be "
                f"orthogonal. Received: shape={shape}"
            )
        return self._drawn(_delta_kernel, shape, dtype, self._scale)

    def get_config(self) -> dict:
        return {"gain": self.gain, **super().get_config()}


def _hadamard(order: int, dtype):
    """Sylvester's Hadamard matrix of size `2**order`, entries +-1."""
    h = keras.ops.ones((1, 1), dtype=dtype)
    for _ in range(order):
        h = keras.ops.concatenate(
            [
                keras.ops.concatenate([h, h], axis=1),
                keras.ops.concatenate([h, -h], axis=1),
            ],
            axis=0,
        )
    return h


@_register
class ZerO(_Initializer):
    """ZerO: deterministic weights made of zeros, ones and a Hadamard matrix.

    For a Dense kernel of shape `(n_in, n_out)` (Keras layout, `y = x @ W`):

    - `n_out <= n_in`: the partial identity `W[i, i] = 1`, zero elsewhere (the
      identity when `n_in == n_out`);
    - `n_out > n_in`: `W = c * H[:n_in, :n_out]` with `H` the Sylvester Hadamard
      matrix of size `2^m`, `m = ceil(log2(n_out))` and
      `c = 2^(-(m - 1) / 2)`, which avoids the rank collapse a partial identity
      would cause when the layer widens.

    A conv kernel `(*kernel_size, n_in, n_out)` (rank 3 to 5) gets that matrix
    at its spatial centre (`k // 2` on each axis) and zeros elsewhere. Other
    ranks are an error. No randomness, so no seed: every call returns the same
    values. Pair it with zero biases, as the paper does.

    Example:

    >>> layer = keras.layers.Dense(64, kernel_initializer=ZerO())

    Reference:
        Zhao et al., "ZerO Initialization: Initializing Neural Networks with
        only Zeros and Ones", TMLR 2022.
    """

    def _sample(self, shape, dtype, fans):
        if not 2 <= len(shape) <= 5:
            raise ValueError(
                "ZerO needs a Dense kernel (rank 2) or a conv kernel (rank 3 "
                f"to 5). Received: shape={shape}"
            )
        n_in, n_out = shape[-2:]
        if n_out <= n_in:
            matrix = keras.ops.eye(n_in, n_out, dtype=dtype)
        else:
            order = math.ceil(math.log2(n_out))
            scale = 2 ** (-(order - 1) / 2)
            matrix = scale * _hadamard(order, dtype)[:n_in, :n_out]
        return matrix if len(shape) == 2 else _at_centre(matrix, shape)

    def get_config(self) -> dict:
        return {}


# --------------------------------------------------------------------------
# drawing with given fans


def draw_with_fans(init, shape, dtype, fans: tuple[int, int]):
    """`init`'s values for a weight of `shape` whose fans are `fans`.

    The initializers of this module and Keras's `VarianceScaling` family
    (Glorot, He, LeCun) scale by the given fans instead of the ones Keras
    reads from the shape (which miscounts EinsumDense, depthwise and
    recurrent kernels); any other initializer is called as it is.

    Example:

    >>> values = draw_with_fans(HeNormal(seed=0), (3, 3, 8, 1), "float32", (9, 9))
    >>> tuple(values.shape)
    (3, 3, 8, 1)
    """
    if isinstance(init, _Initializer):
        return init(shape, dtype, fans=fans)
    if isinstance(init, keras.initializers.VarianceScaling):
        scaled = keras.initializers.VarianceScaling(
            scale=init.scale
            * _fan(compute_fans(shape), init.mode)
            / _fan(fans, init.mode),
            mode=init.mode,
            distribution=init.distribution,
            seed=init.seed,
        )
        return scaled(shape, dtype)
    return init(shape, dtype=dtype)


# --------------------------------------------------------------------------
# the article's schemes by name

_SCHEMES: dict[str, Callable[[Seed], keras.initializers.Initializer]] = {
    "zeros": lambda seed: keras.initializers.Zeros(),
    "random": lambda seed: RandomNormal(stddev=1.0, seed=seed),
    "small_random": lambda seed: SmallRandomNormal(seed=seed),
    "xavier": lambda seed: XavierNormal(mode="fan_in", seed=seed),
    "glorot": lambda seed: XavierNormal(seed=seed),
    "he": lambda seed: HeNormal(seed=seed),
    "lecun": lambda seed: XavierNormal(mode="fan_in", seed=seed),
    "orthogonal": lambda seed: Orthogonal(seed=seed),
    "zero": lambda seed: ZerO(),
}


def scheme_names() -> list[str]:
    """The names that `get_scheme` knows, in the article's order.

    Example:

    >>> scheme_names()[:3]
    ['zeros', 'random', 'small_random']
    """
    return list(_SCHEMES)


def get_scheme(name: str, seed: Seed = None) -> keras.initializers.Initializer:
    """Returns a fresh initializer for one of the article's schemes.

    | name           | initializer                                          |
    |----------------|------------------------------------------------------|
    | `zeros`        | `keras.initializers.Zeros()`: all weights 0          |
    | `random`       | `RandomNormal(1.0)`: `N(0, 1)`                       |
    | `small_random` | `SmallRandomNormal()`: `N(0, 0.01^2)`                |
    | `xavier`       | `XavierNormal(mode="fan_in")`: `randn / sqrt(fan_in)` |
    | `glorot`       | `XavierNormal()`: `std = sqrt(2 / (fan_in + fan_out))` |
    | `he`           | `HeNormal()`: `randn / sqrt(fan_in / 2)`             |
    | `lecun`        | `XavierNormal(mode="fan_in")`, the same as `xavier`: |
    |                | LeCun's `1 / sqrt(fan_in)` is what the article and   |
    |                | He et al. call Xavier                                |
    | `orthogonal`   | `Orthogonal()`                                       |
    | `zero`         | `ZerO()`                                             |

    Args:
        name: One of the names above.
        seed: Passed to the random schemes; ignored by `zeros` and `zero`.

    Returns:
        A new initializer instance on every call.

    Example:

    >>> layer = keras.layers.Dense(8, kernel_initializer=get_scheme("he", seed=0))

    Reference:
        He et al., "Delving Deep into Rectifiers", ICCV 2015, section 2.2.
    """
    if name not in _SCHEMES:
        raise ValueError(
            f"Unknown scheme {name!r}. Known schemes: {', '.join(_SCHEMES)}. "
            f"Received: name={name!r}"
        )
    return _SCHEMES[name](check_seed(seed))
