"""Pass: requires-grad. Which nodes backward must visit.

A node needs a gradient when a parameter lies below it and the loss above it; backward
skips the others (inputs, targets, constants, what is computed from them alone, and what
the loss never reads). Analysis only: it changes no node, so it cannot change a number.
It also counts each node's consumers (capped at 2), which fusion reads.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from backends.numba._jit import jit as _jit
from backends.numba._kernels import LEAF

__all__ = ["consumers_and_needs"]


@_jit("Tuple((uint8[::1], boolean[::1]))(int8[::1], int64[::1], int64[::1], boolean[::1], int64)")
def consumers_and_needs(
    op: NDArray[np.int8],
    a: NDArray[np.int64],
    b: NDArray[np.int64],
    is_parameter: NDArray[np.bool_],
    root: int,
) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """Per node of a traced graph: how many consumers (2 meaning two or more), and whether it needs
    a grad: a parameter lies below it and the loss above it (a node the loss does not use gets none)."""
    m = op.shape[0]
    count = np.zeros(m, np.uint8)
    needs = is_parameter.copy()
    for v in range(m):
        if op[v] == LEAF:
            continue
        count[a[v]] = min(count[a[v]] + 1, 2)
        needs[v] = needs[a[v]]
        if b[v] >= 0:
            count[b[v]] = min(count[b[v]] + 1, 2)
            needs[v] = needs[v] or needs[b[v]]
    used = np.zeros(m, np.bool_)
    used[root] = True
    for v in range(m - 1, -1, -1):
        if used[v] and op[v] != LEAF:
            used[a[v]] = True
            if b[v] >= 0:
                used[b[v]] = True
        needs[v] = needs[v] and used[v]
    return count, needs
