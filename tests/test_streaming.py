"""Streaming pretraining: `RBM.fit` and `pretrain_dbn` on datasets read batch by batch.

What is identical, bit for bit: a dataset that fits in the shuffle buffer
and the same data as an array (the dataset is kept from the statistics pass
and trained on as the array); a streamed dataset and the same samples in the
same order batched differently, or as a `PyDataset` instead of a
`tf.data.Dataset`. What matches statistically: a streamed dataset and the
array (different shuffles, same training).
"""

import glob
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from keras_weightinit import RBM, DBNPretrain, pretrain_dbn
from keras_weightinit import rbm as rbm_module
from keras_weightinit.data import FeatureStats, Stream, rechunk, shuffle_blocks

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits():
    x = (load_digits().data / 16).astype("float32")
    return train_test_split(x, test_size=0.2, random_state=0)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 2 batches of 64 digits: many blocks per epoch, as for big data."""
    monkeypatch.setattr(rbm_module, "CHUNK_BYTES", 128 * 64 * 4)


class Batches(keras.utils.PyDataset):
    """A PyDataset over an array, counting the batches read and the passes."""

    def __init__(self, x, batch=50, y=True):
        super().__init__()
        self.x, self.batch, self.y = x, batch, y
        self.reads = self.epochs_ended = 0

    def __len__(self):
        return -(-len(self.x) // self.batch)

    def __getitem__(self, i):
        self.reads += 1
        x = self.x[i * self.batch : (i + 1) * self.batch]
        return (x, np.zeros(len(x))) if self.y else x

    def on_epoch_end(self):
        self.epochs_ended += 1


class Endless(keras.utils.PyDataset):
    @property
    def num_batches(self):
        return None

    def __getitem__(self, i):
        return np.full((4, 64), 0.5, "float32")


def dataset(x, batch=100):
    return tf.data.Dataset.from_tensor_slices((x, np.zeros(len(x)))).batch(batch)


def fitted(rbm, x, **kwargs):
    history = rbm.fit(x, verbose=0, **kwargs)
    return history, [p.copy() for p in (rbm.kernel, rbm.hidden_bias, rbm.visible_bias)]


def assert_same_fit(a, b):
    history_a, params_a = a
    history_b, params_b = b
    np.testing.assert_equal(history_a, history_b)
    for got, want in zip(params_a, params_b, strict=True):
        np.testing.assert_array_equal(got, want)


def mlp(activation="sigmoid", widths=(24, 16)):
    inputs = keras.Input((64,))
    h = inputs
    for width in widths:
        h = keras.layers.Dense(width, activation=activation)(h)
    return keras.Model(inputs, keras.layers.Dense(10)(h))


def pretrained_weights(model, x, **kwargs):
    """`(histories in layer order, pretrained kernels and biases)`."""
    histories = pretrain_dbn(model, x, verbose=0, **kwargs)
    dense = [lay for lay in model.layers if isinstance(lay, keras.layers.Dense)]
    weights = [w.numpy().copy() for lay in dense[:-1] for w in (lay.kernel, lay.bias)]
    return list(histories.values()), weights


# --------------------------------------------------------------------------
# what is identical


@pytest.mark.parametrize("persistent", [False, True])
def test_data_that_fit_the_buffer_train_exactly_as_the_array(digits, persistent):
    x_train, x_val = digits
    args = {"epochs": 3, "seed": 4, "persistent": persistent}
    want = fitted(RBM(32, **args), x_train, validation_data=x_val)
    for data in (dataset(x_train, 37), Batches(x_train)):
        rbm = RBM(32, **args)  # default buffer: 32,768 samples of 64 features
        assert_same_fit(fitted(rbm, data, validation_data=dataset(x_val)), want)
        assert rbm.fit_data_ == {"streamed": False, "samples": len(x_train)}


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
def test_pretraining_on_a_dataset_that_fits_equals_the_array(digits, activation):
    # Bernoulli, Gaussian (standardized from the same statistics) and
    # tanh-spin visible units on the layers above, sampled inputs included.
    x_train, _ = digits
    args = {"epochs": 2, "seed": 3}
    want = pretrained_weights(mlp(activation), x_train, **args)
    for data in (dataset(x_train, 64), Batches(x_train, 100)):
        got = pretrained_weights(mlp(activation), data, **args)
        np.testing.assert_equal(got[0], want[0])
        for a, b in zip(got[1], want[1], strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"persistent": True, "cd_steps": 2},
        {"sparsity_target": 0.1, "batch_size": 50},
    ],
)
def test_streamed_result_depends_on_the_samples_not_on_the_batching(
    digits, small_blocks, args
):
    x_train, x_val = digits
    settings = {"epochs": 3, "seed": 1, "shuffle_buffer": 300, **args}
    results = []
    for data in (dataset(x_train, 7), dataset(x_train, 500), Batches(x_train, 64)):
        rbm = RBM(16, **settings)
        results.append(fitted(rbm, data, validation_data=x_val))
        assert rbm.fit_data_["streamed"]
        assert rbm.fit_data_["samples"] == len(x_train)
        assert rbm.fit_data_["chunk"] == 2 * rbm.batch_size
    for result in results[1:]:
        assert_same_fit(result, results[0])
    # The seed decides: reproducible, and another one trains differently.
    again = fitted(RBM(16, **settings), dataset(x_train, 9), validation_data=x_val)
    assert_same_fit(again, results[0])
    other = fitted(RBM(16, **{**settings, "seed": 2}), dataset(x_train))
    assert not np.allclose(other[1][0], results[0][1][0])


def test_streamed_dbn_depends_on_the_samples_not_on_the_batching(digits):
    x_train, _ = digits
    args = {"epochs": 2, "seed": 0, "shuffle_buffer": 200}
    results = [
        pretrained_weights(mlp(), data, **args)
        for data in (dataset(x_train, 32), Batches(x_train, 300))
    ]
    np.testing.assert_equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1], strict=True):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# what matches statistically


def test_streamed_training_matches_the_array_statistically(digits, small_blocks):
    # Blocks of 128 samples through a 256-sample buffer: a different shuffle
    # from the array's, the same training. On 4 seeds (measured 2026-12-01)
    # both reach a reconstruction error of 0.0375 +- 0.0002 and a held-out
    # pseudo-likelihood of -17.5 +- 0.13; the bounds below are much wider.
    x_train, x_val = digits
    results = {}
    for name, data in (("array", x_train), ("stream", dataset(x_train, 50))):
        rbm = RBM(64, epochs=10, seed=0, shuffle_buffer=256)
        history = rbm.fit(data, validation_data=x_val, verbose=0)
        results[name] = (
            history["reconstruction_error"][-1],
            float(rbm.score_samples(x_val, seed=0).mean()),
            float(np.abs(rbm.reconstruct(x_val) - x_val).mean()),
            rbm.fit_data_["streamed"],
        )
    array, stream = results["array"], results["stream"]
    assert stream[3] and not array[3]
    assert stream[0] == pytest.approx(array[0], rel=0.05)
    assert abs(stream[1] - array[1]) < 1.0
    assert stream[2] == pytest.approx(array[2], rel=0.05)


def test_streamed_dbn_matches_the_array_statistically(digits):
    x_train, _ = digits
    args = {"epochs": 5, "seed": 0}
    array, _ = pretrained_weights(mlp("relu"), x_train, **args)
    streamed, _ = pretrained_weights(
        mlp("relu"), dataset(x_train, 50), shuffle_buffer=256, **args
    )
    for k in range(2):  # Bernoulli, then Gaussian visible units
        want = array[k]["reconstruction_error"][-1]
        got = streamed[k]["reconstruction_error"][-1]
        assert got == pytest.approx(want, rel=0.1), k


def test_statistics_pass_is_exact_and_its_sample_uniform():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (5000, 7)).astype("float32")
    x[:, 3] = 1.5  # a constant feature: variance exactly 0
    cuts = [0, 1, 50, 51, 999, 2500, 4999, 5000]
    stats = FeatureStats(sample_size=100, keep=10_000, seed=5)
    for start, stop in zip(cuts[:-1], cuts[1:], strict=True):
        stats.update(x[start:stop])
    wide = x.astype(np.float64)
    np.testing.assert_allclose(stats.mean, wide.mean(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(stats.std, wide.std(0), rtol=1e-5, atol=1e-6)
    assert stats.std[3] == 0
    np.testing.assert_array_equal(stats.minimum, x.min(0))
    np.testing.assert_array_equal(stats.maximum, x.max(0))
    np.testing.assert_array_equal(stats.rows, x)
    # The sample: distinct rows of x, the same whatever the cutting.
    rows = {r.tobytes() for r in x}
    assert len({r.tobytes() for r in stats.sample}) == 100
    assert all(r.tobytes() in rows for r in stats.sample)
    whole = FeatureStats(sample_size=100, seed=5)
    whole.update(x)
    np.testing.assert_array_equal(whole.sample, stats.sample)
    assert whole.rows is None  # keep=0
    # Uniform: over 200 seeds each tenth of the data gets about a tenth of
    # the sample (binomial sd ~ 0.7%; the bound is 5 sd).
    index = np.arange(5000, dtype="float32")[:, None]
    counts = np.zeros(10)
    for seed in range(200):
        s = FeatureStats(sample_size=100, seed=seed)
        for start in range(0, 5000, 333):
            s.update(index[start : start + 333])
        counts += np.bincount((s.sample[:, 0] // 500).astype(int), minlength=10)
    np.testing.assert_allclose(counts / counts.sum(), 0.1, atol=0.035)
    # The affine map gives the statistics of the mapped data.
    shift, scale = x.mean(0), np.maximum(x.std(0), 1)
    mapped = stats.affine(shift, scale)
    v = (x - shift) / scale
    np.testing.assert_allclose(mapped.mean, v.astype(np.float64).mean(0), atol=1e-5)
    np.testing.assert_array_equal(mapped.minimum, v.min(0))
    np.testing.assert_array_equal(mapped.sample, (stats.sample - shift) / scale)
    np.testing.assert_array_equal(mapped.rows, v)


@pytest.mark.parametrize("buffer", [0, 64, 100, 1000, 5000])
def test_shuffle_buffer_permutes_within_its_reach(buffer):
    x = np.arange(3000, dtype="float32")[:, None]
    outs = []
    for cut in (1, 17, 3000):
        rng = np.random.default_rng(0)
        blocks = list(shuffle_blocks(rechunk([x], cut), buffer, rng, 64))
        assert all(len(b) == 64 for b in blocks[:-1])
        outs.append(np.concatenate(blocks)[:, 0].astype(int))
    for out in outs:
        np.testing.assert_array_equal(out, outs[0])
    order = outs[0]
    np.testing.assert_array_equal(np.sort(order), np.arange(3000))
    position = np.empty(3000, int)
    position[order] = np.arange(3000)
    # No sample leaves more than buffer + size places early; none moves
    # without a buffer; a buffer of the data's size shuffles it all.
    assert np.all(position >= np.arange(3000) - max(buffer, 64) - 64)
    if buffer == 0:
        np.testing.assert_array_equal(order, np.arange(3000))
    if buffer >= 3000:
        assert abs(np.corrcoef(order, np.arange(3000))[0, 1]) < 0.1


# --------------------------------------------------------------------------
# guarantees: checks, restoring, logging


def test_infinite_datasets_are_refused_and_validation_read_only_so_far(digits):
    x_train, x_val = digits
    infinite = dataset(x_train).repeat()
    for data in (infinite, Endless()):
        with pytest.raises(ValueError, match=r"Argument `x` is an infinite"):
            RBM(4, epochs=1).fit(data, verbose=0)
        with pytest.raises(ValueError, match=r"Argument `x` is an infinite"):
            pretrain_dbn(mlp(), data, verbose=0, epochs=1)
        with pytest.raises(ValueError, match=r"Argument `x` is an infinite"):
            DBNPretrain(data, epochs=1)
    # Validation data: only the first 512 samples are read (the monitors use
    # no more), so an endless one works and a long one is not read through.
    val = Batches(np.tile(x_val, (10, 1)), batch=100)
    history = RBM(8, epochs=2, seed=0).fit(
        dataset(x_train), validation_data=val, verbose=0
    )
    assert val.reads == 6 and len(history["val_free_energy"]) == 2
    RBM(8, epochs=1).fit(x_train, validation_data=dataset(x_val).repeat(), verbose=0)


def test_unknown_cardinality_is_read_to_its_end_each_pass(digits, small_blocks):
    x_train, _ = digits
    passes = []

    def generate():
        passes.append(1)
        for i in range(0, len(x_train), 100):
            yield x_train[i : i + 100]

    ds = tf.data.Dataset.from_generator(
        generate, output_signature=tf.TensorSpec([None, 64], tf.float32)
    )
    assert ds.cardinality() == tf.data.UNKNOWN_CARDINALITY
    rbm = RBM(8, epochs=3, seed=0, shuffle_buffer=100)
    rbm.fit(ds, verbose=0)
    assert len(passes) == 4  # the statistics pass, then one per epoch
    assert rbm.fit_data_["samples"] == len(x_train)
    batches = Batches(x_train)
    RBM(8, epochs=2, shuffle_buffer=100).fit(batches, verbose=0)
    assert batches.epochs_ended == 3  # on_epoch_end after each full pass


def test_shuffle_buffer_argument_is_checked():
    for value in (-1, 1.5, "big", True):
        with pytest.raises(ValueError, match=r"Argument `shuffle_buffer` must be"):
            RBM(4, shuffle_buffer=value)
        with pytest.raises(ValueError, match=f"shuffle_buffer={value!r}"):
            DBNPretrain(np.zeros((4, 64), "float32"), shuffle_buffer=value)
    assert RBM(4, shuffle_buffer=0).get_config()["shuffle_buffer"] == 0


class Changing(keras.utils.PyDataset):
    """Clean batches in the statistics pass, a bad batch in a later pass."""

    def __init__(self, x, bad, after_reads):
        super().__init__()
        self.x, self.bad, self.after = x, bad, after_reads
        self.reads = 0

    def __len__(self):
        return len(self.x) // 100

    def __getitem__(self, i):
        self.reads += 1
        batch = self.x[i * 100 : (i + 1) * 100].copy()
        if self.reads > self.after and i == 3:
            return self.bad(batch)
        return batch


def nan(batch):
    batch[5, 5] = np.nan
    return batch


@pytest.mark.parametrize(
    "data, match",
    [
        (lambda x: dataset(x.reshape(-1, 8, 8)), r"`x` must be 2-D"),
        (lambda x: dataset(x[:, :10]).concatenate(dataset(x[:, :12])), "10 features"),
        (lambda x: dataset(x * 2), r"\[0, 1\]; argument `x` ranges over \[0, 2\]"),
        (lambda x: Changing(x, nan, 0), "contains 1 NaN or infinite"),
        (lambda x: dataset(x[:0]), "holds no samples"),
        (lambda x: tf.data.Dataset.from_tensor_slices(x), "must be a batched"),
        (lambda x: Changing(x, lambda b: b.astype(str), 0), "must hold numbers"),
        # Data that change after the statistics pass are checked as read.
        (lambda x: Changing(x, nan, 14), "contains 1 NaN or infinite"),
        (lambda x: Changing(x, lambda b: b + 1, 14), r"ranges over \[1, 2\]"),
        (lambda x: Changing(x, lambda b: b[:, :9], 14), "64 features"),
    ],
)
def test_bad_streams_fail_and_the_previous_fit_stays(digits, data, match):
    x_train, _ = digits
    rbm = RBM(8, epochs=2, seed=0, shuffle_buffer=100)
    rbm.fit(x_train, verbose=0)
    kernel = rbm.kernel.copy()
    with pytest.raises(ValueError, match=match):
        rbm.fit(data(x_train), verbose=0)
    np.testing.assert_array_equal(rbm.kernel, kernel)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_interrupted_streamed_dbn_gets_its_weights_back(digits, error):
    x_train, _ = digits

    class Failing(Batches):
        def __getitem__(self, i):
            if self.reads == 50:  # 15 batches a pass: the second layer's stats
                raise error("boom")
            return super().__getitem__(i)

    model = mlp()
    weights = [w.copy() for w in model.get_weights()]
    data = Failing(x_train, 100)
    with pytest.raises(error):
        pretrain_dbn(model, data, epochs=2, shuffle_buffer=100, verbose=0)
    assert data.reads == 50  # past the first layer, which was set
    for got, want in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(got, want)


def test_bernoulli_check_before_any_weight_is_touched(digits):
    x_train, _ = digits
    model = mlp()
    weights = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=r"visible='bernoulli'.*\[0, 2\]"):
        pretrain_dbn(model, dataset(x_train * 2), visible="bernoulli", verbose=0)
    for got, want in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(got, want)


def test_streamed_dbn_logs_and_reports_progress(digits, tmp_path, capsys):
    x_train, _ = digits
    model = mlp(widths=(12,))
    pretrain_dbn(
        model, dataset(x_train), epochs=2, shuffle_buffer=100, log_dir=str(tmp_path)
    )
    printed = capsys.readouterr().out
    name = model.layers[1].name
    assert f"pretrain/{name}: 64 bernoulli -> 12 bernoulli (streaming 1437" in printed
    assert "reconstruction_error" in printed
    tags = set()
    for path in glob.glob(os.path.join(tmp_path, "events.out.tfevents*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    assert {f"pretrain/{name}/reconstruction_error", f"pretrain/{name}/filters"} <= tags


def test_callback_streams_its_dataset(digits):
    x_train, _ = digits
    y = np.zeros(len(x_train), "int64")
    model = mlp()
    model.compile("sgd", "sparse_categorical_crossentropy")
    callback = DBNPretrain(dataset(x_train), epochs=1, shuffle_buffer=100, verbose=0)
    model.fit(x_train, y, epochs=1, verbose=0, callbacks=[callback])
    assert set(callback.result) == {model.layers[1].name, model.layers[2].name}


def test_layer_inputs_do_not_run_the_layer_itself(digits):
    x_train, _ = digits
    calls = []

    class Counted(keras.layers.Dense):
        def call(self, inputs):
            calls.append(self.name)
            return super().call(inputs)

    inputs = keras.Input((64,))
    h = Counted(8, activation="sigmoid", name="a")(inputs)
    h = Counted(8, activation="sigmoid", name="b")(h)
    model = keras.Model(inputs, Counted(10, name="out")(h))
    calls.clear()
    pretrain_dbn(model, dataset(x_train), epochs=1, shuffle_buffer=100, verbose=0)
    # "a" runs only as the layer below "b": in b's statistics pass and epoch.
    assert "out" not in calls and set(calls) == {"a"}
    assert len(calls) == 2 * len(list(Stream(dataset(x_train)).blocks(2048)))


# --------------------------------------------------------------------------
# memory, backends, benchmark: in subprocesses

MEMORY_SCRIPT = """
import json, os, resource
import keras, numpy as np, tensorflow as tf
from keras_weightinit import RBM, pretrain_dbn

def lazy(n):  # binary 784-pixel images, each batch made when read
    def make(i):
        seed = tf.stack([i, tf.constant(1, tf.int64)])
        return tf.cast(tf.random.stateless_uniform([100, 784], seed) < 0.3, tf.float32)
    return tf.data.Dataset.range(n // 100).map(make)

class Lazy(keras.utils.PyDataset):
    def __init__(self, n):
        super().__init__()
        self.n = n
    def __len__(self):
        return self.n // 100
    def __getitem__(self, i):
        rng = np.random.default_rng(i)
        return (rng.random((100, 784)) < 0.3).astype("float32")

def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key + ":"))

def growth(run):
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        before = status("VmRSS")
        run()
        return status("VmHWM") - before
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        run()
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before

streamed = []
original = RBM.fit
def recording_fit(self, *args, **kwargs):
    result = original(self, *args, **kwargs)
    streamed.append(self.fit_data_["streamed"])
    return result
RBM.fit = recording_fit

def model():
    inputs = keras.Input((784,))
    h = keras.layers.Dense(16, activation="sigmoid")(inputs)
    return keras.Model(inputs, keras.layers.Dense(10)(h))

out = {}
for name, make in (("tf.data", lazy), ("PyDataset", Lazy)):
    run = lambda n: pretrain_dbn(model(), make(n), epochs=1, seed=0, verbose=0)
    run(20_000)  # warm-up: TF's one-off costs (code, traces, pools)
    out[name] = growth(lambda: run(100_000))
out["streamed"] = streamed
print(json.dumps(out))
"""


def run_python(script: str, timeout: int = 600, **env) -> str:
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **env)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_streaming_memory_stays_far_below_the_dataset():
    # 100,000 x 784 float32 = 299 MiB generated lazily; streamed, the peak
    # RSS grows by a few MiB (the shuffle buffer holds 8 MiB, blocks 4 MiB).
    # Materializing it would cost at least 299 MiB (7x that, issue).
    result = json.loads(run_python(MEMORY_SCRIPT))
    assert result["streamed"] == [True] * 4
    size = 100_000 * 784 * 4
    for name in ("tf.data", "PyDataset"):
        assert result[name] < size / 3, (name, result[name] / 2**20)


BACKEND_SCRIPT = """
import json, os
import keras, numpy as np, tensorflow as tf
from sklearn.datasets import load_digits
from keras_weightinit import RBM, pretrain_dbn

assert keras.backend.backend() == os.environ["KERAS_BACKEND"]
x = (load_digits().data[:400] / 16).astype("float32")

class Batches(keras.utils.PyDataset):
    def __len__(self):
        return 8
    def __getitem__(self, i):
        return x[i * 50 : (i + 1) * 50]

def model():
    return keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(12, activation="sigmoid"),
        keras.layers.Dense(8, activation="relu"),
        keras.layers.Dense(10),
    ])

def run(data, **kwargs):
    m = model()
    before = [keras.ops.convert_to_numpy(w).copy() for w in m.weights]
    pretrain_dbn(m, data, epochs=2, seed=0, verbose=0, **kwargs)
    after = [keras.ops.convert_to_numpy(w) for w in m.weights]
    return m, before, after

_, _, array = run(x)
_, _, fits = run(tf.data.Dataset.from_tensor_slices(x).batch(64))
m, before, streamed = run(Batches(), shuffle_buffer=100)
w, c = streamed[0], streamed[1]
out = keras.ops.convert_to_numpy(m.layers[0](x[:5]))
same = lambda a, b: all(np.array_equal(u, v) for u, v in zip(a, b))
print(json.dumps({
    "backend": keras.backend.backend(),
    "fits_equals_array": same(array[:4], fits[:4]),  # the pretrained layers
    "pretrained_changed": not any(
        np.array_equal(a, b) for a, b in zip(before[:4], streamed[:4])
    ),
    "output_untouched": same(before[4:], streamed[4:]),
    "finite": all(bool(np.isfinite(a).all()) for a in streamed),
    "layer_is_sigmoid_of_kernel": bool(
        np.allclose(out, 1 / (1 + np.exp(-(x[:5] @ w + c))), atol=1e-5)
    ),
}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_pretrain_dbn_on_other_backends(backend):
    # The RBMs train in TensorFlow and hand their weights to the model's
    # variables, so pretraining works on every backend; the backend is fixed
    # when Keras is imported, hence a subprocess each.
    pytest.importorskip(backend)
    result = json.loads(run_python(BACKEND_SCRIPT, KERAS_BACKEND=backend))
    assert result == {
        "backend": backend,
        "fits_equals_array": True,
        "pretrained_changed": True,
        "output_untouched": True,
        "finite": True,
        "layer_is_sigmoid_of_kernel": True,
    }


@pytest.mark.slow
def test_bench_pretrain_stream_quick(capsys):
    spec = importlib.util.spec_from_file_location(
        "bench_pretrain_stream", ROOT / "benchmarks" / "bench_pretrain_stream.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--quick"])
    memory, speed = result["memory"], result["speed"]
    assert memory["samples"] == 4_000 and memory["warm_growth"] >= 0
    assert {(row["api"], row["source"]) for row in speed} == {
        ("pretrain_dbn", "tf.data"),
        ("pretrain_dbn", "PyDataset"),
        ("RBM.fit", "tf.data"),
    }
    for row in speed:
        assert row["stream"] > 0 and row["array"] > 0
        assert row["ratio"] == pytest.approx(row["stream"] / row["array"])
    printed = capsys.readouterr().out
    assert "| lazy dataset |" in printed and "| pretrain_dbn | tf.data |" in printed
