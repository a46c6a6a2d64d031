"""Every speed ratio of `benchmarks/`, on whatever device each backend sees.

One command gives the CPU table on a laptop and the GPU table on a machine
with a GPU: each benchmark script runs in a fresh process per backend (Keras
fixes its backend at import) and sizes itself to the device it finds. A
backend that is not installed (TensorFlow on a JAX/PyTorch GPU machine) is
reported as skipped, never silently left out.

    python benchmarks/bench_device.py                     # every ratio, every backend
    python benchmarks/bench_device.py --backends jax torch --out gpu.md
    python benchmarks/bench_device.py --quick             # tiny sizes, for the tests

The ratios and their targets are those of `benchmarks/README.md`:
`initialize` over Keras building the same model, `HeNormal`/`XavierUniform`
over Keras's own draws, `diagnose` and `lsuv` over the first `train_on_batch`,
and the RBM over the bare compiled loop of the same math.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BACKENDS = ("tensorflow", "jax", "torch")

# (script, arguments for a full run, arguments for a quick run); each script
# reads the backend from KERAS_BACKEND and picks its sizes from the device.
BENCHMARKS = (
    ("bench_initialize.py", ["--backend", "{backend}"], ["--quick"]),
    ("bench_initializers.py", [], ["--quick"]),
    ("bench_probe.py", [], ["--small"]),
    ("bench_rbm.py", ["--backend", "{backend}"], ["--quick"]),
)


def installed(backend: str) -> bool:
    """Whether `backend`'s framework can be imported here."""
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    return importlib.util.find_spec(module) is not None


def run(script: str, args: list[str], backend: str, timeout: float) -> str:
    """Runs one benchmark script under `backend`; its stdout, or why it failed."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = [a.format(backend=backend) for a in args]
    command = [sys.executable, str(HERE / script), *args]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return f"**timed out after {timeout:.0f} s**: `{' '.join(command[1:])}`"
    if done.returncode:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        return f"**failed (exit {done.returncode})**:\n\n```text\n{tail}\n```"
    return done.stdout.strip()


def report(backends: list[str], quick: bool, timeout: float, only=None) -> str:
    """The markdown report of every benchmark on every backend in `backends`."""
    lines = [f"# Device benchmarks, {time.strftime('%Y-%m-%d %H:%M %Z')}", ""]
    lines.append(f"`python benchmarks/bench_device.py {' '.join(sys.argv[1:])}`")
    for backend in backends:
        lines += ["", f"## {backend}", ""]
        if not installed(backend):
            lines.append(f"skipped: {backend} is not installed on this machine")
            continue
        for script, full, small in BENCHMARKS:
            if only and script not in only:
                continue
            if not (HERE / script).exists():
                lines += [f"### {script}", "", "skipped: the script is missing", ""]
                continue
            lines += [f"### {script}", ""]
            lines += [run(script, small if quick else full, backend, timeout), ""]
    return "\n".join(lines)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=BACKENDS)
    parser.add_argument("--quick", action="store_true", help="tiny sizes")
    parser.add_argument("--timeout", type=float, default=1800, help="per script, s")
    parser.add_argument("--only", nargs="+", help="run only these scripts")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive. Received: {args.timeout}")
    known = {script for script, _, _ in BENCHMARKS}
    unknown = sorted(set(args.only or ()) - known)
    if unknown:
        parser.error(f"--only takes {sorted(known)}. Received: {unknown}")
    text = report(list(args.backends), args.quick, args.timeout, args.only)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return text


if __name__ == "__main__":
    main()
