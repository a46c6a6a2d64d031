"""Past one process: the cross-process logic of every tool, in one place.

Keras 3 runs a model over several processes with its distribution API (JAX
backend): `keras.distribution.initialize(address, num_processes, process_id)`
joins the processes, `DataParallel` replicates every variable on every
device, `ModelParallel` shards the variables a `LayoutMap` names. Each
process then runs the same program on its own shard of the data. The tools of
this package stand on the functions here to stay correct in that setting:

- who is who: `process_count`, `process_index`, `is_writer` (process 0 writes
  files and prints; with one process, that process);
- agreement: `check_same_across_processes` (the model, a seed, a batch that
  must be the same everywhere), `check_same_model`, `shared_seed` (one seed
  for all, process 0's when `seed=None`), `broadcast_from_writer`;
- statistics over the union of the shards: `mean_across_processes` (weighted
  by sample counts) and `sum_across_processes`; every process sums the
  gathered values in the same order, so all get bit-identical results;
- failing together: `together(name)` wraps a tool's whole run, so that an
  error on one process (bad data, a failed check, Ctrl-C) becomes an error
  on every process, each of which then restores its weights;
- layouts: `draw_into` and `draw_sharded` place new values in a variable's
  sharding (drawn shard by shard under a sharded layout, no full copy on one
  device), and `check_replicated` refuses variables sharded across
  processes where a tool needs them whole.

Keeping weights to restore on failure is `keras_weightinit.transaction`'s
job (`atomic`), which stands on `together`.

With one process every function returns at once and does no communication;
on the TensorFlow and PyTorch backends it calls no JAX (a Keras run on those
backends is one process). Collectives use the public
`jax.experimental.multihost_utils.process_allgather`.

Timeout: a process waits at most `collective_timeout()` seconds for the
others at each exchange (`DEFAULT_TIMEOUT`, 300 s, or the environment
variable `KERAS_WEIGHTINIT_TIMEOUT`), then raises `ProcessError`: a process
that died, hangs, or runs something else never leaves the others waiting
longer. A process that died is usually noticed at once (its connections
reset). After a timeout the process can no longer talk to the others: every
later exchange raises `ProcessError` at once, and the processes must be
restarted (JAX's own shutdown then waits for its heartbeat timeout).

Protocol: every exchange starts with a fixed-size header (the step's name,
a digest of what is exchanged, the process's status), so processes at
different steps, with differently shaped values, or one of them failed,
are told apart before any value travels; then the values travel bit-exactly
(as 32-bit words).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random as python_random
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import keras
import numpy as np

from keras_weightinit.checks import is_int, is_number
from keras_weightinit.seeds import Seed, check_seed

__all__ = [
    "DEFAULT_TIMEOUT",
    "ProcessError",
    "broadcast_from_writer",
    "check_replicated",
    "check_same_across_processes",
    "check_same_model",
    "collective_timeout",
    "draw_into",
    "is_writer",
    "draw_sharded",
    "mean_across_processes",
    "process_count",
    "process_index",
    "shared_seed",
    "sum_across_processes",
    "together",
]

#: Seconds a process waits for the others at one exchange.
DEFAULT_TIMEOUT = 300.0
_TIMEOUT_VARIABLE = "KERAS_WEIGHTINIT_TIMEOUT"


class ProcessError(RuntimeError):
    """Another process failed, died, did not answer in time, or is elsewhere.

    Raised on every process but the one whose own error it reports (that
    one raises its own error). The message names the process and its error.

    Example:

    >>> issubclass(ProcessError, RuntimeError)
    True
    """


# --------------------------------------------------------------------------
# who is who


def process_count() -> int:
    """The number of processes running this program together.

    `jax.process_count()` on the JAX backend (after
    `keras.distribution.initialize`), else 1, without importing JAX.

    Example:

    >>> process_count()
    1
    """
    if keras.backend.backend() != "jax":
        return 1
    import jax

    return int(jax.process_count())


def process_index() -> int:
    """This process's index, `0 .. process_count() - 1`.

    Example:

    >>> process_index()
    0
    """
    if keras.backend.backend() != "jax":
        return 0
    import jax

    return int(jax.process_index())


def is_writer() -> bool:
    """Whether this process writes files and prints: process 0 (or the only one).

    Example:

    >>> is_writer()
    True
    """
    return process_index() == 0


def collective_timeout() -> float:
    """Seconds a process waits for the others at one exchange.

    `KERAS_WEIGHTINIT_TIMEOUT` from the environment (a positive number of
    seconds), else `DEFAULT_TIMEOUT`.

    Example:

    >>> collective_timeout() > 0
    True
    """
    text = os.environ.get(_TIMEOUT_VARIABLE)
    if text is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"The environment variable `{_TIMEOUT_VARIABLE}` must be a positive "
            f"number of seconds. Received: {_TIMEOUT_VARIABLE}={text!r}"
        )
    return value


# --------------------------------------------------------------------------
# the exchange: a header, then the words


_MAGIC = 0x6B776931  # "kwi1"
_COLLECTIVE, _FAILED, _DONE = 0, 1, 2
_MESSAGE_BYTES = 1024  # of a header: its step, or the error of a failed process


class _State(threading.local):
    def __init__(self):
        self.blocks: list[str] = []  # the `together` blocks this thread is in


_STATE = _State()
_BROKEN: list[str] = []  # why this process can no longer exchange, if it cannot


def _where(what: str | None = None) -> str:
    """`what`, inside the blocks this thread is in: `"lsuv > check of `seed`"`."""
    return " > ".join([*_STATE.blocks, *([what] if what else [])])


def _settle(error: BaseException) -> BaseException:
    """Marks `error` as known to every process: no block exchanges it again."""
    with contextlib.suppress(AttributeError, TypeError):
        error._keras_weightinit_settled = True
    return error


def _settled(error: BaseException) -> bool:
    return bool(getattr(error, "_keras_weightinit_settled", False))


def _gather(words: np.ndarray, what: str) -> np.ndarray:
    """Every process's `words` (uint32, one shape), `(processes, n)`.

    Runs the collective in a daemon thread and waits `collective_timeout()`
    seconds for it; after a timeout, a failure or an interrupt this process
    is marked as unable to exchange again.
    """
    if _BROKEN:
        raise ProcessError(
            f"Process {process_index()} cannot exchange with the other processes "
            f"any more ({_BROKEN[0]}); restart every process."
        )
    from jax.experimental import multihost_utils

    seconds = collective_timeout()
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def run():
        try:
            outcome["value"] = np.asarray(multihost_utils.process_allgather(words))
        except BaseException as error:  # handed to the waiting thread
            outcome["error"] = error
        done.set()

    threading.Thread(target=run, name=f"keras_weightinit {what}", daemon=True).start()
    try:
        finished = done.wait(seconds)
    except BaseException:
        _BROKEN.append(f"interrupted at {what}")
        raise
    index = process_index()
    if not finished:
        _BROKEN.append(f"timed out at {what}")
        raise ProcessError(
            f"Process {index} waited {seconds:g} s at {what} for the other "
            "processes: one of them died, hangs or runs something else. "
            f"Set {_TIMEOUT_VARIABLE} to wait longer."
        )
    if "error" in outcome:
        error = outcome["error"]
        _BROKEN.append(f"failed at {what}: {error}")
        raise ProcessError(
            f"Process {index} lost the other processes at {what}: one of them "
            f"died or left. The collective failed with: {error}"
        ) from error
    return outcome["value"].reshape(process_count(), -1)


def _encode(text: str, size: int) -> np.ndarray:
    data = text.encode("utf-8")[:size]
    data = data + b"\0" * (size - len(data))
    return np.frombuffer(data, np.uint32)


def _decode(words: np.ndarray) -> str:
    return words.astype(np.uint32).tobytes().rstrip(b"\0").decode("utf-8", "replace")


def _digest(text: str) -> np.ndarray:
    return np.frombuffer(hashlib.sha256(text.encode()).digest()[:16], np.uint32)


def _header(status: int, step: str, words: int, spec: str, message: str):
    head = np.array([_MAGIC, status, zlib.crc32(step.encode()), words], dtype=np.uint32)
    return np.concatenate([head, _digest(spec), _encode(message, _MESSAGE_BYTES)])


def _exchange(status: int, step: str, words: int = 0, spec: str = "", message=""):
    """Every process's header: `[(status, step crc, words, digest, message)]`."""
    headers = _gather(_header(status, step, words, spec, message or step), step)
    if any(int(h[0]) != _MAGIC for h in headers):
        _BROKEN.append(f"garbled exchange at {step}")
        raise ProcessError(
            f"Process {process_index()} received a garbled exchange at {step}: "
            "the processes are out of step."
        )
    return [
        (int(h[1]), int(h[2]), int(h[3]), h[4:8].tobytes(), _decode(h[8:]))
        for h in headers
    ]


def _gather_bytes(data: bytes, step: str) -> list[bytes]:
    """Every process's `data` (any length): only where all are at this point."""
    sizes = _gather(np.array([len(data)], np.uint32), step)[:, 0]
    width = 4 * math.ceil(max(int(s) for s in sizes) / 4)
    words = np.frombuffer(data + b"\0" * (width - len(data)), np.uint32)
    gathered = _gather(words, step) if width else np.zeros((len(sizes), 0), np.uint32)
    return [row.tobytes()[: int(n)] for row, n in zip(gathered, sizes, strict=True)]


def _check_headers(headers, step: str) -> None:
    """Raises `ProcessError` (settled) if a process failed or is elsewhere."""
    failed = [(i, h[4]) for i, h in enumerate(headers) if h[0] == _FAILED]
    if failed:
        raise _settle(
            ProcessError(
                f"Process {process_index()} stopped at {step}: "
                + "; ".join(f"process {i} failed: {message}" for i, message in failed)
            )
        )
    if len({(h[0], h[1]) for h in headers}) > 1:
        where = "; ".join(
            f"process {i} is at {'the end of ' if h[0] == _DONE else ''}{h[4]}"
            for i, h in enumerate(headers)
        )
        raise _settle(
            ProcessError(f"The processes are out of step (different steps): {where}")
        )


def _collect(step: str, words: np.ndarray, spec: str, name: str) -> np.ndarray:
    """Every process's `words` after agreeing on `spec` (their shapes)."""
    headers = _exchange(_COLLECTIVE, step, len(words), spec)
    _check_headers(headers, step)
    if len({h[2:4] for h in headers}) > 1:
        specs = [s.decode() for s in _gather_bytes(spec.encode(), step)]
        raise _settle(
            ValueError(
                f"Argument `{name}` of {step} must have the same structure and "
                "shapes on every process. Received: "
                + "; ".join(f"process {i}: {s}" for i, s in enumerate(specs))
            )
        )
    return _gather(words, step)


@contextlib.contextmanager
def together(name: str) -> Iterator[None]:
    """A block every process runs to its end, or that fails on every process.

    Every tool that changes or reads weights across processes runs inside
    one. An exception on one process (bad data, a failed check, Ctrl-C) is
    told to the others at their next exchange, where they raise
    `ProcessError` naming it; the process raises its own exception. The
    outermost block ends with one exchange, so a process that failed after
    the last exchange is noticed too. Wrap it in the `try` that restores the
    weights, so every process restores them. With one process it does
    nothing.

    Args:
        name: The step, for messages (`"lsuv"`).

    Example:

    >>> with together("initialize"):
    ...     pass
    """
    if process_count() == 1:
        yield
        return
    _STATE.blocks.append(name)
    step = _where()
    try:
        yield
    except BaseException as error:
        if not _settled(error) and not _BROKEN:
            message = f"{type(error).__name__}: {error}" if str(error) else repr(error)
            try:
                headers = _exchange(_FAILED, step, message=f"{step}: {message}")
            except ProcessError as lost:  # the others cannot be told: say so
                headers = []
                if hasattr(error, "add_note"):
                    error.add_note(str(lost))
            _settle(error)
            others = [
                f"process {i}: {h[4]}"
                for i, h in enumerate(headers)
                if h[0] == _FAILED and i != process_index()
            ]
            if others and hasattr(error, "add_note"):
                error.add_note("Also failed: " + "; ".join(others))
        raise
    else:
        if len(_STATE.blocks) == 1:
            _check_headers(_exchange(_DONE, step), step)
    finally:
        _STATE.blocks.pop()


# --------------------------------------------------------------------------
# agreement


def _host(value) -> np.ndarray:
    """`value` as a NumPy array (its own dtype: not through the backend)."""
    if isinstance(value, (np.ndarray, np.generic, int, float, bool, list, tuple)):
        return np.asarray(value)
    return np.asarray(keras.ops.convert_to_numpy(value))


def _canonical(value) -> Any:
    """`value` as JSON-able data; arrays as their shape, dtype and digest."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if value is None or isinstance(value, (bool, str)):
        return value
    if is_int(value):
        return int(value)
    if is_number(value):
        return float(value) if math.isfinite(value) else repr(float(value))
    array = _host(value)
    digest = hashlib.sha256(array.tobytes()).hexdigest()[:16]
    return {"shape": list(array.shape), "dtype": str(array.dtype), "sha256": digest}


def _short(value, limit: int = 160) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _difference(values: list, labels: list) -> str:
    """Where the processes' `values` differ, in words: the first item for lists."""
    each = values
    where = ""
    if all(isinstance(v, list) for v in values):
        longest = max(len(v) for v in values)
        first = next(
            i
            for i in range(longest)
            if len({json.dumps(v[i]) if i < len(v) else "" for v in values}) > 1
        )
        each = [v[first] if first < len(v) else "(no such item)" for v in values]
        label = labels[0][first] if first < len(labels[0]) else None
        where = f" at item {first}" + (f" ({label} on process 0)" if label else "")
        if len({len(v) for v in values}) > 1:
            where += f" (of {', '.join(str(len(v)) for v in values)} items)"
    return (
        where
        + ": "
        + "; ".join(f"process {p}: {_short(v)}" for p, v in enumerate(each))
    )


def check_same_across_processes(
    name: str, value, *, labels: Sequence[str] | None = None
) -> None:
    """Raises `ValueError` on every process unless `value` is the same on all.

    `value` is JSON-like data (numbers, strings, lists, dicts) or an array
    (a batch), compared by content: arrays by shape, dtype and SHA-256 of
    their bytes. One exchange of a fixed-size digest; only when they differ
    do the values travel, for the message, which names the argument and the
    first item that differs on each process.

    Args:
        name: The argument, for the message (`"model"`, `"x"`).
        value: What must agree.
        labels: For a list `value`, a name per item (variable paths).

    Raises:
        ValueError: On every process, if the values differ.
        ProcessError: If another process failed or did not answer.

    Example:

    >>> check_same_across_processes("seed", 3)  # one process: nothing to do
    """
    if process_count() == 1:
        return
    data = _canonical(value)
    text = json.dumps(data, sort_keys=True)
    step = _where(f"check of `{name}`")
    headers = _exchange(_COLLECTIVE, step, 0, text)
    _check_headers(headers, step)
    if len({h[3] for h in headers}) == 1:
        return
    payload = json.dumps({"value": data, "labels": list(labels or [])})
    found = [json.loads(b) for b in _gather_bytes(payload.encode(), step)]
    where = _difference([f["value"] for f in found], [f["labels"] for f in found])
    raise _settle(
        ValueError(
            f"Argument `{name}` must be the same on every process, but it "
            f"differs{where}. "
            f"Received: {name}={_short(data)} on process {process_index()}"
        )
    )


def check_same_model(model, name: str = "model") -> None:
    """Raises `ValueError` on every process unless all hold the same model.

    The same variables in the same order with the same shapes and dtypes
    (their paths may differ: Keras numbers unnamed layers per process).

    Example:

    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> check_same_model(model)
    """
    if process_count() == 1:
        return
    variables = list(model.weights)
    check_same_across_processes(
        name,
        [[list(v.shape), str(v.dtype)] for v in variables],
        labels=[v.path for v in variables],
    )


def broadcast_from_writer(value):
    """Process 0's `value` (an array or number of one shape everywhere), bit-exact.

    Example:

    >>> broadcast_from_writer(np.arange(3))
    array([0, 1, 2])
    """
    if process_count() == 1:
        return np.asarray(value)
    array = _host(value)
    data = array.tobytes()
    data += b"\0" * (-len(data) % 4)
    spec = f"{array.dtype}{list(array.shape)}"
    step = _where("broadcast_from_writer")
    words = _collect(step, np.frombuffer(data, np.uint32), spec, "value")
    first = words[0].tobytes()[: array.nbytes]
    return np.frombuffer(first, array.dtype).reshape(array.shape).copy()


def shared_seed(seed: Seed) -> Seed:
    """A seed that gives every process the same draws.

    One process: `seed` itself. Several: an int seed is checked to be the
    same on every process; `None` becomes process 0's fresh int (every
    process draws one from Python's `random`, so their streams stay in
    step); a `SeedGenerator` gives one int, drawn on every process (so
    their states stay in step), process 0's used.

    Example:

    >>> shared_seed(7)
    7
    """
    seed = check_seed(seed)
    if process_count() == 1:
        return seed
    if is_int(seed):
        check_same_across_processes("seed", int(seed))
        return int(seed)
    if seed is None:
        mine = python_random.getrandbits(31)
    else:
        mine = int(keras.random.randint((), 0, 2**31 - 1, seed=seed))
    return int(broadcast_from_writer(np.array(mine, np.int64)))


# --------------------------------------------------------------------------
# statistics over the union of the shards


def _reduce(values, count, step: str):
    leaves = keras.tree.flatten(values)
    arrays = [np.asarray(_host(leaf), dtype=np.float64) for leaf in leaves]
    if count is not None:
        if not is_number(count) or not math.isfinite(count) or count < 0:
            raise ValueError(
                "Argument `count` must be a non-negative finite number (the "
                f"samples this process summed over). Received: count={count!r}"
            )
        arrays.append(np.array(float(count)))
    spec = ", ".join(f"{list(a.shape)}" for a in arrays)
    if process_count() == 1:
        totals = arrays
    else:
        flat = np.concatenate([a.ravel() for a in arrays]) if arrays else np.zeros(0)
        gathered = _collect(step, flat.view(np.uint32), spec, "values")
        summed = np.zeros(flat.shape, np.float64)
        for row in gathered:  # in process order: the same sum on every process
            summed = summed + row.view(np.float64)
        totals, start = [], 0
        for a in arrays:
            totals.append(summed[start : start + a.size].reshape(a.shape))
            start += a.size
    return totals


def _pack(values, arrays: list):
    results = [a if a.ndim else float(a) for a in arrays]
    return keras.tree.pack_sequence_as(values, results)


def mean_across_processes(values, count: float | None = None):
    """The mean over processes of `values`, or over all samples given `count`.

    Without `count`, each leaf's unweighted mean over the processes. With
    `count` (the number of samples this process summed over), `values` are
    this process's sums and the result is the mean over the union of the
    shards: the sums over processes divided by the total count. Every
    process gets bit-identical results.

    Args:
        values: A number, array or tensor, or a dict/list/tuple of them,
            with the same structure and shapes on every process.
        count: None, or this process's sample count (non-negative; the total
            must be positive).

    Returns:
        With one process and no `count`, `values` itself. Otherwise the
        same structure with float64 arrays (Python floats for scalars).

    Raises:
        ValueError: For a bad `count`, counts summing to 0, or values whose
            structure or shapes differ across processes (on every process).
        ProcessError: If another process failed or did not answer.

    Example:

    >>> mean_across_processes({"sum": np.array([6.0, 3.0])}, count=3)
    {'sum': array([2., 1.])}
    """
    if count is None and process_count() == 1:
        return values
    arrays = _reduce(values, count, _where("mean_across_processes"))
    if count is None:
        return _pack(values, [a / process_count() for a in arrays])
    total = float(arrays.pop())
    if total <= 0:
        raise ValueError(
            "Argument `count` must sum to a positive number over the processes. "
            f"Received: count={count!r} on process {process_index()}, total {total:g}"
        )
    return _pack(values, [a / total for a in arrays])


def sum_across_processes(values):
    """The sum over processes of `values` (float64), in process order.

    Example:

    >>> sum_across_processes([1.0, np.ones(2)])
    [1.0, array([1., 1.])]
    """
    return _pack(values, _reduce(values, None, _where("sum_across_processes")))


# --------------------------------------------------------------------------
# layouts


def _sharding(variable):
    """The JAX sharding of `variable`'s value, or None off JAX."""
    if keras.backend.backend() != "jax":
        return None
    return getattr(variable.value, "sharding", None)


def check_replicated(model, caller: str) -> None:
    """Raises `ValueError` if a variable is sharded across processes.

    `lsuv` and `diagnose` run each process's batch through the whole model,
    so each process must hold every variable whole: replicated
    (`DataParallel`) or sharded over its own devices only.

    Example:

    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> check_replicated(model, "lsuv")
    """
    if process_count() == 1:
        return
    for variable in model.weights:
        sharding = _sharding(variable)
        if sharding is not None and not (
            sharding.is_fully_addressable or sharding.is_fully_replicated
        ):
            raise ValueError(
                f"{caller} runs each process's batch through the whole model, so "
                "every process must hold every variable whole (DataParallel), "
                f"but variable {variable.path!r} is sharded across processes. "
                f"Received: sharding={sharding}"
            )


def draw_sharded(draw: Callable[[], Any], layout, *, jit: bool = True):
    """`draw()`'s values distributed as `layout`, drawn shard by shard.

    Under a sharded layout the draw runs in `jax.jit` with that output
    sharding, so each device computes only its shard (JAX's partitionable
    random bits give the same values as an eager draw); a replicated layout,
    `jit=False` or a draw that cannot be traced (it needs concrete values)
    draws eagerly and distributes the result.

    Args:
        draw: A function returning the values (a tensor).
        layout: A `keras.distribution.TensorLayout`, a JAX sharding or None.
        jit: Whether a sharded draw may be traced.

    Example:

    >>> tuple(draw_sharded(lambda: keras.ops.ones((2,)), None).shape)
    (2,)
    """
    if layout is None:
        return draw()
    if isinstance(layout, keras.distribution.TensorLayout):
        layout = layout.backend_layout
    if keras.backend.backend() != "jax":
        return keras.distribution.distribute_tensor(draw(), layout)
    import jax

    if jit and not layout.is_fully_replicated:
        try:
            return jax.jit(draw, out_shardings=layout)()
        except _untraceable():
            pass
    value = keras.ops.convert_to_tensor(draw())
    if isinstance(value, jax.Array) and value.sharding.is_equivalent_to(
        layout, len(value.shape)
    ):
        return value
    if isinstance(getattr(layout, "mesh", None), jax.sharding.AbstractMesh):
        return jax.sharding.reshard(value, layout)  # inside a trace
    return jax.device_put(value, layout)


def _untraceable() -> tuple:
    import jax

    return (
        jax.errors.ConcretizationTypeError,
        jax.errors.TracerArrayConversionError,
        jax.errors.TracerBoolConversionError,
        jax.errors.TracerIntegerConversionError,
    )


def draw_into(variable, draw: Callable[[], Any]):
    """`draw()`'s values for `variable`, laid out as its value is now.

    Off JAX, or for a variable on one device or replicated on this
    process's devices, `draw()` itself (the assignment distributes it, as
    before). A sharded variable gets values drawn shard by shard
    (`draw_sharded`). A variable replicated over several processes gets this
    process's draw as its local copies, with no exchange: every process
    must draw the same values (`shared_seed`). (Assigning a local value
    would make JAX's `device_put` compare it across processes: an exchange
    with no timeout, that hangs if one process has failed.)

    Example:

    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> kernel = model.layers[0].kernel
    >>> _ = kernel.assign(draw_into(kernel, lambda: keras.ops.zeros((3, 2))))
    >>> float(keras.ops.sum(kernel))
    0.0
    """
    sharding = _sharding(variable)
    if sharding is None or (
        sharding.is_fully_replicated and sharding.is_fully_addressable
    ):
        return draw()
    import jax

    if not sharding.is_fully_replicated:
        return draw_sharded(draw, sharding)
    value = keras.ops.convert_to_tensor(draw(), dtype=variable.dtype)
    return jax.make_array_from_callback(
        tuple(variable.shape), sharding, lambda index: value[index]
    )
