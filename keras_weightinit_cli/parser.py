"""The parser of `keras-weightinit compare|coord-check|transfer [options]`.

Each command's options are the fields of its settings class (`CompareConfig`,
`CoordCheckSettings`, `TransferSettings`); an option left out is None, so the
class's default fills it in, and `--quick` a smoke preset. `to_settings` turns
parsed options into the settings object that `settings.check` checks.
"""

from __future__ import annotations

import argparse

from keras_weightinit_cli.settings import (
    ARTICLE_SCHEMES,
    DATA_DEPENDENT,
    DATASETS,
    GPT_DEFAULTS,
    MODELS,
    SCHEMES,
    VERBOSE,
    CompareConfig,
    CoordCheckSettings,
    TransferSettings,
)

__all__ = ["BACKENDS", "OTHER_SCHEMES", "QUICK", "flag", "parser", "to_settings"]

BACKENDS = ("tensorflow", "jax", "torch")

# Schemes beyond the article's six, for the help.
OTHER_SCHEMES = tuple(s for s in SCHEMES + DATA_DEPENDENT if s not in ARTICLE_SCHEMES)

# `--quick`: a tiny smoke configuration per command; options given still apply.
QUICK = {
    "depth": 3,
    "width": 32,
    "epochs": 2,
    "seeds": 1,
    "dbn_epochs": 1,
    "max_train": 256,
}
QUICKS = {
    "compare": QUICK,
    "coord-check": {"widths": (32, 64, 128), "steps": 2},
    "transfer": {
        "widths": (32, 128),
        "learning_rates": (0.001, 0.01, 0.1),
        "epochs": 1,
        "seeds": (0,),
    },
}
# `coord-check --model gpt`: the sizes per `--over` (depths for "depth")
GPT_COORD = {
    "width": {"widths": (64, 128, 256, 512, 1024)},
    "depth": {"widths": (2, 4, 8, 16)},
}
# `transfer --model gpt`: the sweep per `--over` (depths for "depth")
GPT_RATES = (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03)
GPT_TRANSFER = {
    "width": {"widths": (64, 128, 256, 512), "learning_rates": GPT_RATES},
    "depth": {"widths": (2, 4, 8, 16), "learning_rates": GPT_RATES},
}
GPT_TRANSFER_QUICK = {
    "width": {"widths": (16, 32)},
    "depth": {"widths": (1, 2)},
    "all": {"learning_rates": (0.003, 0.03), "steps": 2, "seeds": (0,)},
}
# `--model gpt --quick`: the language model's smoke run
GPT_QUICK = {
    "schemes": ("default", "zeros", "t-fixup", "deepnet"),
    "depth": 1,
    "width": 16,
    "steps": 4,
    "batch_size": 4,
    "seeds": 1,
}
SETTINGS = {
    "compare": CompareConfig,
    "coord-check": CoordCheckSettings,
    "transfer": TransferSettings,
}
# Options holding comma-separated values: the type of each value, its name.
LISTS = {
    "schemes": (str, "names"),
    "widths": (int, "ints"),
    "learning_rates": (float, "numbers"),
    "seeds": (int, "ints"),
}


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr, exit code 2, no usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def flag(name: str) -> str:
    """The option that sets the settings field `name`: `--learning-rate`."""
    return "--" + name.replace("_", "-")


def _default(command: str, name: str) -> str:
    value = getattr(SETTINGS[command](), name)
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _compare_options() -> dict[str, dict]:
    """`CompareConfig` field -> `add_argument` keywords of its option."""

    def default(name: str) -> str:
        return f"default {_default('compare', name)}"

    return {
        "schemes": {
            "help": f"comma-separated schemes ({default('schemes')}); also "
            f"{', '.join(OTHER_SCHEMES)}, or an initializer string such as "
            "keras_weightinit>HeUniform"
        },
        "dataset": {
            "help": f"{', '.join(DATASETS)} or a .npz path with x_train, "
            f"y_train, x_test, y_test ({default('dataset')})"
        },
        "model": {
            "choices": MODELS,
            "help": "mlp, or resmlp: residual blocks without normalization, "
            "whose schemes may carry a recipe (he+zero, he+fixup, he+scaled, "
            "auto+deepnorm), or gpt: a byte-level language model on the "
            "standard library's source (or --dataset FILE.txt), schemes "
            f"{','.join(GPT_DEFAULTS['schemes'])} by default ({default('model')})",
        },
        "depth": {
            "type": int,
            "help": f"hidden layers, or blocks ({default('depth')})",
        },
        "width": {"type": int, "help": f"units per hidden layer ({default('width')})"},
        "activation": {"help": f"hidden activation ({default('activation')})"},
        "optimizer": {
            "help": f"sgd (momentum 0.9), adam or rmsprop ({default('optimizer')})"
        },
        "learning_rate": {
            "type": float,
            "help": f"the optimizer's ({default('learning_rate')})",
        },
        "epochs": {"type": int, "help": f"per run ({default('epochs')})"},
        "batch_size": {"type": int, "help": default("batch_size")},
        "seeds": {"type": int, "help": f"runs per scheme ({default('seeds')})"},
        "steps": {
            "type": int,
            "help": f"--model gpt: training steps ({default('steps')})",
        },
        "target_loss": {
            "type": float,
            "help": f"--model gpt: the loss whose first step is reported "
            f"({default('target_loss')})",
        },
        "logdir": {"help": default("logdir")},
    }


def _mup_options(command: str) -> dict[str, dict]:
    """`CoordCheckSettings` or `TransferSettings` field -> its option's keywords."""

    def default(name: str) -> str:
        return f"default {_default(command, name)}"

    options = {
        "widths": {"help": f"comma-separated ({default('widths')})"},
        "optimizer": {"choices": ("adam", "sgd"), "help": default("optimizer")},
        "logdir": {"help": default("logdir")},
    }
    options["model"] = {
        "choices": ("mlp", "gpt"),
        "help": "mlp: the digits MLP; gpt: KerasHub GPT-2 on stdlib bytes "
        "(default mlp)",
    }
    options["over"] = {
        "choices": ("width", "depth"),
        "help": "width, or depth (gpt only: --widths are then depths) (default width)",
    }
    if command == "coord-check":
        options["steps"] = {"type": int, "help": default("steps")}
        options["learning_rate"] = {
            "type": float,
            "help": "default 0.03 (adam), 0.1 (sgd)",
        }
    else:
        gpt = GPT_TRANSFER["width"]
        options["learning_rates"] = {
            "help": "comma-separated (default 8 log-spaced: 1e-4..0.32 for "
            "adam, 3e-3..10 for sgd; --model gpt: "
            f"{','.join(map(str, gpt['learning_rates']))})"
        }
        options["epochs"] = {"type": int, "help": f"mlp: {default('epochs')}"}
        options["steps"] = {
            "type": int,
            "help": f"gpt: Adam steps per run ({default('steps')})",
        }
        options["seeds"] = {
            "help": f"comma-separated, the losses are their mean ({default('seeds')})"
        }
    return options


_DESCRIPTIONS = {
    "compare": (
        "train one deep network under each initialization scheme",
        "Train the same deep MLP from each initialization scheme and write "
        "TensorBoard runs and a summary (md, json, png) to --logdir.",
    ),
    "coord-check": (
        "µP's coordinate check: |activation| vs width, µP and standard",
        "Train the digits MLP 64 -> w -> w -> 10 a few steps at each width "
        "under µP and under the standard parametrization; write summary.png "
        "and summary.json to --logdir.",
    ),
    "transfer": (
        "learning-rate transfer: loss vs learning rate per width",
        "Sweep the learning rate at each width on digits (or, with --model "
        "gpt, at each width or depth of KerasHub GPT-2 on the standard "
        "library's bytes), under the standard parametrization and under µP "
        "(Tensor Programs V, Fig. 1 at small scale); write summary.png and "
        "summary.json to --logdir.",
    ),
}


def options(command: str) -> dict[str, dict]:
    """The options of `command`: settings field -> `add_argument` keywords."""
    found = _compare_options() if command == "compare" else _mup_options(command)
    found["verbose"] = {
        "type": int,
        "choices": VERBOSE,
        "help": "1: progress lines, 0: silent "
        f"(default {_default(command, 'verbose')})",
    }
    return found


def parser() -> argparse.ArgumentParser:
    """The parser of the three commands; options left out are None."""
    top = _Parser(
        prog="keras-weightinit",
        description="Weight initialization for Keras 3, measured.",
    )
    commands = top.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command, (summary, description) in _DESCRIPTIONS.items():
        sub = commands.add_parser(command, help=summary, description=description)
        for name, keywords in options(command).items():
            sub.add_argument(flag(name), **keywords)
        sub.add_argument(
            "--backend",
            choices=BACKENDS,
            help="the Keras backend to run on (default: KERAS_BACKEND, else "
            "tensorflow)",
        )
        quick = ", ".join(
            f"{k} {','.join(map(str, v)) if isinstance(v, tuple) else v}"
            for k, v in QUICKS[command].items()
        )
        sub.add_argument(
            "--quick",
            action="store_true",
            help=f"a smoke configuration ({quick}); options given with it still apply",
        )
    return top


def _values(name: str, text: str) -> tuple:
    """A comma-separated option's values, or `ValueError` naming the option."""
    kind, kinds = LISTS[name]
    try:
        return tuple(kind(v.strip()) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(
            f"Argument `{name}` must be comma-separated {kinds}. "
            f"Received: {name}={text!r}"
        ) from None


def to_settings(args: argparse.Namespace):
    """The settings the options give: the class's, `--quick`'s, then the options.

    Raises:
        ValueError: If a comma-separated option holds a value of the wrong
            kind (the other checks are `settings.check`'s).
    """
    chosen = dict(QUICKS[args.command]) if args.quick else {}
    if args.command == "coord-check" and args.model == "gpt":
        chosen = dict(GPT_COORD[args.over or "width"])
        chosen["learning_rate"] = 0.01
        if args.quick:
            chosen.update(widths=chosen["widths"][:2], steps=1)
    if args.command == "transfer" and args.model == "gpt":
        over = args.over or "width"
        chosen = dict(GPT_TRANSFER[over])
        if args.quick:
            chosen.update(GPT_TRANSFER_QUICK[over], **GPT_TRANSFER_QUICK["all"])
    if args.command == "compare" and args.model == "gpt":
        chosen = {**GPT_DEFAULTS, **(GPT_QUICK if args.quick else {})}
    for name in options(args.command):
        value = getattr(args, name)
        if isinstance(value, str) and name in LISTS:  # not compare's --seeds N
            value = _values(name, value)
        if value is not None:
            chosen[name] = value
    return SETTINGS[args.command](**chosen)
