"""Hypothesis strategies: random programs whose every op stays inside its domain.

Each op's sampling ranges come from the op table (``OpSpec.sample_ranges``), so
``log`` only ever sees inputs well inside (0, inf) and ``relu`` never sees a
value within reach of its kink, while the error contract tests the outside.
The strategy tracks every intermediate value with plain float arithmetic and
replaces a step whose operand falls outside its op's range by ``tanh`` (which
is defined everywhere and keeps values small).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from hypothesis import strategies as st

from spec.ops import OPS, OpCode
from spec.programs import Program

__all__ = ["programs", "sample_floats"]

# Unary program ops and the op-table row whose sampling range guards them.
_UNARY: dict[str, OpCode | None] = {
    "neg": None,
    "exp": OpCode.EXP,
    "log": OpCode.LOG,
    "tanh": OpCode.TANH,
    "relu": OpCode.RELU,
    "sigmoid": OpCode.SIGMOID,
}
_BINARY = ("add", "sub", "mul", "truediv", "pow")
# Keep intermediates where central differences stay accurate.
_MAGNITUDE_LIMIT = 50.0
_KINK_MARGIN = 1e-2


def sample_floats(low: float, high: float) -> st.SearchStrategy[float]:
    """Finite floats in [low, high], without subnormal noise."""
    return st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def _float_rule(op: str) -> Callable[..., float]:
    rules: dict[str, Callable[..., float]] = {
        "add": lambda a, b: a + b,
        "sub": lambda a, b: a - b,
        "mul": lambda a, b: a * b,
        "truediv": lambda a, b: a / b,
        "pow": lambda a, b: a**b,
        "neg": lambda a: -a,
        "exp": math.exp,
        "log": math.log,
        "tanh": math.tanh,
        "relu": lambda a: max(a, 0.0),
        "sigmoid": lambda a: 1.0 / (1.0 + math.exp(-a)),
    }
    return rules[op]


def _in_range(code: OpCode | None, x: float) -> bool:
    if code is None:
        return True
    low, high = OPS[code].sample_ranges[0]
    if code == OpCode.RELU:
        return low <= x <= high and abs(x) > _KINK_MARGIN
    return low <= x <= high


def _binary_ok(op: str, a: float, b: float) -> bool:
    if op == "truediv":
        return abs(b) >= 0.2
    if op == "pow":
        low, high = OPS[OpCode.POW].sample_ranges[0]
        e_low, e_high = OPS[OpCode.POW].sample_ranges[1]
        return low <= a <= high and e_low <= b <= e_high
    return True


@st.composite
def programs(draw: st.DrawFn, max_inputs: int = 3, max_steps: int = 10) -> Program:
    """A random program over 1..max_inputs inputs with 1..max_steps steps.

    Operands are drawn from all earlier names (so nodes get shared) or are
    small constants; every op in :mod:`spec.programs` can appear.
    """
    n_inputs = draw(st.integers(1, max_inputs), label="n_inputs")
    values: dict[str, float] = {}
    for i in range(n_inputs):
        values[f"x{i}"] = draw(sample_floats(-2.0, 2.0), label=f"x{i}")
    inputs = dict(values)
    steps: list[tuple[str, str, tuple[str | float, ...]]] = []
    for i in range(draw(st.integers(1, max_steps), label="n_steps")):
        dest = f"v{i}"
        names = list(values)
        op = draw(st.sampled_from(_BINARY + tuple(_UNARY)), label=f"{dest}.op")
        if op in _UNARY:
            arg = draw(st.sampled_from(names), label=f"{dest}.arg")
            if not _in_range(_UNARY[op], values[arg]):
                op = "tanh"
            args: tuple[str | float, ...] = (arg,)
        else:
            left = draw(st.sampled_from(names), label=f"{dest}.left")
            right: str | float = draw(
                st.one_of(st.sampled_from(names), sample_floats(-2.0, 2.0)), label=f"{dest}.right"
            )
            if op == "pow" and isinstance(right, float):
                right = draw(st.sampled_from([2.0, 3.0, -1.0, 0.5, 1.5]), label=f"{dest}.exponent")
                if values[left] <= 0.2 and not right.is_integer():
                    right = 2.0
            swap = isinstance(right, float) and draw(st.booleans(), label=f"{dest}.number_left")
            args = (right, left) if swap else (left, right)
            a, b = (values[x] if isinstance(x, str) else x for x in args)
            if not _binary_ok(op, a, b):
                op, args = "tanh", (left,)
        operands = [values[x] if isinstance(x, str) else x for x in args]
        result = _float_rule(op)(*operands)
        if not abs(result) <= _MAGNITUDE_LIMIT:
            op, args = "tanh", (args[0] if isinstance(args[0], str) else args[1],)
            result = math.tanh(values[args[0]])  # type: ignore[index]
        steps.append((dest, op, args))
        values[dest] = result
    program = Program(inputs, steps, f"v{len(steps) - 1}")
    program.validate()
    return program
