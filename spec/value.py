"""What every backend's ``Value`` shares: the public methods of the op table, and the composites.

A backend's ``Value`` subclasses :class:`ValueBase` and implements :meth:`ValueBase._apply`
(build the node of one primitive of :mod:`spec.ops` with the backend's lowering of it),
``backward``, ``zero_grad`` and the attributes of :class:`spec.interface.ValueProtocol`.
Everything else is here, written once:

- the public spelling of every row of the op table (``+``, ``*``, ``**``, ``exp()``,
  ``log()``, ...), made from the rows: each calls ``_apply`` with the row's op code. A
  backend may override one with a faster method that builds the very same node;
- the composites, in terms of those primitives, so every backend builds the same graph
  for ``a - b`` or ``n / a`` and computes the same float64 numbers.

A Value is never converted to a number implicitly: ``float(v)``, ``int(v)``, ``round(v)``,
``abs(v)``, ``math.trunc(v)``, ``operator.index(v)`` and NumPy functions such as
``np.tanh(v)`` raise :class:`~spec.errors.OperandTypeError` (a :class:`TypeError`: read
``v.data``), ``v < 0`` and ``format(v, ".3f")`` raise :class:`TypeError`, and ``bool(v)``
is True; a NumPy scalar operand works as a Python number does (``np.float64(2) * v``). While :func:`spec.compile_step` traces a step, the same operations on a traced
Value raise :class:`~spec.errors.CaptureError` instead (:mod:`spec.tracing`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeGuard

import numpy as np

from spec.errors import OperandTypeError
from spec.guards import Watched
from spec.operands import as_finite_float, as_float, echo, foreign_value_error
from spec.ops import OPS, OpCode, OpSpec, check_domain, op_symbol
from spec.tracing import refuse_if_traced, untraced

__all__ = ["StoredValue", "ValueBase"]


class ValueBase(metaclass=Watched):
    """Base class of every backend's ``Value``: composite operators and the backend marker.

    Its metaclass tells compiled steps when a Value class's method is replaced (spec.guards).
    """

    __slots__ = ()
    #: the registry name of the backend; also tells one backend's Values from another's
    backend_name: ClassVar[str] = ""

    if TYPE_CHECKING:
        # What each backend provides, and the op table's methods made below.
        def __init__(self, data: object, label: str = "") -> None: ...
        def __add__(self, other: object) -> ValueBase: ...
        def __mul__(self, other: object) -> ValueBase: ...
        def __pow__(self, other: object) -> ValueBase: ...
        def __truediv__(self, other: object) -> ValueBase: ...
        @property
        def data(self) -> float: ...
        @property
        def children(self) -> tuple[ValueBase, ...]: ...

    def _apply(self, code: OpCode, other: object = None, constant: float = 0.0) -> ValueBase:
        """The node of primitive ``code`` on this Value (and ``other``), built by the backend's lowering.

        ``other`` is the second operand of a binary op: a Value of this backend, or a finite
        float, which becomes a leaf (made before the node, only if the op succeeds). The backend
        checks the inputs and the result first (``spec.check_domain``,
        ``spec.overflow_error``), so a failed op creates nothing.

        A Value written for contract version 1 has no ``_apply``: it spells the first
        contract's primitives itself. For it, division stays that contract's composite,
        ``a * b ** -1``; any other op this base class spells says which version added it.
        """
        if code == OpCode.DIV:  # contract version 1's composite
            if isinstance(other, ValueBase):
                return self * other**-1.0  # type: ignore[no-any-return]
            divisor = as_finite_float(other)
            with untraced():
                check_domain(OpCode.DIV, (self.data, divisor))
            return self * (1.0 / divisor)  # type: ignore[no-any-return]
        from spec.contract import change_named, op_change

        needed = change_named("Value._apply")
        added = op_change(OpCode(code))
        raise NotImplementedError(
            f"{OPS[OpCode(code)].name} on {type(self).__name__}, which has no _apply: "
            f"{needed.name} was added in contract version {needed.version} ({needed.date})"
            + (f", and {added.name} in version {added.version}" if added else "")
            + "; see spec.contract.CHANGES"
        )

    def _is_mine(self, other: object) -> TypeGuard[ValueBase]:
        """True for a Value of this backend, False for anything else but another backend's Value."""
        if isinstance(other, ValueBase):
            if isinstance(other, type(self)):
                return True
            raise foreign_value_error(self, other)
        return False

    def _number(self, other: object, what: str = "operand") -> float:
        """A number operand as a finite float; a foreign Value is a backend mismatch."""
        if isinstance(other, ValueBase):
            raise foreign_value_error(self, other)
        return as_finite_float(other, what)

    def __neg__(self) -> ValueBase:  # self * -1
        return self * -1.0

    def __radd__(self, other: object) -> ValueBase:  # self + other
        return self + other

    def __sub__(self, other: object) -> ValueBase:  # self + (-other)
        if self._is_mine(other):
            return self + (-other)
        return self + -self._number(other)

    def __rsub__(self, other: object) -> ValueBase:  # (-self) + other
        return -self + other

    def __rmul__(self, other: object) -> ValueBase:  # self * other
        return self * other

    def __rtruediv__(self, other: object) -> ValueBase:  # Value(other) / self
        numerator = self._number(other)
        with untraced():  # the domain is the divisor's; the numerator only appears in the message
            check_domain(OpCode.DIV, (numerator, self.data))  # before the numerator's leaf exists
        return type(self)(numerator) / self

    def __rpow__(self, other: object) -> ValueBase:  # Value(other) ** self
        base = self._number(other)
        with untraced():  # the domain is the base's; the exponent only appears in the message
            check_domain(OpCode.POW, (base, self.data))  # before the base's leaf exists
        return type(self)(base) ** self

    # --- no implicit numbers (and none at all from a traced Value) ------------------------------
    def __bool__(self) -> bool:
        refuse_if_traced(self, "bool() (an if or while on a Value)")
        return True

    def _no_number(self, operation: str, way_out: str = "read its number as v.data") -> NoReturn:
        refuse_if_traced(self, operation)
        raise OperandTypeError(f"{operation} of a Value: {way_out}")

    def __float__(self) -> float:
        self._no_number("float()")

    def __int__(self) -> int:
        self._no_number("int()")

    def __index__(self) -> int:
        self._no_number("operator.index() (a Value used as an index or size)")

    def __round__(self, ndigits: int | None = None) -> float:
        self._no_number("round()", "round its number, round(v.data)")

    def __trunc__(self) -> int:
        self._no_number("math.trunc()", "truncate its number, math.trunc(v.data)")

    def __floor__(self) -> int:
        self._no_number("math.floor()", "take the floor of its number, math.floor(v.data)")

    def __ceil__(self) -> int:
        self._no_number("math.ceil()", "take the ceiling of its number, math.ceil(v.data)")

    def __abs__(self) -> ValueBase:
        self._no_number("abs()", "abs is no op of the table; v.relu() + (-v).relu() is |v|")

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """NumPy: a NumPy scalar and a Value (``np.float64(2) * v``) are the Value's operator, as
        with a Python number; no other NumPy function takes a Value."""
        spelled = _NUMPY_OPERATORS.get(ufunc)
        if method == "__call__" and spelled is not None and len(inputs) == 2 and not kwargs:
            a, b = (x.item() if isinstance(x, np.generic) else x for x in inputs)
            if not isinstance(a, np.ndarray) and not isinstance(b, np.ndarray):
                return spelled(a, b)
        for x in inputs:
            if isinstance(x, ValueBase):
                refuse_if_traced(x, f"NumPy's {ufunc.__name__}()")
        raise OperandTypeError(
            f"NumPy's {ufunc.__name__}() does not take Values: use the Value's own methods "
            "(v.tanh(), v.exp(), ...) or operators with plain numbers"
        )

    def __format__(self, format_spec: str) -> str:
        if format_spec:
            refuse_if_traced(self, f"formatting ({echo(format_spec)})")
        return object.__format__(self, format_spec)

    def _compare(self, other: object, symbol: str) -> bool:
        refuse_if_traced(self, f"comparing (a {symbol} b)")
        if isinstance(other, ValueBase):
            refuse_if_traced(other, f"comparing (a {symbol} b)")
        return NotImplemented  # type: ignore[no-any-return]

    def __lt__(self, other: object) -> bool:
        return self._compare(other, "<")

    def __le__(self, other: object) -> bool:
        return self._compare(other, "<=")

    def __gt__(self, other: object) -> bool:
        return self._compare(other, ">")

    def __ge__(self, other: object) -> bool:
        return self._compare(other, ">=")


#: the NumPy ufuncs a NumPy scalar's operators call, as the operators they stand for
_NUMPY_OPERATORS = {
    np.add: operator.add,
    np.subtract: operator.sub,
    np.multiply: operator.mul,
    np.true_divide: operator.truediv,
    np.power: operator.pow,
}


class StoredValue(ValueBase):
    """A Value whose node keeps its number and grad as floats (``_data``, ``_grad``) and its op as
    a code and a constant (``_code``, ``_constant``): the attributes of
    :class:`spec.ValueProtocol` over them, and micrograd's repr, written once for the backends
    that store them so (the python backend, the backend template, :mod:`spec.adapter`).
    A subclass adds ``children`` and its own storage (``__slots__``)."""

    __slots__ = ()
    _data: float
    _grad: float
    _code: OpCode
    _constant: float

    @property
    def data(self) -> float:
        return self._data

    # (the slots are the subclass's: mypy sees only this class's empty __slots__)
    @data.setter
    def data(self, value: object) -> None:
        self._data = as_finite_float(value)  # type: ignore[misc]

    @property
    def grad(self) -> float:
        return self._grad

    @grad.setter
    def grad(self, value: object) -> None:
        self._grad = as_float(value, "grad")  # type: ignore[misc]

    @property
    def op(self) -> str:
        return op_symbol(self._code, self._constant)

    def __repr__(self) -> str:
        return f"Value(data={self._data}, grad={self._grad})"


# --- the public methods of the op table ---------------------------------------------------------
def _method(rows: list[OpSpec]) -> Callable[..., Any]:
    """The Value method that spells ``rows`` (one, or a binary row and a constant row sharing it)."""
    binary = next((row for row in rows if row.arity == 2), None)
    with_constant = next((row for row in rows if row.has_constant), None)
    if binary is None and with_constant is None:
        (row,) = rows
        code = row.code

        def unary(self: ValueBase) -> ValueBase:
            return self._apply(code)

        return unary

    def binary_or_constant(self: ValueBase, other: object) -> ValueBase:
        # A Value operand picks the binary row (x ** y: POW), a number the constant row (x ** 2.0).
        mine = self._is_mine(other)
        if with_constant is not None and (binary is None or not mine):
            return self._apply(with_constant.code, constant=self._number(other))
        assert binary is not None
        return self._apply(binary.code, other if mine else self._number(other))

    return binary_or_constant


def _install_methods() -> None:
    by_method: dict[str, list[OpSpec]] = {}
    for row in OPS.values():
        by_method.setdefault(row.method, []).append(row)
    for name, rows in by_method.items():
        method = _method(rows)
        method.__name__ = method.__qualname__ = name
        method.__doc__ = " / ".join(f"The {row.name} primitive ({row.domain_text})." for row in rows)
        setattr(ValueBase, name, method)


_install_methods()
