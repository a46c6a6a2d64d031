"""`initialize(model, "auto")` against Keras building the same model.

The model is a residual MLP of square `Dense` layers (`x + relu(W x + b)`,
then a `Dense(10)` softmax head) of about `--gigabytes` of float32 weights:
width 4096 on a CPU, 16384 on a GPU (8 blocks of 16384 are the issue's
2.15-billion-parameter model). For each backend, in a fresh process (Keras
fixes its backend at import), fastest of `--repeats` alternating runs:

- time: `initialize(model, "auto")` over building the model with Keras's
  own initializers (`glorot_uniform` kernels), each waited for on the
  device; and over building it with He-normal kernels
  (`VarianceScaling(2, "fan_in", "untruncated_normal")`, the distribution
  `"auto"` draws: a normal draw costs more than a uniform one);
- peak memory growth of `initialize` (device memory on a GPU, the resident
  size `VmHWM` on a CPU), in the first run (later ones reuse memory the
  allocators cached: TensorFlow's shows no growth at all), over the model's size
  plus its largest variable (the least an all-or-nothing redraw can hold:
  every new value, and one variable being written).

Targets: both ratios within 1.1.

    python benchmarks/bench_initialize.py                        # every backend
    python benchmarks/bench_initialize.py --backend torch --gigabytes 1  # one
    python benchmarks/bench_initialize.py --quick                # tiny, for tests
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")


def device_kind() -> str:
    """`"gpu"` when the running Keras backend sees a GPU, else `"cpu"`."""
    import keras

    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    if backend == "jax":
        import jax

        return "gpu" if jax.devices()[0].platform == "gpu" else "cpu"
    import tensorflow as tf

    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def residual_mlp(width: int, depth: int, kernels="glorot_uniform"):
    """`depth` residual `Dense(width)` blocks and a softmax head, built."""
    import keras

    inputs = keras.Input((width,))
    x = inputs
    for _ in range(depth):
        dense = keras.layers.Dense(width, "relu", kernel_initializer=kernels)
        x = keras.layers.Add()([x, dense(x)])
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def wait(model) -> None:
    """Blocks until every variable's value is computed on its device."""
    import keras

    for variable in model.weights:
        keras.ops.convert_to_numpy(keras.ops.reshape(variable, (-1,))[:1])


class PeakMemory:
    """Peak memory growth over a span: device memory on a GPU, else RSS."""

    def __init__(self, kind: str):
        import keras

        self.kind, self.backend = kind, keras.backend.backend()

    def _cpu(self, field: str) -> int:
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith(field + ":"))
        return int(line.split()[1]) * 1024

    def _gpu(self) -> tuple[int, int]:
        """`(bytes in use, peak bytes)` on the first GPU."""
        if self.backend == "torch":
            import torch

            return torch.cuda.memory_allocated(), torch.cuda.max_memory_allocated()
        if self.backend == "jax":
            import jax

            stats = jax.devices()[0].memory_stats()
            return stats["bytes_in_use"], stats["peak_bytes_in_use"]
        import tensorflow as tf

        info = tf.config.experimental.get_memory_info("GPU:0")
        return info["current"], info["peak"]

    def start(self) -> None:
        gc.collect()
        if self.kind == "cpu":
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")  # resets VmHWM to the current resident size
            self.before = self._cpu("VmRSS")
            return
        if self.backend == "torch":
            import torch

            torch.cuda.reset_peak_memory_stats()
        elif self.backend == "tensorflow":
            import tensorflow as tf

            tf.config.experimental.reset_memory_stats("GPU:0")
        self.before = self._gpu()[0]  # JAX's peak cannot be reset: see README

    def growth(self) -> int:
        """Bytes of peak growth since `start`."""
        peak = self._cpu("VmHWM") if self.kind == "cpu" else self._gpu()[1]
        return max(peak - self.before, 0)


def timed(function) -> tuple[float, object]:
    """Seconds `function()` takes to a model with its values computed, and it."""
    start = time.perf_counter()
    model = function()
    wait(model)
    return time.perf_counter() - start, model


def run(width: int, depth: int, repeats: int) -> dict:
    """One backend's measurements, in this process."""
    import keras

    import keras_weightinit as kwi

    kind = device_kind()
    memory = PeakMemory(kind)
    he = keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal")
    builds, normals, inits, growths = [], [], [], []
    for repeat in range(repeats):  # the first in a fresh process, for memory
        seconds, model = timed(lambda: residual_mlp(width, depth))
        builds.append(seconds)

        def redraw(model=model, seed=repeat):
            kwi.initialize(model, "auto", seed=seed)
            return model

        memory.start()
        seconds, _ = timed(redraw)
        inits.append(seconds)
        growths.append(memory.growth())
        sizes = [math.prod(v.shape) * 4 for v in model.weights]
        del model
        seconds, model = timed(lambda: residual_mlp(width, depth, he))
        normals.append(seconds)
        del model
        gc.collect()
    bound = sum(sizes) + max(sizes)
    return {
        "backend": keras.backend.backend(),
        "device": kind,
        "params": sum(sizes) // 4,
        "model_gb": sum(sizes) / 1e9,
        "bound_gb": bound / 1e9,
        "build_s": min(builds),
        "initialize_s": min(inits),
        "time_ratio": min(inits) / min(builds),
        "normal_build_s": min(normals),
        "normal_ratio": min(inits) / min(normals),
        "growth_gb": growths[0] / 1e9,
        "memory_ratio": growths[0] / bound,
    }


def shape(gigabytes: float, gpu: bool) -> tuple[int, int]:
    """`(width, depth)` of a residual MLP of about `gigabytes` of float32."""
    width = 16384 if gpu else 4096
    return width, max(1, round(gigabytes * 1e9 / (4 * width * width)))


def child(backend: str, gigabytes: float, repeats: int, quick: bool) -> dict:
    """Runs `run` for `backend` in a fresh process; its JSON result."""
    args = [__file__, "--backend", backend, "--gigabytes", str(gigabytes)]
    args += ["--repeats", str(repeats), *(["--quick"] if quick else [])]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=3000
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise RuntimeError(f"{backend} run failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def table(rows: list[dict]) -> str:
    lines = [
        "| backend | device | parameters | Keras build s | same, He-normal "
        "kernels s | initialize s | time ratio (to He-normal) | peak growth GB "
        "| model + largest GB | memory ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['device']} | {r['params']:,} | "
            f"{r['build_s']:.2f} | {r['normal_build_s']:.2f} | "
            f"{r['initialize_s']:.2f} | "
            f"{r['time_ratio']:.2f}x ({r['normal_ratio']:.2f}x) | "
            f"{r['growth_gb']:.2f} | {r['bound_gb']:.2f} | {r['memory_ratio']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=BACKENDS, help="one, in this process")
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.gigabytes <= 0:
        parser.error(f"--gigabytes must be positive. Received: {args.gigabytes}")
    if args.backend is None:
        print(f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {args.gigabytes} GB")
        rows = [child(b, args.gigabytes, args.repeats, args.quick) for b in BACKENDS]
        print(table(rows))
        return rows
    os.environ.setdefault("KERAS_BACKEND", args.backend)
    import keras

    if keras.backend.backend() != args.backend:
        parser.error(
            f"--backend {args.backend} in a process already on "
            f"{keras.backend.backend()}. Received: --backend {args.backend}"
        )
    width, depth = (
        (64, 2) if args.quick else shape(args.gigabytes, device_kind() == "gpu")
    )
    row = run(width, depth, 1 if args.quick else args.repeats)
    print(json.dumps(row))  # the line `child` reads
    print(table([row]))
    return [row]


if __name__ == "__main__":
    main()
