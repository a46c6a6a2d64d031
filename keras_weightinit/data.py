"""Turning the data users pass into batches: nested inputs, `tf.data`, `PyDataset`.

Every function that takes training data goes through here, so they all accept
what `model.fit` accepts and reject bad data with the same messages. A batch
of inputs is a nested structure (`keras.tree`): one array, a list or tuple
of arrays, or a dict of them (`{"token_ids": ..., "padding_mask": ...}`),
each leaf checked on its own and named in errors (`x["token_ids"]`).
`as_array` is for the one tool that needs a single tensor (an RBM's visible
layer) and says so.

A `tf.data.Dataset` is recognized without importing TensorFlow (if
TensorFlow was never imported, no object can be one), so the JAX and
PyTorch backends never load it through this module.

For data too large to hold, `Stream` reads a `tf.data.Dataset` or a
`keras.utils.PyDataset` one batch at a time, pass after pass, and
`FeatureStats`, `rechunk` and `shuffle_blocks` compute what training needs
from such a stream in memory of the order of a batch (see `RBM.fit` and
`pretrain_dbn`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import keras
import numpy as np

__all__ = [
    "FeatureStats",
    "Stream",
    "aligned_empty",
    "as_array",
    "as_batch",
    "as_tensor",
    "check_finite",
    "describe",
    "first_batch",
    "fit_model_input",
    "input_specs",
    "is_dataset",
    "is_stream",
    "leaves",
    "num_samples",
    "rechunk",
    "shuffle_blocks",
    "take",
]

_ACCEPTED = (
    "an array, a list, tuple or dict of arrays (nested as the model's "
    "inputs), a batched tf.data.Dataset or a keras.utils.PyDataset, as "
    "`fit` takes them"
)


def is_dataset(data) -> bool:
    """Whether `data` is a `tf.data.Dataset`, without importing TensorFlow.

    Example:

    >>> is_dataset(np.zeros(3))
    False
    """
    tf = sys.modules.get("tensorflow")
    data_module = getattr(tf, "data", None)
    return data_module is not None and isinstance(data, data_module.Dataset)


def _split(element) -> tuple[Any, Any]:
    """`x` or `(x, y)` or `(x, y, sample_weight)` -> `(x, y or None)`."""
    if isinstance(element, (tuple, list)):
        if len(element) == 0:
            raise ValueError("Received an empty tuple where data was expected.")
        return element[0], (element[1] if len(element) > 1 else None)
    return element, None


def check_finite(x: np.ndarray, name: str = "x") -> np.ndarray:
    """Raises `ValueError` if `x` has a NaN or an infinite value."""
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(
            f"Argument `{name}` contains {bad} NaN or infinite values; "
            "clean the data first."
        )
    return x


def _leaf_name(name: str, path: tuple) -> str:
    return name + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in path)


def leaves(x, name: str = "x") -> list[tuple[str, Any]]:
    """`(name, leaf)` for each leaf of a nested batch, named as in errors.

    Example:

    >>> [n for n, _ in leaves({"token_ids": 1, "mask": [2, 3]})]
    ["x['mask'][0]", "x['mask'][1]", "x['token_ids']"]
    """
    if not keras.tree.is_nested(x):
        return [(name, x)]
    return [(_leaf_name(name, p), leaf) for p, leaf in keras.tree.flatten_with_path(x)]


def _to_numpy(leaf, name: str) -> np.ndarray:
    """One leaf as a NumPy array of numbers with a sample axis, checked."""
    if leaf is None or isinstance(leaf, (str, bytes)) or callable(leaf):
        raise ValueError(
            f"Argument `{name}` must be {_ACCEPTED}. Received: {name} of type "
            f"{type(leaf).__name__}"
        )
    try:
        array = np.asarray(keras.ops.convert_to_numpy(leaf))
    except Exception as error:
        raise ValueError(
            f"Argument `{name}` must be {_ACCEPTED}. Received: {name} of type "
            f"{type(leaf).__name__}"
        ) from error
    if not np.issubdtype(array.dtype, np.number) and array.dtype != bool:
        raise ValueError(
            f"Argument `{name}` must hold numbers. Received dtype={array.dtype} "
            f"({name} of type {type(leaf).__name__}); accepted: {_ACCEPTED}"
        )
    if array.ndim == 0 or len(array) == 0:
        raise ValueError(f"Argument `{name}` holds no samples.")
    return check_finite(array, name)


def num_samples(x, name: str = "x") -> int:
    """The number of samples of a nested batch; every leaf must have it.

    Example:

    >>> num_samples({"a": np.zeros((4, 2)), "b": np.zeros(4)})
    4
    """
    counts = {n: len(leaf) for n, leaf in leaves(x, name)}
    if len(set(counts.values())) > 1:
        raise ValueError(
            f"Argument `{name}` must hold the same number of samples in every "
            f"input. Received: {counts}"
        )
    return next(iter(counts.values()))


def describe(x, name: str = "x") -> str:
    """The shapes of a nested batch, for messages: `x['ids'] of shape (4, 8)`."""
    return ", ".join(f"{n} of shape {np.shape(leaf)}" for n, leaf in leaves(x, name))


def take(x, count: int):
    """The first `count` samples of every leaf of a nested batch."""
    return keras.tree.map_structure(lambda leaf: leaf[:count], x)


def _batches(data, name: str, finite: bool):
    if is_dataset(data):
        _check_dataset(data, name, finite=finite)
        return iter(data)
    return _py_batches(data, name, finite=finite)


def as_batch(data, name: str = "x", max_samples: int | None = None):
    """Collects the inputs `x` of `data` into a nested structure of arrays.

    Args:
        data: What `fit` takes as `x`: an array or tensor, a list, tuple or
            dict of them (nested); or a batched `tf.data.Dataset` or a
            `keras.utils.PyDataset` whose batches are `x`, `(x, y)` or
            `(x, y, sample_weight)`, `x` nested as above.
        name: The argument's name, used in error messages.
        max_samples: Stop once this many samples are collected (the result is
            cut to that many).

    Returns:
        The samples in `x`'s structure, NumPy arrays whose first axis is the
        sample axis, dtypes kept (token ids stay integers).

    Raises:
        ValueError: For an unsupported type (saying what is accepted), a
            leaf without numbers or samples, leaves of different lengths, or
            NaN/inf values, naming the leaf (`x["token_ids"]`).

    Example:

    >>> batch = as_batch({"ids": np.ones((5, 3), "int32"), "mask": np.ones((5, 3))})
    >>> {k: (v.shape, str(v.dtype)) for k, v in batch.items()}
    {'ids': ((5, 3), 'int32'), 'mask': ((5, 3), 'float64')}
    """
    if is_dataset(data) or isinstance(data, keras.utils.PyDataset):
        chunks, count = [], 0
        for element in _batches(data, name, finite=max_samples is None):
            x = keras.tree.map_structure(np.asarray, _split(element)[0])
            chunks.append(x)
            count += len(keras.tree.flatten(x)[0])
            if max_samples is not None and count >= max_samples:
                break
        if not chunks:
            raise ValueError(f"Argument `{name}` holds no samples.")
        data = keras.tree.map_structure(lambda *c: np.concatenate(c), *chunks)
    elif isinstance(data, Iterator) or data is None:
        raise ValueError(
            f"Argument `{name}` must be {_ACCEPTED}. Received: {name} of type "
            f"{type(data).__name__}"
        )
    if keras.tree.is_nested(data):
        paths = keras.tree.flatten_with_path(data)
        arrays = [_to_numpy(leaf, _leaf_name(name, p)) for p, leaf in paths]
        data = keras.tree.pack_sequence_as(data, arrays)
    else:
        data = _to_numpy(data, name)
    num_samples(data, name)
    return data if max_samples is None else take(data, max_samples)


def as_array(
    data, name: str = "x", max_samples: int | None = None, dtype="float32"
) -> np.ndarray:
    """The inputs of `data` as one NumPy array, for tools that need one tensor.

    As `as_batch`, but `x` must be a single array: an RBM's visible layer
    (`RBM.fit`, `pretrain_dbn`) is one tensor.

    Args:
        data: An array or tensor, or a batched `tf.data.Dataset` or
            `keras.utils.PyDataset` of such `x`.
        name: The argument's name, used in error messages.
        max_samples: Stop once this many samples are collected.
        dtype: The dtype of the result; None keeps the data's.

    Raises:
        ValueError: As `as_batch`, and for nested inputs (a dict or list of
            arrays), naming them.

    Example:

    >>> ds = tf.data.Dataset.from_tensor_slices((np.ones((10, 3)), np.ones(10)))
    >>> as_array(ds.batch(4)).shape
    (10, 3)
    """
    batch = as_batch(data, name, max_samples)
    if keras.tree.is_nested(batch):
        raise ValueError(
            f"Argument `{name}` must be one array here: an RBM's visible layer "
            f"is one tensor. Received: {name} with inputs "
            f"{[n for n, _ in leaves(batch, name)]}"
        )
    if dtype is not None:
        batch = batch.astype(dtype, copy=False)
    return batch


def _py_count(dataset: keras.utils.PyDataset, name: str, finite: bool):
    """`dataset.num_batches`, checked (None, endless, only if not `finite`)."""
    try:
        count = dataset.num_batches
    except NotImplementedError:
        raise ValueError(
            f"Argument `{name}` is a PyDataset without `num_batches` or "
            "`__len__`; define one of them."
        ) from None
    if count is None and finite:
        raise ValueError(
            f"Argument `{name}` is an infinite PyDataset (num_batches=None); "
            "pass a finite one."
        )
    return count


def _py_batches(dataset: keras.utils.PyDataset, name: str, finite: bool):
    """The batches of a `PyDataset`, `num_batches` of them (None: endless)."""
    count = _py_count(dataset, name, finite)
    i = 0
    while count is None or i < count:
        yield dataset[i]
        i += 1


def _check_dataset(dataset, name: str, finite: bool) -> None:
    """Rejects infinite datasets (when all of it is read) and unbatched ones."""
    import tensorflow as tf

    if finite and dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            f"Argument `{name}` is an infinite dataset (`.repeat()`); pass a "
            "finite one."
        )
    x_spec = _split(dataset.element_spec)[0]
    least = 1 if keras.tree.is_nested(x_spec) else 2  # one x: (batch, features)
    for spec in keras.tree.flatten(x_spec):
        rank = getattr(getattr(spec, "shape", None), "rank", None)
        if rank is not None and rank < least:
            raise ValueError(
                f"Argument `{name}` must be a batched dataset, as `fit` takes "
                f"it: call `.batch(n)` on it. Received: elements of shape "
                f"{spec.shape}"
            )


def first_batch(data, name: str = "data") -> tuple[Any, np.ndarray | None]:
    """Returns the probe batch `(x, y)` of `data`, `x` nested as the model's inputs.

    Args:
        data: A tuple `(x, y)` or `(x,)`, an array `x`, or a batched
            `tf.data.Dataset` or `keras.utils.PyDataset` of `(x, y)` / `x`,
            whose first batch is taken; `x` may be nested (a dict or list of
            arrays).
        name: The argument's name, used in error messages.

    Returns:
        `(x, y)`, `x` as `as_batch` gives it, `y` None when the data holds
        no targets.

    Raises:
        ValueError: For no samples, NaN/inf inputs, `x` and `y` of
            different lengths, or sample weights (the probe's loss is
            unweighted, so they are refused, not dropped).

    Example:

    >>> x, y = first_batch(({"a": np.zeros((4, 2))}, np.zeros(4)))
    >>> x["a"].shape, y.shape
    ((4, 2), (4,))
    """
    if is_dataset(data) or isinstance(data, keras.utils.PyDataset):
        data = next(_batches(data, name, finite=False), None)
        if data is None:
            raise ValueError(f"Argument `{name}` is an empty dataset.")
    if isinstance(data, (tuple, list)) and len(data) > 2:
        raise ValueError(
            f"Argument `{name}` holds sample weights, which the probe batch "
            "does not use: pass `(x, y)`. Received: a tuple of "
            f"{len(data)} elements"
        )
    x, y = _split(data)
    x = as_batch(x, f"{name}[0]" if isinstance(data, (tuple, list)) else name)
    if y is not None:
        y = check_finite(np.asarray(keras.ops.convert_to_numpy(y)), f"{name}[1]")
        if y.ndim == 0 or len(y) != num_samples(x):
            raise ValueError(
                f"Argument `{name}` must hold as many targets as samples. "
                f"Received: {num_samples(x)} samples and targets of shape "
                f"{y.shape}"
            )
    return x, y


def input_specs(model: keras.Model):
    """The model's input specs in the structure its call takes, or None.

    None for a model without them (a subclassed model).
    """
    try:
        return model.input
    except (AttributeError, ValueError):
        pass
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    if not inputs:
        return None
    return inputs[0] if len(inputs) == 1 else list(inputs)


def _paired(specs, x, name: str) -> list[tuple[str, Any, np.ndarray]]:
    """`(leaf name, spec, leaf)` of the model's inputs and the batch `x`."""
    spec_leaves = leaves(specs, name)
    if isinstance(x, dict) and not isinstance(specs, dict):
        by_name = {getattr(s, "name", None): s for _, s in spec_leaves}
        x_names = set(x)
        if x_names - set(by_name) or set(by_name) - x_names:
            raise ValueError(
                f"Argument `{name}` must have the model's input names as keys: "
                f"{sorted(k for k in by_name if k)}. Received: keys {sorted(x)}"
            )
        return [(f"{name}[{k!r}]", by_name[k], v) for k, v in x.items()]
    if isinstance(specs, dict) and isinstance(x, dict) and set(specs) != set(x):
        raise ValueError(
            f"Argument `{name}` must have the keys of the model's inputs, "
            f"{sorted(specs)}. Received: keys {sorted(x)}"
        )
    x_leaves = leaves(x, name)
    if len(spec_leaves) != len(x_leaves):
        raise ValueError(
            f"Argument `{name}` must hold the model's {len(spec_leaves)} inputs "
            f"({[n for n, _ in spec_leaves]}). Received: {len(x_leaves)} arrays"
        )
    if isinstance(specs, dict):
        return [(f"{name}[{k!r}]", specs[k], x[k]) for k in specs]
    return [
        (n, s, leaf) for (n, s), (_, leaf) in zip(spec_leaves, x_leaves, strict=True)
    ]


def fit_model_input(model: keras.Model, x, caller: str, name: str = "x") -> None:
    """Builds an unbuilt model for `x` and checks that `x` fits its inputs.

    A model with a layer graph (Sequential, functional) is checked leaf by
    leaf against its inputs' structure and shapes (a dict by key or input
    name); a subclassed model, which has none, is called on the first
    sample.

    Args:
        model: A Keras model.
        x: The samples, nested as the model's inputs (see `as_batch`).
        caller: The function's name, used in error messages.
        name: The argument's name, used in error messages.

    Raises:
        ValueError: If the model cannot be built or called on `x`, or a leaf
            of `x` is missing, extra or of the wrong shape, naming it.

    Example:

    >>> model = keras.Sequential([keras.layers.Dense(4)])
    >>> fit_model_input(model, np.zeros((8, 3)), "lsuv")
    >>> model.built
    True
    """
    if not model.built and isinstance(model, keras.Sequential):
        if keras.tree.is_nested(x):
            raise ValueError(
                f"Argument `{name}` must be one array for the unbuilt Sequential "
                f"model {model.name!r}. Received: {name} with inputs "
                f"{[n for n, _ in leaves(x, name)]}"
            )
        try:
            model.build((None, *x.shape[1:]))
        except Exception as error:
            raise ValueError(
                f"Argument `{name}` does not fit model {model.name!r}: building it "
                f"for inputs of shape {(None, *x.shape[1:])} failed: {error}"
            ) from error
    specs = input_specs(model)
    if specs is None:
        try:
            model(take(x, 1), training=False)
        except Exception as error:
            raise ValueError(
                f"Argument `{name}` does not fit model {model.name!r}: calling it "
                f"on its first sample failed: {error}"
            ) from error
        return
    for leaf_name, spec, leaf in _paired(specs, x, name):
        expected = tuple(spec.shape)
        got = np.shape(leaf)
        if len(expected) != len(got) or any(
            want is not None and want != have
            for want, have in zip(expected[1:], got[1:], strict=True)
        ):
            raise ValueError(
                f"Argument `{leaf_name}` does not fit model {model.name!r}, which "
                f"takes inputs of shape {expected}. Received: {leaf_name} with "
                f"shape {got}"
            )


# --------------------------------------------------------------------------
# streaming: datasets read one batch at a time


def is_stream(data) -> bool:
    """Whether `data` is read batch by batch (`tf.data`, `PyDataset`, `Stream`).

    Example:

    >>> is_stream(tf.data.Dataset.range(3).batch(2)), is_stream(np.zeros(3))
    (True, False)
    """
    return is_dataset(data) or isinstance(data, (keras.utils.PyDataset, Stream))


def _batch_array(batch, name: str) -> np.ndarray:
    """The inputs `x` of one batch as a float32 array, checked."""
    x = _split(batch)[0]
    try:  # tf, jax and torch CPU tensors all convert without a backend op
        array = np.asarray(x)
    except Exception:
        array = np.asarray(keras.ops.convert_to_numpy(x))
    if not np.issubdtype(array.dtype, np.number) and array.dtype != bool:
        raise ValueError(
            f"Argument `{name}` must hold numbers. Received dtype={array.dtype}"
        )
    if array.ndim == 0:
        raise ValueError(
            f"Argument `{name}` must be a batched dataset, as `fit` takes it. "
            f"Received: a batch of shape {array.shape}"
        )
    array = array.astype("float32", copy=False)
    # A finite sum proves every value finite, in one pass without a mask.
    if not np.isfinite(np.sum(array, dtype=np.float64)):
        check_finite(array, name)
    return array


def _read_options():
    """How a `Stream` reads a `tf.data.Dataset`: without tf.data's autotuner.

    The autotuner's background thread competes with the training it feeds
    for the cores (streamed `RBM.fit`: 0.64x the array's samples/s with it,
    0.91x without, on 2 cores); `AUTOTUNE` parallelism still gets the cores.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options


class Stream:
    """The inputs `x` of a dataset, read one batch at a time, pass after pass.

    Each iteration (`batches`, `blocks`) is one pass over the data; nothing is
    kept between passes, so memory stays of the order of a batch whatever the
    dataset's size. Every batch is checked as it is read (numbers, no NaN or
    infinite value). A `PyDataset`'s `on_epoch_end` is called after each full
    pass, as `fit` does. `map` adds a function applied block by block (the
    layers below a pretrained layer, a standardization).

    A dataset must end: an infinite `tf.data.Dataset` (cardinality
    `INFINITE`, from `.repeat()`) or a `PyDataset` with `num_batches=None` is
    refused (pass `dataset.take(n)`); one of unknown cardinality (from a
    generator) is read until it ends, once per pass.

    Args:
        data: A batched `tf.data.Dataset` or a `keras.utils.PyDataset` whose
            batches are `x`, `(x, y)` or `(x, y, sample_weight)`.
        name: The argument's name, used in error messages.

    Attributes:
        stats: `FeatureStats` of the stream's blocks, when a caller computed
            them already (`pretrain_dbn` hands them to `RBM.fit`), else None.

    Raises:
        ValueError: For another type, an infinite or unbatched dataset, or a
            `PyDataset` without a length.

    Example:

    >>> ds = tf.data.Dataset.from_tensor_slices(np.ones((10, 3))).batch(4)
    >>> [len(block) for block in Stream(ds).blocks(6)]
    [6, 4]
    """

    def __init__(self, data, name: str = "x"):
        if isinstance(data, Stream):
            self.data, self.name = data.data, data.name
            self._maps = list(data._maps)
        else:
            if is_dataset(data):
                _check_dataset(data, name, finite=True)
            elif isinstance(data, keras.utils.PyDataset):
                _py_count(data, name, finite=True)
            else:
                raise ValueError(
                    f"Argument `{name}` must be a tf.data.Dataset or a "
                    f"keras.utils.PyDataset to be streamed. Received: {name} of "
                    f"type {type(data).__name__}"
                )
            self.data, self.name = data, name
            self._maps: list[tuple[Callable, int | None]] = []
        self.stats: FeatureStats | None = None

    def map(self, function: Callable[[np.ndarray], np.ndarray], rows=None) -> Stream:
        """A new stream of `function(block)`, on blocks of `rows` rows if given.

        `rows` re-cuts the blocks before `function` sees them (the last of a
        pass shorter), whatever the dataset's batch size.
        """
        stream = Stream(self)
        stream._maps.append((function, rows))
        return stream

    def batches(self) -> Iterator[np.ndarray]:
        """One pass over the raw inputs `x`, as checked float32 arrays."""
        if is_dataset(self.data):
            for batch in self.data.with_options(_read_options()):
                yield _batch_array(batch, self.name)
            return
        count = _py_count(self.data, self.name, finite=True)
        for i in range(count):
            yield _batch_array(self.data[i], self.name)
        self.data.on_epoch_end()

    def blocks(self, rows: int | None = None) -> Iterator[np.ndarray]:
        """One pass over the mapped data, re-cut into `rows` rows if given."""
        blocks: Iterable[np.ndarray] = self.batches()
        for function, map_rows in self._maps:
            if map_rows:
                blocks = rechunk(blocks, map_rows)
            blocks = map(function, blocks)
        if rows:
            blocks = rechunk(blocks, rows)
        return (block for block in blocks if len(block))

    def first(self) -> np.ndarray:
        """The first non-empty raw batch (to build a model, read shapes)."""
        for batch in self.batches():
            if len(batch):
                return batch
        raise ValueError(f"Argument `{self.name}` holds no samples.")


def rechunk(blocks: Iterable[np.ndarray], rows: int) -> Iterator[np.ndarray]:
    """Arrays of exactly `rows` samples (the last shorter) from `blocks`.

    The samples keep their order; only where blocks are cut changes, so what
    follows does not depend on the dataset's batch size. A block already of
    `rows` samples passes through uncopied; joined ones are aligned for
    `as_tensor`, and no longer referenced here once yielded.

    Example:

    >>> [len(b) for b in rechunk([np.zeros((3, 2)), np.zeros((4, 2))], 5)]
    [5, 2]
    """
    pending: list[np.ndarray] = []
    count = 0
    for block in blocks:
        while len(block):
            if not pending and len(block) >= rows:
                yield block[:rows]
                block = block[rows:]
                continue
            piece = block[: rows - count]
            pending.append(piece)
            count += len(piece)
            block = block[len(piece) :]
            if count == rows:
                count = 0
                yield _joined(pending)
    if pending:
        yield _joined(pending)


def _joined(pieces: list[np.ndarray]) -> np.ndarray:
    """The pieces concatenated into an aligned array; `pieces` is emptied.

    Emptied, so that the generator yielding the result holds neither it nor
    the pieces while its consumer works.
    """
    shape = (sum(len(p) for p in pieces), *pieces[0].shape[1:])
    out = aligned_empty(shape, np.result_type(*pieces))
    np.concatenate(pieces, out=out)
    pieces.clear()
    return out


ALIGN = 64  # bytes: TensorFlow's alignment for CPU tensors (EIGEN_MAX_ALIGN_BYTES)


def aligned_empty(shape: tuple, dtype="float32") -> np.ndarray:
    """An uninitialized C-contiguous array whose data start on `ALIGN` bytes.

    Such an array can become a TensorFlow tensor without a copy
    (`as_tensor`).

    Example:

    >>> aligned_empty((4, 3)).ctypes.data % ALIGN
    0
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(size + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start : start + size].view(dtype).reshape(shape)


def as_tensor(array: np.ndarray):
    """`array` as a TensorFlow tensor, sharing its memory when possible.

    A C-contiguous array aligned on `ALIGN` bytes is wrapped through DLPack
    (the tensor keeps it alive; do not write to it afterwards); anything
    else is copied (`tf.constant`).

    Example:

    >>> block = aligned_empty((2, 3))
    >>> block[:] = 1.0
    >>> as_tensor(block).shape
    TensorShape([2, 3])
    """
    import tensorflow as tf

    if (
        array.flags.c_contiguous
        and array.ctypes.data % ALIGN == 0
        and array.dtype in (np.float32, np.float64, np.int32, np.int64)
    ):
        return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
    return tf.constant(array)


def shuffle_blocks(
    blocks: Iterable[np.ndarray],
    buffer: int,
    rng: np.random.Generator,
    size: int,
) -> Iterator[np.ndarray]:
    """Samples shuffled through a buffer of `buffer`, in blocks of `size`.

    The buffer fills with the first `buffer` samples; then, each time it is
    full and samples keep coming, `size` of its samples drawn uniformly
    without replacement leave as the next block, and the next `size` samples
    take their places; at the end the rest leave in a random order. Like
    `tf.data.Dataset.shuffle` (one sample at a time there): a sample leaves
    at most `buffer + size` samples earlier than it came in, and later with
    a geometrically falling probability; `buffer >= len(data)` is a uniform
    shuffle; `buffer=0` keeps the order. The blocks
    hold exactly `size` samples but the last, and are aligned for
    `as_tensor` when shuffled. Memory: the buffer and a block (samples are
    copied straight from the incoming arrays into it).

    Args:
        blocks: Arrays, the first axis the samples (any sizes).
        buffer: Number of samples held (0, or at least `size`: a smaller one
            is raised to `size`).
        rng: The randomness. The draws are made per outgoing block, so the
            result depends only on `rng` and on the samples in order, not on
            how they are cut into incoming arrays.
        size: Samples per outgoing block.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> blocks = [np.arange(5.0)[:, None] + i for i in (0, 5)]
    >>> out = list(shuffle_blocks(blocks, 4, rng, 3))
    >>> [len(b) for b in out], sorted(np.concatenate(out)[:, 0].tolist())
    ([3, 3, 3, 1], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    """
    if buffer <= 0:
        yield from rechunk(blocks, size)
        return
    buffer = max(buffer, size)
    store = None
    filled = 0  # samples of the first fill
    free, used = np.zeros(0, np.intp), 0  # slots emptied by the last block out
    for block in blocks:
        if store is None:
            store = np.empty((buffer, *block.shape[1:]), block.dtype)
        while len(block):
            if filled < buffer:
                take = min(buffer - filled, len(block))
                store[filled : filled + take] = block[:take]
                filled += take
            else:
                if used == len(free):
                    free, used = rng.choice(buffer, size, replace=False), 0
                    out = aligned_empty((size, *store.shape[1:]), store.dtype)
                    yield np.take(store, free, axis=0, out=out)
                take = min(len(free) - used, len(block))
                store[free[used : used + take]] = block[:take]
                used += take
            block = block[take:]
    if store is None:
        return
    held = np.ones(filled, bool)
    held[free[used:]] = False  # emptied, never refilled
    order = rng.permutation(np.flatnonzero(held))
    for start in range(0, len(order), size):
        rows = order[start : start + size]
        out = aligned_empty((len(rows), *store.shape[1:]), store.dtype)
        yield np.take(store, rows, axis=0, out=out)


class FeatureStats:
    """Per-feature statistics of 2-D blocks of samples, in one pass.

    With `n` samples seen and `x_i` their rows: the count, the mean and
    variance of each feature (`mean = sum x_i / n`, `var = sum (x_i -
    mean)^2 / n`, merged block by block with Chan, Golub & LeVeque's
    update, `M2 = M2_a + M2_b + delta^2 n_a n_b / n`: float32 within a block,
    as NumPy's own float32 mean and std along an axis are, float64 across
    blocks; as accurate as over the whole array), each feature's minimum and
    maximum, and a uniform random sample of `sample_size` rows without
    replacement (each row gets a uniform random key, the sample is the rows
    of the smallest keys, in key order: a reservoir whose result does not
    depend on how the rows are cut into blocks). While no more than `keep`
    rows were seen, all rows are kept too (`rows`). Memory:
    `O(features + (sample_size + keep) * features)`.

    Args:
        sample_size: Rows in `sample`.
        keep: Keep all rows while there are at most this many: an int, or a
            function of the number of features.
        seed: Seed of the sample's keys (anything `np.random.default_rng`
            takes).
        variance: Also compute the variances (else `var` and `std` are 0).

    Example:

    >>> stats = FeatureStats(sample_size=2, seed=0)
    >>> for block in (np.ones((3, 2)), np.zeros((1, 2))):
    ...     stats.update(block)
    >>> stats.count, stats.mean.tolist(), stats.sample.shape
    (4, [0.75, 0.75], (2, 2))

    Reference:
        Chan, Golub & LeVeque, "Algorithms for computing the sample variance:
        analysis and recommendations", The American Statistician 1983.
    """

    def __init__(
        self,
        sample_size: int = 0,
        keep: int | Callable[[int], int] = 0,
        seed=None,
        variance: bool = True,
    ):
        self.sample_size = sample_size
        self._variance = variance
        self._keep = keep
        self._rng = np.random.default_rng(seed)
        self.count = 0
        self.n_features: int | None = None
        self.mean = self._m2 = self.minimum = self.maximum = None
        self._rows = self._keys = None  # the sample, in no order, and its keys
        self._kept: list[np.ndarray] | None = []

    def update(self, block: np.ndarray) -> None:
        """Adds the rows of `block`, shape `(m, features)`."""
        m = len(block)
        if m == 0:
            return
        if self.n_features is None:
            self.n_features = block.shape[1]
            if callable(self._keep):
                self._keep = self._keep(self.n_features)
            self.mean = np.zeros(self.n_features)
            self._m2 = np.zeros(self.n_features)
            self.minimum = block.min(axis=0)
            self.maximum = block.max(axis=0)
            self._rows = block[:0].copy()
            self._keys = np.zeros(0)
        else:
            self.minimum = np.minimum(self.minimum, block.min(axis=0))
            self.maximum = np.maximum(self.maximum, block.max(axis=0))
        # Within a block in the data's float32 (as NumPy's own mean and std
        # along axis 0 are), across blocks in float64.
        block_sum = np.einsum("ij->j", block)
        block_mean = block_sum.astype(np.float64) / m
        if self._variance:  # two-pass, 256 rows at a time: small temporaries
            center = (block_sum / m).astype(block.dtype)
            block_m2 = np.zeros(self.n_features)
            for start in range(0, m, 256):
                deviation = block[start : start + 256] - center
                block_m2 += np.einsum("ij,ij->j", deviation, deviation)
        else:
            block_m2 = 0.0
        n = self.count + m
        delta = block_mean - self.mean
        self.mean = self.mean + delta * (m / n)
        self._m2 = self._m2 + block_m2 + delta**2 * (self.count * m / n)
        self.count = n
        if self._kept is not None:
            if n <= self._keep:
                self._kept.append(np.array(block, copy=True))
            else:
                self._kept = None
        self._update_sample(block)

    def _update_sample(self, block: np.ndarray) -> None:
        keys = self._rng.random(len(block))
        size = self.sample_size
        if not size:
            return
        if len(self._keys) < size:  # filling: keep the smallest keys so far
            keys = np.concatenate([self._keys, keys])
            rows = np.concatenate([self._rows, block])
            kept = np.argsort(keys, kind="stable")[:size]
            self._keys, self._rows = keys[kept], rows[kept]
            return
        # Full: only rows with keys below the largest kept one can enter; they
        # replace the rows of the largest keys, in place (few per block).
        chosen = np.flatnonzero(keys < self._keys.max())
        if not len(chosen):
            return
        merged = np.concatenate([self._keys, keys[chosen]])
        kept = np.argsort(merged, kind="stable")[:size]
        entering = kept[kept >= size] - size
        leaving = np.setdiff1d(np.arange(size), kept, assume_unique=True)
        self._keys[leaving] = keys[chosen[entering]]
        self._rows[leaving] = block[chosen[entering]]

    @property
    def sample(self) -> np.ndarray:
        """The sampled rows, in the order of their keys (a random order)."""
        return self._rows[np.argsort(self._keys, kind="stable")]

    @property
    def var(self) -> np.ndarray:
        """Per-feature variance (population, as `np.var`)."""
        return self._m2 / self.count

    @property
    def std(self) -> np.ndarray:
        """Per-feature standard deviation (population, as `np.std`)."""
        return np.sqrt(self.var)

    @property
    def low(self) -> float:
        """The smallest value seen."""
        return float(self.minimum.min())

    @property
    def high(self) -> float:
        """The largest value seen."""
        return float(self.maximum.max())

    @property
    def rows(self) -> np.ndarray | None:
        """All the rows, if no more than `keep` were seen, else None."""
        if self._kept is None or not self._kept:
            return None
        return np.concatenate(self._kept)

    def affine(self, shift: np.ndarray, scale: np.ndarray) -> FeatureStats:
        """The statistics of `(x - shift) / scale` (`scale > 0`) without a pass.

        Minima, maxima, the sample and the kept rows are mapped in float32 as
        the data would be, so they are those of the mapped data exactly.
        """
        shift = np.asarray(shift, "float32")
        scale = np.asarray(scale, "float32")
        out = FeatureStats(self.sample_size, self._keep, variance=self._variance)
        out.count, out.n_features = self.count, self.n_features
        out.mean = (self.mean - shift) / scale
        out._m2 = self._m2 / scale.astype(np.float64) ** 2
        out.minimum = (self.minimum - shift) / scale
        out.maximum = (self.maximum - shift) / scale
        out._rows = (self._rows - shift) / scale
        out._keys = self._keys
        out._kept = (
            None if self._kept is None else [(r - shift) / scale for r in self._kept]
        )
        return out
