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
