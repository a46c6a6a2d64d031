"""Command line: `keras-weightinit compare [options]`."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr, exit code 2, no usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="keras-weightinit",
        description="Weight initialization for Keras 3, measured.",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser
    )
    p = commands.add_parser(
        "compare",
        help="train one deep network under each initialization scheme",
        description=(
            "Train the same deep MLP from each initialization scheme and write "
            "TensorBoard runs and a summary (md, json, png) to --logdir."
        ),
    )
    p.add_argument(
        "--schemes",
        default=None,
        help="comma-separated schemes: zeros, random, small_random, xavier, he, "
        "dbn (default), lecun, glorot, orthogonal, zero, lsuv, auto, or an "
        "initializer string such as keras_weightinit>HeUniform",
    )
    p.add_argument(
        "--dataset",
        default="digits",
        help="digits, mnist, fashion_mnist or a .npz path",
    )
    p.add_argument("--depth", type=int, help="hidden layers (default 10)")
    p.add_argument("--width", type=int, help="units per hidden layer (default 128)")
    p.add_argument("--activation", help="hidden activation (default relu)")
    p.add_argument("--optimizer", help="sgd (momentum 0.9, default), adam, rmsprop")
    p.add_argument("--learning-rate", type=float, help="default 0.003")
    p.add_argument("--epochs", type=int, help="default 20")
    p.add_argument("--batch-size", type=int, help="default 32")
    p.add_argument("--seeds", type=int, help="runs per scheme (default 3)")
    p.add_argument("--logdir", default="logs/compare", help="default logs/compare")
    p.add_argument("--quick", action="store_true", help="a tiny smoke configuration")
    p.add_argument("--verbose", type=int, choices=(0, 1), default=1)
    return parser


QUICK = {
    "depth": 3,
    "width": 32,
    "epochs": 2,
    "seeds": 1,
    "dbn_epochs": 1,
    "max_train": 256,
}


def _config(args: argparse.Namespace):
    from keras_weightinit.compare import CompareConfig

    settings = dict(QUICK) if args.quick else {}
    for name in (
        "depth",
        "width",
        "activation",
        "optimizer",
        "learning_rate",
        "epochs",
        "batch_size",
        "seeds",
    ):
        value = getattr(args, name)
        if value is not None:
            settings[name] = value
    if args.schemes is not None:
        settings["schemes"] = tuple(
            s.strip() for s in args.schemes.split(",") if s.strip()
        )
    return CompareConfig(
        dataset=args.dataset, logdir=args.logdir, verbose=args.verbose, **settings
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `keras-weightinit` console script."""
    args = _parser().parse_args(argv)
    from keras_weightinit.compare import compare, format_summary, load_dataset, validate

    config = _config(args)
    try:  # usage errors: before anything is written
        validate(config)
        data = load_dataset(config.dataset, config.max_train)
    except ValueError as error:
        print(f"keras-weightinit: error: {error}", file=sys.stderr)
        return 2
    summary = compare(config, data)
    if args.verbose:
        print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
