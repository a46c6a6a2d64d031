"""Runs a checked command; imports `keras_weightinit`, and so Keras.

`keras_weightinit_cli.main` imports this module once the arguments are
checked and `--backend` is set.
"""

from __future__ import annotations

import os

from keras_weightinit import transfer
from keras_weightinit.compare import compare, format_summary, load_dataset, validate
from keras_weightinit_cli.settings import (
    CompareConfig,
    CoordCheckSettings,
    TransferSettings,
)

__all__ = ["run"]


def run(command: str, settings) -> int:
    """Runs `command` with its checked settings; returns the exit status 0.

    Raises:
        ValueError: For data `compare` cannot use (checked before anything
            is written) and the package's errors during the run.
        OSError: If `settings.logdir` cannot be written.
    """
    return {
        "compare": _compare,
        "coord-check": _coord_check,
        "transfer": _transfer,
    }[command](settings)


def _compare(config: CompareConfig) -> int:
    validate(config)  # what needs Keras, before anything is written
    if config.model == "gpt":
        from keras_weightinit.compare_lm import (
            compare_lm,
            format_lm_summary,
            load_corpus,
        )

        summary = compare_lm(config, load_corpus(config.dataset))
        if config.verbose:
            print(format_lm_summary(summary))
        return 0
    data = load_dataset(config.dataset, config.max_train)
    summary = compare(config, data)
    if config.verbose:
        print(format_summary(summary))
    return 0


def _written(logdir: str) -> None:
    print(f"wrote {os.path.join(logdir, 'summary.png')} and summary.json")


def _gpt_coord_check(settings: CoordCheckSettings) -> list:
    return [
        transfer.gpt_coord_check(
            list(settings.widths),
            over=settings.over,
            mup=mup,
            steps=settings.steps,
            learning_rate=settings.learning_rate or 0.01,
        )
        for mup in (True, False)
    ]


def _coord_check(settings: CoordCheckSettings) -> int:
    os.makedirs(settings.logdir, exist_ok=True)
    x, y = transfer.digits(128)
    results = (
        _gpt_coord_check(settings)
        if settings.model == "gpt"
        else [
            transfer.coord_check(
                transfer.digits_mlp,
                list(settings.widths),
                x,
                y,
                steps=settings.steps,
                optimizer=settings.optimizer,
                learning_rate=settings.learning_rate,
                mup=mup,
                verbose=settings.verbose,
            )
            for mup in (True, False)
        ]
    )
    transfer.plot_coord_checks(results, os.path.join(settings.logdir, "summary.png"))
    transfer.write_json(
        {"results": [r.to_dict() for r in results]},
        os.path.join(settings.logdir, "summary.json"),
    )
    if settings.verbose:
        for r in results:
            last = r.layers[-1]
            row = ", ".join(f"{v:.3g}" for v in r.values[last][-1])
            print(
                f"{r.parametrization:>3}: mean |{last}| after step {r.steps} at "
                f"widths {r.widths}: {row} (x{r.growth():.1f}); "
                f"{r.layers[-2]} x{r.growth(r.layers[-2]):.2f}"
            )
        _written(settings.logdir)
    return 0


def _transfer(settings: TransferSettings) -> int:
    os.makedirs(settings.logdir, exist_ok=True)
    rates = settings.learning_rates
    if settings.model == "gpt":
        result = transfer.gpt_lr_transfer(
            list(settings.widths),
            list(rates),
            over=settings.over,
            seeds=list(settings.seeds),
            steps=settings.steps,
            verbose=settings.verbose,
        )
    else:
        result = transfer.lr_transfer(
            list(settings.widths),
            None if rates is None else list(rates),
            epochs=settings.epochs,
            optimizer=settings.optimizer,
            seeds=list(settings.seeds),
            verbose=settings.verbose,
        )
    result.plot(os.path.join(settings.logdir, "summary.png"))
    transfer.write_json(result.to_dict(), os.path.join(settings.logdir, "summary.json"))
    if settings.verbose:
        print(format_transfer(result))
        _written(settings.logdir)
    return 0


def format_transfer(result: transfer.TransferResult) -> str:
    """The best learning rate per width, a best one at the grid's edge flagged.

    With more than one seed, a line per parametrization gives each seed's
    optimum (geometric mean, x its spread) and lowest loss (mean ± std).
    """
    lines = []
    for part in ("sp", "mup"):
        if part not in result.losses:
            continue
        best = result.best_learning_rates(part)
        edge = result.best_at_edge(part)
        row = ", ".join(
            f"{w}: {lr:.3g}{' (edge)' if w in edge else ''}" for w, lr in best.items()
        )
        lines.append(
            f"{part:>3}: best learning rate per {result.over} {{{row}}}, "
            f"moves x{result.optimum_shift(part):.2f}"
        )
        if len(result.seeds) > 1:
            spread = ", ".join(
                f"{w}: lr {s['lr_mean']:.3g} x{s['lr_std']:.2f}, "
                f"loss {s['loss_mean']:.3f} ± {s['loss_std']:.3f}"
                for w, s in result.seed_spread(part).items()
            )
            lines.append(f"     per seed {{{spread}}}")
        if edge:
            lines.append(
                f"     at the edge of the grid for {result.over}s {edge}: the "
                "optimum may lie outside it; widen --learning-rates"
            )
    return "\n".join(lines)
