"""Command line: `keras-weightinit compare|coord-check|transfer [options]`.

Arguments are parsed and checked before Keras or TensorFlow is imported, so
`--help` and a bad argument answer at once; the defaults are `CompareConfig`'s.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from keras_weightinit.config import CompareConfig, check_config

__all__ = ["main"]

# `--quick`: a tiny smoke configuration; options given with it still apply.
QUICK = {
    "depth": 3,
    "width": 32,
    "epochs": 2,
    "seeds": 1,
    "dbn_epochs": 1,
    "max_train": 256,
}

# Schemes beyond the article's six, for the help (`get_scheme`'s other names
# and the data-dependent ones); listed here so `--help` needs no Keras.
OTHER_SCHEMES = ("lecun", "glorot", "orthogonal", "zero", "lsuv", "auto")

_DEFAULTS = CompareConfig()


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr, exit code 2, no usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _default(name: str) -> str:
    value = getattr(_DEFAULTS, name)
    return ",".join(value) if isinstance(value, tuple) else str(value)


def _options() -> dict[str, dict]:
    """`CompareConfig` field -> `add_argument` keywords of its option."""
    return {
        "schemes": {
            "help": f"comma-separated schemes (default {_default('schemes')}); "
            f"also {', '.join(OTHER_SCHEMES)}, or an initializer string such as "
            "keras_weightinit>HeUniform"
        },
        "dataset": {
            "help": "digits, mnist, fashion_mnist or a .npz path with x_train, "
            f"y_train, x_test, y_test (default {_default('dataset')})"
        },
        "model": {
            "choices": ("mlp", "resmlp"),
            "help": "mlp, or resmlp: residual blocks without normalization, "
            "whose schemes may carry a recipe (he+zero, he+fixup, he+scaled, "
            f"auto+deepnorm) (default {_default('model')})",
        },
        "depth": {
            "type": int,
            "help": f"hidden layers, or residual blocks (default {_default('depth')})",
        },
        "width": {
            "type": int,
            "help": f"units per hidden layer (default {_default('width')})",
        },
        "activation": {"help": f"hidden activation (default {_default('activation')})"},
        "optimizer": {
            "help": "sgd (momentum 0.9), adam or rmsprop "
            f"(default {_default('optimizer')})"
        },
        "learning_rate": {
            "type": float,
            "help": f"the optimizer's (default {_default('learning_rate')})",
        },
        "epochs": {"type": int, "help": f"per run (default {_default('epochs')})"},
        "batch_size": {"type": int, "help": f"default {_default('batch_size')}"},
        "seeds": {
            "type": int,
            "help": f"runs per scheme (default {_default('seeds')})",
        },
        "logdir": {"help": f"default {_default('logdir')}"},
        "verbose": {
            "type": int,
            "choices": (0, 1),
            "help": "1: a progress line per run, 0: silent "
            f"(default {_default('verbose')})",
        },
    }


def _flag(name: str) -> str:
    """The option that sets the `CompareConfig` field `name`."""
    return "--" + name.replace("_", "-")


def _parser() -> argparse.ArgumentParser:
    """The parser; options left out are None, so `CompareConfig` fills them."""
    parser = _Parser(
        prog="keras-weightinit",
        description="Weight initialization for Keras 3, measured.",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser
    )
    compare = commands.add_parser(
        "compare",
        help="train one deep network under each initialization scheme",
        description=(
            "Train the same deep MLP from each initialization scheme and write "
            "TensorBoard runs and a summary (md, json, png) to --logdir."
        ),
    )
    for name, keywords in _options().items():
        compare.add_argument(_flag(name), **keywords)
    compare.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="the Keras backend to run on (default: KERAS_BACKEND, else tensorflow)",
    )
    compare.add_argument(
        "--quick",
        action="store_true",
        help="a tiny smoke configuration ("
        + ", ".join(f"{k} {v}" for k, v in QUICK.items())
        + "); options given with it still apply",
    )
    from keras_weightinit import mup_cli  # no Keras: argument parsing only

    mup_cli.add_commands(commands)
    return parser


def _config(args: argparse.Namespace) -> CompareConfig:
    """The settings the options give: `--quick`'s, then the options given."""
    settings = dict(QUICK) if args.quick else {}
    for name in _options():
        value = getattr(args, name)
        if value is not None:
            settings[name] = value
    if args.schemes is not None:
        settings["schemes"] = tuple(
            s.strip() for s in args.schemes.split(",") if s.strip()
        )
    return CompareConfig(**settings)


def _message(error: ValueError) -> str:
    """A library error in the command line's terms, on one line.

    ``Argument `depth` must be a positive int. Received: depth=0`` becomes
    ``argument --depth: must be a positive int. Received: 0``, as argparse
    words its own errors; a setting without an option keeps its name.
    """
    message = " ".join(str(error).split())
    match = re.match(r"Argument `(\w+)`:? ", message)
    if match is None or match.group(1) not in _options():
        return message
    name = match.group(1)
    rest = message[match.end() :].replace(f"Received: {name}=", "Received: ")
    return f"argument {_flag(name)}: {rest}"


def _usage_error(error: ValueError) -> int:
    print(f"keras-weightinit: error: {_message(error)}", file=sys.stderr)
    return 2


BACKENDS = ("tensorflow", "jax", "torch")


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
        The exit status: 0, or 2 for a bad argument, with one line on stderr
        (argparse raises `SystemExit(2)` for the ones it finds itself).
    """
    args = _parser().parse_args(argv)
    if args.command != "compare":  # coord-check, transfer (µP)
        from keras_weightinit import mup_cli

        return mup_cli.run(args)
    config = _config(args)
    try:  # no Keras needed: before TensorFlow starts
        check_config(config)
    except ValueError as error:
        return _usage_error(error)
    try:
        _select_backend(args.backend)
    except ValueError as error:
        return _usage_error(error)
    from keras_weightinit.compare import compare, format_summary, load_dataset, validate

    try:  # usage errors: before anything is written
        validate(config)
        data = load_dataset(config.dataset, config.max_train)
    except ValueError as error:
        return _usage_error(error)
    summary = compare(config, data)
    if config.verbose:
        print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
