"""The demo's pictures: loss and accuracy curves, decision boundaries, regression fits.

Figures are built with matplotlib's object API (``Figure``, no ``pyplot``): nothing
opens a window, PNGs are drawn by Agg, and in Jupyter a returned figure shows inline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from numpy.typing import NDArray

from benchmarks.training import TrainResult, predict

__all__ = ["boundary_figure", "curves_figure", "fit_figure", "result_figures"]

_CLASS_COLOURS = ("#d7301f", "#2c7fb8")  # label -1, label +1
_REGION_COLOURS = ListedColormap(["#fcd9cf", "#d3e6f3"])


def _title(result: TrainResult) -> str:
    config = result.config
    return (
        f"{result.backend.name}: {config.dataset}, MLP {[len(result.X[0]), *config.hidden, 1]}, "
        f"{config.loss} loss, {config.optimizer}"
    )


def curves_figure(result: TrainResult) -> Figure:
    """Loss (log scale) and, for classification, accuracy at every step."""
    steps = np.arange(len(result.losses))
    panels = 2 if result.accuracies else 1
    fig = Figure(figsize=(5.0 * panels, 3.6), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    axes[0].plot(steps, result.losses, color="#444444")
    axes[0].set(xlabel="step", ylabel="loss", yscale="log", title=f"final loss {result.final_loss:.6f}")
    if result.accuracies:
        axes[1].plot(steps, 100.0 * np.asarray(result.accuracies), color=_CLASS_COLOURS[1])
        axes[1].set(
            xlabel="step",
            ylabel="accuracy (%)",
            ylim=(0, 102),
            title=f"final accuracy {result.final_accuracy:.0%}",
        )
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    fig.suptitle(_title(result), fontsize="medium")
    return fig


def boundary_figure(result: TrainResult, resolution: int = 60) -> Figure:
    """The trained model's decision regions over a ``resolution`` x ``resolution`` grid, with the data."""
    X, y = result.X, result.y
    (x0, x1), (y0, y1) = _padded_range(X[:, 0]), _padded_range(X[:, 1])
    xx, yy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    grid = np.column_stack([xx.ravel(), yy.ravel()])
    threshold = result.config.objective.threshold
    scores = predict(result.model, grid).reshape(xx.shape)
    fig = Figure(figsize=(5.2, 4.6), layout="constrained")
    ax = fig.subplots()
    ax.contourf(xx, yy, (scores > threshold).astype(float), levels=[-0.5, 0.5, 1.5], cmap=_REGION_COLOURS)
    if scores.min() < threshold < scores.max():
        ax.contour(xx, yy, scores, levels=[threshold], colors="#333333", linewidths=1.2)
    for label, colour in zip((-1.0, 1.0), _CLASS_COLOURS, strict=True):
        mine = y == label
        ax.scatter(
            X[mine, 0],
            X[mine, 1],
            s=28,
            color=colour,
            edgecolor="white",
            linewidth=0.6,
            label=f"y = {label:+.0f}",
        )
    ax.set(xlabel="x0", ylabel="x1", xlim=(x0, x1), ylim=(y0, y1))
    ax.legend(loc="upper right", fontsize="small")
    ax.set_title(f"{_title(result)}\naccuracy {result.final_accuracy:.0%}", fontsize="medium")
    return fig


def fit_figure(result: TrainResult, points: int = 200) -> Figure:
    """The regression data, the true curve ``x**2 + 1`` and the model's fit."""
    x = result.X[:, 0]
    lo, hi = _padded_range(x)
    grid = np.linspace(lo, hi, points)
    fig = Figure(figsize=(5.2, 4.0), layout="constrained")
    ax = fig.subplots()
    ax.plot(grid, grid**2 + 1.0, "--", color="#999999", label="x² + 1")
    ax.plot(grid, predict(result.model, grid.reshape(-1, 1)), color=_CLASS_COLOURS[1], label="model")
    ax.scatter(x, result.y, s=24, color=_CLASS_COLOURS[0], zorder=3, label="data")
    ax.set(xlabel="x", ylabel="y")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    ax.set_title(f"{_title(result)}\nfinal loss {result.final_loss:.6f}", fontsize="medium")
    return fig


def result_figures(result: TrainResult, resolution: int = 60) -> dict[str, Figure]:
    """Every picture of a run, by file stem: ``curves`` and ``boundary`` (or ``fit`` for regression)."""
    figures = {"curves": curves_figure(result)}
    if result.config.is_regression:
        figures["fit"] = fit_figure(result)
    else:
        figures["boundary"] = boundary_figure(result, resolution)
    return figures


def _padded_range(values: NDArray[Any], pad: float = 0.15) -> tuple[float, float]:
    lo, hi = float(values.min()), float(values.max())
    margin = pad * (hi - lo or 1.0)
    return lo - margin, hi + margin
