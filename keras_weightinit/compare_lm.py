"""The story on a language model: `keras-weightinit compare --model gpt`.

`compare_lm(config)` trains a small byte-level decoder (`keras_weightinit.lm`)
from every scheme and seed, without learning-rate warmup, and writes, as the
MLP comparison does, TensorBoard runs `<logdir>/<scheme>/seed<k>/{train,
validation}` and `summary.md`, `summary.json`, `summary.png`. A scheme is a
name `initialize` takes (`"zeros"`, `"random"`, `"auto"`, `"gpt2"`,
`"neox"`, ...) or `"default"` (the model as built), with the architecture
after `@`: `gpt2` (KerasHub's Pre-LN `GPT2Backbone`), `post-ln` (the
package's Post-LN Transformer, `2 x depth` blocks) or `no-ln` (no
normalization). `t-fixup` runs on `no-ln` and `deepnet` on `post-ln` unless
told otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections import Counter
from pathlib import Path

import keras
import numpy as np

from keras_weightinit import lm
from keras_weightinit.compare import (
    LayerPanels,
    Progress,
    clear_logdir,
    json_safe,
    make_optimizer,
    run_dirname,
    write_summary,
)
from keras_weightinit.diagnostics import diagnose
from keras_weightinit.model_init import initialize
from keras_weightinit_cli.settings import CompareConfig, split_lm

__all__ = ["build", "compare_lm", "format_lm_summary", "load_corpus"]

_POST_LN_DEPTH = 2  # the Post-LN model has this many times `depth` blocks
_LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
_VALIDATION_WINDOWS = 128


def load_corpus(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """`(train, validation)` bytes: `"stdlib"` or a text file's path.

    Args:
        dataset: `"stdlib"` (`lm.stdlib_corpus`) or a path (`lm.read_corpus`).

    Returns:
        Two uint8 arrays.

    Example:

    >>> train, validation = load_corpus("stdlib")
    >>> len(train) > len(validation) > 0
    True
    """
    return lm.stdlib_corpus() if dataset == "stdlib" else lm.read_corpus(dataset)


def build(architecture: str, depth: int, width: int) -> keras.Model:
    """The language model of an architecture of `LM_ARCHITECTURES`.

    Args:
        architecture: `gpt2`, `post-ln` (`2 x depth` blocks) or `no-ln`.
        depth: Blocks.
        width: Model width.

    Returns:
        A model from token ids to logits over 256 bytes.

    Example:

    >>> build("no-ln", 1, 16).name
    'transformer_none_ln'
    """
    if architecture == "gpt2":
        return lm.hub_lm(depth, width)
    if architecture == "post-ln":
        return lm.transformer_lm(_POST_LN_DEPTH * depth, width, "post")
    return lm.transformer_lm(depth, width, "none")


def _initialized(scheme: str, seed: int, config: CompareConfig) -> keras.Model:
    """The model of `scheme` built and initialized with `seed`."""
    base, architecture = split_lm(scheme)
    keras.utils.set_random_seed(seed)
    model = build(architecture, config.depth, config.width)
    if base != "default":
        report = initialize(model, base, seed=seed)
        if report.alpha is not None:  # DeepNet: the Post-LN skip factor
            lm.set_residual_scale(model, report.alpha)
    return model


class _LMProgress(Progress):
    def line(self, epoch: int, logs: dict) -> str:
        return (
            f"{self.label} step {epoch * self.every}/{self.epochs * self.every} "
            f"loss {logs.get('loss', math.nan):.4f} "
            f"val_loss {logs.get('val_loss', math.nan):.4f}"
        )


def _curves(history, every: int) -> dict:
    loss = [float(v) for v in history.history["loss"]]
    return {
        "steps": [every * (i + 1) for i in range(len(loss))],
        "loss": loss,
        "val_loss": [float(v) for v in history.history["val_loss"]],
    }


def _run(scheme: str, seed: int, corpus, config: CompareConfig, label: str) -> dict:
    """Trains one model; its curves and `diagnose`'s reading at initialization."""
    train, validation = corpus
    model = _initialized(scheme, seed, config)
    probe = lm.windows(train, 32, seed=10_000 + seed)
    report = diagnose(model, *probe, loss=_LOSS)
    x, y = lm.windows(train, config.steps * config.batch_size, seed=seed)
    every = max(1, min(25, config.steps))
    # eager for a few steps: tracing and compiling cost more than they save
    model.compile(
        make_optimizer(config.optimizer, config.learning_rate),
        _LOSS,
        steps_per_execution=every,
        run_eagerly=config.steps < 100,
    )
    run_dir = Path(config.logdir) / run_dirname(scheme) / f"seed{seed}"
    callbacks = [keras.callbacks.TensorBoard(str(run_dir), write_graph=False)]
    if config.verbose:
        callbacks.append(_LMProgress(label, config.steps // every))
        callbacks[-1].every = every
    history = model.fit(
        x,
        y,
        batch_size=config.batch_size,
        epochs=config.steps // every,
        steps_per_epoch=every,
        validation_data=lm.windows(validation, _VALIDATION_WINDOWS),
        callbacks=callbacks,
        verbose=0,
    )
    return {
        "seed": seed,
        "initial_loss": float(report.loss),
        **_curves(history, every),
        "verdict": report.verdict,
        "gradient_ratio": float(report.gradient_ratio),
        "layers": [
            {
                "name": r["name"],
                "std": float(r["std"]),
                "grad_norm": float(r["grad_norm"]),
            }
            for r in report.rows
        ],
    }


def _first_below(run: dict, target: float) -> int | None:
    pairs = zip(run["steps"], run["loss"], strict=True)
    return next((step for step, loss in pairs if loss <= target), None)


def _mean_std(values) -> tuple[float, float]:
    values = np.array(values, dtype=float)
    return float(np.mean(values)), float(np.std(values))


def _summarize(scheme: str, runs: list[dict], target: float) -> dict:
    reached = [_first_below(r, target) for r in runs]
    hit = [s for s in reached if s is not None]
    initial = _mean_std([r["initial_loss"] for r in runs])
    final = _mean_std([r["loss"][-1] for r in runs])
    val = _mean_std([r["val_loss"][-1] for r in runs])
    return {
        "scheme": scheme,
        "architecture": split_lm(scheme)[1],
        "initial_loss": initial,
        "final_loss": final,
        "val_loss": val,
        "steps_to_target": reached,
        "steps_to_target_mean": float(np.mean(hit)) if hit else None,
        "runs_reaching_target": len(hit),
        "gradient_ratio_median": float(np.median([r["gradient_ratio"] for r in runs])),
        "verdict": Counter(r["verdict"] for r in runs).most_common(1)[0][0],
        "runs": runs,
    }


def _pm(pair) -> str:
    mean, std = (math.nan if v is None else v for v in pair)
    return f"{mean:.3f} ± {std:.3f}" if math.isfinite(mean) else "nan"


def format_lm_summary(summary: dict) -> str:
    """The markdown table of `summary.md` for `--model gpt`.

    Args:
        summary: What `compare_lm` returns.

    Returns:
        The table, with the settings above and a note below.

    Example:

    >>> config = dict(target_loss=2.8, depth=2, width=64, optimizer="adam",
    ...               learning_rate=0.003, batch_size=16, steps=200, seeds=1,
    ...               logdir="logs/compare_gpt")
    >>> run = dict(scheme="zeros", architecture="gpt2", runs=[{}],
    ...            steps_to_target_mean=None, runs_reaching_target=0,
    ...            initial_loss=(5.545, 0.0), final_loss=(5.545, 0.0),
    ...            val_loss=(5.545, 0.0), verdict="symmetric")
    >>> summary = dict(config=config, corpus="stdlib", schemes=[run])
    >>> print(format_lm_summary(summary).splitlines()[6].replace(" ± 0.000", ""))
    | zeros | gpt2 | 5.545 | 5.545 | 5.545 | never (0/1) | symmetric |
    """
    c = summary["config"]
    target = c["target_loss"]
    lines = [
        "# keras-weightinit compare --model gpt",
        "",
        f"{summary['corpus']}; Pre-LN GPT-2 (KerasHub) and no-LN: {c['depth']} "
        f"blocks, Post-LN: {_POST_LN_DEPTH * c['depth']}; width {c['width']}, "
        f"context {lm.CONTEXT}, {c['optimizer']} lr {c['learning_rate']} "
        f"without warmup, batch {c['batch_size']}, {c['steps']} steps, "
        f"{c['seeds']} seed(s). Mean ± std over seeds; ln 256 = "
        f"{math.log(256):.3f}.",
        "",
        f"| scheme | model | loss at init | final train loss | validation loss "
        f"| steps to loss {target:g} (runs) | verdict at init |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summary["schemes"]:
        n = len(s["runs"])
        steps = s["steps_to_target_mean"]
        reached = (
            f"{steps:.0f} ({s['runs_reaching_target']}/{n})"
            if steps is not None
            else f"never (0/{n})"
        )
        lines.append(
            f"| {s['scheme'].partition('@')[0]} | {s['architecture']} "
            f"| {_pm(s['initial_loss'])} | {_pm(s['final_loss'])} "
            f"| {_pm(s['val_loss'])} | {reached} | {s['verdict']} |"
        )
    lines += [
        "",
        "Loss at init: cross-entropy of a batch of 32 windows before the first "
        "step (a uniform guess gives ln 256). Steps to the target: the first "
        "logged step (every 25) whose training loss is at or below it.",
        "",
        f"TensorBoard: `tensorboard --logdir {c['logdir']}`",
        "",
    ]
    return "\n".join(lines)


def _plot(summary: dict, path: Path) -> None:
    """Loss curves, and per layer at initialization std and |dL/dh|."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    loss_ax, std_ax, grad_ax = axes
    styles = ["-", "--", "-.", ":"]
    panels = LayerPanels(std_ax, grad_ax)
    for i, s in enumerate(summary["schemes"]):
        steps = np.array([0, *s["runs"][0]["steps"]])  # 0: the loss at init
        curves = np.array(
            [[r["initial_loss"], *r["loss"]] for r in s["runs"]], dtype=float
        )
        style = {"ls": styles[i % len(styles)], "lw": 1.6}
        label = f"{s['scheme']} ({_pm(s['val_loss']).split(' ')[0]})"
        (line,) = loss_ax.plot(steps, curves.mean(0), label=label, **style)
        loss_ax.fill_between(
            steps, curves.min(0), curves.max(0), alpha=0.15, color=line.get_color()
        )
        panels.add(s, {**style, "color": line.get_color(), "ms": 2})
    loss_ax.axhline(math.log(256), color="gray", lw=1, ls=(0, (1, 3)))
    top = min(3 * math.log(256), loss_ax.get_ylim()[1])
    loss_ax.set(
        xlabel="step",
        ylabel="training loss",
        ylim=(0, top),
        title="Training loss (mean over seeds, band min-max; dotted: ln 256)",
    )
    loss_ax.legend(fontsize=7, title="scheme (validation loss)", title_fontsize=7)
    panels.label("layer with a kernel, in call order")
    loss_ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare_lm(config: CompareConfig, corpus: tuple | None = None) -> dict:
    """Runs the language-model comparison and writes it to `config.logdir`.

    Every setting is checked and the corpus read before anything is written;
    previous runs of the same schemes and the previous summary are removed.

    Args:
        config: The settings, `model="gpt"` (`settings.gpt_config()`).
        corpus: `(train, validation)` bytes (default: `load_corpus`).

    Returns:
        The summary that `summary.json` holds.

    Example:

    >>> from keras_weightinit_cli.settings import gpt_config
    >>> config = gpt_config(schemes=("default", "zeros"), depth=1, width=16,
    ...     steps=4, batch_size=4, seeds=1, verbose=0, logdir="logs/doctest_gpt")
    >>> [s["scheme"] for s in compare_lm(config)["schemes"]]
    ['default', 'zeros']

    Reference:
        Radford et al. 2019; Huang et al. 2020 (T-Fixup); Wang et al. 2022
        (DeepNet).
    """
    from keras_weightinit.compare import validate

    validate(config)
    if corpus is None:
        corpus = load_corpus(config.dataset)
    logdir = Path(config.logdir)
    clear_logdir(logdir, config.schemes)
    total = len(config.schemes) * config.seeds
    results = []
    for i, scheme in enumerate(config.schemes):
        runs = [
            _run(
                scheme,
                seed,
                corpus,
                config,
                f"[{i * config.seeds + seed + 1}/{total}] {scheme} seed {seed}",
            )
            for seed in range(config.seeds)
        ]
        results.append(_summarize(scheme, runs, config.target_loss))
    summary = json_safe(
        {
            "config": dataclasses.asdict(config),
            "backend": keras.backend.backend(),
            "corpus": (
                f"Python {'.'.join(map(str, sys.version_info[:2]))} "
                "standard library source"
                if config.dataset == "stdlib"
                else str(config.dataset)
            )
            + f", {len(corpus[0])} training and {len(corpus[1])} validation bytes",
            "schemes": results,
        }
    )
    write_summary(logdir, summary, format_lm_summary(summary), _plot)
    return summary
