"""RBM throughput: keras_weightinit.RBM vs scikit-learn's BernoulliRBM.

Run: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_rbm.py`
(`--epochs-digits`, `--epochs-mnist`, `--repeats`). With `--against REV`, it
instead alternates the epoch loop of this tree's `rbm.py` with the one of
git revision `REV` in one process and prints their ratio per case; with
`--parts`, it prints what a step's parts cost (single ops, and a CD-1 loop
built up part by part).

Prints a markdown table: samples/s of both (same data, epochs, batch size and
units, float32), their ratio, our rate against the bound of a loop doing only
a CD-1 step's five dependent matrix products (no implementation on
TensorFlow's CPU kernels can beat it), and our GFLOP/s (10 * batch * visible
* hidden FLOPs per CD-1 step) as a fraction of this machine's float32 matmul
rate, measured in the same process. "fit" includes our per-epoch monitors
(free energy and pseudo-likelihood on 512 samples); "loop" is the epoch
`tf.function` alone. Each timing is the best of `--repeats` runs, after one
warm-up run (which traces the graph); the runs of ours, the loop, the
five-product loop (as many steps as the epochs) and scikit-learn alternate.
Targets: digits >= 3x scikit-learn, MNIST-sized >= 85% of the five-product
bound.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
from keras import ops
from sklearn.datasets import load_digits
from sklearn.neural_network import BernoulliRBM

import keras_weightinit.rbm as current
from keras_weightinit import RBM


def best_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def fastest_alternating(functions: dict, repeats: int) -> dict:
    """The fastest of `repeats` runs of each function, the runs interleaved.

    Interleaved, so that the noise of a shared machine hits them all.
    """
    times = {key: [] for key in functions}
    for _ in range(repeats):
        for key, function in functions.items():
            times[key].append(best_time(function, 1))
    return {key: min(values) for key, values in times.items()}


def matmul_gflops(n: int = 1024, iterations: int = 20, repeats: int = 5) -> float:
    """float32 GFLOP/s of an n x n matmul chain in one tf.function."""
    import tensorflow as tf

    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n]) / n**0.5

    @tf.function
    def chain(a, b):
        for _ in tf.range(iterations):
            a = tf.matmul(a, b)
        return a

    chain(a, b).numpy()
    seconds = best_time(lambda: chain(a, b).numpy(), repeats)
    return 2 * n**3 * iterations / seconds / 1e9


def products_loop(batch: int, n_visible: int, units: int, steps: int):
    """A function running a graph loop of only a CD-1 step's five products.

    The products in the order and layouts of the real step, each waiting for
    the one before (`v W`, `h W^T`, `v_k W`, `v^T h`, `v_k^T h_k`), plus one
    cheap update so that the next iteration waits for this one, `steps`
    times: the bound on what any CD-1 implementation with TensorFlow's CPU
    kernels can reach.
    """
    import tensorflow as tf

    rng = np.random.default_rng(0)
    v = tf.constant(rng.random((batch, n_visible), dtype=np.float32))
    w = tf.constant(rng.normal(0, 0.01, (n_visible, units)).astype("float32"))

    @tf.function
    def products(v, w):
        for _ in tf.range(steps):
            h = tf.matmul(v, w)
            v_k = tf.matmul(h, w, transpose_b=True)
            h_k = tf.matmul(v_k, w)
            positive = tf.matmul(v, h, transpose_a=True)
            negative = tf.matmul(v_k, h_k, transpose_a=True)
            w = w + 1e-9 * (positive - negative)
        return w

    def run():
        products(v, w).numpy()

    run()
    return run


def epoch_loop(x: np.ndarray, units: int, batch: int, epochs: int, rbm=current):
    """A function running `epochs` calls of the epoch function alone.

    `rbm` is the module whose epoch function runs (this tree's `rbm.py` or,
    for `--against`, another revision's), on the active backend: its
    `epoch_fn`, or a revision's TensorFlow `train_epoch_fn`. No monitors.
    """
    if hasattr(rbm, "train_epoch_fn"):
        return _tensorflow_epoch_loop(x, units, batch, epochs, rbm)
    n_visible = x.shape[1]
    function = rbm.epoch_fn(rbm.Config(), batch, keras.backend.backend())
    keys = rbm.Keys(keras.backend.backend())
    rng = np.random.default_rng(0)
    zeros = rbm.Params(
        np.zeros((n_visible, units), "float32"),
        np.zeros(units, "float32"),
        np.zeros(n_visible, "float32"),
    )
    kernel = rng.normal(0, 0.01, (n_visible, units)).astype("float32")
    state = rbm.State(
        zeros._replace(kernel=kernel),
        zeros,
        np.zeros((batch, n_visible), "float32"),
        np.zeros(units, "float32"),
    )
    state = keras.tree.map_structure(ops.convert_to_tensor, state)
    hyper = rbm.Hyper(
        *(ops.convert_to_tensor(np.float32(h)) for h in (0.1, 0.5, 1e-4, 0.0))
    )
    data = ops.convert_to_tensor(x)
    none = ops.zeros((0, n_visible))  # no monitor samples: the loop alone

    def run():
        s = state
        for epoch in range(epochs):
            key = keys.to_device(rbm.Keys.key(0, epoch))
            s, metrics = function(s, data, key, hyper, none, none)
        ops.convert_to_numpy(metrics)

    run()
    return run


def _tensorflow_epoch_loop(x, units, batch, epochs, rbm):
    """`epoch_loop` of a revision whose RBM trained in TensorFlow only."""
    import tensorflow as tf

    n_visible = x.shape[1]
    config = rbm.Config()
    fn = rbm.train_epoch_fn(n_visible, units, batch, config).get_concrete_function()
    rng = np.random.default_rng(0)
    kernel = rng.normal(0, 0.01, (n_visible, units)).astype("float32")
    zeros = rbm.Params(
        tf.zeros([n_visible, units]), tf.zeros([units]), tf.zeros([n_visible])
    )
    state = rbm.State(
        zeros._replace(kernel=tf.constant(kernel)),
        zeros,
        tf.zeros([batch, n_visible]),
        tf.zeros([units]),
    )
    hyper = rbm.Hyper(*(tf.constant(h, tf.float32) for h in (0.1, 0.5, 1e-4, 0.0)))
    data = tf.constant(x)
    none = tf.zeros([0, n_visible])

    def run():
        s = state
        for epoch in range(epochs):
            s, metrics = fn(
                s, data, tf.constant([0, epoch], tf.int64), hyper, none, none
            )
        metrics.numpy()

    run()
    return run


# --------------------------------------------------------------------------
# against the plainest compiled loop of the same math, per backend

LR, MOMENTUM, DECAY = 0.1, 0.5, 1e-4


def bare_loop(x: np.ndarray, units: int, batch: int, epochs: int, compiled=True):
    """`epochs` epochs of the plainest CD-1 loop on the active backend.

    Each epoch shuffles the data, draws the epoch's uniform noise at once
    and runs CD-1 with momentum and weight decay over the full batches
    (`v0 W + c`, sampled hidden units, the mean-field reconstruction, its
    hidden means; the kernel, both biases and their velocities): `jax.jit`
    of a `lax.scan` on JAX, a `tf.function` of a `tf.range` loop on
    TensorFlow, eager PyTorch under `no_grad` (`compiled=True`: the step
    through `torch.compile`). The short last batch is left out, so the loop
    does slightly less than the RBM's epoch.
    """
    backend = keras.backend.backend()
    make = {"jax": _bare_jax, "tensorflow": _bare_tensorflow, "torch": _bare_torch}
    return make[backend](x, units, batch, epochs, compiled)


def _bare_start(x, units):
    rng = np.random.default_rng(0)
    kernel = rng.normal(0, 0.01, (x.shape[1], units)).astype("float32")
    return kernel, np.zeros(units, "float32"), np.zeros(x.shape[1], "float32")


def _bare_jax(x, units, batch, epochs, compiled):
    import jax
    import jax.numpy as jnp

    n, n_visible = x.shape
    full = n // batch

    def step(carry, inputs):
        (w, c, b), (dw, dc, db) = carry
        v0, noise = inputs
        h0 = jax.nn.sigmoid(v0 @ w + c)
        v1 = jax.nn.sigmoid((noise < h0).astype(jnp.float32) @ w.T + b)
        h1 = jax.nn.sigmoid(v1 @ w + c)
        dw = MOMENTUM * dw + LR * ((v0.T @ h0 - v1.T @ h1) / batch - DECAY * w)
        dc = MOMENTUM * dc + LR * jnp.mean(h0 - h1, 0)
        db = MOMENTUM * db + LR * jnp.mean(v0 - v1, 0)
        return ((w + dw, c + dc, b + db), (dw, dc, db)), jnp.sum((v0 - v1) ** 2)

    @jax.jit
    def epoch(carry, data, key):
        order_key, noise_key = jax.random.split(key)
        data = data[jax.random.permutation(order_key, n)][: full * batch]
        batches = data.reshape(full, batch, n_visible)
        noise = jax.random.uniform(noise_key, (full, batch, units))
        carry, errors = jax.lax.scan(step, carry, (batches, noise))
        return carry, jnp.sum(errors)

    params = tuple(jnp.asarray(p) for p in _bare_start(x, units))
    start = (params, tuple(jnp.zeros_like(p) for p in params))
    data = jnp.asarray(x)

    def run():
        carry = start
        for e in range(epochs):
            carry, error = epoch(carry, data, jax.random.key(e))
        float(error)

    run()
    return run


def _bare_tensorflow(x, units, batch, epochs, compiled):
    import tensorflow as tf

    n, n_visible = x.shape
    full = n // batch

    @tf.function
    def epoch(params, velocity, data, seed):
        w, c, b = params
        dw, dc, db = velocity
        order = tf.argsort(tf.random.stateless_uniform([n], seed))
        data = tf.gather(data, order)[: full * batch]
        batches = tf.reshape(data, [full, batch, n_visible])
        noise = tf.random.stateless_uniform([full, batch, units], seed + 1)
        error = tf.constant(0.0)
        for i in tf.range(full):
            v0, u = tf.gather(batches, i), tf.gather(noise, i)
            h0 = tf.sigmoid(tf.matmul(v0, w) + c)
            h = tf.cast(u < h0, tf.float32)
            v1 = tf.sigmoid(tf.matmul(h, w, transpose_b=True) + b)
            h1 = tf.sigmoid(tf.matmul(v1, w) + c)
            positive = tf.matmul(v0, h0, transpose_a=True)
            negative = tf.matmul(v1, h1, transpose_a=True)
            dw = MOMENTUM * dw + LR * ((positive - negative) / batch - DECAY * w)
            dc = MOMENTUM * dc + LR * tf.reduce_mean(h0 - h1, 0)
            db = MOMENTUM * db + LR * tf.reduce_mean(v0 - v1, 0)
            w, c, b = w + dw, c + dc, b + db
            error += tf.reduce_sum(tf.square(v0 - v1))
        return (w, c, b), (dw, dc, db), error

    params = tuple(tf.constant(p) for p in _bare_start(x, units))
    velocity = tuple(tf.zeros_like(p) for p in params)
    data = tf.constant(x)

    def run():
        p, v = params, velocity
        for e in range(epochs):
            p, v, error = epoch(p, v, data, tf.constant([0, e], tf.int64))
        float(error)

    run()
    return run


def _bare_torch(x, units, batch, epochs, compiled):
    import torch

    n, n_visible = x.shape
    full = n // batch
    device = ops.convert_to_tensor(np.zeros(1, np.float32)).device

    def step(w, c, b, dw, dc, db, v0, noise):
        h0 = torch.sigmoid(v0 @ w + c)
        v1 = torch.sigmoid((noise < h0).float() @ w.T + b)
        h1 = torch.sigmoid(v1 @ w + c)
        dw = MOMENTUM * dw + LR * ((v0.T @ h0 - v1.T @ h1) / batch - DECAY * w)
        dc = MOMENTUM * dc + LR * (h0 - h1).mean(0)
        db = MOMENTUM * db + LR * (v0 - v1).mean(0)
        return w + dw, c + dc, b + db, dw, dc, db, ((v0 - v1) ** 2).sum()

    if compiled:
        step = torch.compile(step, dynamic=False)
    params = [torch.as_tensor(p, device=device) for p in _bare_start(x, units)]
    data = torch.as_tensor(x, device=device)

    @torch.no_grad()
    def run():
        w, c, b = params
        dw, dc, db = (torch.zeros_like(p) for p in params)
        generator = torch.Generator(device=device)
        for e in range(epochs):
            generator.manual_seed(e)
            order = torch.randperm(n, generator=generator, device=device)
            batches = data[order][: full * batch].reshape(full, batch, n_visible)
            noise = torch.rand((full, batch, units), generator=generator, device=device)
            error = 0.0
            for i in range(full):
                w, c, b, dw, dc, db, e_i = step(
                    w, c, b, dw, dc, db, batches[i], noise[i]
                )
                error = error + e_i
        float(error)

    run()
    return run


def fit_run(x: np.ndarray, units: int, batch: int, epochs: int):
    """`RBM.fit` with its monitors, as a function (after one warm-up fit)."""

    def run():
        RBM(units, batch_size=batch, epochs=epochs, seed=0).fit(x, verbose=0)

    run()
    return run


def against_bare(cases, repeats: int) -> list[dict]:
    """Samples/s of our epoch loop and fit over the bare loop, alternating."""
    rows = []
    for name, x, units, batch, epochs in cases:
        functions = {
            "bare": bare_loop(x, units, batch, epochs),
            "loop": epoch_loop(x, units, batch, epochs),
            "fit": fit_run(x, units, batch, epochs),
        }
        if keras.backend.backend() == "torch":
            functions["bare, eager"] = bare_loop(x, units, batch, epochs, False)
        best = fastest_alternating(functions, repeats)
        rate = {k: len(x) * epochs / t for k, t in best.items()}
        if "bare, eager" in rate:  # the plainest loop is the faster of the two
            rate["compiled"], rate["eager"] = rate["bare"], rate.pop("bare, eager")
            rate["bare"] = max(rate["compiled"], rate["eager"])
        rows.append(
            {
                "backend": keras.backend.backend(),
                "case": name,
                **rate,
                "ratio_loop": rate["loop"] / rate["bare"],
                "ratio_fit": rate["fit"] / rate["bare"],
            }
        )
    return rows


def bench(name, x, units, batch, epochs, repeats, peak):
    samples = len(x) * epochs
    flops = 10 * len(x) * x.shape[1] * units * epochs

    def ours():
        RBM(units, batch_size=batch, epochs=epochs, seed=0).fit(x, verbose=0)

    def theirs():
        BernoulliRBM(
            n_components=units, batch_size=batch, n_iter=epochs, random_state=0
        ).fit(x)

    ours()  # warm-up: traces the epoch graph once for this shape
    functions = {
        "ours": ours,
        "loop": epoch_loop(x, units, batch, epochs),
        # as many steps as the epochs make (a short last batch counts as one)
        "bound": products_loop(batch, x.shape[1], units, -(-len(x) // batch) * epochs),
        "sklearn": theirs,
    }
    best = fastest_alternating(functions, repeats)
    t_ours, t_loop, t_bound, t_sk = (best[k] for k in functions)
    bound = samples / t_bound
    gflops_fit = flops / t_ours / 1e9
    gflops_loop = flops / t_loop / 1e9
    return {
        "case": f"{name} ({len(x)}x{x.shape[1]} -> {units}, batch {batch}, "
        f"{epochs} epochs)",
        "sk": samples / t_sk,
        "fit": samples / t_ours,
        "loop": samples / t_loop,
        "ratio": t_sk / t_ours,
        "bound": bound,
        "gflops_fit": gflops_fit,
        "gflops_loop": gflops_loop,
        "frac_fit": gflops_fit / peak,
        "frac_loop": gflops_loop / peak,
        "bound_fit": samples / t_ours / bound,
        "bound_loop": samples / t_loop / bound,
    }


def op_costs(shape, repeats: int = 5, iterations: int = 1000) -> dict[str, float]:
    """Microseconds per op of a step's elementwise ops on `shape`, in a graph loop."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    noise = tf.constant(rng.random(shape, dtype=np.float32))
    ops = {
        "noise < mean, cast": lambda a: tf.cast(noise < a, tf.float32),
        "ceil(mean - noise)": lambda a: tf.math.ceil(a - noise),
        "sigmoid": tf.sigmoid,
        "subtraction": lambda a: a - noise,
    }
    start = tf.constant(rng.random(shape, dtype=np.float32))
    costs = {}
    for name, op in ops.items():

        @tf.function(autograph=False)
        def loop(a, op=op):
            return tf.while_loop(
                lambda i, a: i < iterations, lambda i, a: (i + 1, op(a)), (0, a)
            )[1]

        loop(start).numpy()
        costs[name] = best_time(lambda loop=loop: loop(start).numpy(), repeats)
        costs[name] *= 1e6 / iterations
    return costs


def step_parts(batch, n_visible, units, steps, repeats: int = 5) -> list[float]:
    """Time of a CD-1 graph loop built up in parts, over the products alone.

    Parts: the five products (and the bound's cheap update); + the biases
    and the three sigmoids; + sampling the hidden units; + the momentum,
    weight-decay and bias updates.
    """
    import tensorflow as tf

    rng = np.random.default_rng(0)
    v = tf.constant(rng.random((batch, n_visible), dtype=np.float32))
    w0 = tf.constant(rng.normal(0, 0.01, (n_visible, units)).astype("float32"))
    noise = tf.constant(rng.random((steps, batch, units), dtype=np.float32))

    def loop_of(level):
        @tf.function
        def loop(w, b, c, velocity):
            for i in tf.range(steps):
                x0 = tf.matmul(v, w)
                h0 = tf.sigmoid(x0 + c) if level >= 1 else x0
                h = tf.math.ceil(h0 - tf.gather(noise, i)) if level >= 2 else h0
                r = tf.matmul(h, w, transpose_b=True)
                r = tf.sigmoid(r + b) if level >= 1 else r
                xk = tf.matmul(r, w)
                hk = tf.sigmoid(xk + c) if level >= 1 else xk
                g = tf.matmul(v, h0, transpose_a=True)
                g -= tf.matmul(r, hk, transpose_a=True)
                if level >= 3:
                    velocity = 0.5 * velocity + 1e-3 * g - 1e-6 * w
                    w += velocity
                    c += 1e-3 * (tf.reduce_sum(h0, 0) - tf.reduce_sum(hk, 0))
                    b += 1e-3 * tf.reduce_sum(v - r, 0)
                else:
                    w += 1e-9 * g
            return w

        def run():
            loop(w0, tf.zeros([n_visible]), tf.zeros([units]), tf.zeros_like(w0))

        run()
        return run

    best = fastest_alternating({level: loop_of(level) for level in range(4)}, repeats)
    return [best[level] / best[0] for level in range(4)]


def rbm_at(revision: str):
    """`keras_weightinit/rbm.py` of git `revision`, loaded as a module."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "show", f"{revision}:keras_weightinit/rbm.py"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "rbm_at_revision.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("rbm_at_revision", path)
    module = importlib.util.module_from_spec(spec)
    registered = keras.saving.get_custom_objects()  # the live registry
    kept = dict(registered)
    spec.loader.exec_module(module)
    registered.clear()  # this tree's `RBM` stays the registered one
    registered.update(kept)
    return module


def against(revision: str, cases, repeats: int) -> list[dict]:
    """This tree's epoch loop over `revision`'s, alternating, fastest runs."""
    other = rbm_at(revision)
    rows = []
    for name, x, units, batch, epochs in cases:
        loops = {
            "ours": epoch_loop(x, units, batch, epochs),
            "theirs": epoch_loop(x, units, batch, epochs, rbm=other),
        }
        best = fastest_alternating(loops, repeats)
        rows.append({"case": name, **best, "ratio": best["ours"] / best["theirs"]})
    return rows


def print_bare(args, cases) -> None:
    """`--bare`: each backend in a subprocess of its own, then one table."""
    if os.environ.get("BENCH_RBM_BACKEND"):  # the subprocess: one backend
        print(json.dumps(against_bare(cases, args.repeats)))
        return
    rows = []
    for backend in args.backends.split(","):
        env = {**os.environ, "KERAS_BACKEND": backend, "BENCH_RBM_BACKEND": "1"}
        done = subprocess.run(
            [sys.executable, __file__, *sys.argv[1:]],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("[")]
        if done.returncode or not lines:
            raise RuntimeError(f"{backend}: {done.stderr[-3000:]}")
        rows += json.loads(lines[-1])
    print(f"{os.cpu_count()} CPUs, best of {args.repeats} alternating runs")
    print()
    print(
        "| backend | case | bare loop samples/s | RBM epoch loop samples/s "
        "| RBM fit samples/s | loop / bare | fit / bare |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['case']} | {r['bare']:,.0f} | {r['loop']:,.0f} "
            f"| {r['fit']:,.0f} | {r['ratio_loop']:.2f}x | {r['ratio_fit']:.2f}x |"
        )
    for r in rows:
        if "compiled" in r:
            print(
                f"- {r['backend']} {r['case']}: the bare loop eager "
                f"{r['eager']:,.0f} samples/s, its step through torch.compile "
                f"{r['compiled']:,.0f} (the bare loop is the faster; RBM loop "
                f"over eager {r['loop'] / r['eager']:.2f}x)"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs-digits", type=int, default=10)
    parser.add_argument("--epochs-mnist", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--against", metavar="REV", default=None)
    parser.add_argument("--parts", action="store_true")
    parser.add_argument(
        "--bare",
        action="store_true",
        help="samples/s against the plainest compiled CD-1 loop, per backend",
    )
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    args = parser.parse_args()

    digits = (load_digits().data / 16).astype("float32")
    rng = np.random.default_rng(0)
    # MNIST-sized: 10,000 x 784 in [0, 1], mostly near 0 like ink on paper.
    prototypes = rng.random((10, 784)) ** 3
    mnist = np.clip(
        prototypes[rng.integers(0, 10, 10_000)] + rng.normal(0, 0.1, (10_000, 784)),
        0,
        1,
    ).astype("float32")

    cases = [  # name, data, units, batch size, epochs
        ("digits", digits, 256, 64, args.epochs_digits),
        ("MNIST-sized", mnist, 500, 100, args.epochs_mnist),
    ]
    if args.bare:
        print_bare(args, cases)
        return
    if args.parts:
        for shape in [(100, 500), (64, 256)]:
            costs = op_costs(shape)
            print(shape, ", ".join(f"{k} {v:.0f} us" for k, v in costs.items()))
        names = ["products", "+ biases, sigmoids", "+ sampling", "+ updates"]
        for name, (batch, n_visible, units, steps) in [
            ("MNIST-sized", (100, 784, 500, 200)),
            ("digits", (64, 64, 256, 290)),
        ]:
            parts = step_parts(batch, n_visible, units, steps)
            print(
                f"{name} CD-1 loop, over the products alone: "
                + ", ".join(f"{n} {p:.2f}" for n, p in zip(names, parts, strict=True))
            )
        return

    if args.against:
        print(f"| case | this tree, s | {args.against}, s | this / {args.against} |")
        print("|---|---:|---:|---:|")
        for r in against(args.against, cases, args.repeats):
            print(
                f"| {r['case']} | {r['ours']:.4f} | {r['theirs']:.4f} "
                f"| {r['ratio']:.3f} |"
            )
        return

    peak = matmul_gflops()
    rows = [bench(*case, args.repeats, peak) for case in cases]
    peak = max(peak, matmul_gflops())
    for row in rows:  # re-normalize with the better matmul measurement
        row["frac_fit"] = row["gflops_fit"] / peak
        row["frac_loop"] = row["gflops_loop"] / peak

    print(f"float32 matmul (1024x1024, TF, {os.cpu_count()} CPUs): {peak:.1f} GFLOP/s")
    print()
    print(
        "| case | sklearn samples/s | ours fit samples/s | ours loop samples/s "
        "| speed-up (fit) | five-product bound samples/s | % of bound fit / loop "
        "| GFLOP/s fit / loop | % of matmul fit / loop |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['case']} | {r['sk']:,.0f} | {r['fit']:,.0f} | {r['loop']:,.0f} "
            f"| {r['ratio']:.1f}x | {r['bound']:,.0f} "
            f"| {100 * r['bound_fit']:.0f}% / {100 * r['bound_loop']:.0f}% "
            f"| {r['gflops_fit']:.1f} / {r['gflops_loop']:.1f} "
            f"| {100 * r['frac_fit']:.0f}% / {100 * r['frac_loop']:.0f}% |"
        )
    print()
    digits_row, mnist_row = rows
    ok = "met" if digits_row["ratio"] >= 3 else "NOT met"
    print(f"- digits: >= 3x scikit-learn: {ok} ({digits_row['ratio']:.1f}x)")
    ok = "met" if mnist_row["bound_fit"] >= 0.85 else "NOT met"
    print(
        f"- MNIST-sized: >= 85% of the five-product bound: {ok} "
        f"(fit {100 * mnist_row['bound_fit']:.0f}%, "
        f"loop {100 * mnist_row['bound_loop']:.0f}%)"
    )
    for r in rows:
        print(
            f"- {r['case']}: the five products alone are "
            f"{r['bound'] / r['sk']:.1f}x scikit-learn"
        )


if __name__ == "__main__":
    main()
