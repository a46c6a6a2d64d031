"""Every speed ratio of `benchmarks/`, on whatever device each backend sees.

One command gives the CPU table on a laptop and the GPU table on a machine
with a GPU: each benchmark script runs in a fresh process per backend (Keras
fixes its backend at import) and sizes itself to the device it finds. A
backend that is not installed (TensorFlow on a JAX/PyTorch GPU machine) is
reported as skipped, never silently left out.

    python benchmarks/bench_device.py                     # every ratio, every backend
    python benchmarks/bench_device.py --backends jax torch --out gpu.md
    python benchmarks/bench_device.py --quick             # small sizes, minutes
    python benchmarks/bench_device.py --quick --dry-run   # the commands it runs

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

# (script, arguments of a full run, arguments a quick run adds to them); each
# script reads the backend from KERAS_BACKEND and picks its sizes from the
# device. `bench_initialize` runs every backend in subprocesses of its own
# unless given one; `bench_rbm` times the RBM against the bare loop only with
# `--bare` (without it, against scikit-learn, on TensorFlow's CPU kernels).
BENCHMARKS = (
    ("bench_initialize.py", ["--backend", "{backend}"], ["--quick"]),
    ("bench_initializers.py", [], ["--quick"]),
    ("bench_probe.py", [], ["--small"]),
    (
        "bench_rbm.py",
        ["--bare", "--backends", "{backend}"],
        ["--epochs-digits", "1", "--epochs-mnist", "1", "--repeats", "1"],
    ),
)


def command(script: str, backend: str, quick: bool) -> list[str]:
    """The command line that runs `script` under `backend`."""
    full, small = next((f, s) for name, f, s in BENCHMARKS if name == script)
    args = [a.format(backend=backend) for a in full + (small if quick else [])]
    return [sys.executable, str(HERE / script), *args]


def installed(backend: str) -> bool:
    """Whether `backend`'s framework can be imported here."""
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    return importlib.util.find_spec(module) is not None


def run(line: list[str], backend: str, timeout: float) -> str:
    """Runs one benchmark command under `backend`; its stdout, or why it failed."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        done = subprocess.run(
            line, capture_output=True, text=True, env=env, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return f"**timed out after {timeout:.0f} s**: `{' '.join(line[1:])}`"
    if done.returncode:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        return f"**failed (exit {done.returncode})**:\n\n```text\n{tail}\n```"
    return done.stdout.strip()


def report(args: argparse.Namespace, argv: list[str]) -> str:
    """The markdown report of every benchmark on every backend of `args`.

    Args:
        args: the parsed arguments of `main`.
        argv: the command-line arguments, for the report's heading.

    Returns:
        The report; with `args.dry_run`, the command lines instead of their
        outputs.
    """
    lines = [f"# Device benchmarks, {time.strftime('%Y-%m-%d %H:%M %Z')}", ""]
    lines.append(f"`python benchmarks/bench_device.py {' '.join(argv)}`")
    for backend in args.backends:
        lines += ["", f"## {backend}", ""]
        if not installed(backend):
            lines.append(f"skipped: {backend} is not installed on this machine")
            continue
        for script, _, _ in BENCHMARKS:
            if args.only and script not in args.only:
                continue
            lines += [f"### {script}", ""]
            if not (HERE / script).exists():
                lines += ["skipped: the script is missing", ""]
                continue
            line = command(script, backend, args.quick)
            if args.dry_run:
                lines += [f"`KERAS_BACKEND={backend} {' '.join(line)}`", ""]
            else:
                lines += [run(line, backend, args.timeout), ""]
    return "\n".join(lines)


def main(argv=None) -> str:
    """Parses `argv` (the command line's by default), runs, prints the report.

    Args:
        argv: the command-line arguments, without the program's name.

    Returns:
        The report it printed.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=BACKENDS)
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--timeout", type=float, default=1800, help="per script, s")
    parser.add_argument("--only", nargs="+", help="run only these scripts")
    parser.add_argument("--out", type=Path, help="also write the report here")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the commands, run nothing"
    )
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive. Received: {args.timeout}")
    known = {script for script, _, _ in BENCHMARKS}
    unknown = sorted(set(args.only or ()) - known)
    if unknown:
        parser.error(f"--only takes {sorted(known)}. Received: {unknown}")
    text = report(args, argv)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return text


if __name__ == "__main__":
    failed = ("**failed", "**timed out")
    sys.exit(1 if any(mark in main() for mark in failed) else 0)
