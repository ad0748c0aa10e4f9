"""A Value for a backend that adapts another autograd engine (micrograd, PyTorch, autograd).

Every adapter wraps one node of its engine in a gradspec Value, and would otherwise write
the same forty lines again: the node's bookkeeping (op code, constant, operands, label), the
attributes of :class:`spec.ValueProtocol`, micrograd's repr, the graph walk, ``zero_grad``,
and the checked application of an op: the domain checked before the engine computes
anything, an overflow refused after, a number operand's leaf made only once the op
succeeded, so a failed op leaves no node behind (spec's errors, as on every backend).
:class:`EngineValue` does all of that. An adapter subclasses it and writes its engine's side:

- ``_engine_leaf(x)``: the engine's leaf holding the float ``x``;
- ``_engine_apply(code, nodes, constant)``: the engine's node of primitive ``code`` of
  :data:`spec.OPS` on the operands' engine nodes;
- ``_engine_value(node)``: the node's value as a Python float (``float(node)`` by default);
- ``backward()``: its engine's backward, then each Value's grad, by
  :meth:`EngineValue._store_gradients` where the engine hands back d root / d node.

The grads live in the Values (``_grad``); an adapter whose engine keeps them in its nodes
(micrograd) overrides the ``grad`` property.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import count
from typing import Any

from spec.operands import as_finite_float
from spec.ops import OpCode, check_domain, overflow_error
from spec.value import StoredValue

__all__ = ["EngineValue"]

_next_order = count().__next__


class EngineValue(StoredValue):
    """A float64 scalar of another engine's graph: its node, and gradspec's view of it."""

    def __init__(self, data: object, label: str = "") -> None:
        x = as_finite_float(data)
        self._hold(self._engine_leaf(x), x, label=label)

    def _hold(
        self,
        node: Any,
        data: float,
        code: OpCode = OpCode.LEAF,
        constant: float = 0.0,
        children: tuple[EngineValue, ...] = (),
        label: str = "",
    ) -> None:
        self._node: Any = node
        self._data = data
        self._grad = 0.0
        self.label = label
        self._children = children
        self._code = code
        self._constant = constant
        self._order = _next_order()  # creation order: the graph walk returns nodes in it

    @classmethod
    def _holding(cls, node: Any, data: float, *rest: Any) -> EngineValue:
        """A Value of an engine node made already (``_hold``'s arguments), without a leaf of its own."""
        value = cls.__new__(cls)
        value._hold(node, data, *rest)
        return value

    # --- the engine's side: an adapter writes these -------------------------------------------
    def _engine_leaf(self, x: float) -> Any:
        """The engine's leaf holding ``x``."""
        raise NotImplementedError(f"{type(self).__name__} must implement _engine_leaf")

    def _engine_apply(self, code: OpCode, nodes: Sequence[Any], constant: float) -> Any:
        """The engine's node of primitive ``code`` on ``nodes`` (one or two engine nodes)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _engine_apply")

    def _engine_value(self, node: Any) -> float:
        """The value an engine node holds, as a Python float."""
        return float(node)

    # --- spec.ValueProtocol: grad, op and repr are StoredValue's ---------------------------------
    @property
    def data(self) -> float:
        return self._data

    @data.setter
    def data(self, value: object) -> None:
        self._data = as_finite_float(value)
        if self._code == OpCode.LEAF:  # the graphs built from it from now on see the new number
            grad = self.grad  # kept: an optimizer's step assigns data, not grad
            self._node = self._engine_leaf(self._data)
            self.grad = grad

    @property
    def children(self) -> tuple[EngineValue, ...]:
        return self._children

    def zero_grad(self) -> None:
        """Set the grad of every node of this graph, leaves included, to 0."""
        for node in self.graph():
            node.grad = 0.0

    # --- the checked application of an op ------------------------------------------------------
    def _apply(self, code: OpCode, other: object = None, constant: float = 0.0) -> EngineValue:
        """The node of ``code`` on self (and ``other``, a Value of this backend or a number)."""
        operand = other if isinstance(other, EngineValue) else None
        number = None if other is None or operand is not None else as_finite_float(other)
        # (`is not None`: a Value's truth is refused while compile_step traces)
        second = None if other is None else operand._data if operand is not None else number
        inputs = (self._data,) if second is None else (self._data, second)
        check_domain(code, inputs, constant)
        leaf = None if number is None else self._engine_leaf(number)
        nodes = (
            [self._node] if other is None else [self._node, operand._node if operand is not None else leaf]
        )
        try:
            node = self._engine_apply(code, nodes, constant)
            value = self._engine_value(node)
        except (OverflowError, FloatingPointError):
            value = math.inf
        if not math.isfinite(value):
            raise overflow_error(code, inputs, constant)
        if number is not None:  # the number's leaf, made once the op is known to succeed
            operand = self._holding(leaf, number)
        return self._holding(node, value, code, constant, (self,) if operand is None else (self, operand))

    # --- the graph -----------------------------------------------------------------------------
    def graph(self) -> list[EngineValue]:
        """Every Value this one was computed from, itself included, in creation order (no recursion)."""
        seen = {id(self): self}
        stack = [self]
        while stack:
            for child in stack.pop()._children:
                if id(child) not in seen:
                    seen[id(child)] = child
                    stack.append(child)
        return sorted(seen.values(), key=lambda node: node._order)

    def _store_gradients(self, nodes: Iterable[EngineValue], gradients: Iterable[float]) -> None:
        """Each node's grad from d self / d node, as the contract says (:mod:`spec.interface`):
        a leaf accumulates it, an interior node is set to it, and the root's is 1."""
        for node, gradient in zip(nodes, gradients, strict=True):
            if node is self:
                node._grad = 1.0
            elif node._code == OpCode.LEAF:
                node._grad = node._grad + gradient
            else:
                node._grad = float(gradient)
