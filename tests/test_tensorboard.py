"""Tests of `keras_weightinit.tensorboard`.

Our buckets and summaries read back with TensorBoard's own reader as
`tf.summary`'s do.
"""

import numpy as np
import pytest
import tensorflow as tf

from keras_weightinit.tensorboard import histogram_buckets, summary_bytes


def test_histogram_buckets_read_back(tmp_path, events):
    # Our numpy histograms have TensorBoard's layout (left, right, count) and
    # read back like `tf.summary.histogram` / `tf.summary.scalar` values.
    values = np.random.default_rng(0).normal(size=1000).astype("float32")
    values[:3] = [np.nan, np.inf, -np.inf]
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default(step=7):
        tf.summary.experimental.write_raw_pb(
            summary_bytes({"h": values, "c": np.full(5, 2.0)}, {"s": 0.25})
        )
    writer.close()
    acc = events(str(tmp_path))
    assert set(acc.Tags()["tensors"]) == {"h", "c", "s"}
    (event,) = acc.Tensors("h")
    buckets = tf.make_ndarray(event.tensor_proto)
    finite = values[np.isfinite(values)]
    assert event.step == 7 and buckets.shape == (30, 3)
    assert buckets[:, 2].sum() == finite.size
    assert buckets[0, 0] == pytest.approx(finite.min())
    assert buckets[-1, 1] == pytest.approx(finite.max())
    expected, edges = np.histogram(finite, bins=30, range=(finite.min(), finite.max()))
    np.testing.assert_allclose(buckets[:, 2], expected, atol=1)
    np.testing.assert_allclose(buckets[:, 0], edges[:-1], atol=1e-6)
    constant = tf.make_ndarray(acc.Tensors("c")[0].tensor_proto)
    assert constant[-1].tolist() == [2.0, 2.0, 5.0]
    assert constant[:-1, 2].sum() == 0
    assert acc.scalars("s") == {7: 0.25}
    # The plugins file them under histograms and scalars, as TensorBoard's own.
    assert acc.SummaryMetadata("h").plugin_data.plugin_name == "histograms"
    assert acc.SummaryMetadata("s").plugin_data.plugin_name == "scalars"


def test_histogram_buckets_edge_cases():
    assert not histogram_buckets(np.array([np.nan, np.inf])).any()
    buckets = histogram_buckets(np.arange(10.0), bins=5)
    assert buckets[:, 2].tolist() == [2, 2, 2, 2, 2]  # the maximum is counted
    assert buckets[:, 0].tolist() == [0.0, 1.8, 3.6, 5.4, 7.2]


@pytest.mark.parametrize("size", [0, 1, 9, 1000, 4097, 300_001])
def test_crc32c_is_tensorboards_checksum(size):
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import crc32c as theirs

    from keras_weightinit.tensorboard import crc32c

    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)
    assert crc32c(data.tobytes()) == theirs(data.tobytes())


def test_event_writer_files_read_back_as_tf_summarys(tmp_path, events):
    # Without TensorFlow, the same events as `tf.summary`'s writer (checked
    # framing: TensorFlow's own record reader verifies every checksum).
    from keras_weightinit.tensorboard import EventWriter

    writer = EventWriter(tmp_path)
    for step in (0, 1, 2):
        writer.write(step, summary_bytes({"h": np.arange(10.0) * step}, {"s": step}))
    writer.close()
    assert events(str(tmp_path)).scalars("s") == {0: 0.0, 1: 1.0, 2: 2.0}
    records = list(tf.data.TFRecordDataset(writer.path))
    assert len(records) == 4  # the file version, then one event per step


def test_event_files_of_one_process_sort_in_the_order_written(tmp_path):
    from keras_weightinit.tensorboard import EventWriter

    paths, digits = [], set()
    while len(digits) < 2:  # until the file counter gains a digit (9 -> 10)
        writer = EventWriter(tmp_path)
        writer.close()
        paths.append(writer.path)
        digits.add(len(str(int(writer.path.split(".")[-2]))))
    assert sorted(paths) == paths
