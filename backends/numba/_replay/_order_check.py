"""Pass: the order check. A schedule is used only if backward adds in the eager loop's order.

The eager loop adds the contributions to a node's grad in reverse creation order of their
consumers. :func:`backward_order_is_eager` replays the pushes of the backward kernel over
a laid-out program and checks, for every slot that needs a grad, that its contributions
arrive in that order and before it pushes its own. Analysis only; the pipeline falls back
to a simpler schedule when it fails (creation order, then no fusion, which is the eager
loop itself and always passes).
"""

from __future__ import annotations

import numpy as np

from backends.numba._jit import jit as _jit
from backends.numba._replay._program import DOT_PLAIN, HI, KIND, LO, NEEDS, TERM, N

__all__ = ["backward_order_is_eager"]


@_jit("boolean(int64[:, ::1], uint32[:, ::1], int64[::1], boolean[::1], int64)")
def backward_order_is_eager(groups, terms, pusher, needs, root):  # type: ignore[no-untyped-def]
    """Replay :func:`backward`'s pushes and check them against the eager loop's order.

    ``pusher[k]`` is the traced node that pushes term ``k`` in the eager pass. True when
    every slot that needs a grad receives its contributions in non-increasing pusher order
    (reverse creation order) and only before it pushes its own, and forward reads only
    slots written before.
    """
    n_slots = needs.shape[0]
    last = np.full(n_slots, np.iinfo(np.int64).max, np.int64)
    done = np.zeros(n_slots, np.bool_)
    for g in range(groups.shape[0]):
        lo, hi, n, t = groups[g, LO], groups[g, HI], groups[g, N], groups[g, TERM]
        for v in range(lo, hi):
            for k in range(t, t + n):
                if terms[k, 0] >= v or terms[k, 1] >= v:
                    return False
            t += n
    for g in range(groups.shape[0] - 1, -1, -1):
        if groups[g, NEEDS] == 0:
            continue
        kind, lo, hi, n, t0 = groups[g, KIND], groups[g, LO], groups[g, HI], groups[g, N], groups[g, TERM]
        plain_base = kind == DOT_PLAIN
        for v in range(hi - 1, lo - 1, -1):
            done[v] = True
            t = t0 + (v - lo) * n
            stop = t + 1 if plain_base else t
            for k in range(t + n - 1, stop - 1, -1):
                for side in range(2):  # a missing second factor or operand is ONE: it needs no grad
                    x = terms[k, side]
                    if needs[x]:
                        if done[x] or pusher[k] > last[x]:
                            return False
                        last[x] = pusher[k]
            if plain_base:
                x = terms[t, 0]
                if needs[x]:
                    if done[x] or pusher[t] > last[x]:
                        return False
                    last[x] = pusher[t]
    return root >= 0
