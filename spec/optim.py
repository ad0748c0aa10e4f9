"""Optimizers, generic over any backend's Values (they read and write ``data``/``grad``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from numbers import Integral
from typing import Any, TypeAlias, overload

import numpy as np

from spec.errors import GradspecError, NonFiniteError, ResultOverflowError
from spec.operands import as_finite_float, echo

__all__ = ["SGD", "Adam", "LearningRate", "Optimizer", "linear_decay", "update_failure"]

#: A constant learning rate, or a schedule ``step_index -> learning rate``.
LearningRate: TypeAlias = float | Callable[[int], float]


def linear_decay(start: float, end: float, steps: int) -> Callable[[int], float]:
    """``start - (start - end) * k / steps``: micrograd's demo uses ``linear_decay(1.0, 0.1, 100)``.

    Written as ``start - drop * k / steps`` so that ``linear_decay(1.0, 0.1, 100)(k)``
    equals micrograd's ``1.0 - 0.9*k/100`` bit for bit. ``steps`` must be a positive integer.
    """
    if isinstance(steps, bool) or not isinstance(steps, Integral) or steps < 1:
        raise ValueError(f"linear_decay: steps must be a positive integer, got {echo(steps)}")
    start, end = as_finite_float(start, "linear_decay start"), as_finite_float(end, "linear_decay end")
    drop = start - end
    return lambda k: start - drop * k / steps


class StateList:
    """An optimizer's per-parameter state, a list of floats (``SGD.velocity``, ``Adam.m``, ``Adam.v``).

    A compiled step leaves the new state as a float64 array (:meth:`Optimizer.leave_state`);
    it becomes the list the eager loop leaves when first read, so a training loop that never
    reads the state does not pay for the conversion on every step. Assigning a list, or
    changing the list read, works as on a plain attribute.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, optimizer: None, owner: type | None = None) -> StateList: ...
    @overload
    def __get__(self, optimizer: Optimizer, owner: type | None = None) -> list[float]: ...
    def __get__(self, optimizer: Optimizer | None, owner: type | None = None) -> Any:
        if optimizer is None:
            return self
        values = optimizer.__dict__[self.name]
        if isinstance(values, np.ndarray):
            values = optimizer.__dict__[self.name] = values.tolist()
        return values

    def __set__(self, optimizer: Optimizer, values: Any) -> None:
        optimizer.__dict__[self.name] = values


class Optimizer:
    """What every optimizer shares: parameters, the learning rate (or schedule), atomic steps.

    A subclass implements :meth:`_updates`, returning the new parameter values and
    its new state; :meth:`step` checks them all before changing anything, so a
    step that would make a parameter non-finite raises and changes nothing.
    """

    def __init__(self, params: Iterable[Any], lr: LearningRate) -> None:
        self.params = list(params)
        self.lr = lr if callable(lr) else _positive(lr, "learning rate")
        self.steps = 0

    def learning_rate(self) -> float:
        """The learning rate the next :meth:`step` will use."""
        if callable(self.lr):
            return _positive(self.lr(self.steps), f"learning rate schedule at step {self.steps}")
        return self.lr

    def _updates(self, lr: float) -> tuple[list[float], Callable[[], None]]:
        """The new parameter values, and a function that commits the optimizer's new state."""
        raise NotImplementedError

    def state_as_left(self, name: str) -> Any:
        """The state ``name`` (a :class:`StateList`) as last set: the array a compiled step left
        (see :meth:`leave_state`) while no one has read it since, else the list."""
        return self.__dict__[name]

    def leave_state(self, name: str, values: np.ndarray) -> None:
        """Set the state ``name`` to ``values``, a float64 array the caller no longer changes:
        it becomes a list when first read."""
        self.__dict__[name] = values

    def step(self) -> None:
        """Update every parameter from its gradient."""
        updated, commit = self._updates(self.learning_rate())
        for index, value in enumerate(updated):
            if not math.isfinite(value):
                raise update_failure(self, index, value)
        for p, value in zip(self.params, updated, strict=True):
            p.data = value
        commit()
        self.steps += 1

    def zero_grad(self) -> None:
        """Set every parameter's grad to 0."""
        for p in self.params:
            p.grad = 0.0


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum.

    Each :meth:`step` does ``p.data -= lr * p.grad`` (micrograd's update) for
    plain SGD; with momentum ``v = momentum * v + p.grad; p.data -= lr * v``.
    ``lr`` is a number or a schedule called with the step index (0, 1, ...).
    """

    #: each parameter's velocity: with no momentum, its last grad
    velocity = StateList()

    def __init__(self, params: Iterable[Any], lr: LearningRate, momentum: float = 0.0) -> None:
        super().__init__(params, lr)
        self.momentum = as_finite_float(momentum, "momentum")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        self.velocity = [0.0] * len(self.params)

    def _updates(self, lr: float) -> tuple[list[float], Callable[[], None]]:
        if self.momentum == 0.0:
            velocity = [p.grad for p in self.params]
        else:
            velocity = [self.momentum * v + p.grad for v, p in zip(self.velocity, self.params, strict=True)]

        def commit() -> None:
            self.velocity = velocity

        return [p.data - lr * v for p, v in zip(self.params, velocity, strict=True)], commit


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015), as in PyTorch's ``torch.optim.Adam`` without weight decay.

    Each :meth:`step`, with ``t`` the number of steps taken so far plus one and ``g``
    each parameter's grad, computes exactly these float64 operations::

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * (g * g)
        p.data -= lr * (m / (1 - beta1 ** t)) / (math.sqrt(v / (1 - beta2 ** t)) + eps)

    ``lr`` is a number or a schedule called with the step index (0, 1, ...), as for :class:`SGD`.
    """

    #: each parameter's first and second moment estimates
    m = StateList()
    v = StateList()

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, lr)
        self.beta1, self.beta2 = (as_finite_float(beta, "beta") for beta in betas)
        for beta in (self.beta1, self.beta2):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Adam betas must be in [0, 1), got {betas!r}")
        self.eps = _positive(eps, "eps")
        self.m = [0.0] * len(self.params)
        self.v = [0.0] * len(self.params)

    def _updates(self, lr: float) -> tuple[list[float], Callable[[], None]]:
        b1, b2 = self.beta1, self.beta2
        t = self.steps + 1
        grads = [p.grad for p in self.params]
        m = [b1 * mi + (1.0 - b1) * g for mi, g in zip(self.m, grads, strict=True)]
        v = [b2 * vi + (1.0 - b2) * (g * g) for vi, g in zip(self.v, grads, strict=True)]
        m_scale, v_scale = 1.0 - b1**t, 1.0 - b2**t
        updated = [
            p.data - lr * (mi / m_scale) / (math.sqrt(vi / v_scale) + self.eps)
            for p, mi, vi in zip(self.params, m, v, strict=True)
        ]

        def commit() -> None:
            self.m, self.v = m, v

        return updated, commit


def update_failure(optimizer: Optimizer, index: int, value: float) -> GradspecError:
    """The error for a step that would make parameter ``index`` the non-finite ``value``: an
    overflow (``inf``), or a NaN, which only a non-finite gradient or state can give."""
    if math.isnan(value):
        return NonFiniteError(
            f"{type(optimizer).__name__} step: parameter {index} would become nan; its gradient "
            "or the optimizer's state is not finite"
        )
    return ResultOverflowError(f"{type(optimizer).__name__} step: parameter {index} would become {value!r}")


def _positive(lr: object, what: str) -> float:
    value = as_finite_float(lr, what)
    if value <= 0.0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return value
