"""The engine: the spec's op table, interpreted.

:class:`spec.ValueBase` spells every op of the table (``+``, ``*``, ``**``, ``exp()``,
...) and the composites (``-``, ``/``, reflected operators); each primitive calls
:meth:`Value._apply`, which reads the op's row of :data:`spec.OPS`: check the domain,
compute the row's forward rule, refuse a non-finite result, and record the node.
``backward`` asks each node's row for its local partials. That is all a backend must
do; a fast backend replaces the table's rules with a lowering of its own (see
``backends/python`` and ``backends/numba`` in gradspec) and the conformance suite checks
it still computes exactly these rules.
"""

from __future__ import annotations

import math
from itertools import count

from spec import OPS, OpCode, StoredValue, as_finite_float, check_domain, overflow_error

_next_order = count().__next__


class Value(StoredValue):
    """A float64 scalar in a computation graph, with its gradient."""

    backend_name = "template"

    def __init__(self, data: object, label: str = "") -> None:
        self._data = as_finite_float(data)
        self._grad = 0.0
        self.label = label
        self._children: tuple[Value, ...] = ()
        self._code = OpCode.LEAF
        self._constant = 0.0
        self._order = _next_order()  # creation order: backward runs in reverse of it

    # --- the attributes of spec.ValueProtocol: data, grad, op and repr are StoredValue's ---
    @property
    def children(self) -> tuple[Value, ...]:
        return self._children

    # --- the primitives: spec.ValueBase spells every op of the table and calls this ------
    def _apply(self, code: OpCode, other: object = None, constant: float = 0.0) -> Value:
        """The node of op ``code`` on self (and ``other``): checked first, so a failed op creates nothing."""
        operand = other if isinstance(other, Value) else None  # else None or a number (a float)
        inputs = (self._data,) if other is None else (self._data, other if operand is None else operand._data)
        check_domain(code, inputs, constant)
        try:
            data = OPS[code].forward(inputs, constant)
        except OverflowError:  # Python's math raises where float64 would give an infinity
            data = math.inf
        if not math.isfinite(data):
            raise overflow_error(code, inputs, constant)
        if other is not None and operand is None:
            operand = Value(other)  # a number operand's leaf, made once the op is known to succeed
        out = Value(data)
        out._children = (self,) if operand is None else (self, operand)
        out._code, out._constant = code, constant
        return out

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


#: The op table, lowered: this backend's lowering of each op is the op's own row, interpreted.
LOWERINGS = dict(OPS)
