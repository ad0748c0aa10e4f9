"""Pass: fusion. Chains of additions become one n-ary node.

A chain ``((t0 + t1) + t2) + ...`` whose intermediate sums have no other consumer becomes
one fused node that folds its terms left to right, as the chain did; a term that is a
product used only there (``w * x``) is folded in as the product. A neuron's
``b + w0*x0 + w1*x1 + ...`` is one DOT node, a loss's ``sum(terms)`` one SUM node. Any
other node is a fused node of one term.

Bit-identity: forward performs the same multiplications and the same left-to-right
additions. The intermediate sums' gradients all equal the chain's (their partials are
1.0), so backward pushes ``partial * grad`` straight to the terms, as the eager loop's
chain of pushes would, term by term in reverse; each term keeps its *pusher* (the traced
node that pushes it in the eager loop) for the order check. Switch: ``fusion=False``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from backends.numba._jit import jit as _jit
from backends.numba._kernels import LEAF
from backends.numba._lowering import ADD, MUL
from backends.numba._replay._program import (
    BOTH_FACTORS,
    DOT,
    DOT_PLAIN,
    FACTORS_BY_NEEDS,
    FIRST_FACTOR,
    NO_NODE,
    SUM,
)

__all__ = ["FusedGraph", "absorbed_nodes", "fuse", "fused_graph", "product_modes"]


@_jit("boolean[::1](int8[::1], int64[::1], int64[::1], uint8[::1], int64)")
def absorbed_nodes(
    op: NDArray[np.int8], a: NDArray[np.int64], b: NDArray[np.int64], count: NDArray[np.uint8], root: int
) -> NDArray[np.bool_]:
    """Nodes folded into their consumer's chain: an ADD or MUL used once, by an ADD, as its
    first operand (a partial sum, or the first product), or a MUL as its second (a product term)."""
    m = op.shape[0]
    absorbed = np.zeros(m, np.bool_)
    for u in range(m):
        if op[u] != ADD:
            continue
        x, y = a[u], b[u]
        if (op[x] == ADD or op[x] == MUL) and count[x] == 1 and x != root:
            absorbed[x] = True
        if op[y] == MUL and count[y] == 1 and y != root:
            absorbed[y] = True
    return absorbed


class FusedGraph(NamedTuple):
    """What the fusion pass hands on (:func:`fused_graph`): per fused node its top node, kind,
    number of terms and first term; per term its two places (node numbers of the traced
    graph; NO_NODE for the 1.0 of a plain term) and the node that pushes through it; per
    fused node its constant (POW_CONST's exponent)."""

    tops: NDArray[np.int64]
    kind: NDArray[np.int64]
    n_terms: NDArray[np.int64]
    first: NDArray[np.int64]
    ta: NDArray[np.int32]
    tc: NDArray[np.int32]
    pusher: NDArray[np.int32]
    const: NDArray[np.float64]


def fused_graph(
    op: NDArray[np.int8],
    a: NDArray[np.int64],
    b: NDArray[np.int64],
    const: NDArray[np.float64],
    absorbed: NDArray[np.bool_],
) -> FusedGraph:
    """:func:`fuse`'s result, its fields by name."""
    return FusedGraph(*fuse(op, a, b, const, absorbed))


@_jit(
    "Tuple((int64[::1], int64[::1], int64[::1], int64[::1], int32[::1], int32[::1], int32[::1], float64[::1]))"
    "(int8[::1], int64[::1], int64[::1], float64[::1], boolean[::1])"
)
def fuse(
    op: NDArray[np.int8],
    a: NDArray[np.int64],
    b: NDArray[np.int64],
    const: NDArray[np.float64],
    absorbed: NDArray[np.bool_],
) -> tuple[
    NDArray[np.int64],
    NDArray[np.int64],
    NDArray[np.int64],
    NDArray[np.int64],
    NDArray[np.int32],
    NDArray[np.int32],
    NDArray[np.int32],
    NDArray[np.float64],
]:
    """The fused nodes, one per interior node not absorbed (its *top*), in creation order.

    Returns ``tops, kind, n_terms, first_term`` per fused node and ``ta, tc, pusher`` per term
    (node numbers of the traced graph; NO_NODE for the 1.0 of a plain term), plus ``const``
    per fused node. ``pusher`` is the node that pushes the term's gradient in the eager
    backward pass (the product's MUL, or the ADD that took the plain term).
    """
    m = op.shape[0]
    n_fused = 0
    for v in range(m):
        if op[v] != LEAF and not absorbed[v]:
            n_fused += 1
    tops = np.empty(n_fused, np.int64)
    kind = np.empty(n_fused, np.int64)
    n_terms = np.empty(n_fused, np.int64)
    first = np.empty(n_fused, np.int64)
    fconst = np.zeros(n_fused, np.float64)
    # An interior node contributes at most two terms (an unfused ADD), so 2 m bounds them. Node
    # numbers fit int32 (build_program refuses a larger graph); a term costs 12 bytes, not 24.
    ta = np.empty(2 * m, np.int32)
    tc = np.empty(2 * m, np.int32)
    pusher = np.empty(2 * m, np.int32)
    chain = np.empty(m, np.int64)
    f = 0
    t = 0
    for v in range(m):
        code = op[v]
        if code == LEAF or absorbed[v]:
            continue
        tops[f] = v
        first[f] = t
        if code == ADD:
            depth = 0
            u = v
            while True:
                chain[depth] = u
                depth += 1
                x = a[u]
                if absorbed[x] and op[x] == ADD:
                    u = x
                else:
                    break
            lowest = chain[depth - 1]
            x = a[lowest]
            plain_terms = 0
            if absorbed[x]:  # a product
                ta[t], tc[t], pusher[t] = a[x], b[x], x
                first_plain = False
            else:
                ta[t], tc[t], pusher[t] = x, NO_NODE, lowest
                first_plain = True
                plain_terms += 1
            t += 1
            for level in range(depth - 1, -1, -1):
                w = chain[level]
                y = b[w]
                if absorbed[y]:
                    ta[t], tc[t], pusher[t] = a[y], b[y], y
                else:
                    ta[t], tc[t], pusher[t] = y, NO_NODE, w
                    plain_terms += 1
                t += 1
            n_terms[f] = depth + 1
            if plain_terms == depth + 1:
                kind[f] = SUM
            elif first_plain:
                kind[f] = DOT_PLAIN
            else:
                kind[f] = DOT
        else:
            ta[t], pusher[t] = a[v], v
            tc[t] = b[v] if b[v] >= 0 else NO_NODE
            t += 1
            n_terms[f] = 1
            kind[f] = DOT if code == MUL else code
            fconst[f] = const[v]
        f += 1
    return tops, kind, n_terms, first, ta[:t], tc[:t], pusher[:t], fconst


@_jit("int64[::1](int64[::1], int64[::1], int64[::1], int32[::1], int32[::1], boolean[::1])")
def product_modes(
    kind: NDArray[np.int64],
    n_terms: NDArray[np.int64],
    first: NDArray[np.int64],
    ta: NDArray[np.int32],
    tc: NDArray[np.int32],
    needs: NDArray[np.bool_],
) -> NDArray[np.int64]:
    """Per fused node, which factors of its products need a grad (the MODEs of ``_program``)."""
    nf = kind.shape[0]
    mode = np.full(nf, FACTORS_BY_NEEDS, np.int64)
    for f in range(nf):
        if kind[f] != DOT and kind[f] != DOT_PLAIN:
            continue
        start = first[f] + (1 if kind[f] == DOT_PLAIN else 0)
        a_all = True
        c_all = True
        c_none = True
        for k in range(start, first[f] + n_terms[f]):
            a_all = a_all and needs[ta[k]]
            c_needs = tc[k] >= 0 and needs[tc[k]]
            c_all = c_all and c_needs
            c_none = c_none and not c_needs
        if a_all and c_none:
            mode[f] = FIRST_FACTOR
        elif a_all and c_all:
            mode[f] = BOTH_FACTORS
    return mode
