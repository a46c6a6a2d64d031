"""The data every entry point accepts, and the data they all reject."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_weightinit.data import as_array, first_batch


class _Batches(keras.utils.PyDataset):
    def __init__(self, x):
        super().__init__()
        self.x = x

    def __len__(self):
        return 3

    def __getitem__(self, index):
        return self.x[index * 4 : (index + 1) * 4], np.zeros(4)


class _Endless(keras.utils.PyDataset):
    """A PyDataset with `num_batches = None`: an endless stream."""

    @property
    def num_batches(self):
        return None

    def __getitem__(self, index):
        return np.full((4, 3), float(index), "float32"), np.zeros(4)


class _Unsized(keras.utils.PyDataset):
    def __getitem__(self, index):
        return np.zeros((4, 3), "float32")


def test_arrays_datasets_and_pydatasets_give_the_same_samples():
    x = np.arange(36, dtype="float32").reshape(12, 3)
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(12))).batch(5)
    for data in (x, ds, _Batches(x), tf.constant(x)):
        np.testing.assert_array_equal(as_array(data), x)
    np.testing.assert_array_equal(as_array(ds, max_samples=7), x[:7])
    # An endless PyDataset is read up to max_samples, and refused without.
    np.testing.assert_array_equal(
        as_array(_Endless(), max_samples=10)[:, 0], [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    )
    with pytest.raises(ValueError, match="infinite PyDataset"):
        as_array(_Endless())
    with pytest.raises(ValueError, match="without `num_batches` or `__len__`"):
        as_array(_Unsized())


@pytest.mark.parametrize(
    "data, message",
    [
        (np.zeros((0, 3)), "holds no samples"),
        (np.array([[1.0, np.nan]]), "NaN or infinite"),
        (np.array([["a", "b"]]), "must hold numbers"),
        (tf.data.Dataset.from_tensor_slices(np.zeros((6, 3))), "must be a batched"),
        (
            tf.data.Dataset.from_tensor_slices(np.zeros((6, 3))).batch(2).repeat(),
            "infinite",
        ),
        (object(), "must hold numbers. Received dtype=object"),
    ],
)
def test_bad_data_is_rejected_with_a_clear_error(data, message):
    with pytest.raises(ValueError, match=message):
        as_array(data)


def test_first_batch_takes_the_first_batch_of_a_dataset():
    x = np.arange(20, dtype="float32").reshape(10, 2)
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(10))).batch(4).repeat()
    xb, yb = first_batch(ds)
    np.testing.assert_array_equal(xb, x[:4])
    np.testing.assert_array_equal(yb, np.arange(4))
    with pytest.raises(ValueError, match="empty dataset"):
        first_batch(tf.data.Dataset.from_tensor_slices(np.zeros((0, 2))).batch(2))


def test_first_batch_of_a_pydataset_and_refused_sample_weights():
    x = np.arange(36, dtype="float32").reshape(12, 3)
    xb, yb = first_batch(_Batches(x))
    np.testing.assert_array_equal(xb, x[:4])
    np.testing.assert_array_equal(yb, np.zeros(4))
    xb, _ = first_batch(_Endless())
    assert xb.shape == (4, 3)
    weighted = (x, np.zeros(12), np.ones(12))
    for data in (
        weighted,
        tf.data.Dataset.from_tensor_slices(weighted).batch(4),
    ):
        with pytest.raises(ValueError, match="`data` holds sample weights"):
            first_batch(data)


# --------------------------------------------------------------------------
# streaming


def test_stream_reads_every_sample_once_per_pass_in_blocks_of_any_size():
    from keras_weightinit.data import Stream, is_stream, rechunk

    x = np.arange(60, dtype="float32").reshape(20, 3)
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(20))).batch(6)
    stream = Stream(ds)
    assert is_stream(ds) and is_stream(stream) and not is_stream(x)
    for _ in range(2):  # re-iterable: one pass per call
        blocks = list(stream.blocks(8))
        assert [len(b) for b in blocks] == [8, 8, 4]
        np.testing.assert_array_equal(np.concatenate(blocks), x)
    doubled = stream.map(lambda block: 2 * block[:, :2], rows=5)
    np.testing.assert_array_equal(np.concatenate(list(doubled.blocks())), 2 * x[:, :2])
    assert [len(b) for b in doubled.blocks()] == [5, 5, 5, 5]
    np.testing.assert_array_equal(stream.first(), x[:6])
    pieces = [np.zeros((3, 2)), np.zeros((0, 2)), np.ones((9, 2))]
    assert [len(b) for b in rechunk(pieces, 4)] == [4, 4, 4]


def test_stream_refuses_what_it_cannot_read_through():
    from keras_weightinit.data import Stream

    for data, message in [
        (np.zeros((4, 3)), "must be a tf.data.Dataset or a keras.utils.PyDataset"),
        (_Endless(), "infinite PyDataset"),
        (_Unsized(), "without `num_batches` or `__len__`"),
        (tf.data.Dataset.from_tensor_slices(np.zeros((6, 3))), "must be a batched"),
        (
            tf.data.Dataset.from_tensor_slices(np.zeros((6, 3))).batch(2).repeat(),
            r"infinite dataset \(`.repeat\(\)`\)",
        ),
    ]:
        with pytest.raises(ValueError, match=f"Argument `data` .*{message}"):
            Stream(data, "data")
    with pytest.raises(ValueError, match="Argument `v` holds no samples"):
        Stream(
            tf.data.Dataset.from_tensor_slices(np.zeros((0, 3))).batch(2), "v"
        ).first()
    bad = tf.data.Dataset.from_tensor_slices(np.array([[1.0, np.inf]])).batch(1)
    with pytest.raises(ValueError, match="Argument `x` contains 1 NaN or infinite"):
        list(Stream(bad).batches())


def test_pydataset_stream_ends_each_pass_with_on_epoch_end():
    from keras_weightinit.data import Stream

    class Counted(_Batches):
        ended = 0

        def on_epoch_end(self):
            Counted.ended += 1

    x = np.arange(36, dtype="float32").reshape(12, 3)
    stream = Stream(Counted(x))
    np.testing.assert_array_equal(np.concatenate(list(stream.batches())), x)
    list(stream.blocks(5))
    assert Counted.ended == 2


def test_as_tensor_shares_aligned_memory_and_copies_the_rest():
    from keras_weightinit.data import aligned_empty, as_tensor

    aligned = aligned_empty((5, 3))
    aligned[:] = 1.0
    shared = as_tensor(aligned)
    aligned[0, 0] = 7.0  # shared: the tensor sees it
    assert float(shared[0, 0]) == 7.0
    unaligned = np.ones((5, 4), "float32")[:, 1:]  # not contiguous
    copied = as_tensor(unaligned)
    unaligned[0, 0] = 7.0
    assert float(copied[0, 0]) == 1.0
    np.testing.assert_array_equal(as_tensor(aligned).numpy(), aligned)
