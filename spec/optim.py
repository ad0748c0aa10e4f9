"""Optimizers, generic over any backend's Values (they read and write ``data``/``grad``).

Settings (``lr``, ``steps``, ``momentum``, ``beta1``, ``beta2``, ``eps``) are checked when
assigned, and made floats (:class:`Setting`); state lists are checked by every step that
reads them (:meth:`Optimizer.state_array`). Eager and compiled steps read both the same
way, so they compute with the same float64 numbers and refuse the same bad values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from numbers import Integral
from typing import Any, TypeAlias, overload

import numpy as np
from numpy.typing import NDArray

from spec.errors import (
    DomainError,
    GradspecError,
    NonFiniteError,
    OperandTypeError,
    ResultOverflowError,
    ShapeError,
)
from spec.guards import TrackedList, Watched, note_change
from spec.operands import as_finite_float, as_float, echo

__all__ = ["SGD", "Adam", "LearningRate", "Optimizer", "Setting", "linear_decay", "update_failure"]

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
    changing the list read, works as on a plain attribute; every step reads it through
    :meth:`Optimizer.state_array`, which checks it.
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


class Setting:
    """An optimizer setting, checked and made a float when assigned (``opt.lr = 0.05``).

    A bad value is refused at the assignment, with the contract's error, so no step (eager
    or compiled) ever sees it: :class:`~spec.errors.OperandTypeError` for what is not a
    number (a string, ``None``, a bool), :class:`~spec.errors.NonFiniteError` for NaN and
    infinities, :class:`~spec.errors.DomainError` for a number out of the setting's range.
    A NumPy ``float32`` becomes the float64 of the same value, on every path.
    """

    def __init__(self, check: Callable[[object, str], Any]) -> None:
        self.check = check

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, optimizer: Any, owner: type | None = None) -> Any:
        return self if optimizer is None else optimizer.__dict__[self.name]

    def __set__(self, optimizer: Any, value: object) -> None:
        optimizer.__dict__[self.name] = self.check(value, self.name)


def _learning_rate(value: object, name: str) -> LearningRate:
    return value if callable(value) else _positive(value, "learning rate")


def _step_count(value: object, name: str) -> int:
    if type(value) is int and value >= 0:  # every step assigns one: the common case first
        return value
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise OperandTypeError(f"optimizer.{name} must be an integer, got {echo(value)}")
    if value < 0:
        raise DomainError(f"optimizer.{name} must be >= 0, got {value}")
    return int(value)


def _fraction(value: object, name: str) -> float:
    """A number in [0, 1): a momentum or an Adam beta (1 would divide by zero or never forget)."""
    number = as_finite_float(value, name)
    if not 0.0 <= number < 1.0:
        raise DomainError(f"{name} must be in [0, 1), got {number!r}")
    return number


class Optimizer(metaclass=Watched):
    """What every optimizer shares: parameters, the learning rate (or schedule), atomic steps.

    A subclass implements :meth:`_updates`, returning the new parameter values and
    its new state; :meth:`step` checks them all before changing anything, so a
    step that would make a parameter non-finite raises and changes nothing.
    ``params`` is stored as a :class:`~spec.guards.TrackedList` (assigning it, or changing
    it in place, tells compiled steps to check what they captured); each setting is a
    :class:`Setting`, checked when assigned.
    """

    lr = Setting(_learning_rate)
    steps = Setting(_step_count)

    def __init__(self, params: Iterable[Any], lr: LearningRate) -> None:
        self.params = list(params)
        self.lr = lr
        self.steps = 0

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "params":
            value = TrackedList(value)
        object.__setattr__(self, name, value)
        if name == "params":
            note_change()

    def learning_rate(self) -> float:
        """The learning rate the next :meth:`step` will use."""
        lr = self.lr
        if callable(lr):
            return _positive(lr(self.steps), f"learning rate schedule at step {self.steps}")
        return float(lr)

    def _updates(self, lr: float) -> tuple[list[float], Callable[[], None]]:
        """The new parameter values, and a function that commits the optimizer's new state."""
        raise NotImplementedError

    def state_array(self, name: str) -> NDArray[np.float64]:
        """The state ``name`` (a :class:`StateList`) as one float64 per parameter, checked.

        What every step reads, eager or compiled, so both refuse a bad state alike:
        :class:`~spec.errors.OperandTypeError` for an entry that is not a number (a string, a
        bool), :class:`~spec.errors.ShapeError` for a length other than ``len(params)``,
        :class:`~spec.errors.NonFiniteError` for NaN or infinities. Do not change the array.
        """
        values = self.__dict__[name]
        what = f"optimizer.{name}"
        if isinstance(values, np.ndarray) and values.dtype == np.float64:
            row = values
        elif isinstance(values, list | tuple | np.ndarray):
            row = _floats(values, what)
        else:
            raise OperandTypeError(f"{what} must be a list of numbers, got {echo(values)}")
        if row.shape != (len(self.params),):
            raise ShapeError(
                f"{what} must hold {len(self.params)} numbers, one per parameter, got shape {row.shape}"
            )
        if not np.isfinite(row).all():
            raise NonFiniteError(f"{what} must be finite, got {row[~np.isfinite(row)][0]!r}")
        return row

    def checked_state(self) -> dict[str, NDArray[np.float64]]:
        """The state lists the next :meth:`step` reads, by name, each as :meth:`state_array` gives it."""
        return {}

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


def _floats(values: Any, what: str) -> NDArray[np.float64]:
    """``values`` as float64s, each entry a number (as :func:`spec.operands.as_finite_float` takes)."""
    try:
        row = np.asarray(values)
    except ValueError:  # ragged
        raise ShapeError(f"{what} must be a flat list of numbers") from None
    if row.dtype.kind in "fiu":
        return row.astype(np.float64)
    if row.dtype.kind != "O":  # bools, strings, bytes, dates
        raise OperandTypeError(f"{what} must hold numbers, got entries of {row.dtype}: {echo(values)}")
    if row.ndim != 1:
        raise ShapeError(f"{what} must be a flat list of numbers")
    return np.array([as_float(x, f"{what} entry") for x in row.tolist()], np.float64)


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum.

    Each :meth:`step` does ``p.data -= lr * p.grad`` (micrograd's update) for
    plain SGD; with momentum ``v = momentum * v + p.grad; p.data -= lr * v``.
    ``lr`` is a number or a schedule called with the step index (0, 1, ...);
    ``momentum`` is in [0, 1).
    """

    #: each parameter's velocity: with no momentum, its last grad
    velocity = StateList()
    momentum = Setting(_fraction)

    def __init__(self, params: Iterable[Any], lr: LearningRate, momentum: float = 0.0) -> None:
        super().__init__(params, lr)
        self.momentum = momentum
        self.velocity = [0.0] * len(self.params)

    def checked_state(self) -> dict[str, NDArray[np.float64]]:
        return {"velocity": self.state_array("velocity")} if self.momentum else {}

    def _updates(self, lr: float) -> tuple[list[float], Callable[[], None]]:
        if self.momentum == 0.0:
            velocity = [p.grad for p in self.params]
        else:
            old = self.checked_state()["velocity"].tolist()
            velocity = [self.momentum * v + p.grad for v, p in zip(old, self.params, strict=True)]

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

    ``lr`` is a number or a schedule called with the step index (0, 1, ...), as for :class:`SGD`;
    ``betas`` a pair of numbers in [0, 1), ``eps`` a positive number. ``v`` must stay
    ``>= 0`` (a step refuses a negative entry with :class:`~spec.errors.DomainError`).
    """

    #: each parameter's first and second moment estimates
    m = StateList()
    v = StateList()
    beta1 = Setting(_fraction)
    beta2 = Setting(_fraction)
    eps = Setting(lambda value, name: _positive(value, name))

    def __init__(
        self,
        params: Iterable[Any],
        lr: LearningRate = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, lr)
        if isinstance(betas, str) or not isinstance(betas, Sequence) or len(betas) != 2:
            raise OperandTypeError(f"Adam betas must be a pair of numbers (beta1, beta2), got {echo(betas)}")
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.m = [0.0] * len(self.params)
        self.v = [0.0] * len(self.params)

    def checked_state(self) -> dict[str, NDArray[np.float64]]:
        """``m`` and ``v`` as :meth:`state_array` gives them; a negative ``v`` is refused."""
        m, v = self.state_array("m"), self.state_array("v")
        if (v < 0.0).any():
            raise DomainError(f"optimizer.v must hold numbers >= 0 (second moments), got {v[v < 0.0][0]!r}")
        return {"m": m, "v": v}

    def _updates(self, lr: float) -> tuple[list[float], Callable[[], None]]:
        b1, b2 = self.beta1, self.beta2
        t = self.steps + 1
        old_m, old_v = (row.tolist() for row in self.checked_state().values())
        grads = [p.grad for p in self.params]
        m = [b1 * mi + (1.0 - b1) * g for mi, g in zip(old_m, grads, strict=True)]
        v = [b2 * vi + (1.0 - b2) * (g * g) for vi, g in zip(old_v, grads, strict=True)]
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
        raise DomainError(f"{what} must be positive, got {value!r}")
    return value
