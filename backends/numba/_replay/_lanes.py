"""The lane units' kernels: loops over blocks of samples, vectorised across samples or slots.

A group of lane units (see :mod:`._program`) runs forward as :func:`lanes_forward` and
backward in two passes, :func:`lanes_backward_per_sample` (the pushes into each sample's own
slots, on any block of samples) and :func:`lanes_backward_shared` (the sums over samples into
the slots all samples share, last sample first). Every lane performs exactly the eager op
sequence of its sample, so rounding is unchanged. Called by :mod:`._kernels`.

Side by side. Where one loop does the work of several (four terms of a unit, four units'
folds, all units' pushes or sums, several samples a pass), it loads and stores a sum once
for several additions, but each slot still receives its additions in the eager order: a
fold adds its terms left to right, a shared slot its samples last one first, a per-sample
slot its pushes unit after unit. Only additions into different slots are reordered; each
such kernel checks, or its caller or the plan (:mod:`._plan`) does, that the slots it
interleaves are different. The matrix-shaped ones (a layer's folds, pushes and weight sums)
run in register tiles (:mod:`._tiles`); sums across units or weights read copies transposed
sample by sample (:mod:`._transpose`).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from backends.numba._jit import jit as _jit
from backends.numba._lowering import lanes_backward as op_lanes_backward
from backends.numba._lowering import lanes_forward as op_lanes_forward
from backends.numba._replay._program import DOT, DOT_PLAIN, FOLD_END, FOLD_START, LANE, PUSHING, SLOT, SUM
from backends.numba._replay._tiles import multiply_accumulate
from backends.numba._replay._transpose import transpose

__all__ = ["lanes_backward_per_sample", "lanes_backward_shared", "lanes_forward"]

_INF = math.inf


@_jit("void(float64[::1], uint32, uint32, int64, int64, int64, boolean)")
def lanes_product(
    val: NDArray[np.float64], a: int, c: int, out_slot: int, s0: int, s1: int, first: bool
) -> None:
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


@_jit("boolean(uint32[:, ::1], int64)")
def _four_weighted(terms: NDArray[np.uint32], k: int) -> bool:
    """Whether terms ``k..k+3`` each multiply one per-sample place by one shared slot."""
    for i in range(4):
        if (terms[k + i, 0] & LANE == 0) == (terms[k + i, 1] & LANE == 0):
            return False
    return True


@_jit("UniTuple(uint64, 2)(uint32[:, ::1], int64)")
def _lane_and_weight(terms: NDArray[np.uint32], k: int) -> tuple[np.uint64, np.uint64]:
    """A weighted term's per-sample place and its shared slot."""
    a, c = terms[k, 0], terms[k, 1]
    x, w = (a, c) if a & LANE else (c, a)
    return np.uint64(x & SLOT), np.uint64(w & SLOT)


@_jit("void(float64[::1], uint32[:, ::1], int64, int64, int64, int64, boolean)")
def _lanes_four_products(
    val: NDArray[np.float64], terms: NDArray[np.uint32], k: int, out_slot: int, s0: int, s1: int, first: bool
) -> None:
    """:func:`lanes_product` of the four weighted terms ``k..k+3`` (see :func:`_four_weighted`)
    in one loop: each sample still adds them left to right, but loads and stores its sum once."""
    x0, w0 = _lane_and_weight(terms, k)
    x1, w1 = _lane_and_weight(terms, k + 1)
    x2, w2 = _lane_and_weight(terms, k + 2)
    x3, w3 = _lane_and_weight(terms, k + 3)
    k0, k1, k2, k3 = val[w0], val[w1], val[w2], val[w3]
    out, lo, hi = np.uint64(out_slot), np.uint64(s0), np.uint64(s1)
    if first:
        for s in range(lo, hi):
            val[out + s] = ((val[x0 + s] * k0 + val[x1 + s] * k1) + val[x2 + s] * k2) + val[x3 + s] * k3
    else:
        for s in range(lo, hi):
            sum_ = val[out + s] + val[x0 + s] * k0
            val[out + s] = ((sum_ + val[x1 + s] * k1) + val[x2 + s] * k2) + val[x3 + s] * k3


@_jit("int64(float64[::1], int64, int64, int64)")
def _first_non_finite(val: NDArray[np.float64], out: int, s0: int, s1: int) -> int:
    """The first of slots ``out + s0..out + s1 - 1`` that is not finite, or -1. The common case,
    none, is one vectorised pass: no exit inside the loop."""
    bad = False
    for s in range(np.uint64(out + s0), np.uint64(out + s1)):
        bad |= not -_INF < val[s] < _INF
    if bad:
        for s in range(out + s0, out + s1):
            if not -_INF < val[s] < _INF:
                return s
    return -1


@_jit("void(float64[::1], float64[::1], uint32, uint32, int64, int64, int64)")
def lanes_push(
    val: NDArray[np.float64],
    grad: NDArray[np.float64],
    target: int,
    factor: int,
    out_slot: int,
    s0: int,
    s1: int,
) -> None:
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


@_jit("boolean(uint32[:, ::1], boolean[::1], int64)")
def _pushes_per_sample(terms: NDArray[np.uint32], needs: NDArray[np.bool_], k: int) -> bool:
    """Whether term ``k`` of an aligned unit pushes into a per-sample place that needs a grad."""
    a, c = terms[k, 0], terms[k, 1]
    place = a if a & LANE else c
    return place & LANE != 0 and needs[place & SLOT]  # type: ignore[no-any-return]


@_jit(
    "void(float64[::1], float64[::1], uint32[:, ::1], boolean[::1], int64, int64, int64, int64, int64, int64, int64)"
)
def _aligned_units_push(
    val: NDArray[np.float64],
    grad: NDArray[np.float64],
    terms: NDArray[np.uint32],
    needs: NDArray[np.bool_],
    t: int,
    n: int,
    out_slot: int,
    width: int,
    count: int,
    s0: int,
    s1: int,
) -> None:
    """:func:`lanes_push` of every term position of the ``count`` aligned units (see
    :func:`._plan._units_aligned`; the top one's terms from row ``t``, its unit slot ``out_slot``)
    that pushes into a per-sample place that needs a grad, all at once in register tiles
    (:func:`._tiles.multiply_accumulate`): each place still hears from the units in their
    order, top one first; the places are different, so their order does not matter."""
    places, weights = np.empty(n, np.int64), np.empty(n * count)
    rows = 0
    for k in range(t, t + n):
        if _pushes_per_sample(terms, needs, k):
            places[rows] = _lane_and_weight(terms, k)[0] + s0
            for u in range(count):
                weights[rows * count + u] = val[_lane_and_weight(terms, k - u * n)[1]]
            rows += 1
    units = out_slot + s0 - np.arange(count) * width  # the units' grads, in their order
    multiply_accumulate(grad, places[:rows], grad, units, weights, np.arange(rows) * count, 1, s1 - s0, count)


#: the fewest terms :func:`lanes_backward_shared` sums side by side through a transposed copy
RUN = 8


@_jit("int64(uint32[:, ::1], boolean[::1], int64, int64)")
def _shared_run(terms: NDArray[np.uint32], needs: NDArray[np.bool_], k: int, t: int) -> int:
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
def _same_factors(terms: NDArray[np.uint32], first: int, other: int, run: int, other_run: int) -> bool:
    """Whether terms ``first..first+run-1`` have the per-sample factors of ``other..``: a layer's
    neurons all read the previous layer's outputs, so their transposed copy is made once."""
    if other < 0 or run != other_run:
        return False
    for i in range(run):
        if terms[first + i, 1] != terms[other + i, 1]:
            return False
    return True


@_jit("void(float64[::1], uint32[:, ::1], int64, int64, int64, float64[::1])")
def _transpose_factors(
    val: NDArray[np.float64],
    terms: NDArray[np.uint32],
    first: int,
    run: int,
    width: int,
    factors: NDArray[np.float64],
) -> None:
    """``factors[s * run + i]``: term ``first + i``'s per-sample factor in sample ``s``."""
    starts = np.empty(run, np.int64)
    for i in range(run):
        starts[i] = terms[first + i, 1] & SLOT
    transpose(val, starts, width, factors)


@_jit("int64(uint32[:, ::1], boolean[::1], int64, int64, int64, int64, int64)")
def _units_push_alike(
    terms: NDArray[np.uint32],
    needs: NDArray[np.bool_],
    t0: int,
    n: int,
    first_unit: int,
    end_unit: int,
    positions: int,
) -> int:
    """Whether, at every term position below ``positions``, the units ``first_unit..end_unit-1`` (``n`` terms each
    from ``t0``) push into a shared slot times the same factor, each into its own slot (the
    group is distinct), or all push nothing there. Returns the number of such positions with a
    push (at least 1), or 0 when they do not."""
    top = t0 + (end_unit - 1) * n
    pushing = 0
    for j in range(positions):
        a, c = terms[top + j, 0], terms[top + j, 1]
        into_a, into_c = not a & LANE and needs[a & SLOT], not c & LANE and needs[c & SLOT]
        if into_a and into_c:
            return 0
        for u in range(first_unit, end_unit):
            x, y = terms[t0 + u * n + j, 0], terms[t0 + u * n + j, 1]
            if (not x & LANE and needs[x & SLOT]) != into_a or (not y & LANE and needs[y & SLOT]) != into_c:
                return 0
            if (into_a and y != c) or (into_c and x != a):
                return 0
        pushing += into_a or into_c
    return pushing


@_jit(
    "boolean(float64[::1], float64[::1], uint32[:, ::1], boolean[::1], int64, int64, int64, int64, int64, int64, "
    "int64, float64[::1])"
)
def _sums_across_units(
    val: NDArray[np.float64],
    grad: NDArray[np.float64],
    terms: NDArray[np.uint32],
    needs: NDArray[np.bool_],
    t0: int,
    n: int,
    lo: int,
    width: int,
    first_unit: int,
    end_unit: int,
    positions: int,
    factors: NDArray[np.float64],
) -> bool:
    """Every push into shared slots of the units ``first_unit..end_unit-1`` of a distinct group,
    from their term positions below ``positions``, where the units push alike there
    (:func:`_units_push_alike`): the units' grads transposed once, then
    position by position, all units' sums at once, vectorised across units. Every slot's sum
    still runs over the samples last one first; the slots are distinct, so the order of units
    and positions does not matter. Returns whether it did (False: nothing done)."""
    if _units_push_alike(terms, needs, t0, n, first_unit, end_unit, positions) == 0:
        return False
    count = end_unit - first_unit
    starts = np.empty(count, np.int64)
    for i in range(count):
        starts[i] = lo + (first_unit + i) * width
    transpose(grad, starts, width, factors)  # factors[s * count + i]: unit i's grad in sample s
    sums = np.empty(count, np.float64)
    top = t0 + (end_unit - 1) * n
    for j in range(positions):
        side = 0 if not terms[top + j, 0] & LANE and needs[terms[top + j, 0] & SLOT] else 1
        target, factor = terms[top + j, side], terms[top + j, 1 - side]
        if target & LANE or not needs[target & SLOT]:
            continue
        for i in range(count):
            sums[i] = grad[terms[t0 + (first_unit + i) * n + j, side] & SLOT]
        f, stride = np.int64(factor & SLOT), np.int64(factor >> 31)  # stride 0: one slot for all
        s = width
        while s >= 4:  # four samples a pass
            s -= 4
            x3, x2 = val[f + stride * (s + 3)], val[f + stride * (s + 2)]
            x1, x0 = val[f + stride * (s + 1)], val[f + stride * s]
            rows = factors[s * count : (s + 4) * count]
            for i in range(count):
                high = (sums[i] + x3 * rows[3 * count + i]) + x2 * rows[2 * count + i]
                sums[i] = (high + x1 * rows[count + i]) + x0 * rows[i]
        while s > 0:
            s -= 1
            x, row = val[f + stride * s], factors[s * count : (s + 1) * count]
            for i in range(count):
                sums[i] = sums[i] + x * row[i]
        for i in range(count):
            grad[terms[t0 + (first_unit + i) * n + j, side] & SLOT] = sums[i]
    return True


@_jit("void(float64[::1], float64[::1], int64[::1], int64, int64[::1], int64)")
def _sums_over_samples(
    grad: NDArray[np.float64],
    factors: NDArray[np.float64],
    slots: NDArray[np.int64],
    run: int,
    outs: NDArray[np.int64],
    width: int,
) -> None:
    """:func:`lanes_push` of runs of ``run`` terms over the transposed per-sample factors
    ``factors`` (see :func:`_transpose_factors`): unit ``i``'s run into the consecutive shared
    slots from ``slots[i]``, its unit slot ``outs[i]``. All at once in register tiles
    (:func:`._tiles.multiply_accumulate`); every slot's sum still runs over the samples last
    one first. The units push into different slots, so their order does not matter."""
    samples = (width - 1 - np.arange(width)) * run  # the factors' rows, last sample first
    multiply_accumulate(grad, slots, factors, samples, grad, outs + (width - 1), -1, run, width)


@_jit("boolean(uint32[:, ::1], boolean[::1], int64, int64, int64, int64, int64)")
def _units_share_a_run(
    terms: NDArray[np.uint32],
    needs: NDArray[np.bool_],
    t0: int,
    n: int,
    first_unit: int,
    end_unit: int,
    run: int,
) -> bool:
    """Whether every unit of ``first_unit..end_unit-1`` (``n`` terms each from ``t0``) ends in a
    run of exactly ``run`` terms (see :func:`_shared_run`) with the same per-sample factors."""
    top = t0 + end_unit * n - run
    for u in range(first_unit, end_unit):
        t = t0 + u * n
        if _shared_run(terms, needs, t + n - 1, t) != run or not _same_factors(
            terms, t + n - run, top, run, run
        ):
            return False
    return True


@_jit(
    "int64(float64[::1], float64[::1], uint32[:, ::1], boolean[::1], int64, int64, int64, int64, int64, int64, "
    "float64[::1])"
)
def _final_runs_at_once(
    val: NDArray[np.float64],
    grad: NDArray[np.float64],
    terms: NDArray[np.uint32],
    needs: NDArray[np.bool_],
    t0: int,
    n: int,
    lo: int,
    width: int,
    first_unit: int,
    end_unit: int,
    factors: NDArray[np.float64],
) -> int:
    """The sums of every unit's final run of terms, when all units end in runs over the same
    factors (:func:`_units_share_a_run`): all units at once (:func:`_sums_over_samples`).
    Returns the run's length (0: not done). Only for a distinct group: its units push into
    different slots, so their order does not matter; each slot still sums last sample first."""
    top = t0 + (end_unit - 1) * n
    run = _shared_run(terms, needs, top + n - 1, top)
    if run < RUN or not _units_share_a_run(terms, needs, t0, n, first_unit, end_unit, run):
        return 0
    _transpose_factors(val, terms, top + n - run, run, width, factors)
    units = np.arange(first_unit, end_unit)
    slots = np.empty(end_unit - first_unit, np.int64)
    for i in range(slots.shape[0]):
        slots[i] = terms[t0 + (units[i] + 1) * n - run, 0] & SLOT
    _sums_over_samples(grad, factors, slots, run, lo + units * width, width)
    return run


@_jit("boolean(uint32[:, ::1], boolean[::1], int64)")
def _four_shared_sums(terms: NDArray[np.uint32], needs: NDArray[np.bool_], k: int) -> bool:
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
def _four_sums(
    val: NDArray[np.float64],
    grad: NDArray[np.float64],
    a0: int,
    a1: int,
    a2: int,
    a3: int,
    c0: int,
    c1: int,
    c2: int,
    c3: int,
    o0: int,
    o1: int,
    o2: int,
    o3: int,
    lanes: int,
) -> None:
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
def _pushes_into_shared(
    terms: NDArray[np.uint32], needs: NDArray[np.bool_], k: int, stride: int, side: int
) -> bool:
    """Whether place ``side`` of terms ``k, k - stride, k - 2 stride, k - 3 stride`` is a shared
    slot that needs a grad, in all four."""
    for i in range(4):
        x = terms[k - i * stride, side]
        if x & LANE or not needs[x & SLOT]:
            return False
    return True


@_jit("void(float64[::1], uint32[:, ::1], int64, int64, int64, int64, int64, int64)")
def _fold_terms(
    val: NDArray[np.float64],
    terms: NDArray[np.uint32],
    t: int,
    first_position: int,
    end_position: int,
    out: int,
    s0: int,
    s1: int,
) -> None:
    """Fold the unit's terms at positions ``first_position..end_position-1`` (its terms from row
    ``t``) into its slots ``out + s``, left to right; position 0 is stored, not added."""
    k = t + first_position
    while k < t + end_position:
        if k + 4 <= t + end_position and _four_weighted(terms, k):
            _lanes_four_products(val, terms, k, out, s0, s1, k == t)
            k += 4
        else:
            lanes_product(val, terms[k, 0], terms[k, 1], out, s0, s1, k == t)
            k += 1


@_jit("void(float64[::1], uint32[:, ::1], int64, int64, int64, int64, int64, int64, int64, int64)")
def _four_units_fold(
    val: NDArray[np.float64],
    terms: NDArray[np.uint32],
    t: int,
    n: int,
    out: int,
    width: int,
    start: int,
    end: int,
    s0: int,
    s1: int,
) -> None:
    """:func:`_fold_terms` of positions ``start..end-1`` of the four units from row ``t``, which
    read alike there (:func:`._plan._four_units_run`), at once, in register tiles
    (:func:`._tiles.multiply_accumulate`): each place's row is loaded once for the four units,
    and the four sums stay in registers until the end. Each unit still adds its terms left to
    right. The sums must hold the terms before ``start`` already (``start > 0``)."""
    steps = end - start
    places, weights = np.empty(steps, np.int64), np.empty(4 * steps)
    for j in range(steps):
        places[j] = _lane_and_weight(terms, t + start + j)[0] + s0
        for u in range(4):
            weights[u * steps + j] = val[_lane_and_weight(terms, t + u * n + start + j)[1]]
    units = np.arange(4)
    multiply_accumulate(val, out + s0 + units * width, val, places, weights, units * steps, 1, s1 - s0, steps)


@_jit(
    "int64(float64[::1], uint32[:, ::1], float64[::1], int64[:, ::1], int64, int64, int64, int64, int64, int64, "
    "int64, int64)"
)
def lanes_forward(
    val: NDArray[np.float64],
    terms: NDArray[np.uint32],
    const: NDArray[np.float64],
    plan: NDArray[np.int64],
    kind: int,
    lo: int,
    hi: int,
    n: int,
    t: int,
    width: int,
    s0: int,
    s1: int,
) -> int:
    """Forward of a group of lane units in samples ``s0 <= s < s1``: each unit's terms folded
    left to right in every sample, as :func:`forward` folds one node's; four units that read
    alike over enough positions (``plan`` records which, :mod:`._plan`) fold those positions at once (:func:`_four_units_fold`). A failing slot
    (units checked in order), or -1."""
    out = lo
    while out < hi:
        units = 1
        if kind == DOT_PLAIN or kind == DOT or kind == SUM:
            # a plain term is a product with ONE: x * 1.0 is x, bit for bit
            start, end = plan[t, FOLD_START], plan[t, FOLD_END]
            if end > start:
                units = 4
                start = max(start, 1)  # the first term is stored, not added: :func:`_fold_terms`
                for u in range(4):
                    _fold_terms(val, terms, t + u * n, 0, start, out + u * width, s0, s1)
                _four_units_fold(val, terms, t, n, out, width, start, end, s0, s1)
                for u in range(4):
                    _fold_terms(val, terms, t + u * n, end, n, out + u * width, s0, s1)
            else:
                _fold_terms(val, terms, t, 0, n, out, s0, s1)
            for u in range(units):
                failed = _first_non_finite(val, out + u * width, s0, s1)
                if failed >= 0:
                    return failed
        else:
            x, y = terms[t, 0], terms[t, 1]
            ix, sx, iy, sy = np.int64(x & SLOT), np.int64(x >> 31), np.int64(y & SLOT), np.int64(y >> 31)
            failed = op_lanes_forward(kind, val, ix, sx, iy, sy, const[out], out, s0, s1)
            if failed >= 0:
                return failed
        out += units * width
        t += units * n
    return -1


@_jit(
    "void(float64[::1], float64[::1], uint32[:, ::1], float64[::1], boolean[::1], int64[:, ::1], int64, int64, "
    "int64, int64, int64, int64, int64, int64)"
)
def lanes_backward_per_sample(
    val: NDArray[np.float64],
    grad: NDArray[np.float64],
    terms: NDArray[np.uint32],
    const: NDArray[np.float64],
    needs: NDArray[np.bool_],
    plan: NDArray[np.int64],
    kind: int,
    lo: int,
    hi: int,
    n: int,
    t0: int,
    width: int,
    s0: int,
    s1: int,
) -> None:
    """Backward of a group of lane units into per-sample slots, samples ``s0 <= s < s1``: units
    in reverse, each unit's terms in reverse (first factor, then second); a primitive's pushes
    sample by sample, last sample first, as :func:`backward` pushes one node's. Every sample's
    pushes are its own: blocks of samples may run in any order, or at once. All the units
    left, or else four, that push alike (``plan`` records how many, :mod:`._plan`) push all at once (:func:`_aligned_units_push`): each place still hears
    from the units in their order."""
    t = t0 + (hi - lo) // width * n
    out = hi
    while out > lo:
        out -= width
        t -= n
        if kind == DOT_PLAIN or kind == DOT or kind == SUM:
            count = plan[t, PUSHING]
            if count > 1:
                _aligned_units_push(val, grad, terms, needs, t, n, out, width, count, s0, s1)
                out -= (count - 1) * width
                t -= (count - 1) * n
                continue
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
    val: NDArray[np.float64],
    grad: NDArray[np.float64],
    terms: NDArray[np.uint32],
    const: NDArray[np.float64],
    needs: NDArray[np.bool_],
    kind: int,
    lo: int,
    n: int,
    t0: int,
    width: int,
    distinct: bool,
    first_unit: int,
    end_unit: int,
    factors: NDArray[np.float64],
) -> None:
    """Backward of the lane units ``first_unit..end_unit-1`` of a group into slots all samples
    share (the parameters): units in reverse, each unit's terms in reverse; each slot's sum
    over samples last sample first. In a ``distinct`` group (see _program) no two units push
    into one slot, so the units' order does not matter: their final runs over the same
    factors sum all units at once (:func:`_final_runs_at_once`), the rest across all units at
    once where they push alike (:func:`_sums_across_units`), else four units at a time.

    ``factors``: scratch for :func:`_sums_over_samples` and :func:`_sums_across_units`, at
    least ``width * max(n, units)`` long.
    """
    units = end_unit
    is_sum = kind == DOT_PLAIN or kind == DOT or kind == SUM
    paired = 0  # how many of each unit's last terms :func:`_final_runs_at_once` summed
    if distinct and is_sum and units - first_unit > 1:
        paired = _final_runs_at_once(val, grad, terms, needs, t0, n, lo, width, first_unit, units, factors)
        rest = n - paired
        if units - first_unit >= RUN and _sums_across_units(
            val, grad, terms, needs, t0, n, lo, width, first_unit, units, rest, factors
        ):
            return
    if distinct and is_sum and n < RUN:
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
            k = t + n - 1 - paired
            while k >= t:
                # Terms whose shared first factors sum side by side: a run, or four.
                side_by_side = _shared_run(terms, needs, k, t)
                if side_by_side >= RUN:
                    first = k - side_by_side + 1
                    if not _same_factors(terms, first, transposed, side_by_side, transposed_run):
                        _transpose_factors(val, terms, first, side_by_side, width, factors)
                        transposed, transposed_run = first, side_by_side
                    slot = np.array([terms[first, 0] & SLOT], np.int64)
                    _sums_over_samples(grad, factors, slot, side_by_side, np.array([out]), width)
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
