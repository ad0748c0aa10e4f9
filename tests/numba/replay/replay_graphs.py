"""Hand-made traced graphs for the replay passes' tests: nodes written one by one, in creation order."""

from __future__ import annotations

import numpy as np

from backends.numba._kernels import LEAF
from backends.numba._lowering import ADD, MUL
from spec.ops import OpCode


class Graph:
    """A traced graph under construction: ``leaf()``, ``add(x, y)``, ``mul(x, y)``, ``unary(code, x)``."""

    def __init__(self) -> None:
        self.op: list[int] = []
        self.a: list[int] = []
        self.b: list[int] = []

    def _node(self, code: int, a: int, b: int) -> int:
        self.op.append(code)
        self.a.append(a)
        self.b.append(b)
        return len(self.op) - 1

    def leaf(self) -> int:
        return self._node(LEAF, -1, -1)

    def add(self, x: int, y: int) -> int:
        return self._node(ADD, x, y)

    def mul(self, x: int, y: int) -> int:
        return self._node(MUL, x, y)

    def relu(self, x: int) -> int:
        return self._node(int(OpCode.RELU), x, -1)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``op, a, b, const`` as the passes take them."""
        m = len(self.op)
        return (
            np.array(self.op, np.int8),
            np.array(self.a, np.int64),
            np.array(self.b, np.int64),
            np.zeros(m, np.float64),
        )

    def flags(self, nodes: list[int]) -> np.ndarray:
        """A boolean column that is True at ``nodes``."""
        column = np.zeros(len(self.op), np.bool_)
        column[nodes] = True
        return column


def neuron(g: Graph, weights: list[int], inputs: list[int], bias: int) -> int:
    """``bias + w0*x0 + w1*x1 + ...`` as spec.nn builds it; the ADD at the top."""
    total = bias
    for w, x in zip(weights, inputs, strict=True):
        total = g.add(total, g.mul(w, x))
    return total
