"""Replay for the Numba backend: a captured training step as a program of Numba kernels.

:func:`compile_step` captures the step with :func:`spec.capture.capture_graph` (the loss's
graph, read off the tape by :func:`extract`), turns the graph into a :class:`Program` with
the passes below, and returns a :class:`NumbaStep`, whose every call is one kernel
(:func:`run`): write the batch into the leaves, forward, backward, update, write the
parameters and grads back to the tape.

Passes. Each keeps every float64 operation, and the order of every sum, of the eager loop,
so results are bit-identical (spec.interface, step 5):

1. *Requires-grad*: a node needs a gradient when a parameter lies below it; backward skips
   the others (inputs, targets, constants and what is computed from them alone).
2. *Fusion*: a chain of additions ``((t0 + t1) + t2) + ...`` whose intermediate sums have no
   other consumer becomes one n-ary node that folds its terms left to right, as the chain
   did; a term that is a product used only there (``w * x``) is folded in as the product.
   A neuron's ``b + w0*x0 + w1*x1 + ...`` is one DOT node, a loss's ``sum(terms)`` one SUM
   node. The intermediate sums' gradients all equal the chain's, so backward pushes
   ``partial * grad`` straight to the terms.
3. *Schedule*: nodes are grouped by height (the longest path to the loss), then by kind and
   term count, so each group is one branch-free loop. Forward runs the groups deepest first,
   backward in the reverse order; each group's nodes in creation order, reversed for backward.
4. *Order check*: the eager loop adds the contributions to a node's grad in reverse creation
   order of their consumers. A kernel replays backward's pushes and checks, for every node
   that needs a grad, that its contributions arrive in that order and before it pushes its
   own. A schedule that fails falls back to creation order, then to no fusion (which is the
   eager loop itself and always passes).

Program layout. One float64 array ``val`` (and ``grad``) holds every slot: the parameters
(slots ``0..P-1``, in parameter order), the inputs (``n * nin``, row by row), the targets
(``n``), the constants, the constant 1.0 (``ONE``), then the nodes in forward order. Each
node has ``n`` consecutive rows of ``terms`` (uint32 pairs of slots, unsigned so that Numba
emits no negative-index wraparound in the hot loops: a DOT term's factors, a
SUM term's slot, a unary op's input, POW's base and exponent; ``ONE`` fills unused places);
``groups`` (int64, one row per group) holds ``kind, lo, hi, n, first term, mode, needs``:
its nodes are slots ``lo..hi-1``. ``mode`` says which factors of a DOT's products need a
grad: 0 the first only, 1 both, 2 look up ``needs``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from backends.numba._extract import extract
from backends.numba._jit import jit as _jit
from backends.numba._kernels import LEAF
from backends.numba._lowering import ADD, LOWERINGS, MUL
from backends.numba._lowering import fails as op_fails
from backends.numba._lowering import forward as op_forward
from backends.numba._lowering import partials as op_partials
from backends.numba._tape import current_tape, wrong_thread_error
from spec.capture import CapturedGraph, capture_graph
from spec.compile import ReplayStep
from spec.errors import CaptureError
from spec.ops import FIRST_INTERNAL_CODE, OPS, OpCode

__all__ = ["NumbaStep", "Program", "build_program", "compile_step"]

# --- kinds of fused node: numbered from spec.ops.FIRST_INTERNAL_CODE, apart from every op code ----
#: ``t0 + t1 + ...`` over plain terms
SUM = 100
#: ``b + a1*c1 + a2*c2 + ...``: a plain first term, then products
DOT_PLAIN = 101
#: ``a0*c0 + a1*c1 + ...``: products only
DOT = 102
if min(SUM, DOT_PLAIN, DOT) < FIRST_INTERNAL_CODE:
    raise ImportError("backends.numba._replay: a fused kind's number could be an op code's")
#: a term place that holds no node (the constant 1.0 in a product that is a plain term)
NO_NODE = -2
#: group columns
KIND, LO, HI, N, TERM, MODE, NEEDS = range(7)

_INF = math.inf


# --- pass 1: consumers and requires-grad ----------------------------------------------------------
@_jit("Tuple((uint8[::1], boolean[::1]))(int8[::1], int64[::1], int64[::1], boolean[::1], int64)")
def consumers_and_needs(op, a, b, is_parameter, root):  # type: ignore[no-untyped-def]
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


# --- pass 2: fusion ----------------------------------------------------------------------------------
@_jit("boolean[::1](int8[::1], int64[::1], int64[::1], uint8[::1], int64)")
def absorbed_nodes(op, a, b, count, root):  # type: ignore[no-untyped-def]
    """Nodes folded into their consumer's chain: an ADD or MUL used once, by an ADD, as its
    first operand (a partial sum, or the first product), or a MUL as its second (a product term)."""
    m = op.shape[0]
    absorbed = np.zeros(m, np.bool_)
    for u in range(m):
        if op[u] != ADD:
            continue
        x, y = a[u], b[u]
        if (op[x] == ADD or op[x] == MUL) and count[x] == 1 and x != root:
            absorbed[x] = True
        if op[y] == MUL and count[y] == 1 and y != root:
            absorbed[y] = True
    return absorbed


@_jit(
    "Tuple((int64[::1], int64[::1], int64[::1], int64[::1], int64[::1], int64[::1], int64[::1], float64[::1]))"
    "(int8[::1], int64[::1], int64[::1], float64[::1], boolean[::1])"
)
def fuse(op, a, b, const, absorbed):  # type: ignore[no-untyped-def]
    """The fused nodes, one per interior node not absorbed (its *top*), in creation order.

    Returns ``tops, kind, n_terms, first_term`` per fused node and ``ta, tc, pusher`` per term
    (node numbers of the traced graph; NO_NODE for the 1.0 of a plain term), plus ``const``
    per fused node. ``pusher`` is the node that pushes the term's gradient in the eager
    backward pass (the product's MUL, or the ADD that took the plain term).
    """
    m = op.shape[0]
    n_fused = 0
    for v in range(m):
        if op[v] != LEAF and not absorbed[v]:
            n_fused += 1
    tops = np.empty(n_fused, np.int64)
    kind = np.empty(n_fused, np.int64)
    n_terms = np.empty(n_fused, np.int64)
    first = np.empty(n_fused, np.int64)
    fconst = np.zeros(n_fused, np.float64)
    # An interior node contributes at most two terms (an unfused ADD), so 2 m bounds them.
    ta = np.empty(2 * m, np.int64)
    tc = np.empty(2 * m, np.int64)
    pusher = np.empty(2 * m, np.int64)
    chain = np.empty(m, np.int64)
    f = 0
    t = 0
    for v in range(m):
        code = op[v]
        if code == LEAF or absorbed[v]:
            continue
        tops[f] = v
        first[f] = t
        if code == ADD:
            depth = 0
            u = v
            while True:
                chain[depth] = u
                depth += 1
                x = a[u]
                if absorbed[x] and op[x] == ADD:
                    u = x
                else:
                    break
            lowest = chain[depth - 1]
            x = a[lowest]
            plain_terms = 0
            if absorbed[x]:  # a product
                ta[t], tc[t], pusher[t] = a[x], b[x], x
                first_plain = False
            else:
                ta[t], tc[t], pusher[t] = x, NO_NODE, lowest
                first_plain = True
                plain_terms += 1
            t += 1
            for level in range(depth - 1, -1, -1):
                w = chain[level]
                y = b[w]
                if absorbed[y]:
                    ta[t], tc[t], pusher[t] = a[y], b[y], y
                else:
                    ta[t], tc[t], pusher[t] = y, NO_NODE, w
                    plain_terms += 1
                t += 1
            n_terms[f] = depth + 1
            if plain_terms == depth + 1:
                kind[f] = SUM
            elif first_plain:
                kind[f] = DOT_PLAIN
            else:
                kind[f] = DOT
        else:
            ta[t], pusher[t] = a[v], v
            tc[t] = b[v] if b[v] >= 0 else NO_NODE
            t += 1
            n_terms[f] = 1
            kind[f] = DOT if code == MUL else code
            fconst[f] = const[v]
        f += 1
    return tops, kind, n_terms, first, ta[:t], tc[:t], pusher[:t], fconst


@_jit("int64[::1](int64[::1], int64[::1], int64[::1], int64[::1], int64[::1], boolean[::1])")
def product_modes(kind, n_terms, first, ta, tc, needs):  # type: ignore[no-untyped-def]
    """Per fused node, which factors of its products need a grad: 0 the first only, 1 both, 2 mixed."""
    nf = kind.shape[0]
    mode = np.full(nf, 2, np.int64)
    for f in range(nf):
        if kind[f] != DOT and kind[f] != DOT_PLAIN:
            continue
        start = first[f] + (1 if kind[f] == DOT_PLAIN else 0)
        a_all = True
        c_all = True
        c_none = True
        for k in range(start, first[f] + n_terms[f]):
            a_all = a_all and needs[ta[k]]
            c_needs = tc[k] >= 0 and needs[tc[k]]
            c_all = c_all and c_needs
            c_none = c_none and not c_needs
        if a_all and c_none:
            mode[f] = 0
        elif a_all and c_all:
            mode[f] = 1
    return mode


# --- pass 3: schedule ----------------------------------------------------------------------------------
@_jit("int64[::1](int64[::1], int64[::1], int64[::1], int64[::1], int64[::1], int64)")
def heights(tops, n_terms, first, ta, tc, m):  # type: ignore[no-untyped-def]
    """Per fused node, the longest path to the loss (the last fused node) in fused nodes."""
    nf = tops.shape[0]
    fused_of = np.full(m, -1, np.int64)
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
    kind: np.ndarray, n_terms: np.ndarray, mode: np.ndarray, needs: np.ndarray, height: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Forward order of the fused nodes, and where each group starts in it.

    With ``height``: deepest first, then by kind, term count, mode, needs; creation order
    within a group. Without: creation order, groups being runs of equal keys.
    """
    nf = len(kind)
    creation = np.arange(nf)
    if height is None:
        order = creation
        keys = [kind, n_terms, mode, needs]
    else:
        order = np.lexsort((creation, needs, mode, n_terms, kind, -height))
        keys = [height, kind, n_terms, mode, needs]
    change = np.zeros(nf, np.bool_)
    change[0] = True
    for key in keys:
        ordered = key[order]
        change[1:] |= ordered[1:] != ordered[:-1]
    return order, np.flatnonzero(change)


# --- pass 4: the order check ------------------------------------------------------------------------------
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


# --- the program and its kernels ------------------------------------------------------------------------
class Program(NamedTuple):
    """A captured step, laid out for the kernels (see the module docstring)."""

    val: np.ndarray  # float64, one per slot
    grad: np.ndarray  # float64, one per slot
    groups: np.ndarray  # int64 (groups, 7)
    terms: np.ndarray  # uint32 (terms, 2)
    const: np.ndarray  # float64 per slot: POW_CONST's exponent
    needs: np.ndarray  # bool per slot
    #: int64: ``[P, first input slot, first target slot, root slot]``
    meta: np.ndarray
    #: float64 (3, P): new parameters, velocity or m, v (the update's scratch)
    scratch: np.ndarray


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


@_jit(
    "Tuple((uint32[:, ::1], int64[::1]))(int64[::1], int64[::1], int64[::1], int64[::1], int64[::1], "
    "int64[::1], int64[::1], int64)"
)
def term_slots(ta, tc, pusher, first, n_terms, order, slots, one):  # type: ignore[no-untyped-def]
    """The terms of the fused nodes in ``order``, as pairs of slots (``one`` for NO_NODE), and their pushers."""
    total = 0
    for f in order:
        total += n_terms[f]
    terms = np.empty((total, 2), np.uint32)
    term_pusher = np.empty(total, np.int64)
    k = 0
    for f in order:
        for t in range(first[f], first[f] + n_terms[f]):
            terms[k, 0] = slots[ta[t]] if ta[t] >= 0 else one
            terms[k, 1] = slots[tc[t]] if tc[t] >= 0 else one
            term_pusher[k] = pusher[t]
            k += 1
    return terms, term_pusher


# --- building a program ---------------------------------------------------------------------------------
def build_program(
    captured: CapturedGraph, fusion: bool = True, grouping: bool = True
) -> tuple[Program, dict[str, Any]]:
    """The program of a captured step, and a description of what the passes did.

    ``fusion`` and ``grouping`` turn passes 2 and 3 off (for tests and benchmarks); the
    order check then chooses among the schedules that remain.
    """
    g = captured.graph
    op, a, b = g.op, g.a, g.b
    _check_lowered(op)
    m = len(op)
    P = len(captured.parameters)
    n, nin = captured.shape
    is_parameter = np.zeros(m, np.bool_)
    used = captured.parameters[captured.parameters >= 0]
    is_parameter[used] = True
    count, needs = consumers_and_needs(op, a, b, is_parameter, g.root)

    # Leaf slots: parameters, inputs, target leaves, constants, then ONE.
    slot_of = np.full(m, -1, np.int64)
    slot_of[used] = np.flatnonzero(captured.parameters >= 0)
    placed = captured.inputs.reshape(-1)
    slot_of[placed[placed >= 0]] = P + np.flatnonzero(placed >= 0)
    first_target = P + n * nin
    labels = captured.targets
    slot_of[labels[labels >= 0]] = first_target + np.flatnonzero(labels >= 0)
    constants = np.flatnonzero((op == LEAF) & (slot_of < 0))
    first_constant = first_target + len(labels)
    slot_of[constants] = first_constant + np.arange(len(constants))
    one = first_constant + len(constants)
    n_leaves = one + 1

    attempts = [(fusion, grouping), (fusion, False), (False, False)]
    for fuse_on, group_on in dict.fromkeys(attempts):
        absorbed = absorbed_nodes(op, a, b, count, g.root) if fuse_on else np.zeros(m, np.bool_)
        tops, kind, n_terms, first, ta, tc, pusher, fconst = fuse(op, a, b, g.const, absorbed)
        mode = product_modes(kind, n_terms, first, ta, tc, needs)
        fneeds = needs[tops].astype(np.int64)
        height = heights(tops, n_terms, first, ta, tc, m) if group_on else None
        order, starts = schedule(kind, n_terms, mode, fneeds, height)
        program, term_pusher = _lay_out(
            captured,
            slot_of,
            n_leaves,
            one,
            needs,
            tops,
            kind,
            n_terms,
            first,
            ta,
            tc,
            pusher,
            fconst,
            mode,
            order,
            starts,
        )
        if backward_order_is_eager(
            program.groups, program.terms, term_pusher, program.needs, int(program.meta[3])
        ):
            info = {
                "traced_nodes": int(m),
                "fused_nodes": len(tops),
                "leaves": int(n_leaves),
                "terms": len(program.terms),
                "groups": len(program.groups),
                "fusion": fuse_on,
                "grouping": group_on,
                "bytes": int(sum(x.nbytes for x in program)),
            }
            return program, info
    raise RuntimeError("no schedule of this graph passed the order check; the unfused one always should")


def _check_lowered(op: np.ndarray) -> None:
    """Refuse a graph with a node this replay cannot compute: it never guesses."""
    lowered = {LEAF} | {lowering.code for lowering in LOWERINGS.values()}
    unknown = sorted(set(np.unique(op).tolist()) - lowered)
    if unknown:
        names = ", ".join(OPS[OpCode(c)].name if c in OpCode._value2member_map_ else str(c) for c in unknown)
        raise CaptureError(f"the numba replay lowers no op {names}: train this loss with the eager loop")


def _lay_out(
    captured: CapturedGraph,
    slot_of: np.ndarray,
    n_leaves: int,
    one: int,
    needs: np.ndarray,
    tops: np.ndarray,
    kind: np.ndarray,
    n_terms: np.ndarray,
    first: np.ndarray,
    ta: np.ndarray,
    tc: np.ndarray,
    pusher: np.ndarray,
    fconst: np.ndarray,
    mode: np.ndarray,
    order: np.ndarray,
    starts: np.ndarray,
) -> tuple[Program, np.ndarray]:
    g = captured.graph
    P = len(captured.parameters)
    n, nin = captured.shape
    nf = len(tops)
    slots = slot_of  # the leaves' slots; the fused nodes' are filled in below, in place
    slots[slots >= n_leaves] = -1  # a previous attempt's
    slots[tops[order]] = n_leaves + np.arange(nf)
    n_slots = n_leaves + nf
    if n_slots >= 2**31:
        raise CaptureError(f"the graph has {n_slots} nodes after fusion; replay handles fewer than 2**31")
    # Terms in forward order: node by node, each node's terms in fold order.
    counts = n_terms[order]
    new_first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    terms, term_pusher = term_slots(ta, tc, pusher, first, n_terms, order, slots, one)
    ends = np.append(starts[1:], nf)
    groups = np.empty((len(starts), 7), np.int64)
    groups[:, KIND] = kind[order][starts]
    groups[:, LO] = n_leaves + starts
    groups[:, HI] = n_leaves + ends
    groups[:, N] = counts[starts]
    groups[:, TERM] = new_first[starts]
    groups[:, MODE] = mode[order][starts]
    groups[:, NEEDS] = needs[tops[order][starts]]
    val = np.zeros(n_slots, np.float64)
    leaves = np.flatnonzero(g.op == LEAF)
    val[slots[leaves]] = g.data[leaves]
    val[one] = 1.0
    const = np.zeros(n_slots, np.float64)
    const[n_leaves:] = fconst[order]
    slot_needs = np.zeros(n_slots, np.bool_)
    slot_needs[slots[leaves]] = needs[leaves]
    slot_needs[n_leaves:] = needs[tops[order]]
    meta = np.array([P, P, P + n * nin, slots[g.root]], np.int64)
    program = Program(
        val=val,
        grad=np.zeros(n_slots, np.float64),
        groups=groups,
        terms=terms,
        const=const,
        needs=slot_needs,
        meta=meta,
        scratch=np.zeros((3, max(P, 1)), np.float64),
    )
    return program, term_pusher


# --- capture -----------------------------------------------------------------------------------------------
class NumbaStep(ReplayStep):
    """A training step replayed by one Numba kernel call (see the module docstring)."""

    def __init__(
        self,
        model: Any,
        loss_fn: Any,
        optimizer: Any,
        shape: tuple[int, int],
        target_shape: tuple[int, ...],
        program: Program,
        info: dict[str, Any],
    ):
        super().__init__(model, loss_fn, optimizer, shape, target_shape)
        self.program = program
        self.info.update(info)
        self._tape = self.parameters[0]._t
        if any(p._t is not self._tape for p in self.parameters):
            raise CaptureError(
                "the parameters live on the tapes of different threads; build the model in one"
            )
        self._compactions = -1
        self._nodes = np.empty(0, np.int64)

    def check_caller(self) -> None:
        """The step writes its thread's tape: another thread would race with that thread's appends."""
        if current_tape() is not self._tape:
            raise wrong_thread_error(self._tape)

    def _replay(
        self, inputs: np.ndarray, targets: np.ndarray, constants: np.ndarray
    ) -> tuple[float, np.ndarray]:
        tape, program = self._tape, self.program
        if tape.compactions != self._compactions:  # compaction renumbers the parameters' nodes
            self._nodes = np.array([p._i for p in self.parameters], np.int64)
            self._compactions = tape.compactions
        tape.fill_grad()
        tape_data = np.frombuffer(tape.data, np.float64)
        tape_grad = np.frombuffer(tape.grad, np.float64)
        try:
            status, where, value = run(
                *program[:7],
                np.ascontiguousarray(inputs).reshape(-1),
                np.ascontiguousarray(targets).reshape(-1),
                tape_data,
                tape_grad,
                self._nodes,
                constants,
                self.state,
                program.scratch,
            )
        finally:
            del tape_data, tape_grad  # let the tape grow again
        P = len(self.parameters)
        if status == 1:
            self._raise_forward_failure(inputs, targets)
        if status == 2:
            self._raise_update_failure(where, value)
        return value, program.grad[:P]


def compile_step(
    model: Any,
    loss_fn: Any,
    inputs: Any,
    targets: Any,
    optimizer: Any,
    *,
    allow_unused_parameters: bool = False,
    fusion: bool = True,
    grouping: bool = True,
) -> NumbaStep:
    """The Numba backend's ``Backend.compile_step`` (spec.compile.compile_step)."""
    tape = current_tape()
    start = len(tape)
    try:
        with tape.holding_nodes():  # a node loss_fn made but the loss does not use still checks
            captured = capture_graph(
                model,
                loss_fn,
                inputs,
                targets,
                optimizer,
                extract,
                allow_unused_parameters=allow_unused_parameters,
            )
    finally:
        tape.drop_from(start)  # the trace is garbage now: give its memory back before the passes run
    program, info = build_program(captured, fusion=fusion, grouping=grouping)
    return NumbaStep(model, loss_fn, optimizer, captured.shape, captured.target_shape, program, info)
