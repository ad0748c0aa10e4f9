"""Pass: template. The per-sample structure the scalar graph hides, found from the graph alone.

A captured step is usually n copies of one per-sample subgraph (the model and the loss
term of each sample: same ops, same parameters, same constants, only the inputs and the
targets differ), a shared part that reads no sample (a regulariser) and reductions over
samples (the loss's sum). This pass finds that structure without knowing what built it:

- a node's *sample* is the one sample whose inputs or targets lie below it; SHARED when
  none does, MULTI when several do (:func:`node_samples`). A SHARED node reads only SHARED
  nodes and a node of sample ``s`` only SHARED nodes and nodes of ``s``, so the three parts
  are layered: shared, then per-sample, then reductions. A SHARED fused node that only one
  sample reads (``-gamma`` made inside the model's call) is that sample's
  (:func:`claim_private_nodes`): each sample's copy keeps its own grad, as in the eager loop;
- the per-sample fused nodes of each sample, in creation order, must match sample 0's one
  for one (:func:`match_samples`): the same kind, terms and constant; term by term the same
  shared node (or a constant of the same float64 bits), the same input or target column of their own sample, or their own sample's
  node of the same rank; and the same need for a grad. Then the ``k``-th nodes of all
  samples form one *lane unit* of width n, which the kernels run as one loop over samples.

Analysis only: it says which fused nodes are copies of each other and changes no number.
Whether a lane unit's backward keeps the eager order of every sum is the order check's
question. Where the structure does not hold, every fused node stays a unit of its own.
Switch: ``template=False``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from backends.numba._jit import jit as _jit
from backends.numba._kernels import LEAF
from backends.numba._replay._program import Units
from spec.capture import CapturedGraph

if TYPE_CHECKING:
    from backends.numba._replay._fusion import FusedGraph

__all__ = ["MULTI", "SHARED", "claim_private_nodes", "lane_units", "match_samples", "node_samples"]

#: a node that reads no sample's inputs or targets
SHARED = -1
#: a node that reads several samples'
MULTI = -2


@_jit("void(int8[::1], int64[::1], int64[::1], int32[::1])")
def node_samples(
    op: NDArray[np.int8], a: NDArray[np.int64], b: NDArray[np.int64], sample: NDArray[np.int32]
) -> None:
    """Per traced node: the one sample below it, SHARED or MULTI, in place of ``sample``, which
    holds the leaves' on entry (int32: one column the graph's length costs half of int64's)."""
    m = op.shape[0]
    for v in range(m):
        if op[v] == LEAF:
            continue
        s = sample[a[v]]
        if b[v] >= 0:
            t = sample[b[v]]
            if s == SHARED:
                s = t
            elif t != SHARED and t != s:
                s = MULTI
        sample[v] = s


@_jit("void(int64[::1], int64[::1], int64[::1], int32[::1], int32[::1], int32[::1], int64)")
def claim_private_nodes(
    tops: NDArray[np.int64],
    n_terms: NDArray[np.int64],
    first: NDArray[np.int64],
    ta: NDArray[np.int32],
    tc: NDArray[np.int32],
    sample: NDArray[np.int32],
    m: int,
) -> None:
    """Give a SHARED fused node that only one sample's fused nodes read to that sample, in place.

    A model that computes ``-gamma`` inside its call makes one such node per sample: the
    eager loop keeps their grads apart and pushes each to ``gamma`` in turn, so they are
    copies of each other, not one node. ``sample`` is per traced node; ``m`` its length.
    """
    nf = tops.shape[0]
    fused_of = np.full(m, -1, np.int32)
    for f in range(nf):
        fused_of[tops[f]] = f
    readers = np.full(nf, SHARED, np.int64)  # the one sample reading each fused node, or MULTI
    for f in range(nf - 1, -1, -1):  # readers come after what they read: theirs are final
        s = sample[tops[f]]
        if s == SHARED and readers[f] >= 0:
            s = readers[f]
            sample[tops[f]] = s
        for k in range(first[f], first[f] + n_terms[f]):
            for x in (ta[k], tc[k]):
                if x < 0 or fused_of[x] < 0:
                    continue
                g = fused_of[x]
                if s == SHARED or s == MULTI or (readers[g] != SHARED and readers[g] != s):
                    readers[g] = MULTI
                else:
                    readers[g] = s


@_jit(
    "Tuple((int64[::1], int64))(int64[::1], int64[::1], int64[::1], int64[::1], int32[::1], int32[::1], "
    "float64[::1], int32[::1], int32[::1], boolean[::1], boolean[::1], int64[::1], int64)"
)
def match_samples(
    tops: NDArray[np.int64],
    kind: NDArray[np.int64],
    n_terms: NDArray[np.int64],
    first: NDArray[np.int64],
    ta: NDArray[np.int32],
    tc: NDArray[np.int32],
    fconst: NDArray[np.float64],
    sample: NDArray[np.int32],
    column: NDArray[np.int32],
    needs: NDArray[np.bool_],
    is_constant: NDArray[np.bool_],
    bits: NDArray[np.int64],
    n: int,
) -> tuple[NDArray[np.int64], int]:
    """Each fused node's rank among its sample's fused nodes (-1 for SHARED and MULTI ones), and
    the number of ranks; ``(…, 0)`` when some sample's nodes do not match sample 0's.

    ``sample``: :func:`node_samples`; ``column``: per traced node, the input or target column
    of a per-sample leaf (targets numbered after the inputs), else -1; ``is_constant``: per
    traced node, whether it is a constant leaf (``-yi`` makes a ``-1`` per sample), whose
    float64 bits are ``bits`` (the graph's data, viewed as int64).
    """
    nf = tops.shape[0]
    m = sample.shape[0]
    rank = np.full(nf, -1, np.int64)
    count = np.zeros(n, np.int64)
    rank_of_node = np.full(m, -1, np.int32)
    for f in range(nf):
        s = sample[tops[f]]
        if s >= 0:
            rank[f] = count[s]
            rank_of_node[tops[f]] = count[s]
            count[s] += 1
    T = count[0]
    for s in range(n):
        if count[s] != T:
            return rank, 0
    if T == 0 or n < 2:
        return rank, 0
    representative = np.empty(T, np.int64)
    for f in range(nf):
        if sample[tops[f]] == 0:
            representative[rank[f]] = f
    for f in range(nf):
        s = sample[tops[f]]
        if s <= 0:
            continue
        r = representative[rank[f]]
        if kind[f] != kind[r] or n_terms[f] != n_terms[r] or fconst[f] != fconst[r]:
            return rank, 0
        if needs[tops[f]] != needs[tops[r]]:
            return rank, 0
        for j in range(n_terms[f]):
            for x, y in ((ta[first[f] + j], ta[first[r] + j]), (tc[first[f] + j], tc[first[r] + j])):
                if x < 0 or y < 0:  # NO_NODE
                    if x != y:
                        return rank, 0
                elif sample[x] == SHARED or sample[y] == SHARED:
                    if x != y and not (is_constant[x] and is_constant[y] and bits[x] == bits[y]):
                        return rank, 0
                elif sample[x] != s or sample[y] != 0:
                    return rank, 0
                elif column[x] >= 0 or column[y] >= 0:
                    if column[x] != column[y]:
                        return rank, 0
                elif rank_of_node[x] != rank_of_node[y] or rank_of_node[x] < 0:
                    return rank, 0
    return rank, T


def lane_units(captured: CapturedGraph, fused: FusedGraph, needs: np.ndarray) -> Units | None:
    """The units of a fused graph with its per-sample nodes as lane units, in creation order
    (a lane unit where its first sample's node is); None where the samples do not match."""
    tops, kind, n_terms, first = fused.tops, fused.kind, fused.n_terms, fused.first
    ta, tc, fconst = fused.ta, fused.tc, fused.const
    graph = captured.graph
    n, nin = captured.shape
    sample = np.full(len(graph.op), SHARED, np.int32)
    column = np.full(len(graph.op), -1, np.int32)
    for leaves, offset in ((captured.inputs, 0), (captured.targets.reshape(n, -1), nin)):
        rows, columns = np.nonzero(leaves >= 0)
        sample[leaves[rows, columns]] = rows
        column[leaves[rows, columns]] = offset + columns
    is_constant = (graph.op == LEAF) & (sample == SHARED)
    is_constant[captured.parameters[captured.parameters >= 0]] = False
    node_samples(graph.op, graph.a, graph.b, sample)
    claim_private_nodes(tops, n_terms, first, ta, tc, sample, len(graph.op))
    bits = graph.data.view(np.int64)
    rank, T = match_samples(
        tops, kind, n_terms, first, ta, tc, fconst, sample, column, needs, is_constant, bits, n
    )
    if T == 0:
        return None
    per_sample = np.flatnonzero(rank >= 0)
    lanes = np.empty((T, n), np.int64)
    lanes[rank[per_sample], sample[tops[per_sample]]] = per_sample
    others = np.flatnonzero(rank < 0)
    segments = [*lanes, *others.reshape(-1, 1)]
    by_creation = np.argsort(np.concatenate((lanes.min(axis=1), others)), kind="stable")
    width = np.concatenate((np.full(T, n, np.int64), np.ones(len(others), np.int64)))[by_creation]
    lane_nodes = np.concatenate([segments[u] for u in by_creation])
    lane_first = np.concatenate(([0], np.cumsum(width)[:-1]))
    return Units(lane_nodes[lane_first], width, lane_first, lane_nodes)
