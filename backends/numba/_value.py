"""The Value handle: the public API over one node of a tape.

A Value is two slots, its tape and its node number; ``data`` and ``grad``
read and write the tape's arrays. An operation computes its output in Python,
with the Python body of the op's lowering (:mod:`backends.numba._lowering`, the
same definition the kernels compile), checks the inputs and the output with the
spec's rules, and only then appends: a failed operation appends nothing, not even
the leaf of a number operand. Every op goes through :meth:`Value._apply` but for
``+`` and ``*``, the hottest paths, which do the same inline. ``backward`` and
``zero_grad`` are kernels of :mod:`backends.numba._kernels`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from backends.numba import _kernels
from backends.numba._lowering import LOWERINGS
from backends.numba._tape import Tape, _threads, wrong_thread_error
from spec.operands import as_finite_float, as_float, foreign_value_error
from spec.ops import OPS, OpCode, check_domain, op_symbol, overflow_error
from spec.value import ValueBase

__all__ = ["Value"]

_INF = math.inf
_new = object.__new__
_LEAF = _kernels.LEAF
#: op code -> (its code in the kernels, the Python body of its forward rule)
_FORWARD = {code: (lowering.code, lowering.forward.py_func) for code, lowering in LOWERINGS.items()}
_ADD, _add = _FORWARD[OpCode.ADD]
_MUL, _mul = _FORWARD[OpCode.MUL]
_POW, _pow = _FORWARD[OpCode.POW]


class Value(ValueBase):
    """A float64 scalar in a computation graph: a handle on one node of its thread's tape."""

    __slots__ = ("_i", "_t")
    backend_name = "numba"

    def __init__(self, data: object, label: str = "") -> None:
        x = as_finite_float(data)
        t = _threads.tape
        self._t = t
        self._i = _push_leaf(t, x)
        t.fresh.append(self)
        if label.__class__ is not str or label:
            t.labels[self._i] = label

    # --- graph inspection --------------------------------------------------------
    @property
    def data(self) -> float:
        return self._t.data[self._i]

    @data.setter
    def data(self, value: object) -> None:
        self._t.data[self._i] = as_finite_float(value)

    @property
    def grad(self) -> float:
        grad = self._t.grad
        i = self._i
        return grad[i] if i < len(grad) else 0.0

    @grad.setter
    def grad(self, value: object) -> None:
        g = as_float(value, "grad")
        t = self._t
        if self._i >= len(t.grad):
            t.fill_grad()
        t.grad[self._i] = g

    @property
    def label(self) -> str:
        return self._t.labels.get(self._i, "")

    @label.setter
    def label(self, value: str) -> None:
        labels = self._t.labels
        if value.__class__ is not str or value:
            labels[self._i] = value
        else:
            labels.pop(self._i, None)

    @property
    def op(self) -> str:
        t, i = self._t, self._i
        return op_symbol(t.op[i], t.const[i])

    @property
    def children(self) -> tuple[Value, ...]:
        t, i = self._t, self._i
        if t.op[i] == _LEAF:
            return ()
        a, b = t.a[i], t.b[i]
        if b < 0:
            return (t.handle(a, Value),)
        return (t.handle(a, Value), t.handle(b, Value))

    def __repr__(self) -> str:
        return f"Value(data={self.data}, grad={self.grad})"

    # --- copies: a handle cannot take its graph along -------------------------------
    def __copy__(self) -> Value:
        """A new leaf, on the calling thread's tape, with this Value's data, grad and label."""
        copy = Value(self.data, self.label)
        copy.grad = self.grad
        return copy

    def __deepcopy__(self, memo: dict[int, object]) -> Value:
        return self.__copy__()

    def __reduce__(self) -> tuple[object, ...]:
        return _leaf_copy, (self.data, self.grad, self.label)

    # --- primitives: forward here, backward in the kernels ---------------------------
    def __add__(self, other: object) -> Value:
        t = self._t
        data = t.data
        x = data[self._i]
        if other.__class__ is not Value:
            y = self._number(other)
            out = _add(x, y, 0.0)
            if not -_INF < out < _INF:
                raise overflow_error(_ADD, (x, y))
            return _push_with_leaf(t, out, _ADD, self, y)
        if other._t is not t:
            raise foreign_value_error(self, other)
        y = data[other._i]
        out = _add(x, y, 0.0)
        if not -_INF < out < _INF:
            raise overflow_error(_ADD, (x, y))
        # _push(t, out, _ADD, self, other, 0.0), written out: the hottest path of all.
        if t is not _threads.tape:
            raise wrong_thread_error(t)
        n = len(data)
        if n >= t.limit:
            t.housekeep()
            n = len(data)
        data.append(out)
        t.op.append(_ADD)
        t.a.append(self._i)
        t.b.append(other._i)
        t.const.append(0.0)
        node = _new(Value)
        node._t = t
        node._i = n
        t.fresh.append(node)
        return node

    def __mul__(self, other: object) -> Value:
        t = self._t
        data = t.data
        x = data[self._i]
        if other.__class__ is not Value:
            y = self._number(other)
            out = _mul(x, y, 0.0)
            if not -_INF < out < _INF:
                raise overflow_error(_MUL, (x, y))
            return _push_with_leaf(t, out, _MUL, self, y)
        if other._t is not t:
            raise foreign_value_error(self, other)
        y = data[other._i]
        out = _mul(x, y, 0.0)
        if not -_INF < out < _INF:
            raise overflow_error(_MUL, (x, y))
        # _push(t, out, _MUL, self, other, 0.0), written out: the hottest path of all.
        if t is not _threads.tape:
            raise wrong_thread_error(t)
        n = len(data)
        if n >= t.limit:
            t.housekeep()
            n = len(data)
        data.append(out)
        t.op.append(_MUL)
        t.a.append(self._i)
        t.b.append(other._i)
        t.const.append(0.0)
        node = _new(Value)
        node._t = t
        node._i = n
        t.fresh.append(node)
        return node

    def __rpow__(self, other: object) -> Value:  # Value(other) ** self
        # spec.value builds the leaf first; here it is appended only once the POW is valid.
        t = self._t
        x = self._number(other)
        y = t.data[self._i]
        check_domain(OpCode.POW, (x, y))
        return _push_leaf_first(t, _checked(OpCode.POW, _pow, x, y, 0.0), _POW, x, self)

    def _apply(self, code: OpCode, other: Any = None, constant: float = 0.0) -> Value:
        """The node of op ``code`` (spec.value.ValueBase._apply), its value from the op's lowering."""
        t = self._t
        x = t.data[self._i]
        kernel_code, forward = _FORWARD[code]
        if other is None:
            check_domain(code, (x,), constant)
            return _push(t, _checked(code, forward, x, 0.0, constant), kernel_code, self, None, constant)
        if other.__class__ is not Value:  # a number (a float, spec.value checked it)
            y = other
            check_domain(code, (x, y), constant)
            return _push_with_leaf(t, _checked(code, forward, x, y, constant), kernel_code, self, y)
        if other._t is not t:
            raise foreign_value_error(self, other)
        y = t.data[other._i]
        check_domain(code, (x, y), constant)
        return _push(t, _checked(code, forward, x, y, constant), kernel_code, self, other, constant)

    # --- backward --------------------------------------------------------------------
    def backward(self) -> None:
        """Fill ``grad`` with d self / d node for every node of this graph.

        The root's grad is set to 1, every interior node's grad is recomputed from
        zero, and leaves *accumulate* (see :mod:`spec.interface`).
        """
        t = self._t
        if t is not _threads.tape:
            raise wrong_thread_error(t)
        _kernels.backward(*t.arrays(), self._i)

    def zero_grad(self) -> None:
        """Set the grad of every node of this graph, leaves included, to 0."""
        t = self._t
        if t is not _threads.tape:
            raise wrong_thread_error(t)
        _, grad, op, a, b, _ = t.arrays()
        _kernels.zero_grad(grad, op, a, b, self._i)


# --- appending nodes ---------------------------------------------------------------------
# Each appends after housekeeping (which may renumber nodes), so node numbers are
# read from the handles only then; the caller has validated everything before.
def _push(t: Tape, out: float, code: int, x: Value, y: Value | None, c: float) -> Value:
    """Append the node ``code(x[, y])`` with value ``out`` (constant ``c``); its new handle."""
    if t is not _threads.tape:
        raise wrong_thread_error(t)
    data = t.data
    n = len(data)
    if n >= t.limit:
        t.housekeep()
        n = len(data)
    data.append(out)
    t.op.append(code)
    t.a.append(x._i)
    t.b.append(-1 if y is None else y._i)
    t.const.append(c)
    node = _new(Value)
    node._t = t
    node._i = n
    t.fresh.append(node)
    return node


def _push_with_leaf(t: Tape, out: float, code: int, x: Value, y: float) -> Value:
    """Append a leaf for the number ``y``, then the node ``code(x, leaf)``; its new handle."""
    if t is not _threads.tape:
        raise wrong_thread_error(t)
    data = t.data
    n = len(data)
    if n + 1 >= t.limit:
        t.housekeep()
        n = len(data)
    data.append(y)
    data.append(out)
    t.op.append(_LEAF)
    t.op.append(code)
    a = t.a
    a.append(-1)
    a.append(x._i)
    b = t.b
    b.append(-1)
    b.append(n)
    const = t.const
    const.append(0.0)
    const.append(0.0)
    node = _new(Value)
    node._t = t
    node._i = n + 1
    t.fresh.append(node)
    return node


def _push_leaf_first(t: Tape, out: float, code: int, x: float, y: Value) -> Value:
    """Append a leaf for the number ``x``, then the node ``code(leaf, y)``; its new handle."""
    if t is not _threads.tape:
        raise wrong_thread_error(t)
    if len(t.data) + 1 >= t.limit:
        t.housekeep()
    n = _push_leaf(t, x)
    t.data.append(out)
    t.op.append(code)
    t.a.append(n)
    t.b.append(y._i)
    t.const.append(0.0)
    node = _new(Value)
    node._t = t
    node._i = n + 1
    t.fresh.append(node)
    return node


def _push_leaf(t: Tape, x: float) -> int:
    """Append a leaf holding ``x``; its node number."""
    data = t.data
    n = len(data)
    if n >= t.limit:
        t.housekeep()
        n = len(data)
    data.append(x)
    t.op.append(_LEAF)
    t.a.append(-1)
    t.b.append(-1)
    t.const.append(0.0)
    return n


def _leaf_copy(data: float, grad: float, label: str) -> Value:
    """Unpickle a Value: a leaf on the calling thread's tape."""
    copy = Value(data, label)
    copy.grad = grad
    return copy


def _checked(
    code: OpCode, forward: Callable[[float, float, float], float], x: float, y: float, c: float
) -> float:
    """``forward(x, y, c)``, or the contract's error if it is not a finite float64."""
    try:
        out: float = forward(x, y, c)
    except OverflowError:  # Python's math raises where float64 gives an infinity
        out = _INF
    if not -_INF < out < _INF:
        raise overflow_error(code, (x,) if OPS[code].arity == 1 else (x, y), c)
    return out
