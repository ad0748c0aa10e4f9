"""The digits demo's pictures: training curves, the confusion matrix, misclassified test digits.

Built with matplotlib's object API (``Figure``, no ``pyplot``), as :mod:`benchmarks.plots`:
nothing opens a window, PNGs are drawn by Agg, and in Jupyter a returned figure shows inline.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from benchmarks.digits import CLASSES, TARGET_ACCURACY, DigitsResult

__all__ = ["confusion_figure", "curves_figure", "digits_figures", "misclassified_figure"]

_LINE = "#444444"
_ACCURACY = "#2c7fb8"
_TARGET = "#d7301f"


def _title(result: DigitsResult) -> str:
    config = result.config
    return (
        f"{result.backend.name}: digits, MLP {config.sizes}, cross-entropy, "
        f"{config.optimizer} lr {config.start_lr:g} → {config.start_lr / 10:g}, batch {config.batch_size}"
    )


def curves_figure(result: DigitsResult) -> Figure:
    """Mean training loss (log scale) and held-out accuracy after each epoch."""
    epochs = np.arange(1, len(result.losses) + 1)
    fig = Figure(figsize=(10.0, 3.8), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, result.losses, "o-", color=_LINE, markersize=3)
    loss_ax.set(xlabel="epoch", ylabel="mean training loss", yscale="log", title="training loss")
    accuracy = 100.0 * np.asarray(result.accuracies)
    acc_ax.plot(epochs, accuracy, "o-", color=_ACCURACY, markersize=3, label="test accuracy")
    acc_ax.axhline(100 * TARGET_ACCURACY, color=_TARGET, linestyle="--", linewidth=1, label="95%")
    low = min(90.0, float(accuracy.min()) - 2.0)
    acc_ax.set(
        xlabel="epoch",
        ylabel="held-out accuracy (%)",
        ylim=(low, 100.5),
        title=f"test accuracy {result.test_accuracy:.1%} after {result.train_seconds:.1f} s of training",
    )
    acc_ax.legend(loc="lower right", fontsize="small")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(_title(result), fontsize="medium")
    return fig


def confusion_figure(result: DigitsResult) -> Figure:
    """The 10x10 confusion matrix of the test set (rows: true digit, columns: predicted), counts written in."""
    counts = result.confusion()
    fig = Figure(figsize=(5.6, 5.0), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8, label="test images")
    half = counts.max() / 2
    for (true, predicted), count in np.ndenumerate(counts):
        if count:
            colour = "white" if count > half else "black"
            ax.text(predicted, true, str(count), ha="center", va="center", fontsize=8, color=colour)
    ticks = range(CLASSES)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set(xlabel="predicted digit", ylabel="true digit")
    wrong = int(counts.sum() - np.trace(counts))
    ax.set_title(
        f"{result.backend.name}: {wrong} of {counts.sum()} test digits wrong "
        f"(accuracy {result.test_accuracy:.1%})",
        fontsize="medium",
    )
    return fig


def misclassified_figure(result: DigitsResult, limit: int = 32, columns: int = 8) -> Figure:
    """Up to ``limit`` misclassified test digits (8x8 images), each titled with its predicted and true label."""
    y_test = result.split.y_test
    wrong = np.flatnonzero(result.predictions != y_test)[:limit]
    rows = max(1, -(-len(wrong) // columns))
    fig = Figure(figsize=(1.25 * columns, 1.45 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, i in zip(axes.ravel(), wrong, strict=False):
        ax.imshow(result.split.X_test[i].reshape(8, 8), cmap="gray_r", vmin=0.0, vmax=1.0)
        ax.set_title(f"pred {result.predictions[i]} (true {y_test[i]})", fontsize=8, color=_TARGET)
    total = int((result.predictions != y_test).sum())
    shown = f"the first {len(wrong)} of {total}" if total > len(wrong) else f"all {total}"
    if not total:
        axes[0, 0].text(0.0, 0.5, "no test digit is misclassified", fontsize=10)
    fig.suptitle(f"{result.backend.name}: misclassified test digits ({shown})", fontsize="medium")
    return fig


def digits_figures(result: DigitsResult) -> dict[str, Figure]:
    """Every picture of a run, by file stem: ``curves``, ``confusion``, ``misclassified``."""
    return {
        "curves": curves_figure(result),
        "confusion": confusion_figure(result),
        "misclassified": misclassified_figure(result),
    }
