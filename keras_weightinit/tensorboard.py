"""TensorBoard events from host values: histogram buckets and one `Summary`.

`GradientHistograms` writes a step's histograms and scalars as one serialized
`Summary` (`tf.summary.experimental.write_raw_pb`). Through the public
per-tag route the same step costs much more: for 20 histograms of 256 x 256
values and 20 scalars, `tf.summary.histogram` took 1,025 ms (it buckets in
eager TensorFlow ops), `tf.summary.write` of numpy buckets 27 ms, and one
raw `Summary` 13 ms (`benchmarks/README.md`); at `freq=1` that difference is
the callback's whole per-epoch budget. The events read back exactly as those
of `tf.summary.histogram` and `tf.summary.scalar` (the same tensors and
plugin metadata).

`EventWriter` writes those summaries to an event file without TensorFlow,
so that JAX and PyTorch users log without importing it (TensorBoard's own
`EventFileWriter` imports TensorFlow where it is installed, and its
pure-Python CRC-32C takes 0.4 s per MB; `crc32c` here is the same checksum in
numpy, over up to 1,024 slices at once: 14 ms for 320 kB).
"""

from __future__ import annotations

import functools
import itertools
import os
import socket
import struct
import time

import keras
import numpy as np

__all__ = ["EventWriter", "crc32c", "histogram_buckets", "summary_bytes"]


def histogram_buckets(values, bins: int = 30) -> np.ndarray:
    """TensorBoard's histogram tensor `[bins, 3]` of (left, right, count).

    The layout `tf.summary.histogram` writes: `bins` equal buckets over
    `[min, max]` of the finite values (non-finite ones are left out); a
    constant tensor puts every value in the last bucket, whose edges are both
    that value, as in TensorBoard.

    Args:
        values: An array of any shape.
        bins: The number of buckets.

    Returns:
        A float64 array of shape `(bins, 3)`.

    Example:

    >>> histogram_buckets(np.array([0.0, 0.5, 1.0]), bins=2)[:, 2]
    array([1., 2.])
    """
    v = np.asarray(values).ravel()
    finite = np.isfinite(v)
    if not finite.all():
        v = v[finite]
    buckets = np.zeros((bins, 3))
    if v.size == 0:
        return buckets
    lo, hi = float(v.min()), float(v.max())
    if hi > lo:
        # np.histogram's arithmetic without its edge corrections: ~10x faster
        index = ((v.astype("float64") - lo) * (bins / (hi - lo))).astype(np.intp)
        np.minimum(index, bins - 1, out=index)
        edges = lo + (hi - lo) * np.arange(bins + 1) / bins
        buckets[:, 0], buckets[:, 1] = edges[:-1], edges[1:]
        buckets[:, 2] = np.bincount(index, minlength=bins)
    else:
        buckets[:, :2] = lo
        buckets[-1, 2] = v.size
    return buckets


@functools.cache
def _metadata(plugin: str):
    if plugin == "histogram":
        from tensorboard.plugins.histogram import metadata
    else:
        from tensorboard.plugins.scalar import metadata
    return metadata.create_summary_metadata(display_name=None, description=None)


def summary_bytes(histograms: dict, scalars: dict) -> bytes:
    """One serialized `Summary` of a step's histograms and scalars.

    Each histogram is bucketed by `histogram_buckets`; each value's tensor is
    built from its raw bytes (TensorBoard's `make_tensor_proto` handles every
    dtype and costs about 0.1 ms per call).

    Args:
        histograms: `tag -> array`.
        scalars: `tag -> number`.

    Returns:
        The bytes for `tf.summary.experimental.write_raw_pb`.

    Example:

    >>> from tensorboard.compat.proto import summary_pb2
    >>> data = summary_bytes({"w": np.arange(4.0)}, {"loss": 0.5})
    >>> [v.tag for v in summary_pb2.Summary.FromString(data).value]
    ['w', 'loss']
    """
    from tensorboard.compat.proto import (
        summary_pb2,
        tensor_pb2,
        tensor_shape_pb2,
        types_pb2,
    )

    def tensor(array) -> tensor_pb2.TensorProto:
        array = np.asarray(array)  # tobytes() is C order, contiguous or not
        float64 = array.dtype == np.float64
        return tensor_pb2.TensorProto(
            dtype=types_pb2.DT_DOUBLE if float64 else types_pb2.DT_FLOAT,
            tensor_shape=tensor_shape_pb2.TensorShapeProto(
                dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=n) for n in array.shape]
            ),
            tensor_content=array.tobytes(),
        )

    values = [
        summary_pb2.Summary.Value(
            tag=tag,
            metadata=_metadata("histogram"),
            tensor=tensor(histogram_buckets(v)),
        )
        for tag, v in histograms.items()
    ]
    values += [
        summary_pb2.Summary.Value(
            tag=tag, metadata=_metadata("scalar"), tensor=tensor(np.float32(v))
        )
        for tag, v in scalars.items()
    ]
    return summary_pb2.Summary(value=values).SerializeToString()


# --------------------------------------------------------------------------
# event files: TFRecord framing, CRC-32C (Castagnoli), reflected


def _crc_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1)
    return table.astype(np.uint32)


_TABLE = _crc_table()
_BITS = np.arange(32, dtype=np.uint32)


def _apply(matrix: np.ndarray, crcs: np.ndarray) -> np.ndarray:
    """A GF(2) linear map (`matrix[k]`: the image of bit `k`) on each of `crcs`."""
    bits = (crcs[..., None] >> _BITS) & 1
    return np.bitwise_xor.reduce(np.where(bits == 1, matrix, np.uint32(0)), axis=-1)


@functools.lru_cache(maxsize=256)
def _zeros(n: int) -> np.ndarray:
    """The map `crc -> crc` after `n` zero bytes (no pre- or post-inversion)."""
    power = _TABLE[(np.uint32(1) << _BITS) & 0xFF] ^ ((np.uint32(1) << _BITS) >> 8)
    result = np.uint32(1) << _BITS  # identity
    while n:
        if n & 1:
            result = _apply(power, result)
        power, n = _apply(power, power), n >> 1
    return result


def crc32c(data: bytes) -> int:
    """The CRC-32C of `data`, as TFRecord files carry it (unmasked).

    The CRC is linear over GF(2): `data` is cut into about `sqrt(len)`
    slices (a power of two, at most 1,024; zeros in front, which change
    nothing from a zero state), the slices' CRCs computed at once in numpy,
    and joined by the map of "`n` zero bytes more"; the initial all-ones
    state enters the same way.

    Args:
        data: The bytes.

    Returns:
        The checksum, an int.

    Example:

    >>> hex(crc32c(b"123456789"))
    '0xe3069283'
    """
    raw = np.frombuffer(data, np.uint8)
    lanes = 1 << min(10, raw.size.bit_length() // 2)
    width = -(-raw.size // lanes)
    padded = np.zeros(lanes * width, np.uint8)
    padded[padded.size - raw.size :] = raw
    columns = padded.reshape(lanes, width).T.astype(np.uint32)
    crc = np.zeros(lanes, np.uint32)
    for column in columns:
        crc = _TABLE[(crc ^ column) & 0xFF] ^ (crc >> 8)
    while crc.size > 1:  # join neighbours: left slice shifted by the right's
        crc, width = _apply(_zeros(width), crc[0::2]) ^ crc[1::2], 2 * width
    start = _apply(_zeros(raw.size), np.array([0xFFFFFFFF], np.uint32))
    return int(crc[0] ^ start[0] ^ np.uint32(0xFFFFFFFF))


def _masked(data: bytes) -> bytes:
    crc = crc32c(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


_FILE_IDS = itertools.count()


class EventWriter:
    """An event file in `run_dir` that TensorBoard reads, written without TF.

    The file is named and framed as `tf.summary.create_file_writer` names
    and frames its own (`events.out.tfevents.<time>.<host>.<pid>.<n>.v2`, `n`
    zero-padded so that the files of one process sort in the order written;
    TFRecords of `Event`s). On the TensorFlow backend, where TensorFlow is
    imported anyway, the file is opened through `tf.io.gfile`, so that a
    `log_dir` on a remote file system (`gs://...`) works as with Keras's
    `TensorBoard`; elsewhere it is a local file.

    Args:
        run_dir: The directory (created if missing).

    Example:

    >>> writer = EventWriter("logs/run1/gradients")
    >>> writer.write(3, summary_bytes({}, {"loss": 0.5}))
    >>> writer.close()
    >>> os.path.basename(writer.path).startswith("events.out.tfevents.")
    True
    """

    def __init__(self, run_dir: str | os.PathLike):
        run_dir = os.fspath(run_dir)
        stamp = f"{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}"
        path = os.path.join(
            run_dir, f"events.out.tfevents.{stamp}.{next(_FILE_IDS):06d}.v2"
        )
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.io.gfile.makedirs(run_dir)
            self._file = tf.io.gfile.GFile(path, "wb")
        else:
            os.makedirs(run_dir, exist_ok=True)
            self._file = open(path, "wb")  # noqa: SIM115 (closed in `close`)
        self.path = path
        self._write_event(file_version="brain.Event:2")
        self._file.flush()

    def _write_event(self, **fields) -> None:
        from tensorboard.compat.proto import event_pb2

        data = event_pb2.Event(wall_time=time.time(), **fields).SerializeToString()
        header = struct.pack("<Q", len(data))
        self._file.write(header + _masked(header) + data + _masked(data))

    def write(self, step: int, summary: bytes) -> None:
        """Writes one serialized `Summary` (`summary_bytes`) at `step`, flushed."""
        from tensorboard.compat.proto import summary_pb2

        self._write_event(
            step=int(step), summary=summary_pb2.Summary.FromString(summary)
        )
        self._file.flush()

    def close(self) -> None:
        """Closes the file."""
        self._file.close()
