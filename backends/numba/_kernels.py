"""Numba kernels: pure functions over the tape arrays.

The tape is a structure of arrays, one entry per node, indexed by node number.
Nodes are numbered in creation order, so every parent has a smaller number
than its child and a descending sweep is a reverse topological order:

=========  =========  ===================================================================
array      dtype      entry ``i``
=========  =========  ===================================================================
``data``   float64    the node's value
``grad``   float64    the node's gradient
``op``     int8       the op code of :class:`spec.ops.OpCode` (``LEAF`` = 0 for a leaf)
``a``      int64      the first parent's number; -1 for a leaf
``b``      int64      the second parent's number for a binary op; -1 otherwise
``const``  float64    the constant of ``POW_CONST`` (the exponent); 0.0 otherwise
=========  =========  ===================================================================

Every array is C-contiguous and has the same length ``n`` (the tape's length).
Kernels take the arrays, never objects, and nothing here holds state.

Each op's maths is its lowering in :mod:`backends.numba._lowering`: the backward
sweep calls its ``partials``.
"""

from __future__ import annotations

import numpy as np

from backends.numba._jit import jit
from backends.numba._lowering import partials
from spec.ops import OpCode

__all__ = ["LEAF", "backward", "compact", "renumber", "zero_grad"]

#: The op code of a leaf, as the plain int the kernels compare.
LEAF = int(OpCode.LEAF)

_ARRAYS = "float64[::1], float64[::1], int8[::1], int64[::1], int64[::1], float64[::1]"


# --- whole graphs ----------------------------------------------------------------------
@jit(f"void({_ARRAYS}, int64)")
def backward(data, grad, op, a, b, const, root):  # type: ignore[no-untyped-def]
    """Backpropagate from node ``root`` (spec.interface's semantics), in one descending sweep.

    ``grad[root]`` is set to 1. A node of the graph is reached first from its
    highest-numbered consumer, before any contribution arrives, so that is when
    an interior node's grad is reset to 0; leaves keep theirs and accumulate.
    Each node then pushes ``partial * grad`` to its parents in argument order.
    The sweep stops once no reached node is left below, so it costs the span of
    the graph, not the tape. Arrays: see the module docstring (``len >= root + 1``).
    """
    reached = np.zeros(root + 1, np.bool_)
    reached[root] = True
    grad[root] = 1.0
    pending = 1
    for i in range(root, -1, -1):
        if not reached[i]:
            continue
        pending -= 1
        code = op[i]
        if code != LEAF:
            g = grad[i]
            j = a[i]
            k = b[i]
            y = data[k] if k >= 0 else 0.0
            dj, dk = partials(code, data[j], y, const[i], data[i])
            if not reached[j]:
                reached[j] = True
                pending += 1
                if op[j] != LEAF:
                    grad[j] = 0.0
            grad[j] += dj * g
            if k >= 0:
                if not reached[k]:
                    reached[k] = True
                    pending += 1
                    if op[k] != LEAF:
                        grad[k] = 0.0
                grad[k] += dk * g
        if pending == 0:
            break


@jit("void(float64[::1], int8[::1], int64[::1], int64[::1], int64)")
def zero_grad(grad, op, a, b, root):  # type: ignore[no-untyped-def]
    """Set ``grad`` to 0 on every node of ``root``'s graph, leaves and root included."""
    reached = np.zeros(root + 1, np.bool_)
    reached[root] = True
    pending = 1
    for i in range(root, -1, -1):
        if not reached[i]:
            continue
        pending -= 1
        grad[i] = 0.0
        if op[i] != LEAF:
            for j in (a[i], b[i]):
                if j >= 0 and not reached[j]:
                    reached[j] = True
                    pending += 1
        if pending == 0:
            break


# --- reclaiming dead nodes -------------------------------------------------------------
@jit("int64(int8[::1], int64[::1], int64[::1], int64[::1], int64[::1])")
def renumber(op, a, b, roots, new_index):  # type: ignore[no-untyped-def]
    """Number the nodes that ``roots`` reach, keeping their order; return how many there are.

    ``new_index`` (int64, length n) receives each kept node's new number and -1
    for the others. ``roots`` are node numbers (the nodes live handles point to).
    """
    n = op.shape[0]
    keep = np.zeros(n, np.bool_)
    for r in roots:
        keep[r] = True
    for i in range(n - 1, -1, -1):
        if keep[i] and op[i] != LEAF:
            keep[a[i]] = True
            if b[i] >= 0:
                keep[b[i]] = True
    kept = 0
    for i in range(n):
        if keep[i]:
            new_index[i] = kept
            kept += 1
        else:
            new_index[i] = -1
    return kept


@jit(f"void({_ARRAYS}, int64[::1])")
def compact(data, grad, op, a, b, const, new_index):  # type: ignore[no-untyped-def]
    """Move every kept node ``i`` to ``new_index[i]`` in place and renumber its parents.

    ``new_index`` comes from :func:`renumber`; kept nodes never move up
    (``new_index[i] <= i``), so one ascending pass is safe. ``grad`` may be shorter
    than the others (a node past its end has grad 0.0). The caller then truncates
    every array to the kept count.
    """
    n = op.shape[0]
    n_grad = grad.shape[0]
    for i in range(n):
        j = new_index[i]
        if j < 0:
            continue
        data[j] = data[i]
        if j < n_grad:
            grad[j] = grad[i] if i < n_grad else 0.0
        op[j] = op[i]
        const[j] = const[i]
        a[j] = new_index[a[i]] if a[i] >= 0 else -1
        b[j] = new_index[b[i]] if b[i] >= 0 else -1
