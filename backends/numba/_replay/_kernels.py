"""The replay's kernels: the loops that run every step over a :class:`~._program.Program`.

:func:`run` is one training step: write the batch into the leaves, :func:`forward`,
:func:`backward`, :func:`update`, write the parameters and grads back to the tape.
Pure functions over the program's arrays (layout: :mod:`backends.numba._replay._program`).
"""

from __future__ import annotations

import math

import numpy as np

from backends.numba._jit import jit as _jit
from backends.numba._lowering import fails as op_fails
from backends.numba._lowering import forward as op_forward
from backends.numba._lowering import partials as op_partials
from backends.numba._replay._program import (
    DOT,
    DOT_PLAIN,
    HI,
    KIND,
    LANE,
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
    "int64[::1], float64[::1], float64[:, ::1], float64[:, ::1], float64[::1])"
)


# --- lane units: one loop over samples per node and term (see _program) ----------------------------
@_jit("void(float64[::1], uint32, uint32, int64, int64, boolean)")
def lanes_product(val, a, c, out_slot, lanes, first):  # type: ignore[no-untyped-def]
    """``val[out + s] (+)= a(s) * c(s)`` for every sample ``s``; a place without LANE is one slot for all."""
    # unsigned indices: Numba emits no negative-index wraparound, and the loops vectorise
    ia, ic, out, width = np.uint64(a & SLOT), np.uint64(c & SLOT), np.uint64(out_slot), np.uint64(lanes)
    if a & LANE and c & LANE:
        if first:
            for s in range(width):
                val[out + s] = val[ia + s] * val[ic + s]
        else:
            for s in range(width):
                val[out + s] = val[out + s] + val[ia + s] * val[ic + s]
    elif a & LANE or c & LANE:
        lane, k = (ia, val[ic]) if a & LANE else (ic, val[ia])
        if first:
            for s in range(width):
                val[out + s] = val[lane + s] * k
        else:
            for s in range(width):
                val[out + s] = val[out + s] + val[lane + s] * k
    else:
        p = val[ia] * val[ic]
        for s in range(width):
            val[out + s] = p if first else val[out + s] + p


@_jit("void(float64[::1], float64[::1], uint32, uint32, int64, int64)")
def lanes_push(val, grad, target, factor, out_slot, lanes):  # type: ignore[no-untyped-def]
    """``grad[target(s)] += factor(s) * grad[out + s]``; into one shared slot, last sample first,
    as the eager loop adds (it visits the samples' nodes in reverse creation order)."""
    it, ic = np.uint64(target & SLOT), np.uint64(factor & SLOT)
    out, width = np.uint64(out_slot), np.uint64(lanes)
    if target & LANE:
        if factor & LANE:
            for s in range(width):
                grad[it + s] += val[ic + s] * grad[out + s]
        else:
            k = val[ic]
            for s in range(width):
                grad[it + s] += k * grad[out + s]
    else:
        acc = grad[it]
        if factor & LANE:
            for s in range(width, 0, -1):
                acc = acc + val[ic + s - 1] * grad[out + s - 1]
        else:
            k = val[ic]
            for s in range(width, 0, -1):
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


@_jit("void(float64[::1], float64[::1], uint32[:, ::1], int64, int64, int64)")
def _push_four_shared_sums(val, grad, terms, k, out_slot, lanes):  # type: ignore[no-untyped-def]
    """:func:`lanes_push` of four terms' shared first factors at once: four independent sums,
    each still over the samples last one first, so each slot adds in the same order."""
    a0, a1 = np.uint64(terms[k, 0] & SLOT), np.uint64(terms[k - 1, 0] & SLOT)
    a2, a3 = np.uint64(terms[k - 2, 0] & SLOT), np.uint64(terms[k - 3, 0] & SLOT)
    c0, c1 = np.uint64(terms[k, 1] & SLOT), np.uint64(terms[k - 1, 1] & SLOT)
    c2, c3 = np.uint64(terms[k - 2, 1] & SLOT), np.uint64(terms[k - 3, 1] & SLOT)
    out, width = np.uint64(out_slot), np.uint64(lanes)
    s0, s1, s2, s3 = grad[a0], grad[a1], grad[a2], grad[a3]
    for s in range(width, 0, -1):
        g = grad[out + s - 1]
        s0 = s0 + val[c0 + s - 1] * g
        s1 = s1 + val[c1 + s - 1] * g
        s2 = s2 + val[c2 + s - 1] * g
        s3 = s3 + val[c3 + s - 1] * g
    grad[a0], grad[a1], grad[a2], grad[a3] = s0, s1, s2, s3


@_jit("int64(float64[::1], uint32[:, ::1], float64[::1], int64, int64, int64, int64, int64, int64)")
def lanes_forward(val, terms, const, kind, lo, hi, n, t, width):  # type: ignore[no-untyped-def]
    """Forward of a group of lane units: each unit's terms folded left to right in every sample,
    as :func:`forward` folds one node's. The first failing slot, or -1."""
    for out in range(lo, hi, width):
        if kind == DOT_PLAIN or kind == DOT or kind == SUM:
            # a plain term is a product with ONE: x * 1.0 is x, bit for bit
            lanes_product(val, terms[t, 0], terms[t, 1], out, width, True)
            for k in range(t + 1, t + n):
                lanes_product(val, terms[k, 0], terms[k, 1], out, width, False)
            for s in range(width):
                if not -_INF < val[out + s] < _INF:
                    return out + s
        else:
            x, y, c = terms[t, 0], terms[t, 1], const[out]
            ix, sx, iy, sy = np.int64(x & SLOT), np.int64(x >> 31), np.int64(y & SLOT), np.int64(y >> 31)
            for s in range(width):
                xv, yv = val[ix + sx * s], val[iy + sy * s]
                result = op_forward(kind, xv, yv, c)
                if op_fails(kind, xv, yv, c, result):
                    return out + s
                val[out + s] = result
        t += n
    return -1


@_jit(
    "void(float64[::1], float64[::1], uint32[:, ::1], float64[::1], boolean[::1], int64, int64, int64, int64, "
    "int64, int64, float64[::1])"
)
def lanes_backward(val, grad, terms, const, needs, kind, lo, hi, n, t0, width, factors):  # type: ignore[no-untyped-def]
    """Backward of a group of lane units, units in reverse, each unit's terms in reverse; a
    primitive's pushes sample by sample, last sample first, as :func:`backward` pushes one node's.

    ``factors``: scratch for :func:`_sums_across_terms`, at least ``width * n`` long.
    """
    t = t0 + (hi - lo) // width * n
    transposed = -1  # the first term whose per-sample factors ``factors`` holds, sample by sample
    transposed_run = 0
    for out in range(hi - width, lo - 1, -width):
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
                    _push_four_shared_sums(val, grad, terms, k, out, width)
                else:
                    side_by_side = 0
                if side_by_side:
                    for i in range(side_by_side):  # then their per-sample factors, in term order
                        a, c = terms[k - i, 0], terms[k - i, 1]
                        if needs[c & SLOT]:
                            lanes_push(val, grad, c, a, out, width)
                    k -= side_by_side
                    continue
                a, c = terms[k, 0], terms[k, 1]
                if needs[a & SLOT]:
                    lanes_push(val, grad, a, c, out, width)
                if needs[c & SLOT]:
                    lanes_push(val, grad, c, a, out, width)
                k -= 1
        else:
            x, y, c = terms[t, 0], terms[t, 1], const[out]
            ix, sx, iy, sy = np.int64(x & SLOT), np.int64(x >> 31), np.int64(y & SLOT), np.int64(y >> 31)
            for s in range(width - 1, -1, -1):
                i, j = ix + sx * s, iy + sy * s
                di, dj = op_partials(kind, val[i], val[j], c, val[out + s])
                gv = grad[out + s]
                grad[i] += di * gv
                grad[j] += dj * gv


@_jit("int64(float64[::1], int64[:, ::1], uint32[:, ::1], float64[::1])")
def forward(val, groups, terms, const):  # type: ignore[no-untyped-def]
    """Fill every node's slot of ``val``, group by group; the first slot that fails a domain or
    overflow check (spec.ops; the failing value is not stored), or -1."""
    for g in range(groups.shape[0]):
        kind, lo, hi, n, t = groups[g, KIND], groups[g, LO], groups[g, HI], groups[g, N], groups[g, TERM]
        if groups[g, WIDTH] > 1:
            failed = lanes_forward(val, terms, const, kind, lo, hi, n, t, groups[g, WIDTH])
            if failed >= 0:
                return failed
        elif kind == DOT_PLAIN or kind == DOT:
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


@_jit(
    "void(float64[::1], float64[::1], int64[:, ::1], uint32[:, ::1], float64[::1], boolean[::1], int64, "
    "float64[::1])"
)
def backward(val, grad, groups, terms, const, needs, root, factors):  # type: ignore[no-untyped-def]
    """Fill ``grad`` (spec.interface's semantics, leaves starting from 0): groups in reverse,
    each group's nodes in reverse, each node pushing ``partial * grad`` to its terms in reverse."""
    for i in range(grad.shape[0]):
        grad[i] = 0.0
    grad[root] = 1.0
    for g in range(groups.shape[0] - 1, -1, -1):
        if groups[g, NEEDS] == 0:
            continue
        if groups[g, WIDTH] > 1:
            lanes_backward(
                val,
                grad,
                terms,
                const,
                needs,
                groups[g, KIND],
                groups[g, LO],
                groups[g, HI],
                groups[g, N],
                groups[g, TERM],
                groups[g, WIDTH],
                factors,
            )
            continue
        kind, lo, hi, n, t0, mode = (
            groups[g, KIND],
            groups[g, LO],
            groups[g, HI],
            groups[g, N],
            groups[g, TERM],
            groups[g, MODE],
        )
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
):  # type: ignore[no-untyped-def]
    """One training step: leaves, forward, backward, update, parameters and grads back to the tape.

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
    failed = forward(val, groups, terms, const)
    if failed >= 0:
        return 1, failed, 0.0
    loss = val[root]
    backward(val, grad, groups, terms, const, needs, root, factors)
    bad = update(val, grad, P, constants, state, scratch)
    if bad >= 0:  # update() changed nothing but its scratch
        return 2, bad, scratch[0, 0]
    for i in range(P):
        tape_data[parameter_nodes[i]] = val[i]
        tape_grad[parameter_nodes[i]] = grad[i]
    return 0, root, loss
