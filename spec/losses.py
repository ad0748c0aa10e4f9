"""Losses, generic over any backend's Values (they only use Value operators).

Each loss is a mean over samples, built with the operations listed in its
docstring and in that order, so every backend computes the same float64
numbers. Targets and labels are numbers or Values (:func:`spec.compile_step` passes
them as Values); either way the loss has the same value and gradients.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from spec.errors import ShapeError
from spec.operands import as_finite_float
from spec.value import ValueBase

__all__ = ["binary_cross_entropy", "l2_penalty", "mse_loss", "svm_loss"]


def _pairs(predictions: Sequence[Any], targets: Sequence[Any], what: str) -> list[tuple[Any, Any]]:
    if len(predictions) != len(targets):
        raise ShapeError(
            f"{what}: {len(predictions)} predictions but {len(targets)} targets; the lengths must match"
        )
    if len(predictions) == 0:
        raise ShapeError(f"{what}: no predictions; a mean over zero samples is undefined")
    return [(p, _target(t)) for p, t in zip(predictions, targets, strict=True)]


def _target(t: Any) -> Any:
    return t if isinstance(t, ValueBase) else as_finite_float(t, "target")


def _mean(terms: list[Any]) -> Any:
    # sum(terms) * (1.0 / n): micrograd's demo writes its mean this way.
    return sum(terms) * (1.0 / len(terms))


def mse_loss(predictions: Sequence[Any], targets: Sequence[Any]) -> Any:
    """Mean squared error: ``mean((p - t) ** 2)``."""
    return _mean([(p - t) ** 2 for p, t in _pairs(predictions, targets, "mse_loss")])


def svm_loss(scores: Sequence[Any], labels: Sequence[Any]) -> Any:
    """micrograd's max-margin loss for labels ±1: ``mean(relu(1 + -y * s))``."""
    return _mean([(1 + -y * s).relu() for s, y in _pairs(scores, labels, "svm_loss")])


def binary_cross_entropy(probabilities: Sequence[Any], targets: Sequence[Any]) -> Any:
    """``mean(-(t * log(p) + (1 - t) * log(1 - p)))`` for probabilities in (0, 1).

    A probability of exactly 0 or 1 raises :class:`~spec.errors.DomainError` (log of 0).
    """
    pairs = _pairs(probabilities, targets, "binary_cross_entropy")
    return _mean([-(t * p.log() + (1 - t) * (1 - p).log()) for p, t in pairs])


def l2_penalty(parameters: Iterable[Any], alpha: float) -> Any:
    """micrograd's regularisation: ``alpha * sum(p * p)``."""
    alpha = as_finite_float(alpha, "alpha")
    squares = [p * p for p in parameters]
    if not squares:
        raise ShapeError("l2_penalty: no parameters")
    return alpha * sum(squares)
