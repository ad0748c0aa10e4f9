"""The replay's kernels: the loops that run every step over a :class:`~._program.Program`.

:func:`run` is one training step: write the batch into the leaves, :func:`forward`,
:func:`backward`, :func:`update`, write the parameters and grads back to the tape.
Pure functions over the program's arrays (layout: :mod:`backends.numba._replay._program`).
"""

from __future__ import annotations

import math

from backends.numba._jit import jit as _jit
from backends.numba._lowering import fails as op_fails
from backends.numba._lowering import forward as op_forward
from backends.numba._lowering import partials as op_partials
from backends.numba._replay._program import DOT, DOT_PLAIN, HI, KIND, LO, MODE, NEEDS, SUM, TERM, N

__all__ = ["backward", "forward", "run", "update"]

_INF = math.inf

_RUN_SIGNATURE = (
    "Tuple((int64, int64, float64))(float64[::1], float64[::1], int64[:, ::1], uint32[:, ::1], "
    "float64[::1], boolean[::1], int64[::1], float64[::1], float64[::1], float64[::1], float64[::1], "
    "int64[::1], float64[::1], float64[:, ::1], float64[:, ::1])"
)


@_jit("int64(float64[::1], int64[:, ::1], uint32[:, ::1], float64[::1])")
def forward(val, groups, terms, const):  # type: ignore[no-untyped-def]
    """Fill every node's slot of ``val``, group by group; the first slot that fails a domain or
    overflow check (spec.ops; the failing value is not stored), or -1."""
    for g in range(groups.shape[0]):
        kind, lo, hi, n, t = groups[g, KIND], groups[g, LO], groups[g, HI], groups[g, N], groups[g, TERM]
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


@_jit("void(float64[::1], float64[::1], int64[:, ::1], uint32[:, ::1], float64[::1], boolean[::1], int64)")
def backward(val, grad, groups, terms, const, needs, root):  # type: ignore[no-untyped-def]
    """Fill ``grad`` (spec.interface's semantics, leaves starting from 0): groups in reverse,
    each group's nodes in reverse, each node pushing ``partial * grad`` to its terms in reverse."""
    for i in range(grad.shape[0]):
        grad[i] = 0.0
    grad[root] = 1.0
    for g in range(groups.shape[0] - 1, -1, -1):
        if groups[g, NEEDS] == 0:
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
):  # type: ignore[no-untyped-def]
    """One training step: leaves, forward, backward, update, parameters and grads back to the tape.

    Returns ``(0, root slot, loss)``; ``(1, slot, 0)`` when forward failed at ``slot``;
    ``(2, i, value)`` when parameter ``i`` would become the non-finite ``value``. A failed
    step changes no parameter, grad or state.
    """
    P, first_input, first_target, root = meta[0], meta[1], meta[2], meta[3]
    for i in range(P):
        val[i] = tape_data[parameter_nodes[i]]
    for i in range(inputs.shape[0]):
        val[first_input + i] = inputs[i]
    for i in range(targets.shape[0]):
        val[first_target + i] = targets[i]
    failed = forward(val, groups, terms, const)
    if failed >= 0:
        return 1, failed, 0.0
    loss = val[root]
    backward(val, grad, groups, terms, const, needs, root)
    bad = update(val, grad, P, constants, state, scratch)
    if bad >= 0:  # update() changed nothing but its scratch
        return 2, bad, scratch[0, 0]
    for i in range(P):
        tape_data[parameter_nodes[i]] = val[i]
        tape_grad[parameter_nodes[i]] = grad[i]
    return 0, root, loss
