"""Laying a scheduled, fused graph out as a :class:`~._program.Program`: slots and terms.

Leaves first (parameters, inputs column by column, targets likewise, constants, then ONE),
then, from the next cache line on, the units in forward order: a fused node, or a lane unit (one fused node per sample,
see :mod:`._template`) in consecutive slots; each unit's terms in fold order. Changes where
values live, never what is computed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from backends.numba._jit import jit as _jit
from backends.numba._kernels import LEAF
from backends.numba._replay._program import (
    DISTINCT,
    GROUP_COLUMNS,
    HI,
    KIND,
    LANE,
    LINE,
    LO,
    MODE,
    NEEDS,
    SLOT,
    TERM,
    WIDTH,
    N,
    Program,
    Units,
    cache_aligned_zeros,
)
from spec.capture import CapturedGraph
from spec.errors import CaptureError

if TYPE_CHECKING:
    from backends.numba._replay._fusion import FusedGraph

__all__ = ["distinct_shared_pushes", "lay_out", "leaf_slots", "unit_terms"]


def leaf_slots(captured: CapturedGraph) -> tuple[np.ndarray, int]:
    """Every leaf's slot (-1 for interior nodes): parameters, inputs, target leaves (both
    column by column), constants; and the slot of ONE, the last leaf slot."""
    op = captured.graph.op
    P = len(captured.parameters)
    n, nin = captured.shape
    slot_of = np.full(len(op), -1, np.int64)
    used = captured.parameters[captured.parameters >= 0]
    slot_of[used] = np.flatnonzero(captured.parameters >= 0)
    placed = captured.inputs.T.reshape(-1)  # column by column
    slot_of[placed[placed >= 0]] = P + np.flatnonzero(placed >= 0)
    first_target = P + n * nin
    labels = captured.targets.reshape(n, -1).T.reshape(-1)
    slot_of[labels[labels >= 0]] = first_target + np.flatnonzero(labels >= 0)
    constants = np.flatnonzero((op == LEAF) & (slot_of < 0))
    first_constant = first_target + len(labels)
    slot_of[constants] = first_constant + np.arange(len(constants))
    return slot_of, first_constant + len(constants)


@_jit(
    "Tuple((uint32[:, ::1], int64[::1], int64[::1]))(int32[::1], int32[::1], int32[::1], int64[::1], "
    "int64[::1], int64[::1], int64[::1], int64[::1], int64[::1], int64[::1], int64[::1], boolean[::1], int64)"
)
def unit_terms(
    ta: NDArray[np.int32],
    tc: NDArray[np.int32],
    pusher: NDArray[np.int32],
    first: NDArray[np.int64],
    n_terms: NDArray[np.int64],
    representative: NDArray[np.int64],
    width: NDArray[np.int64],
    lane_first: NDArray[np.int64],
    lane_nodes: NDArray[np.int64],
    order: NDArray[np.int64],
    slots: NDArray[np.int64],
    is_lane: NDArray[np.bool_],
    one: int,
) -> tuple[NDArray[np.uint32], NDArray[np.int64], NDArray[np.int64]]:
    """The terms of the units in ``order`` as pairs of slots (``one`` for NO_NODE; a lane unit's
    reads of sample 0's per-sample places, ``is_lane``, carry LANE), each term's pushers (one
    per sample) and where they start."""
    total = 0
    pushes = 0
    for u in order:
        total += n_terms[representative[u]]
        pushes += n_terms[representative[u]] * width[u]
    terms = np.empty((total, 2), np.uint32)
    pusher_at = np.empty(total, np.int64)
    term_pusher = np.empty(pushes, np.int64)
    k = 0
    p = 0
    for u in order:
        f0 = representative[u]
        lane = width[u] > 1
        for j in range(n_terms[f0]):
            t = first[f0] + j
            for side, x in ((0, ta[t]), (1, tc[t])):
                terms[k, side] = one if x < 0 else slots[x] | (LANE if lane and is_lane[x] else 0)
            pusher_at[k] = p
            for s in range(width[u]):
                term_pusher[p] = pusher[first[lane_nodes[lane_first[u] + s]] + j]
                p += 1
            k += 1
    return terms, term_pusher, pusher_at


@_jit("int64[::1](int64[:, ::1], uint32[:, ::1], boolean[::1])")
def distinct_shared_pushes(
    groups: NDArray[np.int64], terms: NDArray[np.uint32], needs: NDArray[np.bool_]
) -> NDArray[np.int64]:
    """Per group, 1 if it is a lane group whose every push into a shared slot (a place without
    LANE that needs a grad) is the only one into that slot in the group, else 0."""
    distinct = np.zeros(groups.shape[0], np.int64)
    pushed = np.zeros(needs.shape[0], np.bool_)
    for g in range(groups.shape[0]):
        if groups[g, WIDTH] == 1:
            continue
        first, last = (
            groups[g, TERM],
            groups[g, TERM] + (groups[g, HI] - groups[g, LO]) // groups[g, WIDTH] * groups[g, N],
        )
        distinct[g] = 1
        for k in range(first, last):
            for side in range(2):
                x = terms[k, side]
                if not x & LANE and needs[x]:
                    if pushed[x]:
                        distinct[g] = 0
                    pushed[x] = True
        for k in range(first, last):  # clear for the next group
            for side in range(2):
                pushed[terms[k, side] & SLOT] = False
    return distinct


def lay_out(
    captured: CapturedGraph,
    *,
    slot_of: np.ndarray,
    one: int,
    needs: np.ndarray,
    fused: FusedGraph,
    mode: np.ndarray,
    units: Units,
    order: np.ndarray,
    starts: np.ndarray,
) -> tuple[Program, np.ndarray, np.ndarray]:
    """The program, and each term's pushers with where they start (for the order check).

    ``fused``: the fusion pass's graph; ``order`` and ``starts``: the units' schedule.
    """
    tops, kind, n_terms, first = fused.tops, fused.kind, fused.n_terms, fused.first
    ta, tc, pusher, fconst = fused.ta, fused.tc, fused.pusher, fused.const
    g = captured.graph
    P = len(captured.parameters)
    n, nin = captured.shape
    n_leaves = one + 1
    representative, width, lane_first, lane_nodes = units
    slots = slot_of  # the leaves' slots; the fused nodes' are filled in below, in place
    slots[slots >= n_leaves] = -1  # a previous attempt's
    ordered_width = width[order]
    unit_slot = np.empty(len(width), np.int64)
    first_node = -(-n_leaves // LINE) * LINE  # unused slots up to a cache line's start
    unit_slot[order] = first_node + np.concatenate(([0], np.cumsum(ordered_width)[:-1]))
    n_slots = first_node + int(ordered_width.sum())
    if n_slots >= 2**31:
        raise CaptureError(f"the graph has {n_slots} nodes after fusion; replay handles fewer than 2**31")
    lane_unit = np.repeat(np.arange(len(width)), width)
    slots[tops[lane_nodes]] = unit_slot[lane_unit] + np.arange(len(lane_nodes)) - lane_first[lane_unit]
    leaves = np.flatnonzero(g.op == LEAF)
    is_lane = np.zeros(len(slots), np.bool_)  # sample 0's nodes of lane units, inputs and targets
    lanes = np.flatnonzero(width > 1)
    if len(lanes):
        is_lane[tops[lane_nodes[lane_first[lanes]]]] = True
        for leaf in (captured.inputs[0], captured.targets.reshape(n, -1)[0]):
            is_lane[leaf[leaf >= 0]] = True
    terms, term_pusher, pusher_at = unit_terms(
        ta, tc, pusher, first, n_terms, *units, order, slots, is_lane, one
    )
    counts = n_terms[representative[order]]
    first_term = np.concatenate(([0], np.cumsum(counts)[:-1]))
    group_units = order[starts]
    groups = np.empty((len(starts), GROUP_COLUMNS), np.int64)
    groups[:, KIND] = kind[representative[group_units]]
    groups[:, LO] = unit_slot[group_units]
    groups[:, HI] = np.append(groups[1:, LO], n_slots)
    groups[:, N] = counts[starts]
    groups[:, TERM] = first_term[starts]
    groups[:, MODE] = mode[representative[group_units]]
    groups[:, NEEDS] = needs[tops[representative[group_units]]]
    groups[:, WIDTH] = width[group_units]
    slot_needs = np.zeros(n_slots, np.bool_)
    slot_needs[slots[leaves]] = needs[leaves]
    slot_needs[slots[tops]] = needs[tops]
    groups[:, DISTINCT] = distinct_shared_pushes(groups, terms, slot_needs)
    val = cache_aligned_zeros(n_slots)
    val[slots[leaves]] = g.data[leaves]
    val[one] = 1.0
    const = np.zeros(n_slots, np.float64)
    const[slots[tops]] = fconst
    first_constant = P + n * nin + captured.targets.size
    meta = np.array([P, P, P + n * nin, slots[g.root], n, first_constant], np.int64)
    program = Program(
        val=val,
        grad=cache_aligned_zeros(n_slots),
        groups=groups,
        terms=terms,
        const=const,
        needs=slot_needs,
        meta=meta,
        scratch=np.zeros((3, max(P, 1)), np.float64),
    )
    return program, term_pusher, pusher_at
