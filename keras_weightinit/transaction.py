"""All or nothing: the one transaction every tool that changes weights runs in.

`initialize`, `lsuv`, `set_base_shapes`, `pretrain_dbn` and the residual
recipes change a model's weights inside `atomic(step)`: they `keep` each
variable before they change it, and on any exception (`KeyboardInterrupt`
included), on this process or, with several processes, on another one
(`distributed.together`), every kept variable gets back its value, bit for
bit, before the exception goes on.

The kept values stay on the device, never copied to the host:

- JAX: the variable's array itself (JAX arrays are immutable, and an
  assignment replaces the array): no copy at all.
- TensorFlow: a read of the variable (`tf.identity`), which shares the
  variable's buffer; the next assignment sees the buffer shared and writes
  a new one (TensorFlow's copy on write), so the old values live on in the
  read: no copy beyond the one the assignment makes anyway.
- PyTorch: `Keep.assign` gives the variable's parameter a new buffer
  (`param.data`), keeping the old one: the new value itself when the caller
  gives it up (`take=True`: no copy at all), else a new buffer it is copied
  into; `keep(variables)` alone, for a caller that reads the values before
  it changes them, keeps a device clone.

Restoring puts the kept values back the same way (on PyTorch the kept buffer
becomes the parameter's again, with no copy). See `docs/backends.md`
(Transactions) for the device memory this costs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import keras

from keras_weightinit import distributed

__all__ = ["Keep", "atomic"]


def _hold(variable) -> Any:
    """`variable`'s value now, kept on its device, safe from later writes."""
    backend = keras.backend.backend()
    if backend == "jax":
        return variable.value  # immutable: an assignment replaces it
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.identity(variable.value)  # shares the buffer, copy on write
    if backend == "torch":
        return variable.value.detach().clone()
    return keras.ops.copy(variable.value)


def _put_back(variable, value) -> None:
    """Restores `variable` to a value `_hold` (or a swap) kept, bit-exactly."""
    if keras.backend.backend() == "torch":
        variable.value.data = value  # the kept buffer itself: no copy
    else:
        variable.assign(value)


def _takeable(value, old) -> bool:
    """Whether PyTorch `value` can be `old`'s replacement buffer as it is."""
    import torch

    return (
        type(value) is torch.Tensor
        and (value.dtype, value.device, value.shape)
        == (old.dtype, old.device, old.shape)
        and not value.requires_grad
        and value.is_contiguous()
        and value.storage_offset() == 0
        and value.untyped_storage().nbytes() == value.numel() * value.element_size()
    )


class Keep:
    """The values a transaction restores on failure; `atomic` yields one.

    `keep(variables)` records the variables' values now (each variable once:
    its value when first kept); `keep.assign(variable, value)` records
    `variable` and assigns `value`, with no extra copy on any backend. Call
    either before changing a variable.

    Example:

    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> keep = Keep()
    >>> kernel = model.layers[0].kernel
    >>> before = keras.ops.convert_to_numpy(kernel)
    >>> keep.assign(kernel, keras.ops.zeros((3, 2)))
    >>> keep.restore()
    >>> bool((keras.ops.convert_to_numpy(kernel) == before).all())
    True
    """

    def __init__(self) -> None:
        self._kept: dict[int, tuple[Any, Any]] = {}
        self._taken: set[int] = set()  # PyTorch buffers given by `take`

    def __len__(self) -> int:
        return len(self._kept)

    def __call__(self, variables: Iterable) -> None:
        """Records the values of `variables` (a variable or an iterable)."""
        if isinstance(variables, keras.Variable):
            variables = [variables]
        for variable in variables:
            if not isinstance(variable, keras.Variable):
                raise TypeError(
                    "keep() takes `keras.Variable`s. "
                    f"Received: variable={variable!r} of type {type(variable)}"
                )
            if id(variable) not in self._kept:
                self._kept[id(variable)] = (variable, _hold(variable))

    def assign(self, variable, value, *, take: bool = False) -> None:
        """Records `variable`'s value, then assigns `value` to it.

        Args:
            variable: A `keras.Variable`.
            value: Its new value (anything `variable.assign` takes).
            take: Whether the caller gives `value` up: on PyTorch a tensor of
                the variable's dtype, shape and device that owns its storage
                then becomes the variable's buffer, with no copy, and the
                caller must not use it again (elsewhere it is copied, as by
                `variable.assign`).
        """
        if id(variable) in self._kept or keras.backend.backend() != "torch":
            self(variable)
            variable.assign(value)
            return
        if not isinstance(variable, keras.Variable):
            raise TypeError(
                "keep.assign() takes a `keras.Variable`. "
                f"Received: variable={variable!r} of type {type(variable)}"
            )
        import torch

        parameter = variable.value
        old = parameter.data
        self._kept[id(variable)] = (variable, old)
        if take and _takeable(value, old) and value.data_ptr() not in self._taken:
            self._taken.add(value.data_ptr())
            parameter.data = value  # the new buffer itself: no copy
            return
        parameter.data = torch.empty_like(old)  # a new buffer: `old` is kept
        variable.assign(value)

    def restore(self) -> None:
        """Puts back every kept value, the last kept first, then forgets them."""
        for variable, value in reversed(list(self._kept.values())):
            _put_back(variable, value)
        self.forget()

    def forget(self) -> None:
        """Drops the kept values (the transaction succeeded)."""
        self._kept.clear()
        self._taken.clear()


@contextlib.contextmanager
def atomic(step: str) -> Iterator[Keep]:
    """Weight changes inside are all-or-nothing, on every process.

    Wraps `distributed.together(step)`: an exception on any process (a
    failed check, bad data, `KeyboardInterrupt`) ends the block on every
    process, and each restores every variable kept in the block to its value
    when first kept, bit-exactly, then re-raises. Kept values stay on the
    device (module docstring); they are dropped when the block ends.

    Args:
        step: The tool's name, for messages across processes (`"lsuv"`).

    Yields:
        A `Keep`: call `keep(variables)` or `keep.assign(variable, value)`
        before changing a variable.

    Example:

    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> kernel = model.layers[0].kernel
    >>> before = keras.ops.convert_to_numpy(kernel)
    >>> try:
    ...     with atomic("example") as keep:
    ...         keep.assign(kernel, keras.ops.zeros((3, 2)))
    ...         raise RuntimeError("stop")
    ... except RuntimeError:
    ...     pass
    >>> bool((keras.ops.convert_to_numpy(kernel) == before).all())
    True
    """
    keep = Keep()
    try:
        with distributed.together(step):
            yield keep
    except BaseException:
        keep.restore()  # on every process: another one may have failed
        raise
    finally:
        keep.forget()
