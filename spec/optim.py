"""Optimizers, generic over any backend's Values (they read and write ``data``/``grad``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

from spec.errors import ResultOverflowError
from spec.operands import as_finite_float

__all__ = ["SGD", "LearningRate", "linear_decay"]

#: A constant learning rate, or a schedule ``step_index -> learning rate``.
LearningRate: TypeAlias = float | Callable[[int], float]


def linear_decay(start: float, end: float, steps: int) -> Callable[[int], float]:
    """``start - (start - end) * k / steps``: micrograd's demo uses ``linear_decay(1.0, 0.1, 100)``.

    Written as ``start - drop * k / steps`` so that ``linear_decay(1.0, 0.1, 100)(k)``
    equals micrograd's ``1.0 - 0.9*k/100`` bit for bit.
    """
    drop = start - end
    return lambda k: start - drop * k / steps


class SGD:
    """Stochastic gradient descent, optionally with momentum.

    Each :meth:`step` does ``p.data -= lr * p.grad`` (micrograd's update) for
    plain SGD; with momentum ``v = momentum * v + p.grad; p.data -= lr * v``.
    ``lr`` is a number or a schedule called with the step index (0, 1, ...).
    """

    def __init__(self, params: Iterable[Any], lr: LearningRate, momentum: float = 0.0) -> None:
        self.params = list(params)
        self.lr = lr if callable(lr) else _positive(lr, "learning rate")
        self.momentum = as_finite_float(momentum, "momentum")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        self.velocity = [0.0] * len(self.params)
        self.steps = 0

    def learning_rate(self) -> float:
        """The learning rate the next :meth:`step` will use."""
        if callable(self.lr):
            return _positive(self.lr(self.steps), f"learning rate schedule at step {self.steps}")
        return self.lr

    def step(self) -> None:
        """Update every parameter from its gradient."""
        lr = self.learning_rate()
        if self.momentum == 0.0:
            velocity = [p.grad for p in self.params]
        else:
            velocity = [self.momentum * v + p.grad for v, p in zip(self.velocity, self.params)]
        # Computed in full and checked before any parameter changes: a failed step changes nothing.
        updated = [p.data - lr * v for p, v in zip(self.params, velocity)]
        for index, value in enumerate(updated):
            if not math.isfinite(value):
                raise ResultOverflowError(f"SGD step: parameter {index} would become {value!r}")
        for p, value in zip(self.params, updated):
            p.data = value
        self.velocity = velocity
        self.steps += 1

    def zero_grad(self) -> None:
        """Set every parameter's grad to 0."""
        for p in self.params:
            p.grad = 0.0


def _positive(lr: object, what: str) -> float:
    value = as_finite_float(lr, what)
    if value <= 0.0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return value
