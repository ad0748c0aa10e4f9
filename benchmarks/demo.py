"""micrograd's demo on any gradspec backend: ``python -m benchmarks.demo``.

With no options it reproduces micrograd's ``demo.ipynb`` exactly (final loss
0.010978..., accuracy 100% on the python backend), then writes to ``--out``:

- ``curves.png``: loss and accuracy at every step;
- ``boundary.png``: the decision regions over the data (``fit.png`` for ``--dataset toy``);
- ``summary.json``: the configuration, final loss and accuracy, time per step, and
  the loss and accuracy of every step.

Examples::

    python -m benchmarks.demo
    python -m benchmarks.demo --backend numba --dataset circles --optimizer adam --steps 200
    python -m benchmarks.demo --dataset toy --hidden 8,8 --activation tanh --lr 0.05
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.plots import result_figures
from benchmarks.training import DATASETS, DEFAULT_LR, LOSSES, OPTIMIZERS, TrainConfig, TrainResult, train
from spec import ACTIVATIONS, GradspecError, load_backend

__all__ = ["build_parser", "format_summary", "main", "write_outputs"]


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.demo``."""
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.demo",
        description="Train a gradspec MLP; the defaults reproduce micrograd's demo.",
    )
    add = parser.add_argument
    add("--backend", default=defaults.backend, help="registered backend name (default: %(default)s)")
    add("--dataset", choices=DATASETS, default=defaults.dataset, help="toy is y = x**2 + 1 (default: moons)")
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
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, figure in result_figures(result).items():
        paths.append(out / f"{stem}.png")
        figure.savefig(paths[-1], dpi=110)
    paths.append(out / "summary.json")
    paths[-1].write_text(json.dumps(result.summary(), indent=2) + "\n", encoding="utf-8")
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
    """Run the demo; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    options = {k: v for k, v in vars(args).items() if k not in ("out", "no_progress")}
    try:
        config = TrainConfig(**options)
    except ValueError as error:
        parser.error(str(error))
    try:
        load_backend(config.backend)
    except (LookupError, ImportError, TypeError) as error:
        parser.error(f"cannot load backend {config.backend!r}: {error}")
    try:
        result = train(config, progress=not args.no_progress)
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
    paths = write_outputs(result, args.out)
    print(format_summary(result))
    print(f"wrote     {', '.join(str(p) for p in paths)}")
    return 0


def _diverged(result: TrainResult) -> str:
    return "  (the loss grew: try a smaller --lr)" if result.final_loss > result.losses[0] else ""


def _layer_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected layer sizes like 16,16, got {text!r}") from None
    if any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {text!r}")
    return sizes


if __name__ == "__main__":
    sys.exit(main())
