"""The replay's kernels: the loops that run every step over a :class:`~._program.Program`.

:func:`run` is one training step: write the batch into the leaves, :func:`forward`,
:func:`backward`, :func:`update`, write the parameters and grads back to the tape.
Pure functions over the program's arrays (layout: :mod:`backends.numba._replay._program`).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import prange
from numpy.typing import NDArray

from backends.numba._jit import Kernel, variant
from backends.numba._jit import jit as _jit
from backends.numba._jit import jit_inline as _jit_inline
from backends.numba._jit import jit_threaded as _jit_threaded
from backends.numba._lowering import fails as op_fails
from backends.numba._lowering import forward as op_forward
from backends.numba._lowering import partials as op_partials
from backends.numba._replay._lanes import lanes_backward_per_sample, lanes_backward_shared, lanes_forward
from backends.numba._replay._program import (
    BOTH_FACTORS,
    DISTINCT,
    DOT,
    DOT_PLAIN,
    FIRST_FACTOR,
    FORWARD_FAILED,
    HI,
    KIND,
    LINE,
    LO,
    MODE,
    NEEDS,
    SHARED,
    STEPPED,
    SUM,
    TERM,
    UPDATE_FAILED,
    WIDTH,
    N,
)
from spec.compile import UpdateRule

__all__ = ["backward", "forward", "run", "run_threaded", "step_kernel", "update"]

_INF = math.inf
#: the update kinds of spec.compile.UpdateRule, as constants Numba freezes into :func:`update`
_SGD, _MOMENTUM, _ADAM = UpdateRule.SGD, UpdateRule.MOMENTUM, UpdateRule.ADAM

_RUN_SIGNATURE = (
    "Tuple((int64, int64, float64))(float64[::1], float64[::1], int64[:, ::1], uint32[:, ::1], "
    "float64[::1], boolean[::1], int64[::1], int64[:, ::1], float64[::1], float64[::1], float64[::1], float64[::1], "
    "int64[::1], float64[::1], float64[:, ::1], float64[:, ::1], float64[::1], int64)"
)


#: Whether :func:`forward`, :func:`backward` and :func:`run` run the per-sample work on Numba's
#: threads: False here; True in the kernels :func:`run_threaded` builds. A branch on it is
#: pruned before typing, so a one-thread run never compiles the threaded kernels.
THREADED = False

#: the most samples a block of a lane segment holds: on this machine the per-sample passes of
#: a layer of 64 ran about a third faster in blocks of 500 than in one of 1,000
SAMPLE_BLOCK = 512


@_jit_inline
def group_row(groups: NDArray[np.int64], h: int) -> tuple[int, int, int, int, int]:
    """Group ``h``'s kind, first and end slot, terms a unit and first term row."""
    return groups[h, KIND], groups[h, LO], groups[h, HI], groups[h, N], groups[h, TERM]


@_jit("int64(int64, int64)")
def sample_blocks(width: int, threads: int) -> int:
    """How many blocks of samples a lane segment runs on: one a thread at least, of at most
    :data:`SAMPLE_BLOCK` samples each."""
    return max(threads, (width + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK)


@_jit("UniTuple(int64, 2)(int64, int64, int64, int64)")
def equal_part(count: int, parts: int, b: int, multiple: int) -> tuple[int, int]:
    """Part ``b`` of ``parts`` (nearly) equal parts of ``0..count-1``, as ``(first, end)``; the
    parts' size a multiple of ``multiple``."""
    size = ((count + parts - 1) // parts + multiple - 1) // multiple * multiple
    first = min(b * size, count)
    return first, min(first + size, count)


@_jit("int64(int64[:, ::1], int64)")
def segment_end(groups: NDArray[np.int64], g: int) -> int:
    """The group after the segment that starts at group ``g``: the run of groups of ``g``'s width."""
    e = g + 1
    while e < groups.shape[0] and groups[e, WIDTH] == groups[g, WIDTH]:
        e += 1
    return e


@_jit("int64(int64[:, ::1], int64)")
def segment_start(groups: NDArray[np.int64], g: int) -> int:
    """The first group of the segment that ends at group ``g``."""
    b = g
    while b > 0 and groups[b - 1, WIDTH] == groups[g, WIDTH]:
        b -= 1
    return b


@_jit("int64(float64[::1], uint32[:, ::1], float64[::1], int64, int64, int64, int64, int64)")
def _nodes_forward(
    val: NDArray[np.float64],
    terms: NDArray[np.uint32],
    const: NDArray[np.float64],
    kind: int,
    lo: int,
    hi: int,
    n: int,
    t: int,
) -> int:
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


@_jit(
    "int64(float64[::1], int64[:, ::1], uint32[:, ::1], float64[::1], int64[:, ::1], int64, int64, int64, int64)"
)
def _segment_forward(
    val: NDArray[np.float64],
    groups: NDArray[np.int64],
    terms: NDArray[np.uint32],
    const: NDArray[np.float64],
    plan: NDArray[np.int64],
    first: int,
    end: int,
    s0: int,
    s1: int,
) -> int:
    """Forward of the lane groups ``first..end-1`` in samples ``s0..s1-1``; a failing slot, or -1."""
    width = groups[first, WIDTH]
    for h in range(first, end):
        kind, lo, hi, n, t = group_row(groups, h)
        failed = lanes_forward(val, terms, const, plan, kind, lo, hi, n, t, width, s0, s1)
        if failed >= 0:
            return failed
    return -1


@_jit_threaded(
    "int64(float64[::1], int64[:, ::1], uint32[:, ::1], float64[::1], int64[:, ::1], int64, int64, int64)"
)
def _segment_forward_threaded(
    val: NDArray[np.float64],
    groups: NDArray[np.int64],
    terms: NDArray[np.uint32],
    const: NDArray[np.float64],
    plan: NDArray[np.int64],
    first: int,
    end: int,
    blocks: int,
) -> int:
    """:func:`_segment_forward` on ``blocks`` blocks of samples, at once on Numba's threads."""
    width = groups[first, WIDTH]
    failed = np.full(blocks, -1, np.int64)
    for b in prange(blocks):
        s0, s1 = equal_part(width, blocks, b, LINE)
        failed[b] = _segment_forward(val, groups, terms, const, plan, first, end, s0, s1)
    return failed.max()  # type: ignore[no-any-return]


_FORWARD_SIGNATURE = "int64(float64[::1], int64[:, ::1], uint32[:, ::1], float64[::1], int64[:, ::1], int64)"


@_jit(_FORWARD_SIGNATURE)
def forward(
    val: NDArray[np.float64],
    groups: NDArray[np.int64],
    terms: NDArray[np.uint32],
    const: NDArray[np.float64],
    plan: NDArray[np.int64],
    threads: int,
) -> int:
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
                kind, lo, hi, n, t = group_row(groups, h)
                failed = _nodes_forward(val, terms, const, kind, lo, hi, n, t)
                if failed >= 0:
                    return failed
        elif THREADED:
            failed = _segment_forward_threaded(
                val, groups, terms, const, plan, g, end, sample_blocks(width, threads)
            )
        else:
            blocks = sample_blocks(width, 1)
            for b in range(blocks):
                s0, s1 = equal_part(width, blocks, b, LINE)
                failed = _segment_forward(val, groups, terms, const, plan, g, end, s0, s1)
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
def _nodes_backward(
    val: NDArray[np.float64],
    grad: NDArray[np.float64],
    terms: NDArray[np.uint32],
    needs: NDArray[np.bool_],
    const: NDArray[np.float64],
    kind: int,
    lo: int,
    hi: int,
    n: int,
    t0: int,
    mode: int,
) -> None:
    """Backward of a group of single nodes ``lo..hi-1``, their terms from ``t0``."""
    t = t0 + (hi - lo) * n
    if kind == DOT or kind == DOT_PLAIN:
        skip = 1 if kind == DOT_PLAIN else 0
        for v in range(hi - 1, lo - 1, -1):
            t -= n
            gv = grad[v]
            if mode == FIRST_FACTOR:
                for k in range(t + n - 1, t + skip - 1, -1):
                    grad[terms[k, 0]] += val[terms[k, 1]] * gv
            elif mode == BOTH_FACTORS:
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
    "void(float64[::1], float64[::1], int64[:, ::1], uint32[:, ::1], float64[::1], boolean[::1], int64[:, ::1], "
    "int64, int64, int64, int64)"
)
def _segment_per_sample(
    val: NDArray[np.float64],
    grad: NDArray[np.float64],
    groups: NDArray[np.int64],
    terms: NDArray[np.uint32],
    const: NDArray[np.float64],
    needs: NDArray[np.bool_],
    plan: NDArray[np.int64],
    last: int,
    first: int,
    s0: int,
    s1: int,
) -> None:
    """The per-sample pushes of the lane groups ``last`` down to ``first`` in samples ``s0..s1-1``."""
    width = groups[last, WIDTH]
    for h in range(last, first - 1, -1):
        if groups[h, NEEDS]:
            kind, lo, hi, n, t = group_row(groups, h)
            lanes_backward_per_sample(val, grad, terms, const, needs, plan, kind, lo, hi, n, t, width, s0, s1)


@_jit_threaded(
    "void(float64[::1], float64[::1], int64[:, ::1], uint32[:, ::1], float64[::1], boolean[::1], int64[:, ::1], "
    "int64, int64, int64)"
)
def _segment_per_sample_threaded(
    val: NDArray[np.float64],
    grad: NDArray[np.float64],
    groups: NDArray[np.int64],
    terms: NDArray[np.uint32],
    const: NDArray[np.float64],
    needs: NDArray[np.bool_],
    plan: NDArray[np.int64],
    last: int,
    first: int,
    blocks: int,
) -> None:
    """:func:`_segment_per_sample` on ``blocks`` blocks of samples, at once on Numba's threads."""
    width = groups[last, WIDTH]
    for b in prange(blocks):
        s0, s1 = equal_part(width, blocks, b, LINE)
        _segment_per_sample(val, grad, groups, terms, const, needs, plan, last, first, s0, s1)


@_jit_threaded(
    "void(float64[::1], float64[::1], uint32[:, ::1], float64[::1], boolean[::1], int64, int64, int64, int64, "
    "int64, int64, int64, float64[::1])"
)
def _units_shared_threaded(
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
    units: int,
    threads: int,
    factors: NDArray[np.float64],
) -> None:
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


@_jit_threaded("void(float64[::1], int64)")
def _zeros_threaded(values: NDArray[np.float64], threads: int) -> None:
    """``values[:] = 0.0`` in ``threads`` parts at once (parts of whole cache lines)."""
    for b in prange(threads):
        first, end = equal_part(values.shape[0], threads, b, LINE)
        values[first:end] = 0.0


_BACKWARD_SIGNATURE = (
    "void(float64[::1], float64[::1], int64[:, ::1], uint32[:, ::1], float64[::1], boolean[::1], int64[:, ::1], "
    "int64, int64, float64[::1])"
)


@_jit(_BACKWARD_SIGNATURE)
def backward(
    val: NDArray[np.float64],
    grad: NDArray[np.float64],
    groups: NDArray[np.int64],
    terms: NDArray[np.uint32],
    const: NDArray[np.float64],
    needs: NDArray[np.bool_],
    plan: NDArray[np.int64],
    root: int,
    threads: int,
    factors: NDArray[np.float64],
) -> None:
    """Fill ``grad`` (spec.interface's semantics, leaves starting from 0): groups in reverse,
    each group's nodes in reverse, each node pushing ``partial * grad`` to its terms in reverse.

    A segment of lane groups pushes in two passes: into per-sample slots (block of samples
    by block, as forward runs them), then into the slots all samples share. Each slot still
    receives its pushes in the order of group by group: a per-sample slot only its own
    sample's, and a shared slot only in the second pass (the order check replays both). A
    group with no push into a shared slot (``plan``'s SHARED, :mod:`._plan`) has no second pass.
    """
    if THREADED:
        _zeros_threaded(grad, threads)
    else:
        grad[:] = 0.0
    grad[root] = 1.0
    g = groups.shape[0] - 1
    while g >= 0:
        width, start = groups[g, WIDTH], segment_start(groups, g)
        if width == 1:
            for h in range(g, start - 1, -1):
                if groups[h, NEEDS]:
                    kind, lo, hi, n, t = group_row(groups, h)
                    _nodes_backward(val, grad, terms, needs, const, kind, lo, hi, n, t, groups[h, MODE])
        else:
            blocks = sample_blocks(width, threads)
            if THREADED:
                _segment_per_sample_threaded(val, grad, groups, terms, const, needs, plan, g, start, blocks)
            else:
                for b in range(blocks):
                    s0, s1 = equal_part(width, blocks, b, LINE)
                    _segment_per_sample(val, grad, groups, terms, const, needs, plan, g, start, s0, s1)
            for h in range(g, start - 1, -1):
                if groups[h, NEEDS] == 0 or plan[groups[h, TERM], SHARED] == 0:
                    continue
                kind, lo, hi, n, t = group_row(groups, h)
                units = (hi - lo) // width
                if THREADED and groups[h, DISTINCT]:
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
def update(
    val: NDArray[np.float64],
    grad: NDArray[np.float64],
    P: int,
    constants: NDArray[np.float64],
    state: NDArray[np.float64],
    scratch: NDArray[np.float64],
) -> int:
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
        if kind == _SGD:
            new = val[i] - lr * g
        elif kind == _MOMENTUM:
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
        if kind != _SGD:
            state[0, i] = scratch[1, i]
        if kind == _ADAM:
            state[1, i] = scratch[2, i]
    return -1


@_jit("void(float64[::1], int64, float64[::1], int64)")
def _write_columns(val: NDArray[np.float64], first: int, rows: NDArray[np.float64], n: int) -> None:
    """Write ``n`` samples' rows (``rows``, sample by sample) into the slots from ``first``,
    column by column: column ``j`` of sample ``s`` at ``first + j * n + s``."""
    columns = rows.shape[0] // n
    for s in range(n):
        for j in range(columns):
            val[first + j * n + s] = rows[s * columns + j]


@_jit(_RUN_SIGNATURE)
def run(
    val: NDArray[np.float64],
    grad: NDArray[np.float64],
    groups: NDArray[np.int64],
    terms: NDArray[np.uint32],
    const: NDArray[np.float64],
    needs: NDArray[np.bool_],
    meta: NDArray[np.int64],
    plan: NDArray[np.int64],
    inputs: NDArray[np.float64],
    targets: NDArray[np.float64],
    tape_data: NDArray[np.float64],
    tape_grad: NDArray[np.float64],
    parameter_nodes: NDArray[np.int64],
    constants: NDArray[np.float64],
    state: NDArray[np.float64],
    scratch: NDArray[np.float64],
    factors: NDArray[np.float64],
    threads: int,
) -> tuple[int, int, float]:
    """One training step: leaves, forward, backward, update, parameters and grads back to the tape,
    on one thread (``threads`` 1); :func:`run_threaded`'s on ``threads`` (see :func:`forward`
    and :func:`backward`).

    Returns ``(0, root slot, loss)``; ``(1, slot, 0)`` when forward failed at ``slot``;
    ``(2, i, value)`` when parameter ``i`` would become the non-finite ``value``. A failed
    step changes no parameter, grad or state.
    """
    P, first_input, first_target, root, n = meta[0], meta[1], meta[2], meta[3], meta[4]
    for i in range(P):
        val[i] = tape_data[parameter_nodes[i]]
    _write_columns(val, first_input, inputs, n)
    _write_columns(val, first_target, targets, n)
    failed = forward(val, groups, terms, const, plan, threads)
    if failed >= 0:
        return FORWARD_FAILED, failed, 0.0
    loss = val[root]
    backward(val, grad, groups, terms, const, needs, plan, root, threads, factors)
    bad = update(val, grad, P, constants, state, scratch)
    if bad >= 0:  # update() changed nothing but its scratch
        return UPDATE_FAILED, bad, scratch[0, 0]
    for i in range(P):
        tape_data[parameter_nodes[i]] = val[i]
        tape_grad[parameter_nodes[i]] = grad[i]
    return STEPPED, root, loss


def step_kernel(threads: int) -> Kernel[..., tuple[int, int, float]]:
    """:func:`run` for one thread, else :func:`run_threaded`'s, compiled or loaded now."""
    kernel = run if threads == 1 else run_threaded()
    kernel.load()
    return kernel


@functools.cache
def run_threaded() -> Kernel[..., tuple[int, int, float]]:
    """:func:`run` for ``threads > 1``, compiled (or loaded) at the first call of this function,
    with :func:`forward` and :func:`backward` calling the threaded kernels."""
    threaded = {"THREADED": True}
    forward_threaded = _jit(_FORWARD_SIGNATURE)(variant(forward.py_func, "forward_threaded", **threaded))
    backward_threaded = _jit(_BACKWARD_SIGNATURE)(variant(backward.py_func, "backward_threaded", **threaded))
    return _jit(_RUN_SIGNATURE)(
        variant(run.py_func, "run_threaded", forward=forward_threaded, backward=backward_threaded, **threaded)
    )
