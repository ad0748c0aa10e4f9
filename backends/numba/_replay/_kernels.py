"""The replay's kernels: the loops that run every step over a :class:`~._program.Program`.

:func:`run` is one training step: write the batch into the leaves, :func:`forward`,
:func:`backward`, :func:`update`, write the parameters and grads back to the tape.
Pure functions over the program's arrays (layout: :mod:`backends.numba._replay._program`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from backends.numba._jit import jit as _jit
from backends.numba._jit import jit_threaded as _jit_threaded
from backends.numba._lowering import fails as op_fails
from backends.numba._lowering import forward as op_forward
from backends.numba._lowering import lanes_backward as op_lanes_backward
from backends.numba._lowering import lanes_forward as op_lanes_forward
from backends.numba._lowering import partials as op_partials
from backends.numba._replay._program import (
    DISTINCT,
    DOT,
    DOT_PLAIN,
    HI,
    KIND,
    LANE,
    LINE,
    LO,
    MODE,
    NEEDS,
    SLOT,
    SUM,
    TERM,
    WIDTH,
    N,
)

__all__ = ["backward", "forward", "run", "update"]

_INF = math.inf

_RUN_SIGNATURE = (
    "Tuple((int64, int64, float64))(float64[::1], float64[::1], int64[:, ::1], uint32[:, ::1], "
    "float64[::1], boolean[::1], int64[::1], float64[::1], float64[::1], float64[::1], float64[::1], "
    "int64[::1], float64[::1], float64[:, ::1], float64[:, ::1], float64[::1], int64)"
)


# --- lane units: one loop over samples per node and term (see _program) ----------------------------
@_jit("void(float64[::1], uint32, uint32, int64, int64, int64, boolean)")
def lanes_product(val, a, c, out_slot, s0, s1, first):  # type: ignore[no-untyped-def]
    """``val[out + s] (+)= a(s) * c(s)`` for the samples ``s0 <= s < s1``; a place without LANE
    is one slot for all."""
    # unsigned indices: Numba emits no negative-index wraparound, and the loops vectorise
    ia, ic, out = np.uint64(a & SLOT), np.uint64(c & SLOT), np.uint64(out_slot)
    lo, hi = np.uint64(s0), np.uint64(s1)
    if a & LANE and c & LANE:
        if first:
            for s in range(lo, hi):
                val[out + s] = val[ia + s] * val[ic + s]
        else:
            for s in range(lo, hi):
                val[out + s] = val[out + s] + val[ia + s] * val[ic + s]
    elif a & LANE or c & LANE:
        lane, k = (ia, val[ic]) if a & LANE else (ic, val[ia])
        if first:
            for s in range(lo, hi):
                val[out + s] = val[lane + s] * k
        else:
            for s in range(lo, hi):
                val[out + s] = val[out + s] + val[lane + s] * k
    else:
        p = val[ia] * val[ic]
        for s in range(lo, hi):
            val[out + s] = p if first else val[out + s] + p


@_jit("void(float64[::1], float64[::1], uint32, uint32, int64, int64, int64)")
def lanes_push(val, grad, target, factor, out_slot, s0, s1):  # type: ignore[no-untyped-def]
    """``grad[target(s)] += factor(s) * grad[out + s]`` for ``s0 <= s < s1``; into one shared
    slot, last sample first, as the eager loop adds (it visits the samples' nodes in reverse
    creation order)."""
    it, ic, out = np.uint64(target & SLOT), np.uint64(factor & SLOT), np.uint64(out_slot)
    lo, hi = np.uint64(s0), np.uint64(s1)
    if target & LANE:
        if factor & LANE:
            for s in range(lo, hi):
                grad[it + s] += val[ic + s] * grad[out + s]
        else:
            k = val[ic]
            for s in range(lo, hi):
                grad[it + s] += k * grad[out + s]
    else:
        acc = grad[it]
        if factor & LANE:
            for s in range(hi, lo, -1):
                acc = acc + val[ic + s - 1] * grad[out + s - 1]
        else:
            k = val[ic]
            for s in range(hi, lo, -1):
                acc = acc + k * grad[out + s - 1]
        grad[it] = acc


#: the fewest terms :func:`lanes_backward` sums side by side through a transposed copy
RUN = 8


@_jit("int64(uint32[:, ::1], boolean[::1], int64, int64)")
def _shared_run(terms, needs, k, t):  # type: ignore[no-untyped-def]
    """How many terms from ``k`` down (not below ``t``) push into consecutive shared slots
    (term ``k - i`` into ``a - i``) that need a grad, each times a per-sample factor."""
    a = terms[k, 0]
    run = 0
    while k - run >= t:
        x, c = terms[k - run, 0], terms[k - run, 1]
        if x & LANE or not c & LANE or not needs[x & SLOT] or x != a - run:
            break
        run += 1
    return run


@_jit("boolean(uint32[:, ::1], int64, int64, int64, int64)")
def _same_factors(terms, first, other, run, other_run):  # type: ignore[no-untyped-def]
    """Whether terms ``first..first+run-1`` have the per-sample factors of ``other..``: a layer's
    neurons all read the previous layer's outputs, so their transposed copy is made once."""
    if other < 0 or run != other_run:
        return False
    for i in range(run):
        if terms[first + i, 1] != terms[other + i, 1]:
            return False
    return True


@_jit("void(float64[::1], uint32[:, ::1], int64, int64, int64, float64[::1])")
def _transpose_factors(val, terms, first, run, width, factors):  # type: ignore[no-untyped-def]
    """``factors[s * run + i]``: term ``first + i``'s per-sample factor in sample ``s``."""
    for i in range(run):
        c = np.int64(terms[first + i, 1] & SLOT)
        for s in range(width):
            factors[s * run + i] = val[c + s]


@_jit("void(float64[::1], float64[::1], int64, int64, int64, int64)")
def _sums_across_terms(grad, factors, first_slot, run, out, width):  # type: ignore[no-untyped-def]
    """:func:`lanes_push` of a run of terms into the consecutive shared slots from ``first_slot``:
    every slot's sum still runs over the samples last one first, one vector of slots at a time."""
    sums = grad[first_slot : first_slot + run].copy()  # apart from ``grad``: the loop vectorises
    for s in range(width - 1, -1, -1):
        g = grad[out + s]
        row = factors[s * run : s * run + run]
        for i in range(run):
            sums[i] = sums[i] + row[i] * g
    grad[first_slot : first_slot + run] = sums


@_jit("boolean(uint32[:, ::1], boolean[::1], int64)")
def _four_shared_sums(terms, needs, k):  # type: ignore[no-untyped-def]
    """Whether terms ``k, k-1, k-2, k-3`` push into four different shared slots that need a grad,
    each times a per-sample factor: then their sums over samples can run side by side."""
    for i in range(4):
        a, c = terms[k - i, 0], terms[k - i, 1]
        if a & LANE or not c & LANE or not needs[a & SLOT]:
            return False
        for j in range(i):
            if terms[k - j, 0] == a:
                return False
    return True


@_jit(
    "void(float64[::1], float64[::1], uint32, uint32, uint32, uint32, uint32, uint32, uint32, uint32, "
    "int64, int64, int64, int64, int64)"
)
def _four_sums(val, grad, a0, a1, a2, a3, c0, c1, c2, c3, o0, o1, o2, o3, lanes):  # type: ignore[no-untyped-def]
    """:func:`lanes_push` of four terms into four different shared slots ``a0..a3`` at once
    (factors ``c0..c3``, unit slots ``o0..o3``): four independent sums, each still over the
    samples last one first, so each slot adds in the same order."""
    i0, i1, i2, i3 = np.uint64(a0 & SLOT), np.uint64(a1 & SLOT), np.uint64(a2 & SLOT), np.uint64(a3 & SLOT)
    f0, f1, f2, f3 = np.uint64(c0 & SLOT), np.uint64(c1 & SLOT), np.uint64(c2 & SLOT), np.uint64(c3 & SLOT)
    l0, l1, l2, l3 = np.uint64(c0 >> 31), np.uint64(c1 >> 31), np.uint64(c2 >> 31), np.uint64(c3 >> 31)
    u0, u1, u2, u3 = np.uint64(o0), np.uint64(o1), np.uint64(o2), np.uint64(o3)
    s0, s1, s2, s3 = grad[i0], grad[i1], grad[i2], grad[i3]
    for s in range(np.uint64(lanes), 0, -1):
        s0 = s0 + val[f0 + l0 * (s - 1)] * grad[u0 + s - 1]
        s1 = s1 + val[f1 + l1 * (s - 1)] * grad[u1 + s - 1]
        s2 = s2 + val[f2 + l2 * (s - 1)] * grad[u2 + s - 1]
        s3 = s3 + val[f3 + l3 * (s - 1)] * grad[u3 + s - 1]
    grad[i0], grad[i1], grad[i2], grad[i3] = s0, s1, s2, s3


@_jit("boolean(uint32[:, ::1], boolean[::1], int64, int64, int64)")
def _pushes_into_shared(terms, needs, k, stride, side):  # type: ignore[no-untyped-def]
    """Whether place ``side`` of terms ``k, k - stride, k - 2 stride, k - 3 stride`` is a shared
    slot that needs a grad, in all four."""
    for i in range(4):
        x = terms[k - i * stride, side]
        if x & LANE or not needs[x & SLOT]:
            return False
    return True


@_jit(
    "int64(float64[::1], uint32[:, ::1], float64[::1], int64, int64, int64, int64, int64, int64, int64, int64)"
)
def lanes_forward(val, terms, const, kind, lo, hi, n, t, width, s0, s1):  # type: ignore[no-untyped-def]
    """Forward of a group of lane units in samples ``s0 <= s < s1``: each unit's terms folded
    left to right in every sample, as :func:`forward` folds one node's. A failing slot, or -1."""
    for out in range(lo, hi, width):
        if kind == DOT_PLAIN or kind == DOT or kind == SUM:
            # a plain term is a product with ONE: x * 1.0 is x, bit for bit
            lanes_product(val, terms[t, 0], terms[t, 1], out, s0, s1, True)
            for k in range(t + 1, t + n):
                lanes_product(val, terms[k, 0], terms[k, 1], out, s0, s1, False)
            for s in range(s0, s1):
                if not -_INF < val[out + s] < _INF:
                    return out + s
        else:
            x, y = terms[t, 0], terms[t, 1]
            ix, sx, iy, sy = np.int64(x & SLOT), np.int64(x >> 31), np.int64(y & SLOT), np.int64(y >> 31)
            failed = op_lanes_forward(kind, val, ix, sx, iy, sy, const[out], out, s0, s1)
            if failed >= 0:
                return failed
        t += n
    return -1


@_jit(
    "void(float64[::1], float64[::1], uint32[:, ::1], float64[::1], boolean[::1], int64, int64, int64, int64, "
    "int64, int64, int64, int64)"
)
def lanes_backward_per_sample(val, grad, terms, const, needs, kind, lo, hi, n, t0, width, s0, s1):  # type: ignore[no-untyped-def]
    """Backward of a group of lane units into per-sample slots, samples ``s0 <= s < s1``: units
    in reverse, each unit's terms in reverse (first factor, then second); a primitive's pushes
    sample by sample, last sample first, as :func:`backward` pushes one node's. Every sample's
    pushes are its own: blocks of samples may run in any order, or at once."""
    t = t0 + (hi - lo) // width * n
    for out in range(hi - width, lo - 1, -width):
        t -= n
        if kind == DOT_PLAIN or kind == DOT or kind == SUM:
            for k in range(t + n - 1, t - 1, -1):
                a, c = terms[k, 0], terms[k, 1]
                if a & LANE and needs[a & SLOT]:
                    lanes_push(val, grad, a, c, out, s0, s1)
                if c & LANE and needs[c & SLOT]:
                    lanes_push(val, grad, c, a, out, s0, s1)
        else:
            x, y = terms[t, 0], terms[t, 1]
            ix, sx, iy, sy = np.int64(x & SLOT), np.int64(x >> 31), np.int64(y & SLOT), np.int64(y >> 31)
            op_lanes_backward(kind, val, grad, ix, sx, iy, sy, const[out], out, s0, s1, sx == 1, sy == 1)


@_jit(
    "void(float64[::1], float64[::1], uint32[:, ::1], float64[::1], boolean[::1], int64, int64, int64, int64, "
    "int64, boolean, int64, int64, float64[::1])"
)
def lanes_backward_shared(
    val, grad, terms, const, needs, kind, lo, n, t0, width, distinct, first_unit, end_unit, factors
):  # type: ignore[no-untyped-def]
    """Backward of the lane units ``first_unit..end_unit-1`` of a group into slots all samples
    share (the parameters): units in reverse, each unit's terms in reverse; each slot's sum
    over samples last sample first. A ``distinct`` group (see _program) pushes four units'
    sums at once.

    ``factors``: scratch for :func:`_sums_across_terms`, at least ``width * n`` long.
    """
    units = end_unit
    if distinct and (kind == DOT_PLAIN or kind == DOT or kind == SUM) and n < RUN:
        # Every shared slot has one push: four units' pushes at once, whatever their order.
        while units - first_unit >= 4:
            units -= 4
            top = lo + (units + 3) * width
            for k in range(t0 + (units + 4) * n - 1, t0 + (units + 3) * n - 1, -1):
                for side in range(2):
                    if _pushes_into_shared(terms, needs, k, n, side):
                        a0, a1, a2, a3 = (
                            terms[k, side],
                            terms[k - n, side],
                            terms[k - 2 * n, side],
                            terms[k - 3 * n, side],
                        )
                        c0, c1 = terms[k, 1 - side], terms[k - n, 1 - side]
                        c2, c3 = terms[k - 2 * n, 1 - side], terms[k - 3 * n, 1 - side]
                        o0, o1, o2, o3 = top, top - width, top - 2 * width, top - 3 * width
                        _four_sums(val, grad, a0, a1, a2, a3, c0, c1, c2, c3, o0, o1, o2, o3, width)
                        continue
                    for i in range(4):
                        x = terms[k - i * n, side]
                        if not x & LANE and needs[x & SLOT]:
                            lanes_push(val, grad, x, terms[k - i * n, 1 - side], top - i * width, 0, width)
    t = t0 + units * n
    transposed = -1  # the first term whose per-sample factors ``factors`` holds, sample by sample
    transposed_run = 0
    for out in range(lo + (units - 1) * width, lo + first_unit * width - 1, -width):
        t -= n
        if kind == DOT_PLAIN or kind == DOT or kind == SUM:
            k = t + n - 1
            while k >= t:
                # Terms whose shared first factors sum side by side: a run, or four.
                side_by_side = _shared_run(terms, needs, k, t)
                if side_by_side >= RUN:
                    first = k - side_by_side + 1
                    if not _same_factors(terms, first, transposed, side_by_side, transposed_run):
                        _transpose_factors(val, terms, first, side_by_side, width, factors)
                        transposed, transposed_run = first, side_by_side
                    first_slot = np.int64(terms[first, 0] & SLOT)
                    _sums_across_terms(grad, factors, first_slot, side_by_side, out, width)
                elif k - 3 >= t and _four_shared_sums(terms, needs, k):
                    side_by_side = 4
                    a0, a1, a2, a3 = terms[k, 0], terms[k - 1, 0], terms[k - 2, 0], terms[k - 3, 0]
                    c0, c1, c2, c3 = terms[k, 1], terms[k - 1, 1], terms[k - 2, 1], terms[k - 3, 1]
                    _four_sums(val, grad, a0, a1, a2, a3, c0, c1, c2, c3, out, out, out, out, width)
                else:
                    side_by_side = 1
                    a, c = terms[k, 0], terms[k, 1]
                    if not a & LANE and needs[a & SLOT]:
                        lanes_push(val, grad, a, c, out, 0, width)
                    if not c & LANE and needs[c & SLOT]:
                        lanes_push(val, grad, c, a, out, 0, width)
                k -= side_by_side
        else:
            x, y = terms[t, 0], terms[t, 1]
            ix, sx, iy, sy = np.int64(x & SLOT), np.int64(x >> 31), np.int64(y & SLOT), np.int64(y >> 31)
            into_x, into_y = not sx and needs[ix], not sy and needs[iy]
            if into_x or into_y:
                op_lanes_backward(kind, val, grad, ix, sx, iy, sy, const[out], out, 0, width, into_x, into_y)


#: the most samples a block of a lane segment holds: on this machine the per-sample passes of
#: a layer of 64 ran about a third faster in blocks of 500 than in one of 1,000
SAMPLE_BLOCK = 512


@_jit("int64(int64, int64)")
def sample_blocks(width, threads):
    """How many blocks of samples a lane segment runs on: one a thread at least, of at most
    :data:`SAMPLE_BLOCK` samples each."""
    return max(threads, (width + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK)


@_jit("UniTuple(int64, 2)(int64, int64, int64, int64)")
def equal_part(count, parts, b, multiple):  # type: ignore[no-untyped-def]
    """Part ``b`` of ``parts`` (nearly) equal parts of ``0..count-1``, as ``(first, end)``; the
    parts' size a multiple of ``multiple``."""
    size = ((count + parts - 1) // parts + multiple - 1) // multiple * multiple
    first = min(b * size, count)
    return first, min(first + size, count)


@_jit("int64(int64[:, ::1], int64)")
def segment_end(groups, g):  # type: ignore[no-untyped-def]
    """The group after the segment that starts at group ``g``: the run of groups of ``g``'s width."""
    e = g + 1
    while e < groups.shape[0] and groups[e, WIDTH] == groups[g, WIDTH]:
        e += 1
    return e


@_jit("int64(int64[:, ::1], int64)")
def segment_start(groups, g):  # type: ignore[no-untyped-def]
    """The first group of the segment that ends at group ``g``."""
    b = g
    while b > 0 and groups[b - 1, WIDTH] == groups[g, WIDTH]:
        b -= 1
    return b


@_jit("int64(float64[::1], uint32[:, ::1], float64[::1], int64, int64, int64, int64, int64)")
def _nodes_forward(val, terms, const, kind, lo, hi, n, t):  # type: ignore[no-untyped-def]
    """Forward of a group of single nodes ``lo..hi-1``, their terms from ``t``; a failing slot, or -1."""
    if kind == DOT_PLAIN or kind == DOT:
        # Four nodes at a time: four independent fold chains keep the adder busy; each
        # node still folds its own terms left to right.
        v = lo
        while v + 4 <= hi:
            t1, t2, t3 = t + n, t + 2 * n, t + 3 * n
            if kind == DOT_PLAIN:
                s0, s1, s2, s3 = val[terms[t, 0]], val[terms[t1, 0]], val[terms[t2, 0]], val[terms[t3, 0]]
            else:
                s0 = val[terms[t, 0]] * val[terms[t, 1]]
                s1 = val[terms[t1, 0]] * val[terms[t1, 1]]
                s2 = val[terms[t2, 0]] * val[terms[t2, 1]]
                s3 = val[terms[t3, 0]] * val[terms[t3, 1]]
            for k in range(1, n):
                s0 = s0 + val[terms[t + k, 0]] * val[terms[t + k, 1]]
                s1 = s1 + val[terms[t1 + k, 0]] * val[terms[t1 + k, 1]]
                s2 = s2 + val[terms[t2 + k, 0]] * val[terms[t2 + k, 1]]
                s3 = s3 + val[terms[t3 + k, 0]] * val[terms[t3 + k, 1]]
            if not (-_INF < s0 < _INF and -_INF < s1 < _INF and -_INF < s2 < _INF and -_INF < s3 < _INF):
                return v
            val[v], val[v + 1], val[v + 2], val[v + 3] = s0, s1, s2, s3
            v += 4
            t += 4 * n
        while v < hi:
            if kind == DOT_PLAIN:
                acc = val[terms[t, 0]]
            else:
                acc = val[terms[t, 0]] * val[terms[t, 1]]
            for k in range(t + 1, t + n):
                acc = acc + val[terms[k, 0]] * val[terms[k, 1]]
            if not -_INF < acc < _INF:
                return v
            val[v] = acc
            v += 1
            t += n
    elif kind == SUM:
        for v in range(lo, hi):
            acc = val[terms[t, 0]]
            for k in range(t + 1, t + n):
                acc = acc + val[terms[k, 0]]
            if not -_INF < acc < _INF:
                return v
            val[v] = acc
            t += n
    else:  # a primitive: its lowering (which refuses a code it does not know)
        for v in range(lo, hi):
            x, y, c = val[terms[t, 0]], val[terms[t, 1]], const[v]
            out = op_forward(kind, x, y, c)
            if op_fails(kind, x, y, c, out):
                return v
            val[v] = out
            t += 1
    return -1


@_jit("int64(float64[::1], int64[:, ::1], uint32[:, ::1], float64[::1], int64, int64, int64, int64)")
def _segment_forward(val, groups, terms, const, first, end, s0, s1):  # type: ignore[no-untyped-def]
    """Forward of the lane groups ``first..end-1`` in samples ``s0..s1-1``; a failing slot, or -1."""
    width = groups[first, WIDTH]
    for h in range(first, end):
        kind, lo, hi, n, t = groups[h, KIND], groups[h, LO], groups[h, HI], groups[h, N], groups[h, TERM]
        failed = lanes_forward(val, terms, const, kind, lo, hi, n, t, width, s0, s1)
        if failed >= 0:
            return failed
    return -1


@_jit_threaded("int64(float64[::1], int64[:, ::1], uint32[:, ::1], float64[::1], int64, int64, int64)")
def _segment_forward_threaded(val, groups, terms, const, first, end, blocks):  # type: ignore[no-untyped-def]
    """:func:`_segment_forward` on ``blocks`` blocks of samples, at once on Numba's threads."""
    width = groups[first, WIDTH]
    failed = np.full(blocks, -1, np.int64)
    for b in prange(blocks):
        s0, s1 = equal_part(width, blocks, b, LINE)
        failed[b] = _segment_forward(val, groups, terms, const, first, end, s0, s1)
    return failed.max()


@_jit("int64(float64[::1], int64[:, ::1], uint32[:, ::1], float64[::1], int64)")
def forward(val, groups, terms, const, threads):  # type: ignore[no-untyped-def]
    """Fill every node's slot of ``val``, group by group; a slot that fails a domain or overflow
    check (spec.ops; the failing value is not stored), or -1.

    A segment of lane groups runs on blocks of samples (:func:`sample_blocks`; with
    ``threads > 1`` at once), every group of the segment on each block. A lane reads only its own sample's slots
    and slots from before the segment (the order check makes sure), so every slot is
    computed exactly as group by group.
    """
    g = 0
    while g < groups.shape[0]:
        width, end = groups[g, WIDTH], segment_end(groups, g)
        if width == 1:
            for h in range(g, end):
                kind, lo, hi, n, t = (
                    groups[h, KIND],
                    groups[h, LO],
                    groups[h, HI],
                    groups[h, N],
                    groups[h, TERM],
                )
                failed = _nodes_forward(val, terms, const, kind, lo, hi, n, t)
                if failed >= 0:
                    return failed
        elif threads > 1:
            failed = _segment_forward_threaded(
                val, groups, terms, const, g, end, sample_blocks(width, threads)
            )
        else:
            blocks = sample_blocks(width, 1)
            for b in range(blocks):
                s0, s1 = equal_part(width, blocks, b, LINE)
                failed = _segment_forward(val, groups, terms, const, g, end, s0, s1)
                if failed >= 0:
                    break
        if failed >= 0:
            return failed
        g = end
    return -1


@_jit(
    "void(float64[::1], float64[::1], uint32[:, ::1], boolean[::1], float64[::1], int64, int64, int64, int64, "
    "int64, int64)"
)
def _nodes_backward(val, grad, terms, needs, const, kind, lo, hi, n, t0, mode):  # type: ignore[no-untyped-def]
    """Backward of a group of single nodes ``lo..hi-1``, their terms from ``t0``."""
    t = t0 + (hi - lo) * n
    if kind == DOT or kind == DOT_PLAIN:
        skip = 1 if kind == DOT_PLAIN else 0
        for v in range(hi - 1, lo - 1, -1):
            t -= n
            gv = grad[v]
            if mode == 0:
                for k in range(t + n - 1, t + skip - 1, -1):
                    grad[terms[k, 0]] += val[terms[k, 1]] * gv
            elif mode == 1:
                for k in range(t + n - 1, t + skip - 1, -1):
                    i, j = terms[k, 0], terms[k, 1]
                    grad[i] += val[j] * gv
                    grad[j] += val[i] * gv
            else:
                for k in range(t + n - 1, t + skip - 1, -1):
                    i, j = terms[k, 0], terms[k, 1]
                    if needs[i]:
                        grad[i] += val[j] * gv
                    if needs[j]:
                        grad[j] += val[i] * gv
            if skip:
                grad[terms[t, 0]] += 1.0 * gv
    elif kind == SUM:
        for v in range(hi - 1, lo - 1, -1):
            t -= n
            gv = grad[v]
            for k in range(t + n - 1, t - 1, -1):
                grad[terms[k, 0]] += 1.0 * gv
    else:  # a primitive: its lowering's partials; a unary op's second term is ONE
        for v in range(hi - 1, lo - 1, -1):
            t -= 1
            i, j = terms[t, 0], terms[t, 1]
            di, dj = op_partials(kind, val[i], val[j], const[v], val[v])
            gv = grad[v]
            grad[i] += di * gv
            grad[j] += dj * gv


@_jit(
    "void(float64[::1], float64[::1], int64[:, ::1], uint32[:, ::1], float64[::1], boolean[::1], int64, int64, "
    "int64, int64)"
)
def _segment_per_sample(val, grad, groups, terms, const, needs, last, first, s0, s1):  # type: ignore[no-untyped-def]
    """The per-sample pushes of the lane groups ``last`` down to ``first`` in samples ``s0..s1-1``."""
    width = groups[last, WIDTH]
    for h in range(last, first - 1, -1):
        if groups[h, NEEDS]:
            kind, lo, hi, n, t = groups[h, KIND], groups[h, LO], groups[h, HI], groups[h, N], groups[h, TERM]
            lanes_backward_per_sample(val, grad, terms, const, needs, kind, lo, hi, n, t, width, s0, s1)


@_jit_threaded(
    "void(float64[::1], float64[::1], int64[:, ::1], uint32[:, ::1], float64[::1], boolean[::1], int64, int64, "
    "int64)"
)
def _segment_per_sample_threaded(val, grad, groups, terms, const, needs, last, first, blocks):  # type: ignore[no-untyped-def]
    """:func:`_segment_per_sample` on ``blocks`` blocks of samples, at once on Numba's threads."""
    width = groups[last, WIDTH]
    for b in prange(blocks):
        s0, s1 = equal_part(width, blocks, b, LINE)
        _segment_per_sample(val, grad, groups, terms, const, needs, last, first, s0, s1)


@_jit_threaded(
    "void(float64[::1], float64[::1], uint32[:, ::1], float64[::1], boolean[::1], int64, int64, int64, int64, "
    "int64, int64, int64, float64[::1])"
)
def _units_shared_threaded(val, grad, terms, const, needs, kind, lo, n, t0, width, units, threads, factors):  # type: ignore[no-untyped-def]
    """:func:`lanes_backward_shared` of a distinct group's units in ``threads`` parts at once:
    no two units push into one slot, so each slot's sum is the same whichever thread runs it.
    ``factors``: ``threads`` scratches."""
    size = factors.shape[0] // threads
    for b in prange(threads):
        first, end = equal_part(units, threads, b, 1)
        scratch = factors[b * size : (b + 1) * size]
        lanes_backward_shared(
            val, grad, terms, const, needs, kind, lo, n, t0, width, True, first, end, scratch
        )


@_jit(
    "void(float64[::1], float64[::1], int64[:, ::1], uint32[:, ::1], float64[::1], boolean[::1], int64, "
    "int64, float64[::1])"
)
def backward(val, grad, groups, terms, const, needs, root, threads, factors):  # type: ignore[no-untyped-def]
    """Fill ``grad`` (spec.interface's semantics, leaves starting from 0): groups in reverse,
    each group's nodes in reverse, each node pushing ``partial * grad`` to its terms in reverse.

    A segment of lane groups pushes in two passes: into per-sample slots (block of samples
    by block, as forward runs them), then into the slots all samples share. Each slot still
    receives its pushes in the order of group by group: a per-sample slot only its own
    sample's, and a shared slot only in the second pass (the order check replays both).
    """
    for i in range(grad.shape[0]):
        grad[i] = 0.0
    grad[root] = 1.0
    g = groups.shape[0] - 1
    while g >= 0:
        width, start = groups[g, WIDTH], segment_start(groups, g)
        if width == 1:
            for h in range(g, start - 1, -1):
                if groups[h, NEEDS]:
                    kind, lo, hi, n, t = (
                        groups[h, KIND],
                        groups[h, LO],
                        groups[h, HI],
                        groups[h, N],
                        groups[h, TERM],
                    )
                    _nodes_backward(val, grad, terms, needs, const, kind, lo, hi, n, t, groups[h, MODE])
        else:
            blocks = sample_blocks(width, threads)
            if threads > 1:
                _segment_per_sample_threaded(val, grad, groups, terms, const, needs, g, start, blocks)
            else:
                for b in range(blocks):
                    s0, s1 = equal_part(width, blocks, b, LINE)
                    _segment_per_sample(val, grad, groups, terms, const, needs, g, start, s0, s1)
            for h in range(g, start - 1, -1):
                if groups[h, NEEDS] == 0:
                    continue
                kind, lo, hi, n, t = (
                    groups[h, KIND],
                    groups[h, LO],
                    groups[h, HI],
                    groups[h, N],
                    groups[h, TERM],
                )
                units = (hi - lo) // width
                if threads > 1 and groups[h, DISTINCT]:
                    _units_shared_threaded(
                        val, grad, terms, const, needs, kind, lo, n, t, width, units, threads, factors
                    )
                else:
                    distinct = groups[h, DISTINCT] == 1
                    lanes_backward_shared(
                        val, grad, terms, const, needs, kind, lo, n, t, width, distinct, 0, units, factors
                    )
        g = start - 1


@_jit("int64(float64[::1], float64[::1], int64, float64[::1], float64[:, ::1], float64[:, ::1])")
def update(val, grad, P, constants, state, scratch):  # type: ignore[no-untyped-def]
    """The optimizer's update of slots ``0..P-1`` (spec.optim's formulas), all or nothing.

    ``constants``: see spec.compile.UpdateRule.constants; ``state``: (2, P) velocity or m,
    and v. Returns -1, or the first parameter whose new value is not finite (then nothing
    is changed and ``scratch[0, i]`` holds that value).
    """
    kind = int(constants[0])
    lr, momentum, beta1, beta2 = constants[1], constants[2], constants[3], constants[4]
    eps, m_scale, v_scale = constants[5], constants[6], constants[7]
    for i in range(P):
        g = grad[i]
        if kind == 0:
            new = val[i] - lr * g
        elif kind == 1:
            velocity = momentum * state[0, i] + g
            scratch[1, i] = velocity
            new = val[i] - lr * velocity
        else:
            m = beta1 * state[0, i] + (1.0 - beta1) * g
            v = beta2 * state[1, i] + (1.0 - beta2) * (g * g)
            scratch[1, i] = m
            scratch[2, i] = v
            new = val[i] - lr * (m / m_scale) / (math.sqrt(v / v_scale) + eps)
        if not -_INF < new < _INF:
            scratch[0, 0] = new
            return i
        scratch[0, i] = new
    for i in range(P):
        val[i] = scratch[0, i]
        if kind >= 1:
            state[0, i] = scratch[1, i]
        if kind == 2:
            state[1, i] = scratch[2, i]
    return -1


@_jit(_RUN_SIGNATURE)
def run(
    val,
    grad,
    groups,
    terms,
    const,
    needs,
    meta,
    inputs,
    targets,
    tape_data,
    tape_grad,
    parameter_nodes,
    constants,
    state,
    scratch,
    factors,
    threads,
):  # type: ignore[no-untyped-def]
    """One training step: leaves, forward, backward, update, parameters and grads back to the tape,
    on ``threads`` threads (see :func:`forward` and :func:`backward`).

    Returns ``(0, root slot, loss)``; ``(1, slot, 0)`` when forward failed at ``slot``;
    ``(2, i, value)`` when parameter ``i`` would become the non-finite ``value``. A failed
    step changes no parameter, grad or state.
    """
    P, first_input, first_target, root, n = meta[0], meta[1], meta[2], meta[3], meta[4]
    for i in range(P):
        val[i] = tape_data[parameter_nodes[i]]
    columns = inputs.shape[0] // n  # column by column: input j of sample s at first_input + j * n + s
    for i in range(inputs.shape[0]):
        val[first_input + (i % columns) * n + i // columns] = inputs[i]
    columns = targets.shape[0] // n
    for i in range(targets.shape[0]):
        val[first_target + (i % columns) * n + i // columns] = targets[i]
    failed = forward(val, groups, terms, const, threads)
    if failed >= 0:
        return 1, failed, 0.0
    loss = val[root]
    backward(val, grad, groups, terms, const, needs, root, threads, factors)
    bad = update(val, grad, P, constants, state, scratch)
    if bad >= 0:  # update() changed nothing but its scratch
        return 2, bad, scratch[0, 0]
    for i in range(P):
        tape_data[parameter_nodes[i]] = val[i]
        tape_grad[parameter_nodes[i]] = grad[i]
    return 0, root, loss
