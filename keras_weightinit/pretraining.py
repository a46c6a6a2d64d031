"""Greedy layer-wise RBM pretraining of a Keras model's Dense layers (a DBN).

`pretrain_dbn` walks the model's Dense layers in order. For each it computes
the layer's actual input through the already-pretrained part of the model
(so `Flatten`, `Rescaling`, `Dropout`, ... in between just work), trains an
`RBM` on it and writes the RBM's weights into the layer, converted so that the
layer's output is the RBM's hidden means. The conversions, exact:

- Hidden units follow the activation. `sigmoid`: Bernoulli hidden units,
  `kernel = W`, `bias = c`, so `sigmoid(u W + c) = E[h | u]`. `relu`: noisy
  rectified hidden units, `relu(u W + c) = max(0, u W + c)`, their mean.
  `tanh`: Bernoulli hidden units seen as spins `s = 2 h - 1`; since
  `tanh(a) = 2 sigmoid(2 a) - 1`, `kernel = W / 2`, `bias = c / 2` give
  `tanh(u kernel + bias) = 2 sigmoid(u W + c) - 1 = E[s | u]`.
- Visible units follow the data (`visible="auto"`). Inputs in [0, 1]:
  Bernoulli visible units on `v = u`. Inputs of a layer above a tanh layer,
  in [-1, 1]: Bernoulli visible units on `v = (u + 1) / 2`, the states of the
  layer below. Inputs of a layer above a ReLU layer, and everything else:
  Gaussian visible units on the standardized input
  `v = (u - mu) / sigma` (per feature; sigma floored at a tenth of the
  median sigma of the varying features, 1 when none varies, so
  near-constant features do not blow up the kernel).
- Zero-variance features, of one value over the data (dead ReLUs, blank
  pixels, an input of `np.ones`), never blow up the weights. Standardized,
  their sigma is 0 exactly (not float32's rounding error of their mean,
  which would set a floor of 1e-6 and kernels of 1e4), so they get the
  floor scale and `v = 0`, and their kernel rows stay about as small as
  initialized; as Bernoulli units (a constant 0 or 1) the RBM's visible
  biases absorb them.
  In both affine cases `v = (u - shift) / scale` is folded exactly into the
  layer: `kernel = W / scale[:, None]`, `bias = c - (shift / scale)
  W`, so the layer sees the raw `u` and computes `v W + c` (before the tanh
  halving above).
- The DBN recipe: above a layer with Bernoulli hidden units (sigmoid, tanh),
  the next RBM trains on hidden states sampled from the layer below, fresh
  every epoch, not on the probabilities (`RBM.fit(sample_inputs=True)`).

`visible` applies to the first pretrained layer (the data); the layers above
follow the rules above. Every check runs before a weight is touched, and on
any exception (also `KeyboardInterrupt`) the model gets its previous weights
back.

Arrays are pretrained in memory: each layer's input is computed for all the
data at once. A `tf.data.Dataset` or `PyDataset` is streamed, in memory of
the order of a batch: for each layer, the model computes the layer's input
block by block (raw inputs re-cut into blocks of at most 2,048 samples and
8 MiB, `_CHUNK`, `_BLOCK_BYTES`), once for a statistics pass (`FeatureStats`:
range, exact per-feature mean and standard deviation, so the visible-unit plan
is the one the whole array would get, up to rounding; a reservoir sample for
the RBM's monitors) and once per RBM epoch (`RBM.fit` streaming): the layers
below run again for every pass, as memory holds no layer's inputs.
A layer whose input fits in the RBM's shuffle buffer is kept from the
statistics pass and pretrained as an array, with the same result as for the
array, bit for bit.
"""

from __future__ import annotations

import functools
import inspect
import math
import struct
import traceback
import zlib
from collections.abc import Sequence

import keras
import numpy as np

from keras_weightinit import distributed, graph, transaction
from keras_weightinit.checks import (
    keras_model,
    known_keywords,
    one_of,
    optional_path,
    verbose_level,
)
from keras_weightinit.data import (
    FeatureStats,
    Stream,
    as_array,
    as_tensor,
    fit_model_input,
    is_stream,
)
from keras_weightinit.probe import Stop, forward, observe
from keras_weightinit.rbm import MONITOR_SAMPLES, RBM
from keras_weightinit.seeds import spawn_seeds
from keras_weightinit.tensorboard import EventWriter

__all__ = ["pretrain_dbn", "check_pretrain_args", "choose_visible"]

# layer activation -> RBM hidden units
UNITS_FOR_ACTIVATION = {"sigmoid": "bernoulli", "tanh": "bernoulli", "relu": "relu"}
_VISIBLE = ("auto", "bernoulli", "gaussian")
_RESERVED = ("units", "visible", "hidden")
_CHUNK = 2048  # rows per call when computing a layer's inputs
# Streaming: raw inputs per model call, at most _CHUNK samples and this many
# bytes of float32.
_BLOCK_BYTES = 8 << 20
# Default learning rates when `learning_rate` is not given: real-valued units
# need a smaller step (Hinton 2010, section 13.2). Gaussian visible units with
# noisy ReLU hidden units diverge at 0.01 on digits (both are unbounded).
DEFAULT_LEARNING_RATES = {"bernoulli": 0.1, "relu": 0.01, "gaussian": 0.001}


def check_pretrain_args(
    layers=None, visible: str = "auto", *, log_dir=None, verbose=1, **rbm_args
) -> None:
    """Validates the arguments of `pretrain_dbn` that do not need the model.

    Raises:
        ValueError: For a bad `visible`, `layers`, `log_dir`, `verbose`, an
            unknown keyword or a bad RBM argument.
    """
    optional_path("log_dir", log_dir)
    verbose_level(verbose)
    one_of("visible", visible, _VISIBLE)
    for name in _RESERVED:
        if name in rbm_args:
            raise ValueError(
                f"Argument `{name}` is set per layer by pretrain_dbn (units "
                "from the layer, hidden units from its activation, visible "
                f"from `visible`). Received: {name}={rbm_args[name]!r}"
            )
    if layers is not None and (
        isinstance(layers, str)
        or not isinstance(layers, Sequence)
        or not all(isinstance(name, str) for name in layers)
        or len(layers) == 0
    ):
        raise ValueError(
            "Argument `layers` must be None or a non-empty list of Dense layer "
            f"names. Received: layers={layers!r}"
        )
    own = ("layers", "visible", "log_dir", "verbose")
    rbm = [name for name in inspect.signature(RBM).parameters if name not in _RESERVED]
    known_keywords("pretrain_dbn (and DBNPretrain)", rbm_args, own + tuple(rbm))
    RBM(units=1, **rbm_args)


def _select_layers(model: keras.Model, layers) -> list[keras.layers.Dense]:
    """The Dense layers to pretrain, at any depth, in the model's order."""
    dense = [
        w.layer
        for w in graph.kernel_weights(model)
        if w.role == "kernel" and isinstance(w.layer, keras.layers.Dense)
    ]
    if layers is None:
        targets = dense[:-1]
        if not targets:
            raise ValueError(
                "The model has no Dense layer to pretrain: by default every "
                "Dense layer but the last (the output layer) is pretrained, "
                f"and it has {len(dense)} Dense layer(s)."
            )
    else:
        by_name = {}
        for layer in graph.layers(model):
            by_name.setdefault(layer.name, layer)
            by_name.setdefault(graph.layer_path(layer, model), layer)
        targets = []
        for name in layers:
            if name not in by_name:
                raise ValueError(
                    f"Argument `layers`: no layer named {name!r} in the model. "
                    f"Received: layers={list(layers)!r}"
                )
            if not isinstance(by_name[name], keras.layers.Dense):
                raise ValueError(
                    f"Argument `layers`: layer {name!r} is a "
                    f"{type(by_name[name]).__name__}, not a Dense layer."
                )
            targets.append(by_name[name])
        targets.sort(key=dense.index)
        if len(set(map(id, targets))) != len(targets):
            raise ValueError(
                f"Argument `layers` names a layer twice. Received: layers={layers!r}"
            )
    for layer in targets:
        act = graph.own_activation(layer)[0]
        if act not in UNITS_FOR_ACTIVATION:
            raise ValueError(
                f"Layer {layer.name!r} has activation {act!r}; pretraining "
                f"supports {tuple(UNITS_FOR_ACTIVATION)} (they map to RBM "
                "hidden units)."
            )
        if not layer.use_bias:
            raise ValueError(
                f"Layer {layer.name!r} has use_bias=False; the RBM's hidden "
                "biases need a Dense bias."
            )
    return targets


def _input_of(model: keras.Model, layer, x):
    """The first input `layer` receives when `model` runs on `x`, or None.

    The model runs in inference mode and the pass ends there: neither `layer`
    nor anything after it is computed (`probe.observe`'s `stop_before`), so
    the layer may sit at any depth, in a nested or subclassed model.
    """
    if "call" in vars(layer):  # observed by someone else: let probe share it
        seen = forward(model, x, [layer], stop_after=layer)
        return seen.inputs.get(id(layer))
    with observe([layer], stop_before=layer) as seen:
        try:
            model(x, training=False)
        except Stop as stop:
            _clear_frames(stop)
    return seen.inputs.get(id(layer))


def _clear_frames(error: BaseException) -> None:
    """Drops the locals of the frames of `error`'s tracebacks, chain included.

    The frames of a stopped pass hold its tensors in reference cycles
    (Keras re-raises a new exception with the first as its context), which
    only the cyclic garbage collector frees: streaming block after block,
    the inputs of dozens of blocks would stay alive until it runs.
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        error = error.__cause__ or error.__context__


def _layer_inputs(
    model: keras.Model, layer, data: np.ndarray, share: bool = False
) -> np.ndarray:
    """The input of `layer` for `data`, as a `(samples, features)` array.

    Computed `_CHUNK` samples at a time by `_input_of`. With `share` (blocks
    of a stream, aligned by `rechunk`), the TensorFlow backend gets `data`
    as a tensor sharing its memory instead of a copy: the same values.
    """
    chunks = []
    for i in range(0, len(data), _CHUNK):
        x = data[i : i + _CHUNK]
        if share and keras.backend.backend() == "tensorflow":
            x = as_tensor(x)
        inputs = _input_of(model, layer, x)
        if inputs is None:
            raise ValueError(
                f"pretrain_dbn: the model does not call layer {layer.name!r} "
                "on `x`, so it has no input to pretrain on."
            )
        chunks.append(np.asarray(keras.ops.convert_to_numpy(inputs), "float32"))
    # No copy beyond what the conversions need: one chunk is the result.
    inputs = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
    return inputs.reshape(-1, inputs.shape[-1])


def choose_visible(
    u: np.ndarray | FeatureStats, mode: str, below: str | None, name: str
) -> tuple[str, np.ndarray, np.ndarray, bool]:
    """The RBM's visible units for a layer's input `u` (module docstring).

    Bernoulli units on `v = (u - shift) / scale` for inputs in [0, 1]
    (`shift` 0, `scale` 1) or in [-1, 1] above a tanh layer (`shift` -1,
    `scale` 2); else Gaussian units on the standardized input, `shift` the
    means and `scale` the standard deviations, floored at a tenth of the
    median of the varying features' (1 when none varies), a feature of one
    value getting variance 0 exactly.

    Args:
        u: The layer's input `(samples, features)`, or the `FeatureStats`
            of a streamed one (its exact range, means and deviations).
        mode: `"auto"`, `"bernoulli"` or `"gaussian"` (`pretrain_dbn`'s
            `visible`).
        below: The activation of the Dense layer below, None if none.
        name: The layer's name, for messages.

    Returns:
        `(visible, shift, scale, sample)`: the unit type, the affine map's
        float32 vectors, and whether the RBM trains on sampled states of the
        layer below (`RBM.fit(sample_inputs=True)`).

    Raises:
        ValueError: For NaN or infinite inputs, or `mode="bernoulli"` with
            inputs outside [0, 1].

    Example:

    >>> visible, shift, scale, sample = choose_visible(
    ...     np.array([[0.0, 1.0], [0.5, 0.5]]), "auto", None, "dense")
    >>> visible, shift.tolist(), scale.tolist(), sample
    ('bernoulli', [0.0, 0.0], [1.0, 1.0], False)
    """
    streamed = isinstance(u, FeatureStats)
    if streamed:
        minimum, maximum, n_features = u.minimum, u.maximum, u.n_features
    else:
        minimum, maximum, n_features = u.min(axis=0), u.max(axis=0), u.shape[1]
    minimum, maximum = _extremes_across_processes(minimum, maximum)
    low, high = float(minimum.min()), float(maximum.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(
            f"The input of layer {name!r} has NaN or infinite values (the "
            "layers below overflowed)."
        )
    ones = np.ones(n_features, "float32")
    zeros = np.zeros(n_features, "float32")
    if mode != "gaussian":
        if below == "tanh" and low >= -1 and high <= 1:
            return "bernoulli", -ones, 2 * ones, True
        if low >= 0 and high <= 1 and (below != "relu" or mode == "bernoulli"):
            return "bernoulli", zeros, ones, below == "sigmoid"
        if mode == "bernoulli":
            raise ValueError(
                "Argument `visible='bernoulli'` needs inputs in [0, 1], but the "
                f"input of layer {name!r} ranges over [{low:g}, {high:g}]. "
                "Rescale the data or use visible='auto'."
            )
    mean = u.mean if streamed else u.mean(axis=0)
    std = u.std if streamed else u.std(axis=0)
    if distributed.process_count() > 1:  # of the union of the processes' inputs
        count = u.count if streamed else len(u)
        n, first, second = distributed.sum_across_processes(
            [count, mean * count, (std.astype(np.float64) ** 2 + mean**2) * count]
        )
        mean = first / n
        std = np.sqrt(np.maximum(second / n - mean**2, 0.0))
    # A feature of one value has that mean and variance 0, not float32's
    # rounding (up to 1e-4 of the mean), which would set the floor below.
    constant = minimum == maximum
    mean, std = np.where(constant, minimum, mean), np.where(constant, 0.0, std)
    # Near-constant features (dead ReLUs) would blow up `W / sigma`: floor
    # sigma at a tenth of the median of the varying features (many dead units
    # must not pull the floor down). Any scale keeps the fold exact.
    varying = std[std > 0]
    floor = max(0.1 * float(np.median(varying)), 1e-6) if varying.size else 1.0
    std = np.maximum(std, floor)
    return "gaussian", mean.astype("float32"), std.astype("float32"), False


def _extremes_across_processes(minimum: np.ndarray, maximum: np.ndarray):
    """Each feature's range over the union of the processes' inputs.

    One process: its own `(minimum, maximum)`.
    """
    if distributed.process_count() == 1:
        return minimum, maximum
    lows = np.zeros((distributed.process_count(), len(minimum)))
    highs = np.zeros((distributed.process_count(), len(maximum)))
    lows[distributed.process_index()] = minimum
    highs[distributed.process_index()] = maximum
    lows, highs = distributed.sum_across_processes([lows, highs])
    return lows.min(axis=0), highs.max(axis=0)


def _fold(rbm: RBM, shift, scale, activation: str):
    """Dense `(kernel, bias)` computing the RBM's hidden means on raw inputs."""
    kernel = rbm.kernel / scale[:, None]
    bias = rbm.hidden_bias - (shift / scale) @ rbm.kernel
    if activation == "tanh":
        kernel, bias = kernel / 2, bias / 2
    return kernel.astype("float32"), bias.astype("float32")


def _image_shape(data: np.ndarray, n_visible: int):
    shape = tuple(data.shape[1:])
    if len(shape) == 3 and shape[-1] in (1, 3) and math.prod(shape) == n_visible:
        return shape
    if len(shape) == 2 and math.prod(shape) == n_visible:
        return shape + (1,)
    side = math.isqrt(n_visible)
    if side >= 4 and side * side == n_visible:
        return (side, side, 1)
    return None


def _filter_grid(kernel: np.ndarray, shape, max_filters: int = 64) -> np.ndarray:
    """Up to 64 filters (kernel columns), each scaled to [0, 1], in a grid."""
    n = min(kernel.shape[1], max_filters)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    h, w, c = shape
    grid = np.zeros((rows * (h + 1) + 1, cols * (w + 1) + 1, c), "float32")
    for k in range(n):
        f = kernel[:, k].reshape(shape)
        f = (f - f.min()) / max(float(f.max() - f.min()), 1e-12)
        top, left = 1 + (k // cols) * (h + 1), 1 + (k % cols) * (w + 1)
        grid[top : top + h, left : left + w] = f
    return grid[None]


def pretrain_dbn(
    model: keras.Model,
    x,
    layers: Sequence[str] | None = None,
    *,
    visible: str = "auto",
    log_dir: str | None = None,
    verbose: int = 1,
    **rbm_args,
) -> dict[str, dict[str, list[float]]]:
    """Greedy layer-wise RBM pretraining (a deep belief net) of Dense layers.

    For each Dense layer `l` in order, with input `u_l` computed through the
    already-pretrained layers below: train `RBM(units=l.units)` on `v = (u_l -
    shift) / scale` and set `l.kernel = W / scale`, `l.bias = c - (shift /
    scale) W` (halved for tanh), so that `l(u_l) = E[h | v]`. Hidden units
    follow the activation (sigmoid -> Bernoulli, relu -> noisy ReLU, tanh ->
    Bernoulli via `tanh(a) = 2 sigmoid(2a) - 1`); visible units follow the data
    (see the module docstring); above a Bernoulli layer the RBM trains on
    fresh samples of its states each epoch.

    Args:
        model: A built or unbuilt Sequential or functional model with one
            input (an unbuilt one is built from `x`).
        x: Pretraining inputs: an array (pretrained in memory), or a batched
            finite `tf.data.Dataset` of `x` or `(x, y)` or a
            `keras.utils.PyDataset`, streamed in memory of the order of a
            batch (see the module docstring; an infinite dataset is refused,
            pass `.take(n)`).
        layers: Names of the Dense layers to pretrain; default every Dense
            layer but the last (the output layer).
        visible: Visible units of the first pretrained layer: `"auto"`
            (Bernoulli for inputs in [0, 1], else Gaussian on standardized
            inputs), `"bernoulli"` (inputs must be in [0, 1]) or `"gaussian"`.
        log_dir: If given (a str or `os.PathLike`), TensorBoard scalars
            `pretrain/<layer>/<metric>` and, for image-like inputs,
            `pretrain/<layer>/filters`, an image grid of the first layer's
            filters.
        verbose: As in Keras: 0 silent, 1 a progress bar per layer over the
            epochs, 2 one line per epoch, `"auto"` 1.
        **rbm_args: `RBM` arguments (`epochs`, `batch_size`, `learning_rate`,
            `momentum`, `weight_decay`, `cd_steps`, `persistent`,
            `sparsity_target`, `seed`, `shuffle_buffer` for streamed data).
            Without `learning_rate`: 0.1 for
            Bernoulli-Bernoulli RBMs, 0.01 with ReLU hidden units, 0.001 with
            Gaussian visible units.
            With a `seed`, each layer gets its own seed derived from it.

    Returns:
        `{layer name: the RBM's history}` (per-epoch lists, see `RBM.fit`).

    Raises:
        ValueError: A `model` that is not a `keras.Model`, no Dense layer to
            pretrain, a named layer not Dense or not in the model, an
            unsupported activation, NaN/inf or empty data,
            data of the wrong shape, an infinite or unbatched dataset,
            Bernoulli visible units for data outside [0, 1], or a bad RBM
            argument. The model is unchanged.

    Example:

    >>> model = keras.Sequential([keras.Input((64,)),
    ...     keras.layers.Dense(128, activation="sigmoid"),
    ...     keras.layers.Dense(10, activation="softmax")])
    >>> histories = pretrain_dbn(model, x_train, epochs=10, verbose=0)
    >>> ds = tf.data.Dataset.from_tensor_slices(x_train).batch(256)
    >>> histories = pretrain_dbn(model, ds, epochs=10, verbose=0)  # streamed

    Reference:
        Hinton, Osindero & Teh, "A fast learning algorithm for deep belief
        nets", Neural Computation 2006. Hinton, "A practical guide to training
        restricted Boltzmann machines", UTML TR 2010-003. Nair & Hinton,
        "Rectified linear units improve restricted Boltzmann machines", ICML
        2010.
    """
    keras_model(model)
    check_pretrain_args(layers, visible, log_dir=log_dir, verbose=verbose, **rbm_args)
    verbose = verbose_level(verbose)
    with transaction.atomic("pretrain_dbn") as keep:
        return _pretrain(model, x, layers, visible, (verbose, log_dir), rbm_args, keep)


class _LayerInputs:
    """The input of each pretrained layer, computed from `x` through the model.

    `x` as an array gives each layer's input as an array; a dataset gives
    a `Stream` of it (the layers below run again for every pass) with its
    statistics from one pass (`FeatureStats`: range, exact means and
    standard deviations, a reservoir sample for the RBM's monitors), or the
    array itself when it fits the RBM's shuffle buffer.
    """

    def __init__(self, model: keras.Model, x, settings: RBM, seeds: list):
        self.model, self.settings, self.seeds = model, settings, seeds
        if is_stream(x):
            self.source = Stream(x, "x")
            self.data = self.source.first()  # the samples' shape
        else:
            self.source, self.data = None, as_array(x, "x")

    def __call__(self, k: int, layer) -> tuple:
        """`(u, stream, stats)`: the input of the `k`-th pretrained `layer`.

        As an array `u` (`stats` None for an array `x`), or as a `stream`
        (`u` None) with its `stats`.
        """
        if self.source is None:
            return _layer_inputs(self.model, layer, self.data), None, None
        features = math.prod(self.data.shape[1:])
        rows = max(1, min(_CHUNK, _BLOCK_BYTES // (4 * features)))
        inputs = functools.partial(_layer_inputs, self.model, layer, share=True)
        stream = self.source.map(inputs, rows)
        stats = FeatureStats(
            sample_size=max(MONITOR_SAMPLES, self.settings.batch_size),
            keep=self.settings.buffer_rows,
            seed=None if self.seeds[k] is None else [self.seeds[k], 2],
        )
        for block in stream.blocks():
            stats.update(block)
        if stats.count == 0:
            raise ValueError("Argument `x` holds no samples.")
        u = stats.rows  # all of it, when it fits in the shuffle buffer
        return u, (None if u is not None else stream), stats


def _below(model: keras.Model, layer) -> str | None:
    """The activation of the Dense layer below `layer`, None if none."""
    dense = graph.layer_below(layer, model, keras.layers.Dense)
    return None if dense is None else graph.own_activation(dense)[0]


def _pretrain(model, x, layers, visible, output, rbm_args, keep) -> dict:
    """`pretrain_dbn` after its arguments are checked, in its transaction.

    `output` is `(verbose, log_dir)`; `keep` the transaction's `Keep`,
    which records each weight before it is set.
    """
    verbose, log_dir = output
    settings = RBM(units=1, **{k: v for k, v in rbm_args.items() if k != "seed"})
    seed = distributed.shared_seed(rbm_args.pop("seed", None))
    inputs = _LayerInputs(model, x, settings, [])
    fit_model_input(model, inputs.data, "pretrain_dbn")
    distributed.check_same_model(model)
    targets = _select_layers(model, layers)
    inputs.seeds = spawn_seeds(seed, len(targets))
    if not distributed.is_writer():  # process 0 prints and writes
        verbose, log_dir = 0, None
    first = inputs(0, targets[0])  # checked before any weight changes
    plans = [
        choose_visible(
            first[0] if first[0] is not None else first[2],
            visible,
            _below(model, targets[0]),
            targets[0].name,
        )
    ]
    writer = None
    result = {}
    try:
        if log_dir:
            writer = EventWriter(log_dir)
        for k, layer in enumerate(targets):
            u, stream, stats = first if k == 0 else inputs(k, layer)
            first = None  # the loop holds one layer's input at a time
            if k:
                data = u if u is not None else stats
                plans.append(
                    choose_visible(data, "auto", _below(model, layer), layer.name)
                )
            fit = _LayerFit(layer, plans[k], inputs.seeds[k], rbm_args)
            result[layer.name] = fit.train(u, stream, stats, verbose, log_dir)
            n_features = u.shape[1] if u is not None else stats.n_features
            del u, stream, stats
            fit.assign(keep)
            if writer is not None and k == 0:
                _log_filters(writer, layer, fit.rbm, inputs.data, n_features)
    finally:
        if writer is not None:
            writer.close()
    return result


class _LayerFit:
    """One layer's RBM: its settings from the plan, training, and the fold."""

    def __init__(self, layer, plan: tuple, seed, rbm_args: dict):
        self.layer, self.plan = layer, plan
        self.activation = graph.own_activation(layer)[0]
        visible = plan[0]
        hidden = UNITS_FOR_ACTIVATION[self.activation]
        args = dict(rbm_args)
        if "learning_rate" not in args:
            kind = "gaussian" if visible == "gaussian" else hidden
            args["learning_rate"] = DEFAULT_LEARNING_RATES[kind]
        self.rbm = RBM(
            units=layer.units, visible=visible, hidden=hidden, seed=seed, **args
        )

    def train(self, u, stream, stats, verbose: int, log_dir) -> dict:
        """The RBM's history, trained on the standardized input."""
        _, shift, scale, sample = self.plan
        if u is not None:
            v = _standardize(shift, scale, u)
        else:
            v = stream.map(functools.partial(_standardize, shift, scale))
            v.stats = stats.affine(shift, scale)
        return self.rbm.fit(
            v,
            verbose=verbose,
            log_dir=log_dir,
            sample_inputs=sample,
            name=f"pretrain/{self.layer.name}",
        )

    def assign(self, keep) -> None:
        """Sets the layer's kernel and bias to the folded RBM, kept first."""
        _, shift, scale, _ = self.plan
        kernel, bias = _fold(self.rbm, shift, scale, self.activation)
        for variable, value in ((self.layer.kernel, kernel), (self.layer.bias, bias)):
            keep.assign(variable, distributed.draw_into(variable, lambda v=value: v))


def _log_filters(writer, layer, rbm: RBM, data: np.ndarray, n_features: int):
    """The first layer's filters as a TensorBoard image, for image-like inputs."""
    shape = _image_shape(data, n_features)
    if shape is None:
        return
    grid = _filter_grid(rbm.kernel, shape)[0]
    writer.write(0, _image_summary(f"pretrain/{layer.name}/filters", grid))


def _image_summary(tag: str, image: np.ndarray) -> bytes:
    """A serialized `Summary` of one image `(height, width, 1 or 3)` in [0, 1]."""
    from tensorboard.compat.proto import summary_pb2

    height, width, channels = image.shape
    pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    value = summary_pb2.Summary.Value(
        tag=tag,
        image=summary_pb2.Summary.Image(
            height=height,
            width=width,
            colorspace=channels,
            encoded_image_string=_png(pixels),
        ),
    )
    return summary_pb2.Summary(value=[value]).SerializeToString()


def _png(pixels: np.ndarray) -> bytes:
    """The PNG file of 8-bit `pixels` `(height, width, 1 or 3)`, unfiltered."""
    height, width, channels = pixels.shape
    rows = np.zeros((height, 1 + width * channels), np.uint8)  # filter byte 0
    rows[:, 1:] = pixels.reshape(height, -1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    color = 0 if channels == 1 else 2  # grayscale or RGB
    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes()))
        + chunk(b"IEND", b"")
    )


def _standardize(shift: np.ndarray, scale: np.ndarray, u: np.ndarray) -> np.ndarray:
    """`(u - shift) / scale`, the RBM's visible units for inputs `u`.

    The identity (Bernoulli units on inputs in [0, 1]) returns `u` itself,
    and the division is in place: the same values, without the copies.
    """
    if not shift.any() and (scale == 1).all():
        return u
    v = u - shift
    v /= scale
    return v
