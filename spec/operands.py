"""Turning user input into float64: the one place numbers are checked.

Accepted as numbers: anything registered as :class:`numbers.Real` (``int``,
``float``, ``bool``, ``fractions.Fraction``, NumPy's integer and floating
scalars). Everything else is refused with :class:`~spec.errors.OperandTypeError`;
a Value of another backend used as an operand gets the more helpful
:class:`~spec.errors.BackendMismatchError` (see :mod:`spec.value`).
"""

from __future__ import annotations

import math
from numbers import Real

from spec.errors import BackendMismatchError, NonFiniteError, OperandTypeError

__all__ = ["as_finite_float", "as_float", "foreign_value_error"]


def foreign_value_error(mine: object, other: object) -> BackendMismatchError:
    """The error for combining ``mine`` with a Value it cannot share a graph with."""
    return BackendMismatchError(
        f"cannot combine a {_describe(mine)} with a {_describe(other)}: "
        "Values of different backends (or of different tapes) never share a graph"
    )


def _describe(value: object) -> str:
    backend = getattr(value, "backend_name", "")
    return f"{backend} backend Value" if backend else type(value).__name__


def as_float(x: object, what: str = "operand") -> float:
    """``x`` as a float, or :class:`OperandTypeError` if it is not a real number."""
    if type(x) is float:
        return x
    if isinstance(x, Real):
        return float(x)
    raise OperandTypeError(f"{what} must be a real number, got {type(x).__name__}: {x!r:.80}")


def as_finite_float(x: object, what: str = "data") -> float:
    """``x`` as a finite float; :class:`NonFiniteError` for NaN and infinities."""
    value = as_float(x, what)
    if not math.isfinite(value):
        raise NonFiniteError(f"{what} must be finite, got {value!r}")
    return value
