"""Comparing two graphs through the public API: the same nodes, bits and operands, node for node."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conformance.gradcheck import float_bits

__all__ = ["assert_same_graph"]


def assert_same_graph(built: Sequence[Any], reference: Sequence[Any], shared: Sequence[Any]) -> None:
    """The outputs ``built`` and ``reference`` are the same graphs over the Values ``shared``:
    node for node the same op, the same float64 bits, the same operands in the same order
    (the ``shared`` Values the very objects), the same sharing, labels and grads."""
    assert len(built) == len(reference), f"{len(built)} outputs, the reference gives {len(reference)}"
    known = {id(v) for v in shared}
    twins: dict[int, Any] = {}  # built node -> its reference twin
    taken: set[int] = set()
    todo = list(zip(built, reference, strict=True))
    while todo:
        node, twin = todo.pop()
        if id(node) in known or id(twin) in known:
            assert node is twin, "an operand that existed before the call must be that very Value"
            continue
        if id(node) in twins:
            assert twins[id(node)] is twin, (
                "a node shared in the built graph is not shared so in the reference"
            )
            continue
        assert id(twin) not in taken, "two built nodes stand for one reference node"
        twins[id(node)] = twin
        taken.add(id(twin))
        mine = (node.op, float_bits(node.data), len(node.children))
        assert mine == (twin.op, float_bits(twin.data), len(twin.children)), (
            f"built node {node.op!r} = {node.data!r} with {len(node.children)} operands; "
            f"the reference has {twin.op!r} = {twin.data!r} with {len(twin.children)}"
        )
        assert node.label == twin.label and node.grad == twin.grad
        todo.extend(zip(node.children, twin.children, strict=True))
