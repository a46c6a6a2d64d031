"""Past one machine: the tools on Keras's distribution engine (issue 15).

The multi-process claims run two JAX processes on 127.0.0.1, joined by
`keras.distribution.initialize` with gloo collectives, each holding its own
shard of digits; the sharding claims run one process with two CPU devices
under a `ModelParallel` `LayoutMap`. The children run this module's
`_child` (a script in `tmp_path` imports it) and write JSON and npz files
that the tests read; each run happens once per module.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARDS = (slice(0, 300), slice(300, 500))  # unequal: the weighting matters
TIMEOUT = 4  # seconds, KERAS_WEIGHTINIT_TIMEOUT in the timeout scenario


# --------------------------------------------------------------------------
# one process: nothing to exchange


def test_one_process_exchanges_nothing_and_returns_its_values():
    from keras_weightinit import distributed

    values = {"a": np.arange(3.0)}
    assert distributed.process_count() == 1 and distributed.is_writer()
    assert distributed.mean_across_processes(values) is values
    assert distributed.shared_seed(None) is None and distributed.shared_seed(5) == 5
    distributed.check_same_across_processes("x", np.ones(3))
    with distributed.together("nothing"):
        pass


def test_a_count_turns_sums_into_the_mean_over_samples():
    from keras_weightinit import distributed

    sums = {"s": np.array([6.0, 9.0]), "t": 12.0}
    mean = distributed.mean_across_processes(sums, count=3)
    np.testing.assert_array_equal(mean["s"], [2.0, 3.0])
    assert mean["t"] == 4.0


def test_bad_counts_and_timeouts_name_the_argument(monkeypatch):
    from keras_weightinit import distributed

    with pytest.raises(ValueError, match=r"`count`.*Received: count=-1"):
        distributed.mean_across_processes([1.0], count=-1)
    with pytest.raises(ValueError, match=r"sum to a positive.*count=0"):
        distributed.mean_across_processes([1.0], count=0)
    monkeypatch.setenv("KERAS_WEIGHTINIT_TIMEOUT", "soon")
    with pytest.raises(ValueError, match=r"KERAS_WEIGHTINIT_TIMEOUT='soon'"):
        distributed.collective_timeout()
    monkeypatch.setenv("KERAS_WEIGHTINIT_TIMEOUT", "2.5")
    assert distributed.collective_timeout() == 2.5


def test_initializers_accept_the_layout_keras_passes():
    import inspect

    import keras_weightinit as kw

    for make in (
        lambda: kw.HeNormal(seed=0),
        lambda: kw.Orthogonal(seed=1),
        lambda: kw.XavierUniform(seed=2),
        kw.ZerO,
    ):
        assert "layout" in inspect.signature(make()).parameters
        np.testing.assert_array_equal(
            np.asarray(make()((4, 3), layout=None)), np.asarray(make()((4, 3)))
        )


# --------------------------------------------------------------------------
# two processes simulated by two threads: the protocol, in seconds


def _as_two_processes(monkeypatch, first, second) -> list:
    """Runs `first` and `second` as processes 0 and 1 of two (threads).

    Their exchanges meet at a barrier; each returns `("ok", result)` or
    `(error type, message)`.
    """
    import threading

    from keras_weightinit import distributed

    local = threading.local()
    barrier = threading.Barrier(2, timeout=30)
    slots = [None, None]

    def gather(words, what):
        slots[local.index] = np.array(words)
        barrier.wait()
        gathered = np.stack(slots)
        barrier.wait()  # both have read before either writes again
        return gathered

    monkeypatch.setattr(distributed, "_gather", gather)
    monkeypatch.setattr(distributed, "process_count", lambda: 2)
    monkeypatch.setattr(distributed, "process_index", lambda: local.index)
    results = [None, None]

    def run(index, program):
        local.index = index
        try:
            results[index] = ("ok", program())
        except Exception as error:  # recorded for the test
            results[index] = (type(error).__name__, str(error))

    threads = [
        threading.Thread(target=run, args=(i, p)) for i, p in enumerate((first, second))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads), "a simulated process hangs"
    return results


def test_simulated_processes_get_lsuv_and_diagnose_of_the_union(monkeypatch):
    from keras_weightinit import diagnose, lsuv

    x, y = _digits()
    models = [_mlp(), _mlp(), _mlp()]
    lsuv(models[0], np.concatenate([x[SHARDS[0]], x[SHARDS[1]]]), orthogonal=False)
    expected = diagnose(models[0], x[: SHARDS[1].stop], y[: SHARDS[1].stop])

    def program(i):
        def run():
            lsuv(models[i + 1], x[SHARDS[i]], orthogonal=False)
            return diagnose(models[i + 1], x[SHARDS[i]], y[SHARDS[i]]).to_dict()

        return run

    results = _as_two_processes(monkeypatch, program(0), program(1))
    assert results[0][0] == "ok", results
    for result in results:  # one process's layer names are its own
        for row in result[1]["rows"]:
            row.pop("name")
        result[1].pop("span")
    assert results[0] == results[1]
    for a, b, c in zip(*(_weights(m) for m in models), strict=True):
        np.testing.assert_array_equal(b, c)
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
    got = results[0][1]
    assert got["verdict"] == expected.verdict
    for row, want in zip(got["rows"], expected.rows, strict=True):
        assert row["grad_norm"] == pytest.approx(want["grad_norm"], rel=1e-5)
        assert row["std"] == pytest.approx(want["std"], rel=1e-5)


def test_processes_at_different_steps_fail_on_both(monkeypatch):
    from keras_weightinit import distributed

    def averaging():
        with distributed.together("lsuv"):
            return distributed.mean_across_processes([1.0], count=1)

    def checking():
        with distributed.together("diagnose"):
            distributed.check_same_across_processes("loss", "mse")

    results = _as_two_processes(monkeypatch, averaging, checking)
    for kind, message in results:
        assert kind == "ProcessError" and "out of step" in message
        assert "lsuv > mean_across_processes" in message
        assert "diagnose > check of `loss`" in message


def test_an_error_after_the_last_exchange_fails_the_other_process(monkeypatch):
    from keras_weightinit import distributed

    def finishing():
        with distributed.together("initialize"):
            return distributed.shared_seed(None)

    def failing():
        with distributed.together("initialize"):
            distributed.shared_seed(None)
            raise KeyError("late")

    results = _as_two_processes(monkeypatch, finishing, failing)
    assert results[1] == ("KeyError", "'late'")
    assert results[0][0] == "ProcessError"
    assert "process 1 failed: initialize: KeyError: 'late'" in results[0][1]


def test_a_seed_none_is_process_0s_and_an_int_seed_must_agree(monkeypatch):
    import random

    from keras_weightinit import distributed

    def draw(own, seed):
        def run():
            random.seed(own)  # each process's stream differs
            return distributed.shared_seed(seed)

        return run

    first, second = _as_two_processes(monkeypatch, draw(0, None), draw(1, None))
    assert first[0] == "ok" and first == second
    results = _as_two_processes(monkeypatch, draw(0, 3), draw(0, 4))
    for kind, message in results:
        assert kind == "ValueError"
        assert "Argument `seed` must be the same on every process" in message
        assert "process 0: 3; process 1: 4" in message


# --------------------------------------------------------------------------
# the children: two processes on 127.0.0.1, or one with two devices


def _digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.data / 16.0).astype("float32"), data.target.astype("int32")


def _mlp(width=32, seed=0):
    """64 -> width -> 32 -> 10 softmax, drawn from seeded initializers."""
    import keras

    import keras_weightinit as kw

    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(
                width, activation="relu", kernel_initializer=kw.HeNormal(seed=seed)
            ),
            keras.layers.Dense(
                32, activation="relu", kernel_initializer=kw.HeNormal(seed=seed + 1)
            ),
            keras.layers.Dense(
                10,
                activation="softmax",
                kernel_initializer=kw.XavierNormal(seed=seed + 2),
            ),
        ]
    )


def _data_parallel(process: int):
    """Sets a DataParallel distribution over all devices; this process's shard."""
    import keras

    distribution = keras.distribution.DataParallel(
        devices=keras.distribution.list_devices()
    )
    distribution.auto_shard_dataset = False  # each process reads its own shard
    keras.distribution.set_distribution(distribution)
    x, y = _digits()
    return x[SHARDS[process]], y[SHARDS[process]]


def _weights(model) -> list:
    return [np.asarray(v) for v in model.weights]


def _attempt(run) -> dict:
    """`run()`'s error (type, message, seconds), or None if it raised none."""
    start = time.monotonic()
    try:
        run()
    except Exception as error:  # recorded for the test
        return {
            "type": type(error).__name__,
            "message": str(error),
            "seconds": time.monotonic() - start,
        }
    return {"type": None, "message": "", "seconds": time.monotonic() - start}


def _good(process: int, out: Path) -> None:
    """initialize, lsuv, diagnose, LSUVInit in `fit`, DataParallel over both."""
    import keras

    from keras_weightinit import LSUVInit, diagnose, initialize, lsuv

    x, y = _data_parallel(process)
    model = _mlp()
    shardings = [v.value.sharding for v in model.weights]
    keras.utils.set_random_seed(process)  # the processes' own streams differ now
    stages, record = {}, {}
    initialize(model, "he", seed=None)
    stages["initialized"] = _weights(model)
    report = lsuv(model, x, orthogonal=False)
    stages["rescaled"] = _weights(model)
    record["iterations"] = [row["iterations"] for row in report.values()]
    lsuv(model, x, seed=None)
    stages["lsuv"] = _weights(model)
    record["diagnosis"] = diagnose(model, x, y).to_dict()
    record["layout_kept"] = all(
        v.value.sharding == s for v, s in zip(model.weights, shardings, strict=True)
    )
    record["replicated"] = all(
        v.value.sharding.is_fully_replicated for v in model.weights
    )
    model.compile("sgd", "sparse_categorical_crossentropy")
    callback = LSUVInit(x, seed=None)
    steps = dict(batch_size=100, epochs=1, verbose=0, shuffle=False)  # 2 each
    model.fit(x[:200], y[:200], callbacks=[callback], **steps)
    stages["fitted"] = _weights(model)
    record["callback"] = [row["iterations"] for row in callback.result.values()]
    from keras_weightinit import set_base_shapes

    wide = _mlp(width=64)
    keras.utils.set_random_seed(10 + process)
    set_base_shapes(wide, _mlp(width=16), seed=None)  # µP: one draw for all
    stages["mup"] = _weights(wide)
    np.savez(
        out / f"{process}.npz",
        **{f"{k}/{i}": w for k, ws in stages.items() for i, w in enumerate(ws)},
    )
    (out / f"{process}.json").write_text(json.dumps(record))


def _dbn(process: int, out: Path) -> None:
    """DBNPretrain and GradientHistograms in one `fit`, each process a shard."""
    import glob

    import keras

    from keras_weightinit import DBNPretrain, GradientHistograms, pretrain_dbn

    x, y = _data_parallel(process)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,))]
        + [keras.layers.Dense(16, activation="sigmoid") for _ in range(2)]
        + [keras.layers.Dense(10, activation="softmax")]
    )
    model.compile("sgd", "sparse_categorical_crossentropy")
    before = _weights(model)
    dbn = DBNPretrain(x, epochs=2, batch_size=50, verbose=0, seed=None)
    logs = out / "logs"
    probe = _digits()[0][:64], _digits()[1][:64]  # the same on both processes
    histograms = GradientHistograms(str(logs), data=probe)
    steps = dict(batch_size=100, epochs=1, verbose=0, shuffle=False)
    model.fit(x[:200], y[:200], callbacks=[dbn, histograms], **steps)
    after = _weights(model)
    record = {
        "errors": {k: v["reconstruction_error"] for k, v in dbn.result.items()},
        "changed": [bool(np.any(a != b)) for a, b in zip(after, before, strict=True)],
        "event_files": sorted(
            os.path.relpath(f, logs)
            for f in glob.glob(str(logs / "**/events*"), recursive=True)
        ),
    }
    # A shard that is not the same on both processes is refused on both.
    record["bad_probe"] = _attempt(
        lambda: model.fit(
            x[:100],
            y[:100],
            callbacks=[GradientHistograms(str(logs), (x[:8], y[:8]))],
            **steps,
        )
    )
    # A process failing mid-pretraining fails both; weights untouched.
    kept = _weights(model)

    def failing():
        data = x.copy()
        if process == 1:
            data[5, 0] = np.nan
        pretrain_dbn(model, data, epochs=1, verbose=0, seed=0)

    record["failed"] = _attempt(failing)
    record["untouched"] = _same(_weights(model), kept)
    np.savez(out / f"{process}.npz", **{str(i): w for i, w in enumerate(after)})
    (out / f"{process}.json").write_text(json.dumps(record))


def _bad(process: int, out: Path) -> None:
    """Disagreeing models, batches, a failing and a stalled process."""
    import keras

    from keras_weightinit import distributed, lsuv, model_init

    x = _digits()[0][SHARDS[process]]
    record = {}

    wider = _mlp(width=32 if process == 0 else 16)
    before = _weights(wider)
    record["model"] = _attempt(lambda: model_init.initialize(wider, "he", seed=0))
    record["model"]["unchanged"] = _same(before, _weights(wider))
    record["batch"] = _attempt(
        lambda: distributed.check_same_across_processes("x", x[:64])
    )

    distribution = keras.distribution.DataParallel(
        devices=keras.distribution.list_devices()
    )
    keras.distribution.set_distribution(distribution)
    model = _mlp()
    before = _weights(model)
    bad = x.copy()
    if process == 1:
        bad[3, 5] = np.nan
    record["nan"] = _attempt(lambda: lsuv(model, bad, seed=0))
    record["nan"]["unchanged"] = _same(before, _weights(model))

    os.environ["KERAS_WEIGHTINIT_TIMEOUT"] = str(TIMEOUT)
    if process == 0:  # stalls in lsuv's first forward pass (a chain has one)
        forward, calls = model_init.forward, []

        def stalled(*args, **kwargs):
            calls.append(1)
            if len(calls) == 1:
                time.sleep(2 * TIMEOUT)  # the other has timed out and left
            return forward(*args, **kwargs)

        model_init.forward = stalled
    record["stalled"] = _attempt(lambda: lsuv(model, x, seed=0))
    record["stalled"]["unchanged"] = _same(before, _weights(model))
    (out / f"{process}.json").write_text(json.dumps(record))


def _same(a: list, b: list) -> bool:
    return all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


def _layout(out: Path) -> None:
    """One process, two devices: a ModelParallel LayoutMap shards the kernels."""
    import keras
    from scipy import stats

    import keras_weightinit as kw
    from keras_weightinit import distributed, initializers

    calls = []
    draw_sharded = initializers.draw_sharded

    def spy(draw, layout, **kwargs):
        calls.append(str(layout.spec))
        return draw_sharded(draw, layout, **kwargs)

    initializers.draw_sharded = spy
    devices = keras.distribution.list_devices()
    mesh = keras.distribution.DeviceMesh((1, 2), ["batch", "model"], devices)
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[".*dense.*kernel"] = (None, "model")
    distribution = keras.distribution.ModelParallel(layout_map=layout_map)

    def build():
        return keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(
                    256, activation="relu", kernel_initializer=kw.HeNormal(seed=0)
                ),
                keras.layers.Dense(
                    128, activation="tanh", kernel_initializer=kw.Orthogonal(seed=1)
                ),
                keras.layers.Dense(10, kernel_initializer=kw.XavierUniform(seed=2)),
            ]
        )

    with distribution.scope():
        model = build()
    plain = build()
    kernels = [layer.kernel for layer in model.layers]

    def shards():
        return [
            [
                str(k.value.sharding.spec),
                [list(s.data.shape) for s in k.value.addressable_shards],
            ]
            for k in kernels
        ]

    record = {"devices": len(devices), "layout_calls": calls, "created": shards()}
    record["same_as_unsharded"] = _same(_weights(model), _weights(plain))
    first = np.asarray(kernels[0]).ravel()
    record["he_ks_pvalue"] = float(
        stats.kstest(first, "norm", (0, np.sqrt(2 / 64))).pvalue
    )

    kw.initialize(model, "orthogonal", seed=0)
    kw.initialize(plain, "orthogonal", seed=0)
    record["initialized"] = shards()
    record["initialize_same_as_unsharded"] = _same(_weights(model), _weights(plain))
    record["orthogonal_error"] = max(
        float(np.abs(w.T @ w - np.eye(w.shape[1])).max())
        if w.shape[0] >= w.shape[1]
        else float(np.abs(w @ w.T - np.eye(w.shape[0])).max())
        for w in map(np.asarray, kernels)
    )
    x = _digits()[0][:256]
    report = kw.lsuv(model, x, seed=0)
    kw.lsuv(plain, x, seed=0)
    record["lsuv"] = shards()
    record["lsuv_converged"] = not report.not_converged
    record["lsuv_difference"] = max(
        float(np.abs(a - b).max())
        for a, b in zip(_weights(model), _weights(plain), strict=True)
    )
    # DBN pretraining folds its RBMs into the sharded kernels, in place.
    with distribution.scope():
        sigmoid = _sharded_mlp("sigmoid")
    created = [str(v.value.sharding.spec) for v in sigmoid.weights]
    kw.pretrain_dbn(sigmoid, x, epochs=1, verbose=0, seed=0)
    record["dbn_kept"] = created == [
        str(v.value.sharding.spec) for v in sigmoid.weights
    ]
    record["dbn_sharded"] = sum(
        not v.value.sharding.is_fully_replicated for v in sigmoid.weights
    )
    record["process_count"] = distributed.process_count()
    (out / "0.json").write_text(json.dumps(record))


def _sharded_mlp(activation: str):
    """A 64-32-32-10 MLP (its kernels sharded when made in a distribution scope)."""
    import keras

    return keras.Sequential(
        [keras.Input((64,))]
        + [keras.layers.Dense(32, activation=activation) for _ in range(2)]
        + [keras.layers.Dense(10, activation="softmax")]
    )


def _child(role: str, port: int, process: int, out: str) -> None:
    """A child's main: join the processes, run `role`, exit at once.

    Exiting with `os._exit` skips JAX's shutdown barrier, which after a peer
    died waits for its heartbeat timeout.
    """
    import traceback

    try:
        if role != "layout":
            import jax
            import keras

            jax.config.update("jax_cpu_collectives_implementation", "gloo")
            keras.distribution.initialize(
                f"127.0.0.1:{port}", num_processes=2, process_id=process
            )
        roles = {"good": _good, "bad": _bad, "dbn": _dbn}
        roles["layout"] = lambda p, o: _layout(o)
        roles[role](process, Path(out))
    except BaseException:  # reported through stderr
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# --------------------------------------------------------------------------
# launching


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(out: Path, role: str, processes: int, limit: float, **env) -> list:
    """Runs `processes` children of `role`; their JSON records, by process.

    Every child is killed if one fails or the run passes `limit` seconds.
    """
    script = out / "child.py"
    script.write_text(
        "import sys\n"
        f"sys.path[:0] = [{str(HERE)!r}, {str(ROOT)!r}]\n"
        "from test_distributed import _child\n"
        "_child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])\n"
    )
    environment = {
        **{k: v for k, v in os.environ.items() if k != "XLA_FLAGS"},
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "KERAS_WEIGHTINIT_TIMEOUT": "60",
        **env,
    }
    port = _free_port()
    children = []
    try:
        for i in range(processes):
            log = (out / f"{i}.log").open("w")
            children.append(
                subprocess.Popen(
                    [sys.executable, str(script), role, str(port), str(i), str(out)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=environment,
                )
            )
        deadline = time.monotonic() + limit
        while any(c.poll() is None for c in children):
            failed = [c for c in children if c.returncode not in (None, 0)]
            if failed or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    logs = "\n".join(
        f"--- process {i} ---\n" + (out / f"{i}.log").read_text()[-3000:]
        for i in range(processes)
    )
    assert all(c.returncode == 0 for c in children), logs
    return [json.loads((out / f"{i}.json").read_text()) for i in range(processes)]


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    out = tmp_path_factory.mktemp("good")
    records = _launch(out, "good", 2, limit=150)
    stored = [dict(np.load(out / f"{i}.npz")) for i in range(2)]
    return records, stored


@pytest.fixture(scope="module")
def dbn(tmp_path_factory):
    out = tmp_path_factory.mktemp("dbn")
    records = _launch(out, "dbn", 2, limit=240)
    return records, [dict(np.load(out / f"{i}.npz")) for i in range(2)]


@pytest.mark.slow
def test_two_processes_pretrain_one_dbn_and_write_one_event_file(dbn):
    (first, second), (weights_0, weights_1) = dbn
    # Different shards, one DBN: every weight is the same on both processes,
    # and pretraining and training changed every one of them.
    assert weights_0.keys() == weights_1.keys()
    for key in weights_0:
        np.testing.assert_array_equal(weights_0[key], weights_1[key])
    assert all(first["changed"]) and first["changed"] == second["changed"]
    assert first["errors"] == second["errors"]  # the mean over both shards
    assert all(np.isfinite(e).all() for e in first["errors"].values())
    # Process 0 alone wrote: one event file, in GradientHistograms' run dir.
    assert len(first["event_files"]) == 1
    assert first["event_files"][0].startswith("gradients")


@pytest.mark.slow
def test_a_differing_probe_batch_and_a_failing_process_fail_both(dbn):
    (first, second), _ = dbn
    for record in (first, second):
        assert record["bad_probe"]["type"] == "ValueError"
        assert (
            "`data` must be the same on every process" in record["bad_probe"]["message"]
        )
        assert record["untouched"]
    assert second["failed"]["type"] == "ValueError"  # its own NaN
    assert "NaN" in second["failed"]["message"]
    assert first["failed"]["type"] == "ProcessError"
    assert "process 1" in first["failed"]["message"]


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return _launch(tmp_path_factory.mktemp("bad"), "bad", 2, limit=120)


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    out = tmp_path_factory.mktemp("layout")
    flags = "--xla_force_host_platform_device_count=2"
    return _launch(out, "layout", 1, limit=120, XLA_FLAGS=flags)[0]


def _stage(stored: dict, stage: str) -> list:
    keys = sorted(
        (k for k in stored if k.startswith(f"{stage}/")),
        key=lambda k: int(k.split("/")[1]),
    )
    return [stored[k] for k in keys]


# --------------------------------------------------------------------------
# several processes: the same weights and verdicts, statistics of the union


@pytest.mark.slow
def test_every_process_ends_with_the_same_weights_from_seed_none(good):
    records, stored = good
    for stage in ("initialized", "rescaled", "lsuv", "fitted", "mup"):
        for a, b in zip(
            _stage(stored[0], stage), _stage(stored[1], stage), strict=True
        ):
            np.testing.assert_array_equal(a, b, err_msg=stage)
    assert all(r["layout_kept"] and r["replicated"] for r in records)
    assert records[0]["callback"] == records[1]["callback"] != []  # LSUVInit ran


@pytest.mark.slow
def test_lsuv_over_two_shards_scales_as_lsuv_on_their_union(good):
    from keras_weightinit import lsuv

    records, stored = good
    x = _digits()[0]
    union = np.concatenate([x[SHARDS[0]], x[SHARDS[1]]])

    def rescaled(batch):
        model = _mlp()
        for variable, value in zip(
            model.weights, _stage(stored[0], "initialized"), strict=True
        ):
            variable.assign(value)
        report = lsuv(model, batch, orthogonal=False)
        return _weights(model), [row["iterations"] for row in report.values()]

    expected, iterations = rescaled(union)
    assert records[0]["iterations"] == records[1]["iterations"] == iterations
    for got, want in zip(_stage(stored[0], "rescaled"), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    alone, _ = rescaled(x[SHARDS[0]])  # one shard's own statistics: it can tell
    differences = [
        np.abs(a - b).max() / np.abs(b).max()
        for a, b in zip(alone, expected, strict=True)
        if b.ndim == 2  # the kernels: LSUV leaves the zero biases
    ]
    assert max(differences) > 1e-3


@pytest.mark.slow
def test_diagnose_gives_every_process_the_verdict_of_the_union(good):
    from keras_weightinit import diagnose

    records, stored = good
    first, second = (r["diagnosis"] for r in records)
    assert first == second
    x, y = _digits()
    union = np.concatenate([x[SHARDS[0]], x[SHARDS[1]]])
    labels = np.concatenate([y[SHARDS[0]], y[SHARDS[1]]])
    model = _mlp()
    for variable, value in zip(model.weights, _stage(stored[0], "lsuv"), strict=True):
        variable.assign(value)
    expected = diagnose(model, union, labels).to_dict()
    assert first["verdict"] == expected["verdict"]
    assert first["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    for got, want in zip(first["rows"], expected["rows"], strict=True):
        for key in ("mean", "std", "grad_norm", "kernel_grad_ratio", "effective_std"):
            assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-7), key
        for key in ("dead_fraction", "zero_fraction", "saturated_fraction"):
            assert got[key] == pytest.approx(want[key], abs=1e-12), key


# --------------------------------------------------------------------------
# several processes: bad input fails on every process, weights untouched


@pytest.mark.slow
def test_processes_holding_different_models_fail_on_both(bad):
    for record in bad:
        error = record["model"]
        assert error["type"] == "ValueError" and error["unchanged"]
        assert "Argument `model` must be the same on every process" in error["message"]
        assert "process 0: [[64, 32]" in error["message"]
        assert "process 1: [[64, 16]" in error["message"]


@pytest.mark.slow
def test_a_batch_that_differs_across_processes_is_named(bad):
    for record in bad:
        error = record["batch"]
        assert error["type"] == "ValueError"
        assert "Argument `x` must be the same on every process" in error["message"]


@pytest.mark.slow
def test_bad_data_on_one_process_fails_lsuv_on_both(bad):
    own, other = bad[1]["nan"], bad[0]["nan"]
    assert own["type"] == "ValueError" and "x" in own["message"]
    assert other["type"] == "ProcessError"
    assert "process 1 failed: lsuv: ValueError" in other["message"]
    assert own["unchanged"] and other["unchanged"]


@pytest.mark.slow
def test_a_stalled_process_times_out_and_the_other_sees_it_leave(bad):
    waiting, stalled = bad[1]["stalled"], bad[0]["stalled"]
    assert waiting["type"] == "ProcessError"
    assert f"waited {TIMEOUT} s" in waiting["message"]
    assert waiting["seconds"] < TIMEOUT + 10
    assert stalled["type"] == "ProcessError"  # its peer has gone
    assert stalled["seconds"] < 2 * TIMEOUT + TIMEOUT + 10
    assert waiting["unchanged"] and stalled["unchanged"]


# --------------------------------------------------------------------------
# one process, two devices: sharded kernels stay sharded


@pytest.mark.slow
def test_keras_passes_the_layout_and_our_draws_fill_the_shards(layout):
    assert layout["devices"] == 2 and layout["process_count"] == 1
    sharded = layout["layout_calls"][0]
    assert "model" in sharded and layout["layout_calls"] == [sharded] * 3
    for spec, shapes in layout["created"]:
        assert spec == sharded
        assert len(shapes) == 2 and shapes[0] == shapes[1]
    assert [s[1][0] for s in layout["created"]] == [[64, 128], [256, 64], [128, 5]]
    assert layout["same_as_unsharded"]
    assert layout["he_ks_pvalue"] > 1e-3


@pytest.mark.slow
def test_initialize_and_lsuv_keep_each_kernels_sharding(layout):
    assert layout["initialized"] == layout["created"] == layout["lsuv"]
    assert layout["dbn_kept"] and layout["dbn_sharded"] >= 2  # DBNPretrain too
    assert layout["initialize_same_as_unsharded"]
    assert layout["orthogonal_error"] < 1e-5
    assert layout["lsuv_converged"] and layout["lsuv_difference"] < 1e-5
