"""The Numba backend's lowering of the op table: each primitive's maths, written once.

For every row of :data:`spec.ops.OPS` three small ``@njit`` functions of the inputs ``x``
(and ``y``, 0.0 for a unary op), the constant ``c`` and the output ``out``:

- ``forward(x, y, c)``: the output, the row's forward rule in the same float64 operations;
- ``partials(x, y, c, out)``: ``(d out/d x, d out/d y)``, the row's partials (0.0 for a
  missing ``y``); a gradient is ``partial * grad``, exactly as the eager loop multiplies;
- ``fails(x, y, c, out)``: whether the eager loop raises for these inputs: they leave the
  row's domain, or the output is not finite.

They are the one definition the backend has: the eager ``Value`` calls their Python
bodies (``.py_func``; Python's own ``math``, so the numbers are the same), and the tape
kernels and every replay kernel call them compiled, through the dispatchers
:func:`forward`, :func:`partials` and :func:`fails`, which switch on the op code, or
:func:`lanes_forward` and :func:`lanes_backward`, which switch once for a run of samples.

The op codes come from :class:`spec.ops.OpCode` (Numba freezes them into its machine
code, and its cache is keyed by the op table too: :mod:`backends.numba._jit`). Adding an
op: its code, its functions, its row in :data:`LOWERINGS`, and its line in each
dispatcher; the check at the bottom refuses, at import and by name, an op left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from backends.numba._jit import Kernel, jit, jit_inline
from spec.ops import OPS, OpCode

__all__ = [
    "LOWERINGS",
    "Lowering",
    "check_dispatchers",
    "check_lowerings",
    "fails",
    "forward",
    "lanes_backward",
    "lanes_forward",
    "partials",
]

_INF = math.inf
_FORWARD = "float64(float64, float64, float64)"
_PARTIALS = "UniTuple(float64, 2)(float64, float64, float64, float64)"
_FAILS = "boolean(float64, float64, float64, float64)"

# --- op codes, as the plain ints the kernels compare ------------------------------------
ADD = int(OpCode.ADD)
MUL = int(OpCode.MUL)
POW_CONST = int(OpCode.POW_CONST)
POW = int(OpCode.POW)
EXP = int(OpCode.EXP)
LOG = int(OpCode.LOG)
TANH = int(OpCode.TANH)
RELU = int(OpCode.RELU)
SIGMOID = int(OpCode.SIGMOID)
MAX = int(OpCode.MAX)
DIV = int(OpCode.DIV)


@jit(_FAILS)
def _overflows(x: float, y: float, c: float, out: float) -> bool:
    return not -_INF < out < _INF


# --- binary ------------------------------------------------------------------------
@jit(_FORWARD)
def add_forward(x: float, y: float, c: float) -> float:
    return x + y


@jit(_PARTIALS)
def add_partials(x: float, y: float, c: float, out: float) -> tuple[float, float]:
    return 1.0, 1.0


@jit(_FORWARD)
def mul_forward(x: float, y: float, c: float) -> float:
    return x * y


@jit(_PARTIALS)
def mul_partials(x: float, y: float, c: float, out: float) -> tuple[float, float]:
    return y, x


@jit(_FORWARD)
def pow_forward(x: float, y: float, c: float) -> float:
    return x**y  # type: ignore[no-any-return]


@jit(_PARTIALS)
def pow_partials(x: float, y: float, c: float, out: float) -> tuple[float, float]:
    return y * x ** (y - 1.0), out * math.log(x)


@jit(_FAILS)
def pow_fails(x: float, y: float, c: float, out: float) -> bool:
    return not x > 0.0 or not -_INF < out < _INF


@jit(_FORWARD)
def div_forward(x: float, y: float, c: float) -> float:
    return x / y


@jit(_PARTIALS)
def div_partials(x: float, y: float, c: float, out: float) -> tuple[float, float]:
    return 1.0 / y, -out / y


@jit(_FAILS)
def div_fails(x: float, y: float, c: float, out: float) -> bool:
    return y == 0.0 or not -_INF < out < _INF


@jit(_FORWARD)
def max_forward(x: float, y: float, c: float) -> float:
    return y if y > x else x


@jit(_PARTIALS)
def max_partials(x: float, y: float, c: float, out: float) -> tuple[float, float]:
    # Ties split the gradient evenly.
    if x > y:
        return 1.0, 0.0
    if y > x:
        return 0.0, 1.0
    return 0.5, 0.5


# --- unary with a constant -----------------------------------------------------------
@jit(_FORWARD)
def pow_const_forward(x: float, y: float, c: float) -> float:
    return x**c  # type: ignore[no-any-return]


@jit(_PARTIALS)
def pow_const_partials(x: float, y: float, c: float, out: float) -> tuple[float, float]:
    # d/dx x**0 is 0 everywhere; written out so x = 0 needs no 0**-1.
    return (0.0 if c == 0.0 else c * x ** (c - 1.0)), 0.0


@jit(_FAILS)
def pow_const_fails(x: float, y: float, c: float, out: float) -> bool:
    if x == 0.0 and (c < 0.0 or 0.0 < c < 1.0):
        return True
    if x < 0.0 and math.floor(c) != c:
        return True
    return not -_INF < out < _INF


# --- unary ---------------------------------------------------------------------------
@jit(_FORWARD)
def exp_forward(x: float, y: float, c: float) -> float:
    return math.exp(x)


@jit(_PARTIALS)
def exp_partials(x: float, y: float, c: float, out: float) -> tuple[float, float]:
    return out, 0.0


@jit(_FORWARD)
def log_forward(x: float, y: float, c: float) -> float:
    return math.log(x)


@jit(_PARTIALS)
def log_partials(x: float, y: float, c: float, out: float) -> tuple[float, float]:
    return 1.0 / x, 0.0


@jit(_FAILS)
def log_fails(x: float, y: float, c: float, out: float) -> bool:
    return not x > 0.0


@jit(_FORWARD)
def tanh_forward(x: float, y: float, c: float) -> float:
    return math.tanh(x)


@jit(_PARTIALS)
def tanh_partials(x: float, y: float, c: float, out: float) -> tuple[float, float]:
    # sech(x)**2 from exp(-2|x|): 1 - out**2 would cancel once tanh(x) rounds to 1.
    e = math.exp(-2.0 * abs(x))
    return 4.0 * e / ((1.0 + e) * (1.0 + e)), 0.0


@jit(_FORWARD)
def relu_forward(x: float, y: float, c: float) -> float:
    return 0.0 if x < 0.0 else x  # micrograd's rule: relu(-0.0) is -0.0


@jit(_PARTIALS)
def relu_partials(x: float, y: float, c: float, out: float) -> tuple[float, float]:
    return (1.0 if out > 0.0 else 0.0), 0.0


@jit(_FORWARD)
def sigmoid_forward(x: float, y: float, c: float) -> float:
    # Two branches so exp never overflows.
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@jit(_PARTIALS)
def sigmoid_partials(x: float, y: float, c: float, out: float) -> tuple[float, float]:
    # e / (1 + e)**2 with e = exp(-|x|): out * (1 - out) would cancel near out = 1.
    e = math.exp(-abs(x))
    return e / ((1.0 + e) * (1.0 + e)), 0.0


class Lowering(NamedTuple):
    """One op's lowering: its code in the kernels and its three functions (module docstring)."""

    code: int
    forward: Kernel[[float, float, float], float]
    partials: Kernel[[float, float, float, float], tuple[float, float]]
    fails: Kernel[[float, float, float, float], bool]


#: The lowering of every op of the table, keyed by op code.
LOWERINGS: Mapping[OpCode, Lowering] = {
    OpCode.ADD: Lowering(ADD, add_forward, add_partials, _overflows),
    OpCode.MUL: Lowering(MUL, mul_forward, mul_partials, _overflows),
    OpCode.POW: Lowering(POW, pow_forward, pow_partials, pow_fails),
    OpCode.POW_CONST: Lowering(POW_CONST, pow_const_forward, pow_const_partials, pow_const_fails),
    OpCode.EXP: Lowering(EXP, exp_forward, exp_partials, _overflows),
    OpCode.LOG: Lowering(LOG, log_forward, log_partials, log_fails),
    OpCode.TANH: Lowering(TANH, tanh_forward, tanh_partials, _overflows),
    OpCode.RELU: Lowering(RELU, relu_forward, relu_partials, _overflows),
    OpCode.SIGMOID: Lowering(SIGMOID, sigmoid_forward, sigmoid_partials, _overflows),
    OpCode.MAX: Lowering(MAX, max_forward, max_partials, _overflows),
    OpCode.DIV: Lowering(DIV, div_forward, div_partials, div_fails),
}


# --- the dispatchers the kernels call ------------------------------------------------------------
@jit("float64(int64, float64, float64, float64)")
def forward(code: int, x: float, y: float, c: float) -> float:
    """The output of op ``code``."""
    if code == ADD:
        return add_forward(x, y, c)
    if code == MUL:
        return mul_forward(x, y, c)
    if code == POW:
        return pow_forward(x, y, c)
    if code == POW_CONST:
        return pow_const_forward(x, y, c)
    if code == EXP:
        return exp_forward(x, y, c)
    if code == LOG:
        return log_forward(x, y, c)
    if code == TANH:
        return tanh_forward(x, y, c)
    if code == RELU:
        return relu_forward(x, y, c)
    if code == SIGMOID:
        return sigmoid_forward(x, y, c)
    if code == MAX:
        return max_forward(x, y, c)
    if code == DIV:
        return div_forward(x, y, c)
    raise ValueError("forward: an op code this backend does not lower")


@jit("UniTuple(float64, 2)(int64, float64, float64, float64, float64)")
def partials(code: int, x: float, y: float, c: float, out: float) -> tuple[float, float]:
    """``(d out/d x, d out/d y)`` of op ``code``."""
    if code == ADD:
        return add_partials(x, y, c, out)
    if code == MUL:
        return mul_partials(x, y, c, out)
    if code == POW:
        return pow_partials(x, y, c, out)
    if code == POW_CONST:
        return pow_const_partials(x, y, c, out)
    if code == EXP:
        return exp_partials(x, y, c, out)
    if code == LOG:
        return log_partials(x, y, c, out)
    if code == TANH:
        return tanh_partials(x, y, c, out)
    if code == RELU:
        return relu_partials(x, y, c, out)
    if code == SIGMOID:
        return sigmoid_partials(x, y, c, out)
    if code == MAX:
        return max_partials(x, y, c, out)
    if code == DIV:
        return div_partials(x, y, c, out)
    raise ValueError("partials: an op code this backend does not lower")


@jit("boolean(int64, float64, float64, float64, float64)")
def fails(code: int, x: float, y: float, c: float, out: float) -> bool:
    """Whether the eager loop raises for op ``code`` here (a domain error or a non-finite output)."""
    if code == ADD:
        return _overflows(x, y, c, out)
    if code == MUL:
        return _overflows(x, y, c, out)
    if code == POW:
        return pow_fails(x, y, c, out)
    if code == POW_CONST:
        return pow_const_fails(x, y, c, out)
    if code == EXP:
        return _overflows(x, y, c, out)
    if code == LOG:
        return log_fails(x, y, c, out)
    if code == TANH:
        return _overflows(x, y, c, out)
    if code == RELU:
        return _overflows(x, y, c, out)
    if code == SIGMOID:
        return _overflows(x, y, c, out)
    if code == MAX:
        return _overflows(x, y, c, out)
    if code == DIV:
        return div_fails(x, y, c, out)
    raise ValueError("fails: an op code this backend does not lower")


# --- the same, over a run of samples (the replay's lane units) --------------------------------------


@jit_inline
def _forward_lanes(
    forward_of: Callable[[float, float, float], float],
    fails_of: Callable[[float, float, float, float], bool],
    val: NDArray[np.float64],
    x: int,
    sx: int,
    y: int,
    sy: int,
    c: float,
    out: int,
    s0: int,
    s1: int,
) -> int:
    # No exit inside the loop, and unsigned indices (no negative-index wraparound): it vectorises.
    # The failure, rare, is looked for afterwards.
    ix, jx, iy, jy, o = np.uint64(x), np.uint64(sx), np.uint64(y), np.uint64(sy), np.uint64(out)
    failed = False
    for s in range(np.uint64(s0), np.uint64(s1)):
        xv, yv = val[ix + jx * s], val[iy + jy * s]
        result = forward_of(xv, yv, c)
        failed |= fails_of(xv, yv, c, result)
        val[o + s] = result
    if failed:
        for s in range(s0, s1):
            xv, yv = val[x + sx * s], val[y + sy * s]
            if fails_of(xv, yv, c, forward_of(xv, yv, c)):
                return out + s
    return -1


@jit_inline
def _backward_lanes(
    partials_of: Callable[[float, float, float, float], tuple[float, float]],
    val: NDArray[np.float64],
    grad: NDArray[np.float64],
    x: int,
    sx: int,
    y: int,
    sy: int,
    c: float,
    out: int,
    s0: int,
    s1: int,
    into_x: bool,
    into_y: bool,
) -> None:
    if sx == 1 and sy == 0 and into_x and not into_y:  # into each sample's own slot: in any order
        ix, iy, o = np.uint64(x), np.uint64(y), np.uint64(out)
        for s in range(np.uint64(s0), np.uint64(s1)):
            di, _ = partials_of(val[ix + s], val[iy], c, val[o + s])
            grad[ix + s] += di * grad[o + s]
        return
    for s in range(s1 - 1, s0 - 1, -1):
        i, j = x + sx * s, y + sy * s
        di, dj = partials_of(val[i], val[j], c, val[out + s])
        gv = grad[out + s]
        if into_x:
            grad[i] += di * gv
        if into_y:
            grad[j] += dj * gv


@jit("int64(int64, float64[::1], int64, int64, int64, int64, float64, int64, int64, int64)")
def lanes_forward(
    code: int,
    val: NDArray[np.float64],
    x: int,
    sx: int,
    y: int,
    sy: int,
    c: float,
    out: int,
    s0: int,
    s1: int,
) -> int:
    """:func:`forward` for samples ``s0 <= s < s1``: ``val[out + s]`` from ``val[x + sx * s]``
    and ``val[y + sy * s]`` (a stride of 0: one slot for all); the first failing slot, or -1
    (every sample's value is stored, failing or not). One loop per op, so that it vectorises."""
    if code == ADD:
        return _forward_lanes(add_forward, _overflows, val, x, sx, y, sy, c, out, s0, s1)
    if code == MUL:
        return _forward_lanes(mul_forward, _overflows, val, x, sx, y, sy, c, out, s0, s1)
    if code == POW:
        return _forward_lanes(pow_forward, pow_fails, val, x, sx, y, sy, c, out, s0, s1)
    if code == POW_CONST:
        return _forward_lanes(pow_const_forward, pow_const_fails, val, x, sx, y, sy, c, out, s0, s1)
    if code == EXP:
        return _forward_lanes(exp_forward, _overflows, val, x, sx, y, sy, c, out, s0, s1)
    if code == LOG:
        return _forward_lanes(log_forward, log_fails, val, x, sx, y, sy, c, out, s0, s1)
    if code == TANH:
        return _forward_lanes(tanh_forward, _overflows, val, x, sx, y, sy, c, out, s0, s1)
    if code == RELU:
        return _forward_lanes(relu_forward, _overflows, val, x, sx, y, sy, c, out, s0, s1)
    if code == SIGMOID:
        return _forward_lanes(sigmoid_forward, _overflows, val, x, sx, y, sy, c, out, s0, s1)
    if code == MAX:
        return _forward_lanes(max_forward, _overflows, val, x, sx, y, sy, c, out, s0, s1)
    if code == DIV:
        return _forward_lanes(div_forward, div_fails, val, x, sx, y, sy, c, out, s0, s1)
    raise ValueError("lanes_forward: an op code this backend does not lower")


@jit(
    "void(int64, float64[::1], float64[::1], int64, int64, int64, int64, float64, int64, int64, int64, boolean, "
    "boolean)"
)
def lanes_backward(
    code: int,
    val: NDArray[np.float64],
    grad: NDArray[np.float64],
    x: int,
    sx: int,
    y: int,
    sy: int,
    c: float,
    out: int,
    s0: int,
    s1: int,
    into_x: bool,
    into_y: bool,
) -> None:
    """:func:`partials` for samples ``s0 <= s < s1``, last sample first: ``grad[x + sx * s] +=
    d/dx * grad[out + s]`` (if ``into_x``), then the same into ``y`` (if ``into_y``)."""
    if code == ADD:
        _backward_lanes(add_partials, val, grad, x, sx, y, sy, c, out, s0, s1, into_x, into_y)
    elif code == MUL:
        _backward_lanes(mul_partials, val, grad, x, sx, y, sy, c, out, s0, s1, into_x, into_y)
    elif code == POW:
        _backward_lanes(pow_partials, val, grad, x, sx, y, sy, c, out, s0, s1, into_x, into_y)
    elif code == POW_CONST:
        _backward_lanes(pow_const_partials, val, grad, x, sx, y, sy, c, out, s0, s1, into_x, into_y)
    elif code == EXP:
        _backward_lanes(exp_partials, val, grad, x, sx, y, sy, c, out, s0, s1, into_x, into_y)
    elif code == LOG:
        _backward_lanes(log_partials, val, grad, x, sx, y, sy, c, out, s0, s1, into_x, into_y)
    elif code == TANH:
        _backward_lanes(tanh_partials, val, grad, x, sx, y, sy, c, out, s0, s1, into_x, into_y)
    elif code == RELU:
        _backward_lanes(relu_partials, val, grad, x, sx, y, sy, c, out, s0, s1, into_x, into_y)
    elif code == SIGMOID:
        _backward_lanes(sigmoid_partials, val, grad, x, sx, y, sy, c, out, s0, s1, into_x, into_y)
    elif code == MAX:
        _backward_lanes(max_partials, val, grad, x, sx, y, sy, c, out, s0, s1, into_x, into_y)
    elif code == DIV:
        _backward_lanes(div_partials, val, grad, x, sx, y, sy, c, out, s0, s1, into_x, into_y)
    else:
        raise ValueError("lanes_backward: an op code this backend does not lower")


# --- the lowering against the op table ---------------------------------------------------------
def _lanes_dispatch(code: int, x: float, y: float, c: float) -> tuple[float, float, float]:
    """What :func:`lanes_forward` and :func:`lanes_backward` give for one sample: out, d/dx, d/dy."""
    val = np.array([x, y, 0.0])
    grad = np.array([0.0, 0.0, 1.0])
    lanes_forward(code, val, 0, 0, 1, 0, c, 2, 0, 1)
    lanes_backward(code, val, grad, 0, 0, 1, 0, c, 2, 0, 1, True, True)
    return val[2], grad[0], grad[1]


def check_lowerings(ops: Mapping[OpCode, Any] = OPS) -> None:
    """Raise, naming the op, unless every op of ``ops`` is lowered, under its own code (at
    import: it compiles nothing)."""
    missing = [ops[code].name for code in ops if code not in LOWERINGS]
    if missing:
        raise NotImplementedError(f"the numba backend does not lower op(s): {', '.join(missing)}")
    misfiled = [code.name for code, lowering in LOWERINGS.items() if lowering.code != code]
    if misfiled:
        raise ImportError(f"backends.numba._lowering: lowerings filed under another op's code: {misfiled}")


def check_dispatchers() -> None:
    """Raise, naming the op, unless the one-sample and the lane dispatchers call each op's own
    functions. It compiles them all: the replay runs it at its import, and the tests."""
    for code, lowering in LOWERINGS.items():
        x, y, c = 0.75, 1.5, 2.0
        out = lowering.forward(x, y, c)
        dispatched = (forward(code, x, y, c), partials(code, x, y, c, out), fails(code, x, y, c, out))
        if dispatched != (out, lowering.partials(x, y, c, out), lowering.fails(x, y, c, out)):
            raise ImportError(f"backends.numba._lowering: a dispatcher does not call {code.name}'s functions")
        if _lanes_dispatch(int(code), x, y, c) != (out, *lowering.partials(x, y, c, out)):
            raise ImportError(
                f"backends.numba._lowering: a lane dispatcher does not call {code.name}'s functions"
            )


check_lowerings()
