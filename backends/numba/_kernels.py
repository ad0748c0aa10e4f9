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

The op codes are literals in this file, not imports: Numba freezes globals into
the cached machine code and its cache only notices edits to *this* file, so a
renumbering in :mod:`spec.ops` must fail the import-time check at the bottom
rather than run stale code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numba
import numpy as np

from spec.ops import OPS, OpCode

__all__ = [
    "LOWERED_OPS",
    "backward",
    "check_lowerings",
    "compact",
    "forward",
    "partials",
    "renumber",
    "zero_grad",
]

# --- op codes (checked against spec.ops.OpCode below) ------------------------------
LEAF = 0
ADD = 1
MUL = 2
POW_CONST = 3
POW = 4
EXP = 5
LOG = 6
TANH = 7
RELU = 8
SIGMOID = 9

#: The op codes that :func:`forward` and :func:`partials` dispatch on.
LOWERED_OPS: dict[str, int] = {
    "ADD": ADD,
    "MUL": MUL,
    "POW_CONST": POW_CONST,
    "POW": POW,
    "EXP": EXP,
    "LOG": LOG,
    "TANH": TANH,
    "RELU": RELU,
    "SIGMOID": SIGMOID,
}

_ARRAYS = "float64[::1], float64[::1], int8[::1], int64[::1], int64[::1], float64[::1]"


def _jit(signature: str):  # type: ignore[no-untyped-def]
    """Compile eagerly for ``signature``: cached on disk, IEEE float semantics, GIL released.

    ``error_model="numpy"``: a division by zero gives inf/nan instead of raising,
    as the spec asks of backward passes (gradients are plain IEEE floats).
    """
    return numba.njit(signature, cache=True, error_model="numpy", nogil=True)


# --- one op at a time ----------------------------------------------------------------
@_jit("float64(int64, float64, float64, float64)")
def forward(code, x, y, c):  # type: ignore[no-untyped-def]
    """The output of op ``code`` for inputs ``x`` (and ``y``), constant ``c``: spec.ops' forward rules."""
    if code == ADD:
        return x + y
    if code == MUL:
        return x * y
    if code == POW_CONST:
        return x**c
    if code == POW:
        return x**y
    if code == EXP:
        return math.exp(x)
    if code == LOG:
        return math.log(x)
    if code == TANH:
        return math.tanh(x)
    if code == RELU:
        return 0.0 if x < 0.0 else x
    if code == SIGMOID:
        # Two branches so exp never overflows (spec.ops._sigmoid).
        if x >= 0.0:
            return 1.0 / (1.0 + math.exp(-x))
        e = math.exp(x)
        return e / (1.0 + e)
    raise ValueError("forward: unknown op code (not in LOWERED_OPS)")


@_jit("UniTuple(float64, 2)(int64, float64, float64, float64, float64)")
def partials(code, x, y, c, out):  # type: ignore[no-untyped-def]
    """``(d out/d x, d out/d y)`` of op ``code`` (0.0 for a missing ``y``): spec.ops' partials."""
    if code == ADD:
        return 1.0, 1.0
    if code == MUL:
        return y, x
    if code == POW_CONST:
        return (0.0 if c == 0.0 else c * x ** (c - 1.0)), 0.0
    if code == POW:
        return y * x ** (y - 1.0), out * math.log(x)
    if code == EXP:
        return out, 0.0
    if code == LOG:
        return 1.0 / x, 0.0
    if code == TANH:
        # sech(x)**2 from exp(-2|x|): 1 - out**2 would cancel once tanh(x) rounds to 1.
        e = math.exp(-2.0 * abs(x))
        return 4.0 * e / ((1.0 + e) * (1.0 + e)), 0.0
    if code == RELU:
        return (1.0 if out > 0.0 else 0.0), 0.0
    if code == SIGMOID:
        # e / (1 + e)**2 with e = exp(-|x|): out * (1 - out) would cancel near out = 1.
        e = math.exp(-abs(x))
        return e / ((1.0 + e) * (1.0 + e)), 0.0
    raise ValueError("partials: unknown op code (not in LOWERED_OPS)")


# --- whole graphs ----------------------------------------------------------------------
@_jit(f"void({_ARRAYS}, int64)")
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


@_jit("void(float64[::1], int8[::1], int64[::1], int64[::1], int64)")
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
@_jit("int64(int8[::1], int64[::1], int64[::1], int64[::1], int64[::1])")
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


@_jit(f"void({_ARRAYS}, int64[::1])")
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


# --- the kernels against the op table ----------------------------------------------------
def check_lowerings(ops: Mapping[Any, Any] = OPS) -> None:
    """Raise, naming the op, unless these kernels lower every op of ``ops`` with its code."""
    if LEAF != OpCode.LEAF:
        raise ImportError("backends.numba._kernels: LEAF is not spec.ops.OpCode.LEAF")
    missing = [ops[code].name for code in ops if code.name not in LOWERED_OPS]
    if missing:
        raise NotImplementedError(f"the numba kernels do not lower op(s): {', '.join(missing)}")
    stale = [name for name, code in LOWERED_OPS.items() if OpCode.__members__.get(name) != code]
    if stale:
        raise ImportError(f"backends.numba._kernels: op codes out of date with spec.ops.OpCode: {stale}")


check_lowerings()
