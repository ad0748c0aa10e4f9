"""The training loop the model checks share: micrograd's demo loop, data as plain lists."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from spec import SGD, binary_cross_entropy, cross_entropy, l2_penalty, mse_loss, svm_loss


@dataclass(frozen=True)
class TrainingRun:
    """What a run records: the loss before each step and the final parameters."""

    losses: list[float]
    parameters: list[float]


def model_loss(
    model: Any, inputs: Sequence[Sequence[float]], targets: Sequence[float], loss: str, alpha: float
) -> Any:
    """The loss Value of ``model`` on the data: ``mse``, ``bce``, micrograd's ``svm`` (+ L2), or
    ``cross_entropy`` (targets: labels or one-hot rows; the model has one output per class)."""
    outputs = [model(x) for x in inputs]
    if loss == "mse":
        return mse_loss(outputs, targets)
    if loss == "bce":
        return binary_cross_entropy(outputs, targets)
    if loss == "svm":
        return svm_loss(outputs, targets) + l2_penalty(model.parameters(), alpha)
    if loss == "cross_entropy":
        return cross_entropy(outputs, targets)
    raise ValueError(f"unknown loss {loss!r}")


def train(
    model: Any,
    inputs: Sequence[Sequence[float]],
    targets: Sequence[float],
    *,
    loss: str,
    lr: Any,
    steps: int,
    alpha: float = 0.0,
) -> TrainingRun:
    """``steps`` full-batch SGD steps: forward, zero_grad, backward, update."""
    optimizer = SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        total = model_loss(model, inputs, targets, loss, alpha)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(total.data)
    return TrainingRun(losses, [p.data for p in model.parameters()])
