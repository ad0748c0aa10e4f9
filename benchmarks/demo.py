"""micrograd's demo on any gradspec backend: ``python -m benchmarks.demo``.

With no options it reproduces micrograd's ``demo.ipynb`` exactly (final loss
0.010978..., accuracy 100% on the python backend), then writes to ``--out``:

- ``curves.png``: loss and accuracy at every step;
- ``boundary.png``: the decision regions over the data (``fit.png`` for ``--dataset toy``);
- ``summary.json``: the configuration, final loss and accuracy, time per step, and
  the loss and accuracy of every step.

``--dataset digits`` is another demo with its own options (``--dataset digits --help``):
ten classes of 8x8 digits, softmax cross-entropy, compiled minibatch steps
(:mod:`benchmarks.digits`); it writes ``curves.png``, ``confusion.png``,
``misclassified.png`` and ``summary.json`` to ``out/digits``.

Examples::

    python -m benchmarks.demo
    python -m benchmarks.demo --backend numba --dataset circles --optimizer adam --steps 200
    python -m benchmarks.demo --dataset toy --hidden 8,8 --activation tanh --lr 0.05
    python -m benchmarks.demo --dataset digits
    python -m benchmarks.demo --dataset digits --optimizer momentum --hidden 64 --epochs 20
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from benchmarks import digits
from benchmarks.digits_plots import digits_figures
from benchmarks.plots import result_figures
from benchmarks.training import (
    DATASETS,
    DEFAULT_LR,
    LOSSES,
    MAX_LAYER_SIZE,
    OPTIMIZERS,
    TrainConfig,
    TrainResult,
    train,
)
from spec import ACTIVATIONS, INITS, GradspecError, load_backend

Result = TypeVar("Result")

__all__ = [
    "build_digits_parser",
    "build_parser",
    "digits_main",
    "format_digits_summary",
    "format_summary",
    "main",
    "write_digits_outputs",
    "write_outputs",
]


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.demo``."""
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.demo",
        description="Train a gradspec MLP; the defaults reproduce micrograd's demo.",
    )
    add = parser.add_argument
    add("--backend", default=defaults.backend, help="registered backend name (default: %(default)s)")
    add(
        "--dataset",
        choices=(*DATASETS, "digits"),
        default=defaults.dataset,
        help="toy is y = x**2 + 1; digits is another demo, see --dataset digits --help (default: moons)",
    )
    add("--hidden", type=_layer_sizes, default=defaults.hidden, help="hidden layer sizes (default: 16,16)")
    add("--activation", choices=ACTIVATIONS, default=defaults.activation, help="(default: %(default)s)")
    add("--loss", choices=tuple(LOSSES), help="(default: svm; mse for toy)")
    add("--optimizer", choices=OPTIMIZERS, default=defaults.optimizer, help="(default: %(default)s)")
    add("--steps", type=int, default=defaults.steps, help="full-batch steps (default: %(default)s)")
    lr_defaults = ", ".join(f"{name} {lr:g}" for name, lr in DEFAULT_LR.items())
    add(
        "--lr",
        type=float,
        help=f"starting learning rate, decayed to a tenth (default: {lr_defaults}; /10 for mse)",
    )
    add("--alpha", type=float, default=defaults.alpha, help="L2 penalty weight (default: %(default)s)")
    add("--seed", type=int, default=defaults.seed, help="seeds the model and data (default: %(default)s)")
    add("--out", type=Path, default=Path("out/demo"), help="output folder (default: %(default)s)")
    add("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def write_outputs(result: TrainResult, out: Path) -> list[Path]:
    """Write the run's PNGs and ``summary.json`` into ``out``; returns their paths."""
    return _write(result_figures(result), result.summary(), out)


def _write(figures: dict[str, Any], summary: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, figure in figures.items():
        paths.append(out / f"{stem}.png")
        figure.savefig(paths[-1], dpi=110)
    paths.append(out / "summary.json")
    paths[-1].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return paths


def format_summary(result: TrainResult) -> str:
    """A few lines for the terminal."""
    config = result.config
    accuracy = "n/a (regression)" if result.final_accuracy is None else f"{result.final_accuracy:.1%}"
    return "\n".join(
        [
            f"backend   {result.backend.name} {result.backend.version}",
            f"model     MLP({result.X.shape[1]}, {[*config.hidden, 1]}) {config.activation}, "
            f"{config.loss} loss, {config.optimizer} lr {config.lr:g}, "
            f"{len(result.y)} {config.dataset} points",
            f"final     loss {result.final_loss:.6g}  accuracy {accuracy}{_diverged(result)}",
            f"time      {1e3 * result.seconds_per_step:.1f} ms/step "
            f"({len(result.losses)} steps, {result.seconds:.2f} s)",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo (:func:`digits_main` for ``--dataset digits``); returns the exit status."""
    if _dataset(argv) == "digits":
        return digits_main(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    options = {k: v for k, v in vars(args).items() if k not in ("out", "no_progress")}
    try:
        config = TrainConfig(**options)
    except ValueError as error:
        parser.error(str(error))
    return _run(
        parser,
        config.backend,
        args.out,
        lambda: train(config, progress=not args.no_progress),
        write_outputs,
        format_summary,
    )


def _run(
    parser: argparse.ArgumentParser,
    backend: str,
    out: Path,
    run: Callable[[], Result],
    write: Callable[[Result, Path], list[Path]],
    summary: Callable[[Result], str],
) -> int:
    """Check the backend and ``out`` (before training, so a bad ``--out`` loses no run), train,
    write the outputs and print the summary; the exit status."""
    try:
        load_backend(backend)
    except (LookupError, ImportError, TypeError) as error:
        parser.error(f"cannot load backend {backend!r}: {error}")
    problem = _unwritable(out)
    if problem:
        parser.error(f"cannot write to --out {str(out)!r}: {problem}")
    try:
        result = run()
    except GradspecError as error:
        notes = getattr(error, "__notes__", [])
        print(
            f"training failed: {type(error).__name__}: {error}",
            *notes,
            "try a smaller --lr",
            sep="\n",
            file=sys.stderr,
        )
        return 1
    paths = write(result, out)
    print(summary(result))
    print(f"wrote     {', '.join(str(p) for p in paths)}")
    return 0


# --- digits -------------------------------------------------------------------------------------------
def build_digits_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.demo --dataset digits``."""
    defaults = digits.DigitsConfig()
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.demo --dataset digits",
        description="Train an MLP on scikit-learn's 8x8 digits (10 classes) with compiled minibatch steps.",
    )
    add = parser.add_argument
    add(
        "--dataset",
        choices=("digits",),
        default="digits",
        help="digits (the other datasets: --help without it)",
    )
    add(
        "--backend",
        default=defaults.backend,
        help="registered backend name; python is about 30 s an epoch (default: %(default)s)",
    )
    add("--hidden", type=_layer_sizes, default=defaults.hidden, help="hidden layer sizes (default: 32)")
    add(
        "--epochs",
        type=int,
        default=defaults.epochs,
        help="passes over the training set (default: %(default)s)",
    )
    add("--batch-size", type=int, default=defaults.batch_size, help="samples a step (default: %(default)s)")
    add(
        "--optimizer",
        choices=digits.OPTIMIZERS,
        default=defaults.optimizer,
        help="momentum is SGD with momentum 0.9 (default: %(default)s)",
    )
    lr_defaults = ", ".join(f"{name} {lr:g}" for name, lr in digits.DEFAULT_LR.items())
    add("--lr", type=float, help=f"starting learning rate, decayed to a tenth (default: {lr_defaults})")
    add(
        "--init",
        choices=INITS,
        default=defaults.init,
        help="scaled: uniform(-1, 1) / sqrt(fan_in); uniform: micrograd's (default: %(default)s)",
    )
    add(
        "--seed",
        type=int,
        default=defaults.seed,
        help="seeds the model and the shuffling (default: %(default)s)",
    )
    add("--out", type=Path, default=Path("out/digits"), help="output folder (default: %(default)s)")
    add("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def digits_main(argv: Sequence[str] | None = None) -> int:
    """Run the digits demo; returns the exit status."""
    parser = build_digits_parser()
    args = parser.parse_args(argv)
    options = {k: v for k, v in vars(args).items() if k not in ("dataset", "out", "no_progress")}
    try:
        config = digits.DigitsConfig(**options)
    except ValueError as error:
        parser.error(str(error))
    train_samples = len(digits.load_split().y_train)
    if config.batch_size > train_samples:
        parser.error(
            f"batch size must be at most the {train_samples} training samples, got {config.batch_size}"
        )
    return _run(
        parser,
        config.backend,
        args.out,
        lambda: digits.train_digits(config, progress=not args.no_progress),
        write_digits_outputs,
        format_digits_summary,
    )


def write_digits_outputs(result: digits.DigitsResult, out: Path) -> list[Path]:
    """Write a digits run's PNGs and ``summary.json`` into ``out``; returns their paths."""
    return _write(digits_figures(result), result.summary(), out)


def format_digits_summary(result: digits.DigitsResult) -> str:
    """A few lines for the terminal about a digits run."""
    config = result.config
    split = result.split
    reached = result.seconds_to()
    target = "95% not reached" if reached is None else f"95% reached after {reached:.2f} s"
    return "\n".join(
        [
            f"backend   {result.backend.name} {result.backend.version} ({result.step_mode} step)",
            f"model     MLP(64, {config.sizes[1:]}) relu, init {config.init}, cross-entropy, "
            f"{config.optimizer} lr {config.start_lr:g} -> {config.start_lr / 10:g}, batch {config.batch_size}",
            f"data      {len(split.y_train)} training and {len(split.y_test)} test digits (stratified 80/20)",
            f"final     test accuracy {result.test_accuracy:.1%}  train loss {result.losses[-1]:.4g}  "
            f"({len(result.losses)} epochs, {result.steps} steps)",
            f"time      {result.train_seconds:.2f} s training (capture {result.capture_seconds:.2f} s, "
            f"{result.ms_per_step:.2f} ms/step); {target}",
        ]
    )


def _dataset(argv: Sequence[str] | None) -> str | None:
    """The ``--dataset`` of a command line, read before the parser that fits it is built."""
    peek = argparse.ArgumentParser(prog="python -m benchmarks.demo", add_help=False)
    peek.add_argument("--dataset")
    known, _ = peek.parse_known_args(argv)
    dataset: str | None = known.dataset
    return dataset


def _unwritable(out: Path) -> str | None:
    """Why files cannot be written into the folder ``out`` (made if missing), or None."""
    if out.exists() and not out.is_dir():
        return "it is a file, not a folder"
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        return error.strerror or str(error)
    return None


def _diverged(result: TrainResult) -> str:
    return "  (the loss grew: try a smaller --lr)" if result.final_loss > result.losses[0] else ""


def _layer_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected layer sizes like 16,16, got {text!r}") from None
    if any(not 1 <= n <= MAX_LAYER_SIZE for n in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be from 1 to {MAX_LAYER_SIZE}, got {text!r:.80}")
    return sizes


if __name__ == "__main__":
    sys.exit(main())
