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
from numpy.typing import NDArray

from backends.numba._jit import jit
from backends.numba._lowering import LOWERINGS, fails, forward, partials
from spec.ops import OpCode

__all__ = ["LEAF", "LINEAR", "append_layer", "append_layers", "backward", "compact", "renumber", "zero_grad"]

#: The op code of a leaf, as the plain int the kernels compare.
LEAF = int(OpCode.LEAF)

# The layer kernel calls these two lowerings directly: a dispatch per node costs it several times over.
MUL, mul_forward, _, mul_fails = LOWERINGS[OpCode.MUL]
ADD, add_forward, _, add_fails = LOWERINGS[OpCode.ADD]
#: The activation code of a neuron without one (:func:`append_layer`).
LINEAR = -1

_ARRAYS = "float64[::1], float64[::1], int8[::1], int64[::1], int64[::1], float64[::1]"
_NODES = "float64[::1], int8[::1], int64[::1], int64[::1], float64[::1]"  # _ARRAYS but grad


# --- building ---------------------------------------------------------------------------
@jit(f"int64({_NODES}, int64, int64, int64, int64, float64)")
def _write(
    data: NDArray[np.float64],
    op: NDArray[np.int8],
    a: NDArray[np.int64],
    b: NDArray[np.int64],
    const: NDArray[np.float64],
    n: int,
    code: int,
    x: int,
    y: int,
    out: float,
) -> int:
    """Write node ``n``: ``code(x[, y])`` with value ``out`` (constant 0); return ``n + 1``."""
    data[n] = out
    op[n] = code
    a[n] = x
    b[n] = y
    const[n] = 0.0
    return n + 1


@jit(f"int64({_NODES}, int64, int64[:, ::1], int64[::1], int64[::1], int64[::1], float64[::1], int64[::1])")
def append_layer(
    data: NDArray[np.float64],
    op: NDArray[np.int8],
    a: NDArray[np.int64],
    b: NDArray[np.int64],
    const: NDArray[np.float64],
    n: int,
    weights: NDArray[np.int64],
    biases: NDArray[np.int64],
    activations: NDArray[np.int64],
    inputs: NDArray[np.int64],
    numbers: NDArray[np.float64],
    outputs: NDArray[np.int64],
) -> int:
    """Write from node ``n`` on the nodes of one layer applied to one input row.

    The nodes are spec.nn's generic ``Layer.outputs``, in its creation order: for neuron
    ``j``, for each input ``i``, a leaf if the input is a number, ``MUL(w[j, i], x[i])``,
    ``ADD(sum so far, that product)`` (the sum starts at the bias), then the activation
    node unless ``activations[j]`` is :data:`LINEAR`. ``weights`` (nout x nin), ``biases``
    and ``inputs`` are node numbers; ``inputs[i] < 0`` marks a number, ``numbers[i]``.
    ``outputs[j]`` receives neuron ``j``'s output node. The arrays are long enough.

    Returns the next free node number, or ``~k`` where ``k`` is the first node whose op
    fails (the generic code would raise there): nodes from ``k`` on are left unwritten.
    """
    nout, nin = weights.shape
    for j in range(nout):
        total = biases[j]
        for i in range(nin):
            x = inputs[i]
            if x < 0:
                data[n] = numbers[i]
                op[n] = LEAF
                a[n] = -1
                b[n] = -1
                const[n] = 0.0
                x = n
                n += 1
            w = weights[j, i]
            product = mul_forward(data[w], data[x], 0.0)
            if mul_fails(data[w], data[x], 0.0, product):
                return ~n
            n = _write(data, op, a, b, const, n, MUL, w, x, product)
            out = add_forward(data[total], product, 0.0)
            if add_fails(data[total], product, 0.0, out):
                return ~n
            n = _write(data, op, a, b, const, n, ADD, total, n - 1, out)
            total = n - 1
        code = activations[j]
        if code != LINEAR:
            out = forward(code, data[total], 0.0, 0.0)
            if fails(code, data[total], 0.0, 0.0, out):
                return ~n
            n = _write(data, op, a, b, const, n, code, total, -1, out)
            total = n - 1
        outputs[j] = total
    return n


@jit(
    f"int64({_NODES}, int64, int64[:, ::1], int64[::1], int64[::1], int64[::1], int64[::1], float64[::1], int64[::1])"
)
def append_layers(
    data: NDArray[np.float64],
    op: NDArray[np.int8],
    a: NDArray[np.int64],
    b: NDArray[np.int64],
    const: NDArray[np.float64],
    n: int,
    shapes: NDArray[np.int64],
    weights: NDArray[np.int64],
    biases: NDArray[np.int64],
    activations: NDArray[np.int64],
    inputs: NDArray[np.int64],
    numbers: NDArray[np.float64],
    outputs: NDArray[np.int64],
) -> int:
    """:func:`append_layer` for each layer in turn, each applied to the previous one's outputs.

    Layer ``l`` has ``shapes[l] = (nout, nin)``; its weights (row-major), biases and
    activations follow the previous layer's in ``weights``, ``biases`` and ``activations``.
    The first layer takes ``inputs`` and ``numbers``; ``outputs`` receives the last
    layer's outputs. Returns what :func:`append_layer` returns, for the whole chain.
    """
    w0 = 0
    b0 = 0
    x = inputs
    for layer in range(shapes.shape[0]):
        nout, nin = shapes[layer, 0], shapes[layer, 1]
        y = outputs if layer == shapes.shape[0] - 1 else np.empty(nout, np.int64)
        n = append_layer(
            data,
            op,
            a,
            b,
            const,
            n,
            weights[w0 : w0 + nout * nin].reshape((nout, nin)),
            biases[b0 : b0 + nout],
            activations[b0 : b0 + nout],
            x,
            numbers,
            y,
        )
        if n < 0:
            return n
        w0 += nout * nin
        b0 += nout
        x = y
    return n


# --- whole graphs ----------------------------------------------------------------------
@jit(f"void({_ARRAYS}, int64)")
def backward(
    data: NDArray[np.float64],
    grad: NDArray[np.float64],
    op: NDArray[np.int8],
    a: NDArray[np.int64],
    b: NDArray[np.int64],
    const: NDArray[np.float64],
    root: int,
) -> None:
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
def zero_grad(
    grad: NDArray[np.float64], op: NDArray[np.int8], a: NDArray[np.int64], b: NDArray[np.int64], root: int
) -> None:
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
def renumber(
    op: NDArray[np.int8],
    a: NDArray[np.int64],
    b: NDArray[np.int64],
    roots: NDArray[np.int64],
    new_index: NDArray[np.int64],
) -> int:
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
def compact(
    data: NDArray[np.float64],
    grad: NDArray[np.float64],
    op: NDArray[np.int8],
    a: NDArray[np.int64],
    b: NDArray[np.int64],
    const: NDArray[np.float64],
    new_index: NDArray[np.int64],
) -> None:
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
