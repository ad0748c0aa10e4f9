"""Reading a traced step off the tape: the Numba backend's spec.capture.GraphExtractor.

While ``compile_step`` traces, the tape holds every node it appends
(:meth:`~backends.numba._tape.Tape.holding_nodes`), so the trace is the tape's suffix after
the ``since`` marker, plus the older nodes that suffix reads: the parameters, the
placeholders, and whatever made them. Extraction copies exactly those, renumbered
``0..m-1`` in creation order: the older nodes first, then the suffix shifted down. No
array the length of the whole tape is made but that copy, so capture's peak memory is
the tape plus the graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from backends.numba._jit import jit as _jit
from backends.numba._kernels import LEAF
from spec.capture import TracedGraph

__all__ = ["extract", "gather", "older_ancestors"]


@_jit("int64[::1](int8[::1], int64[::1], int64[::1], int64, int64)")
def older_ancestors(
    op: NDArray[np.int8], a: NDArray[np.int64], b: NDArray[np.int64], first: int, root: int
) -> NDArray[np.int64]:
    """The nodes before ``first`` that the nodes from ``first`` on, or ``root``, are computed from, ascending."""
    n = op.shape[0]
    needed = np.zeros(first, np.bool_)
    if root < first:
        needed[root] = True
    for i in range(first, n):
        if op[i] != LEAF:
            if a[i] < first:
                needed[a[i]] = True
            if 0 <= b[i] < first:
                needed[b[i]] = True
    for p in range(first - 1, -1, -1):
        if needed[p] and op[p] != LEAF:
            needed[a[p]] = True
            if b[p] >= 0:
                needed[b[p]] = True
    return np.flatnonzero(needed)


@_jit(
    "Tuple((int8[::1], int64[::1], int64[::1], float64[::1], float64[::1]))"
    "(float64[::1], int8[::1], int64[::1], int64[::1], float64[::1], int64, int64[::1])"
)
def gather(
    data: NDArray[np.float64],
    op: NDArray[np.int8],
    a: NDArray[np.int64],
    b: NDArray[np.int64],
    const: NDArray[np.float64],
    first: int,
    older: NDArray[np.int64],
) -> tuple[NDArray[np.int8], NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """The graph's columns: the ``older`` nodes, then nodes ``first..n-1``, parents renumbered."""
    k = older.shape[0]
    m = k + op.shape[0] - first
    g_op = np.empty(m, np.int8)
    g_a = np.empty(m, np.int64)
    g_b = np.empty(m, np.int64)
    g_const = np.empty(m, np.float64)
    g_data = np.empty(m, np.float64)
    for j in range(m):
        i = older[j] if j < k else first + j - k
        g_op[j], g_const[j], g_data[j] = op[i], const[i], data[i]
        for parent, column in ((a[i], g_a), (b[i], g_b)):
            if parent < 0:
                column[j] = -1
            elif parent >= first:
                column[j] = k + parent - first
            else:
                column[j] = np.searchsorted(older, parent)
    return g_op, g_a, g_b, g_const, g_data


def extract(root: Any, leaves: Any, since: Any) -> TracedGraph:
    """``root``'s graph and every node made after ``since`` (spec.capture.GraphExtractor).

    The tape must have held its nodes since ``since`` was made.
    """
    tape = root._t
    first: int = since._i + 1
    data, op, a, b, const = tape.node_arrays()
    older = older_ancestors(op, a, b, first, root._i)
    g_op, g_a, g_b, g_const, g_data = gather(data, op, a, b, const, first, older)
    del data, op, a, b, const  # release the tape's buffers
    k = len(older)

    def node(i: int) -> int:
        if i >= first:
            return k + i - first
        j = int(np.searchsorted(older, i))
        return j if j < k and older[j] == i else -1

    given = np.array([node(v._i) if v._t is tape else -1 for v in leaves], np.int64)
    older_nodes = np.arange(k)
    return TracedGraph(
        op=g_op,
        a=g_a,
        b=g_b,
        const=g_const,
        data=g_data,
        root=node(root._i),
        leaves=given,
        outside=older_nodes[~np.isin(older_nodes, given)],
    )
