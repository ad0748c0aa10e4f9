"""Pass: schedule. The order in which forward runs the fused nodes, in branch-free groups.

Nodes are grouped by height (the longest path to the loss), then by kind, term count,
product mode and needs, so each group is one loop with no branch per node. Forward runs
the groups deepest first, backward in the reverse order; each group's nodes in creation
order, reversed for backward.

Bit-identity: a node still computes exactly its own terms, so forward is unchanged; but the
order in which a node's gradient contributions arrive may differ from the eager loop's,
so every schedule goes through the order check before it is used. Switched off
(``schedule=False``), it keeps creation order.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from backends.numba._jit import jit as _jit

__all__ = ["heights", "schedule"]


@_jit("int64[::1](int64[::1], int64[::1], int64[::1], int32[::1], int32[::1], int64)")
def heights(
    tops: NDArray[np.int64],
    n_terms: NDArray[np.int64],
    first: NDArray[np.int64],
    ta: NDArray[np.int32],
    tc: NDArray[np.int32],
    m: int,
) -> NDArray[np.int64]:
    """Per fused node, the longest path to the loss (the last fused node) in fused nodes."""
    nf = tops.shape[0]
    fused_of = np.full(m, -1, np.int32)
    for f in range(nf):
        fused_of[tops[f]] = f
    height = np.zeros(nf, np.int64)
    for f in range(nf - 1, -1, -1):
        h = height[f] + 1
        for k in range(first[f], first[f] + n_terms[f]):
            for x in (ta[k], tc[k]):
                if x >= 0:
                    g = fused_of[x]
                    if g >= 0 and height[g] < h:
                        height[g] = h
    return height


def schedule(
    kind: np.ndarray,
    n_terms: np.ndarray,
    mode: np.ndarray,
    needs: np.ndarray,
    height: np.ndarray | None,
    width: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Forward order of the fused nodes, and where each group starts in it.

    With ``height``: deepest first, then by width (lane units apart), kind, term count, mode,
    needs; creation order within a group. Without: creation order, groups being runs of
    equal keys.
    """
    nf = len(kind)
    creation = np.arange(nf)
    width = np.ones(nf, np.int64) if width is None else width
    if height is None:
        order = creation
        keys = [width, kind, n_terms, mode, needs]
    else:
        order = np.lexsort((creation, needs, mode, n_terms, kind, width, -height))
        keys = [height, width, kind, n_terms, mode, needs]
    change = np.zeros(nf, np.bool_)
    change[0] = True
    for key in keys:
        ordered = key[order]
        change[1:] |= ordered[1:] != ordered[:-1]
    return order, np.flatnonzero(change)
