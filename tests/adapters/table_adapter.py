"""The smallest adapter: an "engine" whose nodes are floats, computed and differentiated by
the op table's own rules. It runs every conformance check through spec.adapter.EngineValue's
bookkeeping, checked application of ops, graph walk and gradient storage."""

from __future__ import annotations

import math
from collections.abc import Sequence

from spec import OPS, SPEC_VERSION, Backend, OpCode
from spec.adapter import EngineValue


class Value(EngineValue):
    backend_name = "table-adapter"

    def _engine_leaf(self, x: float) -> float:
        return x

    def _engine_apply(self, code: OpCode, nodes: Sequence[float], constant: float) -> float:
        try:
            return OPS[code].forward(tuple(nodes), constant)
        except OverflowError:  # Python's math raises where float64 gives an infinity
            return math.inf

    def backward(self) -> None:
        nodes = self.graph()
        grads = {id(node): 0.0 for node in nodes}
        grads[id(self)] = 1.0
        for node in reversed(nodes):
            if not node.children:
                continue
            inputs = tuple(child._node for child in node.children)
            partials = OPS[node._code].partials(inputs, node._constant, node._node)
            for child, partial in zip(node.children, partials, strict=True):
                grads[id(child)] = grads[id(child)] + partial * grads[id(node)]
        self._store_gradients(nodes, [grads[id(node)] for node in nodes])


BACKEND = Backend.build("table-adapter", Value, {code: OPS[code] for code in OPS}, spec_version=SPEC_VERSION)
