"""The `keras-weightinit` command line: `compare`, `coord-check`, `transfer`.

A module beside the package, not in it: `keras_weightinit`'s `__init__`
imports Keras, and a module inside the package cannot run before it. Here the
arguments are parsed and checked (`keras_weightinit_cli.settings`) without
Keras, TensorFlow or NumPy, so `--help` and a bad argument answer at once;
then `--backend` is set and `keras_weightinit_cli.commands` imports the
package to run the command.
"""

from __future__ import annotations

import os
import re
import sys

from keras_weightinit_cli.parser import flag, options, parser, to_settings
from keras_weightinit_cli.settings import check

__all__ = ["main"]


def _message(error: Exception, command: str) -> str:
    """An error in the command line's terms, on one line.

    ``Argument `depth` must be a positive int. Received: depth=0`` becomes
    ``argument --depth: must be a positive int. Received: 0``, as argparse
    words its own errors; a setting without an option keeps its name.
    """
    message = " ".join(str(error).split()) or type(error).__name__
    match = re.match(r"Argument `(\w+)`:? ", message)
    if match is None or match.group(1) not in options(command):
        return message
    name = match.group(1)
    rest = message[match.end() :].replace(f"Received: {name}=", "Received: ")
    return f"argument {flag(name)}: {rest}"


def _usage_error(error: Exception, command: str) -> int:
    print(f"keras-weightinit: error: {_message(error, command)}", file=sys.stderr)
    return 2


def _select_backend(backend: str | None) -> None:
    """Sets `KERAS_BACKEND` for `--backend`, before Keras is imported.

    Raises:
        ValueError: If Keras is already imported with another backend.
    """
    if backend is None:
        return
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if current != backend:
            raise ValueError(
                f"Argument `backend`: Keras already runs on {current!r} in "
                "this process; set KERAS_BACKEND before starting it. "
                f"Received: backend={backend!r}"
            )
        return
    os.environ["KERAS_BACKEND"] = backend


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `keras-weightinit` console script.

    Args:
        argv: The arguments after the program name (default `sys.argv[1:]`).

    Returns:
        The exit status: 0, or 2 for a user's mistake (a bad argument, data
        that cannot be used, a folder that cannot be written), with one line
        on stderr and no traceback (argparse raises `SystemExit(2)` for the
        ones it finds itself).
    """
    args = parser().parse_args(argv)
    try:  # no Keras needed: before TensorFlow starts
        chosen = to_settings(args)
        check(chosen)
        _select_backend(args.backend)
    except ValueError as error:
        return _usage_error(error, args.command)
    from keras_weightinit_cli import commands  # imports Keras

    try:
        return commands.run(args.command, chosen)
    except (ValueError, OSError) as error:  # the package's bad-input errors
        return _usage_error(error, args.command)
