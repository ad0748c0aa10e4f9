"""Turning user input into float64: the one place numbers are checked.

Accepted as numbers: anything registered as :class:`numbers.Real` (``int``,
``float``, ``bool``, ``fractions.Fraction``, NumPy's integer and floating
scalars). Everything else is refused with :class:`~spec.errors.OperandTypeError`;
a Value of another backend used as an operand gets the more helpful
:class:`~spec.errors.BackendMismatchError` (see :mod:`spec.value`).
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable
from numbers import Real

from spec.errors import BackendMismatchError, NonFiniteError, OperandTypeError

__all__ = ["as_finite_float", "as_float", "echo", "foreign_value_error"]

_ECHO = 80  # characters of user input an error message may quote
_BOUNDED = reprlib.Repr()  # renders a bounded part of any value: a few items, levels, characters
_BOUNDED.maxlevel, _BOUNDED.maxstring, _BOUNDED.maxother = 3, _ECHO, _ECHO


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
    """``x`` as a float: :class:`OperandTypeError` if it is not a real number (``bool`` is not,
    like NumPy's ``bool_``), :class:`NonFiniteError` if it is too large for any float64."""
    if type(x) is float:
        return x
    # float and int first: NumPy's float64 is a float, and the Real check (an ABC) costs a microsecond
    if isinstance(x, float) or type(x) is int or (isinstance(x, Real) and not isinstance(x, bool)):
        try:
            return float(x)
        except OverflowError:  # 10**400, Fraction(10**400): beyond float64, so not finite there
            raise NonFiniteError(
                f"{what} must be finite, got a number too large for a float64 ({type(x).__name__})"
            ) from None
    raise OperandTypeError(f"{what} must be a real number, got {type(x).__name__}: {echo(x)}")


def echo(x: object, limit: int = _ECHO, render: Callable[[object], str] | None = None) -> str:
    """``x`` for an error message, cut to ``limit`` characters: input may be huge.

    ``render`` defaults to a bounded ``repr`` (a few items and levels of a container, so a
    long or deep one costs nothing); what it cannot render (an integer too long to print, a
    structure too deep) shows as its type.
    """
    if render is None and isinstance(x, str):
        render, x = repr, x[: limit + 1]  # enough to show the prefix, and that it was cut
    try:
        text = (render or _BOUNDED.repr)(x)
    except (ValueError, TypeError, RecursionError):
        text = f"<{type(x).__name__}>"
    return text if len(text) <= limit else f"{text[:limit]}... (cut)"


def as_finite_float(x: object, what: str = "data") -> float:
    """``x`` as a finite float; :class:`NonFiniteError` for NaN and infinities."""
    value = as_float(x, what)
    if not math.isfinite(value):
        raise NonFiniteError(f"{what} must be finite, got {value!r}")
    return value
