"""`python -m keras_weightinit compare ...`: the command line, after Keras starts.

`keras-weightinit` (`python -m keras_weightinit_cli`) answers `--help` and a
bad argument before Keras starts; this one imports the package (and so
Keras) first. Keras fixes its backend when it is imported, so a `--backend`
other than the one already running starts the command line again in a
fresh interpreter with `KERAS_BACKEND` set.
"""

import os
import sys

import keras

from keras_weightinit_cli import main


def _asked_backend(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--backend" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--backend="):
            return arg.partition("=")[2]
    return None


if __name__ == "__main__":
    asked = _asked_backend(sys.argv[1:])
    if asked is not None and asked != keras.backend.backend():
        env = {**os.environ, "KERAS_BACKEND": asked}
        command = [sys.executable, "-m", "keras_weightinit_cli", *sys.argv[1:]]
        os.execve(sys.executable, command, env)
    sys.exit(main())
