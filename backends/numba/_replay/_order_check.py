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
from numpy.typing import NDArray

from backends.numba._jit import jit as _jit
from backends.numba._replay._kernels import group_row, segment_start
from backends.numba._replay._program import (
    DOT,
    DOT_PLAIN,
    HI,
    LANE,
    LO,
    NEEDS,
    SLOT,
    SUM,
    TERM,
    WIDTH,
    N,
)

__all__ = ["backward_order_is_eager"]


@_jit("boolean(int64, int64, int64[::1], boolean[::1])")
def _in_order(slot: int, pusher: int, last: NDArray[np.int64], done: NDArray[np.bool_]) -> bool:
    """Record that ``slot`` receives ``pusher``'s push: False if it comes too late."""
    if done[slot] or pusher > last[slot]:
        return False
    last[slot] = pusher
    return True


@_jit(
    "boolean(uint32[:, ::1], int64[::1], int64[::1], boolean[::1], int64, int64, int64, int64, int64, int64, "
    "boolean, int64[::1], boolean[::1])"
)
def _lanes_in_order(
    terms: NDArray[np.uint32],
    pusher: NDArray[np.int64],
    pusher_at: NDArray[np.int64],
    needs: NDArray[np.bool_],
    kind: int,
    lo: int,
    hi: int,
    n: int,
    t0: int,
    width: int,
    shared: bool,
    last: NDArray[np.int64],
    done: NDArray[np.bool_],
) -> bool:
    """The order check of one group of lane units, pushing as ``_kernels.lanes_backward_per_sample``
    does (``shared`` False) or as ``_kernels.lanes_backward_shared`` does (True)."""
    t = t0 + (hi - lo) // width * n
    for out in range(hi - width, lo - 1, -width):
        t -= n
        if not shared:  # the per-sample pass comes first: from then on the unit's slots push
            for s in range(width):
                done[out + s] = True
        if kind == DOT_PLAIN or kind == DOT or kind == SUM:
            for k in range(t + n - 1, t - 1, -1):
                for side in range(2):  # a term's first factor in every sample, then its second
                    x = terms[k, side]
                    base, lane = np.int64(x & SLOT), np.int64(x >> 31)
                    if needs[base] and lane != shared:
                        for s in range(width - 1, -1, -1):
                            if not _in_order(base + lane * s, pusher[pusher_at[k] + s], last, done):
                                return False
        else:
            for s in range(width - 1, -1, -1):  # sample by sample: its input, then its second operand
                for side in range(2):
                    x = terms[t, side]
                    lane = np.int64(x >> 31)
                    slot = np.int64(x & SLOT) + lane * s
                    if (
                        lane != shared
                        and needs[slot]
                        and not _in_order(slot, pusher[pusher_at[t] + s], last, done)
                    ):
                        return False
    return True


@_jit(
    "boolean(uint32[:, ::1], int64[::1], int64[::1], boolean[::1], int64, int64, int64, int64, int64, "
    "int64[::1], boolean[::1])"
)
def _nodes_in_order(
    terms: NDArray[np.uint32],
    pusher: NDArray[np.int64],
    pusher_at: NDArray[np.int64],
    needs: NDArray[np.bool_],
    kind: int,
    lo: int,
    hi: int,
    n: int,
    t0: int,
    last: NDArray[np.int64],
    done: NDArray[np.bool_],
) -> bool:
    """The order check of one group of single nodes, pushing as ``_kernels._nodes_backward`` does."""
    plain_base = kind == DOT_PLAIN
    for v in range(hi - 1, lo - 1, -1):
        done[v] = True
        t = t0 + (v - lo) * n
        stop = t + 1 if plain_base else t
        for k in range(t + n - 1, stop - 1, -1):
            for side in range(2):  # a missing second factor or operand is ONE: it needs no grad
                x = terms[k, side]
                if needs[x] and not _in_order(x, pusher[pusher_at[k]], last, done):
                    return False
        if plain_base:
            x = terms[t, 0]
            if needs[x] and not _in_order(x, pusher[pusher_at[t]], last, done):
                return False
    return True


@_jit("boolean(int64[:, ::1], uint32[:, ::1], int64[::1], int64[::1], boolean[::1], int64)")
def backward_order_is_eager(
    groups: NDArray[np.int64],
    terms: NDArray[np.uint32],
    pusher: NDArray[np.int64],
    pusher_at: NDArray[np.int64],
    needs: NDArray[np.bool_],
    root: int,
) -> bool:
    """Replay the pushes of :func:`~._kernels.backward` and check them against the eager loop's order.

    ``pusher[pusher_at[k] + s]`` is the traced node that pushes term ``k`` of sample ``s``
    (``s`` = 0 outside lane units) in the eager pass. True when every slot that needs a grad
    receives its contributions in non-increasing pusher order (reverse creation order) and
    only before it pushes its own, and forward reads only slots written before; a lane unit
    reads a slot all samples share only from before its segment, so that its segment can
    run on blocks of samples.
    """
    n_slots = needs.shape[0]
    last = np.full(n_slots, np.iinfo(np.int64).max, np.int64)
    done = np.zeros(n_slots, np.bool_)
    for g in range(groups.shape[0]):
        lo, hi, n, t, width = groups[g, LO], groups[g, HI], groups[g, N], groups[g, TERM], groups[g, WIDTH]
        segment_lo = groups[segment_start(groups, g), LO]
        for v in range(lo, hi, width):
            for k in range(t, t + n):
                for side in range(2):  # a lane place reads ``width`` slots from its own
                    x = terms[k, side]
                    if (x & SLOT) + (x >> 31) * (width - 1) >= v:
                        return False
                    if width > 1 and not x & LANE and x >= segment_lo:
                        return False
            t += n
    g = groups.shape[0] - 1
    while g >= 0:
        width, start = groups[g, WIDTH], segment_start(groups, g)
        for second_pass in range(2 if width > 1 else 1):  # a lane segment's two passes
            for h in range(g, start - 1, -1):
                kind, lo, hi, n, t0 = group_row(groups, h)
                if groups[h, NEEDS] == 0:
                    continue
                if width > 1:
                    in_order = _lanes_in_order(
                        terms,
                        pusher,
                        pusher_at,
                        needs,
                        kind,
                        lo,
                        hi,
                        n,
                        t0,
                        width,
                        second_pass == 1,
                        last,
                        done,
                    )
                else:
                    in_order = _nodes_in_order(
                        terms, pusher, pusher_at, needs, kind, lo, hi, n, t0, last, done
                    )
                if not in_order:
                    return False
        g = start - 1
    return root >= 0
