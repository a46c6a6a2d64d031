"""Turning the data users pass (arrays, `tf.data`, `PyDataset`) into arrays.

Every function that takes training data goes through here, so they all accept
the same things and reject bad data with the same messages.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

__all__ = ["as_array", "check_finite", "first_batch", "fit_model_input"]


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


def as_array(
    data, name: str = "x", max_samples: int | None = None, dtype="float32"
) -> np.ndarray:
    """Collects the inputs `x` of `data` into one NumPy array.

    Args:
        data: A NumPy array or tensor of samples; or, as `fit` takes them, a
            batched `tf.data.Dataset` or a `keras.utils.PyDataset` whose
            batches are `x`, `(x, y)` or `(x, y, sample_weight)`.
        name: The argument's name, used in error messages.
        max_samples: Stop once this many samples are collected (the result is
            cut to that many).
        dtype: The dtype of the result; None keeps the data's (integer
            token ids stay integers).

    Returns:
        The samples, first axis the sample axis.

    Raises:
        ValueError: For an unsupported type, no samples, or NaN/inf values.

    Example:

    >>> ds = tf.data.Dataset.from_tensor_slices((np.ones((10, 3)), np.ones(10)))
    >>> as_array(ds.batch(4)).shape
    (10, 3)
    """
    if isinstance(data, tf.data.Dataset):
        _check_dataset(data, name, finite=max_samples is None)
    if isinstance(data, (tf.data.Dataset, keras.utils.PyDataset)):
        batches = (
            data
            if isinstance(data, tf.data.Dataset)
            else _py_batches(data, name, finite=max_samples is None)
        )
        chunks, count = [], 0
        for batch in batches:
            chunks.append(np.asarray(_split(batch)[0]))
            count += len(chunks[-1])
            if max_samples is not None and count >= max_samples:
                break
        array = np.concatenate(chunks) if chunks else np.zeros((0,))
    else:
        try:
            array = np.asarray(keras.ops.convert_to_numpy(data))
        except Exception as error:  # noqa: BLE001 - report what we received
            raise ValueError(
                f"Argument `{name}` must be an array, a tf.data.Dataset or a "
                f"keras.utils.PyDataset. Received: {name} of type "
                f"{type(data).__name__}"
            ) from error
    if not np.issubdtype(array.dtype, np.number) and array.dtype != bool:
        raise ValueError(
            f"Argument `{name}` must hold numbers. Received dtype={array.dtype}"
        )
    if array.ndim == 0 or len(array) == 0:
        raise ValueError(f"Argument `{name}` holds no samples.")
    if max_samples is not None:
        array = array[:max_samples]
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    return check_finite(array, name)


def _py_batches(dataset: keras.utils.PyDataset, name: str, finite: bool):
    """The batches of a `PyDataset`, `num_batches` of them (None: endless)."""
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
    i = 0
    while count is None or i < count:
        yield dataset[i]
        i += 1


def _check_dataset(dataset: tf.data.Dataset, name: str, finite: bool) -> None:
    """Rejects infinite datasets (when all of it is read) and unbatched ones."""
    if finite and dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            f"Argument `{name}` is an infinite dataset (`.repeat()`); pass a "
            "finite one."
        )
    x_spec = _split(dataset.element_spec)[0]
    rank = getattr(getattr(x_spec, "shape", None), "rank", None)
    if rank is not None and rank < 2:
        raise ValueError(
            f"Argument `{name}` must be a batched dataset, as `fit` takes it: "
            "call `.batch(n)` on it. Received: elements of shape "
            f"{x_spec.shape}"
        )


def first_batch(data, name: str = "data") -> tuple[np.ndarray, np.ndarray | None]:
    """Returns the probe batch `(x, y)` of `data` as NumPy arrays.

    Args:
        data: A tuple `(x, y)` or `(x,)` of arrays, an array `x`, or a batched
            `tf.data.Dataset` or `keras.utils.PyDataset` of `(x, y)` / `x`,
            whose first batch is taken.
        name: The argument's name, used in error messages.

    Returns:
        `(x, y)`, `y` None when the data holds no targets.

    Raises:
        ValueError: For no samples, NaN/inf inputs, or sample weights (the
            probe's loss is unweighted, so they are refused, not dropped).

    Example:

    >>> x, y = first_batch((np.zeros((4, 2)), np.zeros(4)))
    >>> x.shape, y.shape
    ((4, 2), (4,))
    """
    if isinstance(data, tf.data.Dataset):
        _check_dataset(data, name, finite=False)
        element = next(iter(data.take(1)), None)
        if element is None:
            raise ValueError(f"Argument `{name}` is an empty dataset.")
        data = element
    elif isinstance(data, keras.utils.PyDataset):
        data = next(_py_batches(data, name, finite=False), None)
        if data is None:
            raise ValueError(f"Argument `{name}` is an empty PyDataset.")
    if isinstance(data, (tuple, list)) and len(data) > 2:
        raise ValueError(
            f"Argument `{name}` holds sample weights, which the probe batch "
            "does not use: pass `(x, y)`. Received: a tuple of "
            f"{len(data)} elements"
        )
    x, y = _split(data)
    x = check_finite(np.asarray(keras.ops.convert_to_numpy(x)), f"{name}[0]")
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"Argument `{name}` holds no samples.")
    if y is not None:
        y = np.asarray(keras.ops.convert_to_numpy(y))
    return x, y


def fit_model_input(
    model: keras.Model, x: np.ndarray, caller: str, name: str = "x"
) -> None:
    """Builds an unbuilt model for `x` and checks that `x` fits its input.

    A model with a layer graph (Sequential, functional) is checked against
    its one input's shape; a subclassed model, which has none, is called on
    the first sample.

    Args:
        model: A Keras model with one input.
        x: The samples, first axis the sample axis.
        caller: The function's name, used in error messages.
        name: The argument's name, used in error messages.

    Raises:
        ValueError: If the model cannot be built or called on `x`, has
            several inputs, or `x` has the wrong shape.

    Example:

    >>> model = keras.Sequential([keras.layers.Dense(4)])
    >>> fit_model_input(model, np.zeros((8, 3)), "lsuv")
    >>> model.built
    True
    """
    if not model.built and isinstance(model, keras.Sequential):
        try:
            model.build((None, *x.shape[1:]))
        except Exception as error:  # noqa: BLE001 - re-raised with context
            raise ValueError(
                f"Argument `{name}` does not fit model {model.name!r}: building it for "
                f"inputs of shape {(None, *x.shape[1:])} failed: {error}"
            ) from error
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        try:
            model(x[:1], training=False)
        except Exception as error:  # noqa: BLE001 - re-raised with context
            raise ValueError(
                f"Argument `{name}` does not fit model {model.name!r}: calling it on "
                f"a batch of shape {(1, *x.shape[1:])} failed: {error}"
            ) from error
        return
    if len(inputs) != 1:
        raise ValueError(
            f"{caller} needs a model with one input. Received: model "
            f"{model.name!r} with {len(inputs)} inputs"
        )
    expected = tuple(inputs[0].shape)
    if len(expected) != x.ndim or any(
        want is not None and want != got
        for want, got in zip(expected[1:], x.shape[1:], strict=True)
    ):
        raise ValueError(
            f"Argument `{name}` does not fit model {model.name!r}, which takes inputs "
            f"of shape {expected}. Received: {name} with shape {x.shape}"
        )
