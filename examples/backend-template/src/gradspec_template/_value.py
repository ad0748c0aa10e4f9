"""The engine: the spec's op table, interpreted.

Every primitive goes through :meth:`Value._apply`, which reads its row of
:data:`spec.OPS`: check the domain, compute the row's forward rule, refuse a
non-finite result, and record the node. ``backward`` asks each node's row for
its local partials. That is all a backend must do; a fast backend replaces the
table lookups with code of its own (see ``backends/python`` and
``backends/numba`` in gradspec) and the conformance suite checks it still
computes exactly these rules. The composites (``-``, ``/``, reflected
operators) come from :class:`spec.ValueBase`.
"""

from __future__ import annotations

import math
from itertools import count

from spec import OPS, OpCode, ValueBase, check_domain, op_symbol, overflow_error
from spec.operands import as_finite_float, as_float

_next_order = count().__next__


class Value(ValueBase):
    """A float64 scalar in a computation graph, with its gradient."""

    backend_name = "template"
    __array_ufunc__ = None  # NumPy scalars defer to our reflected operators (np.float64(2) * v)

    def __init__(self, data: object, label: str = "") -> None:
        self._data = as_finite_float(data)
        self._grad = 0.0
        self.label = label
        self._children: tuple[Value, ...] = ()
        self._code = OpCode.LEAF
        self._constant = 0.0
        self._order = _next_order()  # creation order: backward runs in reverse of it

    # --- the attributes of spec.ValueProtocol ---------------------------------------
    @property
    def data(self) -> float:
        return self._data

    @data.setter
    def data(self, value: object) -> None:
        self._data = as_finite_float(value)

    @property
    def grad(self) -> float:
        return self._grad

    @grad.setter
    def grad(self, value: object) -> None:
        self._grad = as_float(value, "grad")

    @property
    def op(self) -> str:
        return op_symbol(self._code, self._constant)

    @property
    def children(self) -> tuple[Value, ...]:
        return self._children

    def __repr__(self) -> str:
        return f"Value(data={self._data}, grad={self._grad})"

    # --- primitives --------------------------------------------------------------------
    def __add__(self, other: object) -> Value:
        return self._apply(OpCode.ADD, (self, self._operand(other)))

    def __mul__(self, other: object) -> Value:
        return self._apply(OpCode.MUL, (self, self._operand(other)))

    def __pow__(self, other: object) -> Value:
        if isinstance(other, Value):
            return self._apply(OpCode.POW, (self, other))
        return self._apply(OpCode.POW_CONST, (self,), self._number(other, "exponent"))

    def exp(self) -> Value:
        return self._apply(OpCode.EXP, (self,))

    def log(self) -> Value:
        return self._apply(OpCode.LOG, (self,))

    def tanh(self) -> Value:
        return self._apply(OpCode.TANH, (self,))

    def relu(self) -> Value:
        return self._apply(OpCode.RELU, (self,))

    def sigmoid(self) -> Value:
        return self._apply(OpCode.SIGMOID, (self,))

    def _apply(self, code: OpCode, children: tuple[Value, ...], constant: float = 0.0) -> Value:
        """The node ``code(children)``: checked first, so a failed op creates nothing."""
        inputs = tuple(child._data for child in children)
        check_domain(code, inputs, constant)
        try:
            data = OPS[code].forward(inputs, constant)
        except OverflowError:  # Python's math raises where float64 would give an infinity
            data = math.inf
        if not math.isfinite(data):
            raise overflow_error(code, inputs, constant)
        out = Value(data)
        out._children, out._code, out._constant = children, code, constant
        return out

    def _operand(self, other: object) -> Value:
        """``other`` if it is one of our Values, else a new leaf holding the number."""
        return other if isinstance(other, Value) else Value(self._number(other))

    # --- backward (semantics: spec.interface) --------------------------------------------
    def backward(self) -> None:
        """Set this grad to 1, recompute every interior grad, let leaves accumulate."""
        interior = [node for node in _graph(self) if node._code != OpCode.LEAF]
        interior.sort(key=lambda node: node._order, reverse=True)  # reverse creation order
        for node in interior:
            node._grad = 0.0
        self._grad = 1.0
        for node in interior:
            inputs = tuple(child._data for child in node._children)
            partials = OPS[node._code].partials(inputs, node._constant, node._data)
            for child, partial in zip(node._children, partials, strict=True):
                child._grad += partial * node._grad

    def zero_grad(self) -> None:
        """Set the grad of every node of this graph, leaves included, to 0."""
        for node in _graph(self):
            node._grad = 0.0


def _graph(root: Value) -> list[Value]:
    """Every node reachable from ``root``, without recursion."""
    seen = {id(root)}
    nodes = [root]
    stack = [root]
    while stack:
        for child in stack.pop()._children:
            if id(child) not in seen:
                seen.add(id(child))
                nodes.append(child)
                stack.append(child)
    return nodes


#: The op table, lowered: every row is handled by the table interpreter ``Value._apply``.
LOWERINGS = {code: Value._apply for code in OPS}
