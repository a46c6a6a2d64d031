"""The µP commands of `keras-weightinit`: `coord-check` and `transfer`.

Arguments are parsed and checked here without importing Keras or
TensorFlow; `keras_weightinit.mup_checks` is imported only to run.
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["COMMANDS", "add_commands", "run"]

COMMANDS = ("coord-check", "transfer")

# `--quick`: a smoke configuration; options given with it still apply.
QUICK = {
    "coord-check": {"widths": "32,64,128", "steps": 2},
    "transfer": {
        "widths": "32,128",
        "learning_rates": "0.001,0.01,0.1",
        "epochs": 1,
        "seeds": "0",
    },
}
DEFAULTS = {
    "coord-check": {
        "widths": "64,128,256,512,1024,2048",
        "steps": 3,
        "logdir": "logs/coord_check",
    },
    "transfer": {
        "widths": "64,256,1024",
        "epochs": 3,
        "seeds": "0,1,2",
        "logdir": "logs/transfer",
    },
}


def add_commands(commands, parser_class=argparse.ArgumentParser) -> None:
    """Adds `coord-check` and `transfer` to a subparsers object."""
    coord = commands.add_parser(
        "coord-check",
        help="µP's coordinate check: |activation| vs width, µP and standard",
        description=(
            "Train the digits MLP 64 -> w -> w -> 10 a few steps at each width "
            "under µP and under the standard parametrization; write "
            "summary.png and summary.json to --logdir."
        ),
    )
    d = DEFAULTS["coord-check"]
    coord.add_argument("--widths", help=f"comma-separated (default {d['widths']})")
    coord.add_argument("--steps", type=int, help=f"default {d['steps']}")
    coord.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    coord.add_argument(
        "--learning-rate", type=float, help="default 0.03 (adam), 0.1 (sgd)"
    )
    coord.add_argument("--logdir", default=d["logdir"], help=f"default {d['logdir']}")
    coord.add_argument("--quick", action="store_true", help="widths 32,64,128, 2 steps")
    t = DEFAULTS["transfer"]
    transfer = commands.add_parser(
        "transfer",
        help="learning-rate transfer: loss vs learning rate per width",
        description=(
            "Sweep the learning rate at each width on digits, under the "
            "standard parametrization and under µP (Tensor Programs V, Fig. 1 "
            "at small scale); write summary.png and summary.json to --logdir."
        ),
    )
    transfer.add_argument("--widths", help=f"comma-separated (default {t['widths']})")
    transfer.add_argument(
        "--learning-rates",
        help="comma-separated (default 8 log-spaced: 1e-4..0.32 for adam, "
        "3e-3..10 for sgd)",
    )
    transfer.add_argument("--epochs", type=int, help=f"default {t['epochs']}")
    transfer.add_argument(
        "--seeds",
        help=f"comma-separated, the losses are their mean (default {t['seeds']})",
    )
    transfer.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    transfer.add_argument(
        "--logdir", default=t["logdir"], help=f"default {t['logdir']}"
    )
    transfer.add_argument(
        "--quick",
        action="store_true",
        help="widths 32,128, 3 learning rates, 1 epoch, 1 seed",
    )


def _error(message: str) -> int:
    print(f"keras-weightinit: error: {message}", file=sys.stderr)
    return 2


def _ints(text: str) -> list[int] | None:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        return None
    if len(values) < 2 or min(values) <= 0 or len(set(values)) != len(values):
        return None
    return values


def _floats(text: str) -> list[float] | None:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        return None
    if not values or any(not (v > 0 and v < float("inf")) for v in values):
        return None
    return values


def settings(args: argparse.Namespace) -> dict:
    """The checked settings of a parsed command, or `ValueError` (no Keras)."""
    command = args.command
    chosen = dict(DEFAULTS[command])
    if args.quick:
        chosen.update(QUICK[command])
    for name in ("widths", "steps", "epochs", "learning_rates", "seeds"):
        value = getattr(args, name, None)
        if value is not None:
            chosen[name] = value
    widths = _ints(chosen["widths"])
    if widths is None:
        raise ValueError(
            "argument --widths: must be at least two distinct positive ints, "
            f"comma-separated. Received: {chosen['widths']!r}"
        )
    out = {"widths": widths, "optimizer": args.optimizer, "logdir": args.logdir}
    for name in ("steps", "epochs"):
        if name in chosen:
            if chosen[name] <= 0:
                raise ValueError(
                    f"argument --{name}: must be a positive int. "
                    f"Received: {chosen[name]!r}"
                )
            out[name] = chosen[name]
    if command == "coord-check":
        lr = args.learning_rate
        if lr is not None and not (lr > 0 and lr < float("inf")):
            raise ValueError(
                f"argument --learning-rate: must be a positive number. Received: {lr!r}"
            )
        out["learning_rate"] = lr
    elif "learning_rates" in chosen:
        rates = _floats(chosen["learning_rates"])
        if rates is None:
            raise ValueError(
                "argument --learning-rates: must be positive numbers, "
                f"comma-separated. Received: {chosen['learning_rates']!r}"
            )
        out["learning_rates"] = rates
    if "seeds" in chosen:
        try:
            seeds = [int(v) for v in chosen["seeds"].split(",") if v.strip()]
        except ValueError:
            seeds = []
        if not seeds or min(seeds) < 0:
            raise ValueError(
                "argument --seeds: must be non-negative ints, comma-separated. "
                f"Received: {chosen['seeds']!r}"
            )
        out["seeds"] = seeds
    return out


def run(args: argparse.Namespace) -> int:
    """Runs a parsed `coord-check` or `transfer` command; 0, or 2 on bad input."""
    try:
        chosen = settings(args)
    except ValueError as error:
        return _error(str(error))
    from keras_weightinit import mup_checks as cc

    logdir = chosen["logdir"]
    os.makedirs(logdir, exist_ok=True)
    if args.command == "coord-check":
        x, y = cc.digits(128)
        results = [
            cc.coord_check(
                cc.digits_mlp,
                chosen["widths"],
                x,
                y,
                steps=chosen["steps"],
                optimizer=chosen["optimizer"],
                learning_rate=chosen["learning_rate"],
                mup=mup,
            )
            for mup in (True, False)
        ]
        cc.plot_coord_checks(results, os.path.join(logdir, "summary.png"))
        cc.write_json(
            {"results": [r.to_dict() for r in results]},
            os.path.join(logdir, "summary.json"),
        )
        for r in results:
            last = r.layers[-1]
            row = ", ".join(f"{v:.3g}" for v in r.values[last][-1])
            print(
                f"{r.parametrization:>3}: mean |{last}| after step {r.steps} at "
                f"widths {r.widths}: {row} (x{r.growth():.1f}); "
                f"{r.layers[-2]} x{r.growth(r.layers[-2]):.2f}"
            )
    else:
        result = cc.lr_transfer(
            chosen["widths"],
            chosen.get("learning_rates"),
            epochs=chosen["epochs"],
            optimizer=chosen["optimizer"],
            seeds=chosen["seeds"],
            verbose=1,
        )
        result.plot(os.path.join(logdir, "summary.png"))
        cc.write_json(result.to_dict(), os.path.join(logdir, "summary.json"))
        for part in ("sp", "mup"):
            best = result.best_learning_rates(part)
            row = ", ".join(f"{w}: {lr:.3g}" for w, lr in best.items())
            print(f"{part:>3}: best learning rate per width {{{row}}}")
    print(f"wrote {os.path.join(logdir, 'summary.png')} and summary.json")
    return 0
