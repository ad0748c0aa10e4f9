"""Laying a scheduled, fused graph out as a :class:`~._program.Program`: slots and terms.

Leaves first (parameters, inputs row by row, targets, constants, then ONE), then the fused
nodes in forward order; each node's terms in fold order. Changes where values live, never
what is computed.
"""

from __future__ import annotations

import numpy as np

from backends.numba._jit import jit as _jit
from backends.numba._kernels import LEAF
from backends.numba._replay._program import (
    GROUP_COLUMNS,
    HI,
    KIND,
    LO,
    MODE,
    NEEDS,
    TERM,
    N,
    Program,
)
from spec.capture import CapturedGraph
from spec.errors import CaptureError

__all__ = ["lay_out", "leaf_slots", "term_slots"]


def leaf_slots(captured: CapturedGraph) -> tuple[np.ndarray, int]:
    """Every leaf's slot (-1 for interior nodes): parameters, inputs, target leaves, constants;
    and the slot of ONE, the last leaf slot."""
    op = captured.graph.op
    P = len(captured.parameters)
    n, nin = captured.shape
    slot_of = np.full(len(op), -1, np.int64)
    used = captured.parameters[captured.parameters >= 0]
    slot_of[used] = np.flatnonzero(captured.parameters >= 0)
    placed = captured.inputs.reshape(-1)
    slot_of[placed[placed >= 0]] = P + np.flatnonzero(placed >= 0)
    first_target = P + n * nin
    labels = captured.targets
    slot_of[labels[labels >= 0]] = first_target + np.flatnonzero(labels >= 0)
    constants = np.flatnonzero((op == LEAF) & (slot_of < 0))
    first_constant = first_target + len(labels)
    slot_of[constants] = first_constant + np.arange(len(constants))
    return slot_of, first_constant + len(constants)


@_jit(
    "Tuple((uint32[:, ::1], int64[::1]))(int64[::1], int64[::1], int64[::1], int64[::1], int64[::1], "
    "int64[::1], int64[::1], int64)"
)
def term_slots(ta, tc, pusher, first, n_terms, order, slots, one):  # type: ignore[no-untyped-def]
    """The terms of the fused nodes in ``order``, as pairs of slots (``one`` for NO_NODE), and their pushers."""
    total = 0
    for f in order:
        total += n_terms[f]
    terms = np.empty((total, 2), np.uint32)
    term_pusher = np.empty(total, np.int64)
    k = 0
    for f in order:
        for t in range(first[f], first[f] + n_terms[f]):
            terms[k, 0] = slots[ta[t]] if ta[t] >= 0 else one
            terms[k, 1] = slots[tc[t]] if tc[t] >= 0 else one
            term_pusher[k] = pusher[t]
            k += 1
    return terms, term_pusher


def lay_out(
    captured: CapturedGraph,
    slot_of: np.ndarray,
    one: int,
    needs: np.ndarray,
    tops: np.ndarray,
    kind: np.ndarray,
    n_terms: np.ndarray,
    first: np.ndarray,
    ta: np.ndarray,
    tc: np.ndarray,
    pusher: np.ndarray,
    fconst: np.ndarray,
    mode: np.ndarray,
    order: np.ndarray,
    starts: np.ndarray,
) -> tuple[Program, np.ndarray]:
    """The program, and each term's pusher (for the order check)."""
    n_leaves = one + 1
    g = captured.graph
    P = len(captured.parameters)
    n, nin = captured.shape
    nf = len(tops)
    slots = slot_of  # the leaves' slots; the fused nodes' are filled in below, in place
    slots[slots >= n_leaves] = -1  # a previous attempt's
    slots[tops[order]] = n_leaves + np.arange(nf)
    n_slots = n_leaves + nf
    if n_slots >= 2**31:
        raise CaptureError(f"the graph has {n_slots} nodes after fusion; replay handles fewer than 2**31")
    # Terms in forward order: node by node, each node's terms in fold order.
    counts = n_terms[order]
    new_first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    terms, term_pusher = term_slots(ta, tc, pusher, first, n_terms, order, slots, one)
    ends = np.append(starts[1:], nf)
    groups = np.empty((len(starts), GROUP_COLUMNS), np.int64)
    groups[:, KIND] = kind[order][starts]
    groups[:, LO] = n_leaves + starts
    groups[:, HI] = n_leaves + ends
    groups[:, N] = counts[starts]
    groups[:, TERM] = new_first[starts]
    groups[:, MODE] = mode[order][starts]
    groups[:, NEEDS] = needs[tops[order][starts]]
    val = np.zeros(n_slots, np.float64)
    leaves = np.flatnonzero(g.op == LEAF)
    val[slots[leaves]] = g.data[leaves]
    val[one] = 1.0
    const = np.zeros(n_slots, np.float64)
    const[n_leaves:] = fconst[order]
    slot_needs = np.zeros(n_slots, np.bool_)
    slot_needs[slots[leaves]] = needs[leaves]
    slot_needs[n_leaves:] = needs[tops[order]]
    meta = np.array([P, P, P + n * nin, slots[g.root]], np.int64)
    program = Program(
        val=val,
        grad=np.zeros(n_slots, np.float64),
        groups=groups,
        terms=terms,
        const=const,
        needs=slot_needs,
        meta=meta,
        scratch=np.zeros((3, max(P, 1)), np.float64),
    )
    return program, term_pusher
