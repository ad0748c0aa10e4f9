"""The op table: every primitive operation, once.

Each row says everything about one primitive, for every part of gradspec that
needs it: its op code, how many Value inputs it takes, whether it carries a
float constant, the forward rule, the local partial derivatives (as functions of
the inputs, the constant and the output), the domain, how the public API spells
it, where property tests sample it and which edge points every lowering must
get right, and its exact symbolic form for the oracle. Everything else reads the
rows: :class:`spec.value.ValueBase` (the public methods), the interface
protocol, the program interpreter, the Hypothesis strategies, the conformance
checks and the golden fixtures' oracle. Adding an op is one row here, one
lowering in each backend, and fixture cases (README, "Add an op").

The rules here are the *reference*: written with :mod:`math` on Python floats,
they define the float64 operations (and their order) a backend must perform,
so that two backends give bit-identical results. Backends lower every row;
conformance checks each backend's lowering against these rules, and the golden
fixtures check the rules themselves against an independent oracle.

Composite operations are not rows: they are defined once, below the table, in
terms of primitives (``a - b`` is ``a + (-b)``), and every backend must build
exactly that graph.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any

from spec.errors import DivisionByZeroError, DomainError, ResultOverflowError
from spec.tracing import note_failure

__all__ = [
    "COMPOSITES",
    "FIRST_INTERNAL_CODE",
    "OPS",
    "OpCode",
    "OpSpec",
    "check_domain",
    "division_by_zero_error",
    "ieee_pow",
    "op_symbol",
    "overflow_error",
]


class OpCode(IntEnum):
    """Stable small-integer op codes (array backends store these)."""

    LEAF = 0
    ADD = 1
    MUL = 2
    POW_CONST = 3
    POW = 4
    EXP = 5
    LOG = 6
    TANH = 7
    RELU = 8
    SIGMOID = 9
    MAX = 10
    DIV = 11


Floats = tuple[float, ...]


#: The smallest number a backend may give a node kind of its own (a fused node, say): every
#: op code is smaller, with room to grow, so that no op is ever mistaken for such a kind.
FIRST_INTERNAL_CODE = 100

#: ``(inputs, constant)``: a point where a lowering must compute exactly the row's rules
EdgePoint = tuple[Floats, float]


@dataclass(frozen=True)
class OpSpec:
    """One primitive: everything a backend, a check or the oracle needs to know of it."""

    code: OpCode
    name: str  #: the name used in programs, fixtures and error messages
    symbol: str  #: what ``Value.op`` shows (constant ops append the constant)
    arity: int  #: number of Value inputs
    has_constant: bool  #: whether the node carries a float constant
    #: the Value method that builds it: an operator's (``"__add__"``) or a named one (``"exp"``)
    method: str
    forward: Callable[[Floats, float], float]  #: (inputs, constant) -> output
    partials: Callable[[Floats, float, float], Floats]  #: (inputs, constant, out) -> d out/d input
    #: the error for inputs outside the domain (DomainError or DivisionByZeroError), or None
    domain: Callable[[Floats, float], DomainError | None]
    domain_text: str  #: the domain, in words, for documentation
    #: the conventions a lowering must follow beyond the mathematics, in words: how the
    #: derivative is computed (bit-identity needs the formula, not only the value), kinks,
    #: ties and signed zeros; failure messages and the README quote it
    rule: str
    #: where property tests sample each input (and the constant): well inside the domain
    sample_ranges: tuple[tuple[float, float], ...]
    #: how far ``inputs`` lie from a point where the derivative jumps (inf where there is none)
    kink_distance: Callable[[Floats], float]
    #: kinks, zeros, special constants, saturation: points every lowering must get right
    edge_points: tuple[EdgePoint, ...]
    #: ``symbolic(sympy, *operands)``: the exact real function, as a sympy expression
    symbolic: Callable[..., Any]

    def apply(self, *operands: Any) -> Any:
        """The op through the public Value API: ``x + y``, ``x ** c``, ``x.exp()``."""
        if self.method.startswith("__"):  # an operator: numbers may stand on either side
            return getattr(operator, self.method.strip("_"))(*operands)
        first, *rest = operands
        if isinstance(first, int | float) and rest:  # a number has no such method:
            first = type(rest[0])(first)  # Value(n).max(a) is the public spelling
        return getattr(first, self.method)(*rest)


def _no_domain(inputs: Floats, c: float) -> DomainError | None:
    return None


def _smooth(inputs: Floats) -> float:
    return math.inf


def _sigmoid(x: float) -> float:
    # Two branches so exp never overflows: exp(-x) for x >= 0, exp(x) otherwise.
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def ieee_pow(x: float, y: float) -> float:
    """``x ** y`` with IEEE overflow: an infinity, where Python's float ``**`` raises.

    Backward passes never raise (spec.errors), so partials that overflow become
    infinities exactly as they do in compiled code. Only called where the result
    is real (``x > 0``, or ``y`` an integer).
    """
    try:
        result: float = x**y
    except OverflowError:
        negative = x < 0.0 and y % 2.0 == 1.0
        return -math.inf if negative else math.inf
    return result


def _tanh_partial(x: float) -> float:
    # sech(x)**2 from exp(-2|x|), not 1 - tanh(x)**2: the latter cancels to nothing
    # once tanh(x) rounds near 1 (|x| > ~10), losing every digit of a tiny derivative.
    e = math.exp(-2.0 * abs(x))
    return 4.0 * e / ((1.0 + e) * (1.0 + e))


def _sigmoid_partial(x: float) -> float:
    # e / (1 + e)**2 with e = exp(-|x|), not s * (1 - s): same cancellation near s = 1.
    e = math.exp(-abs(x))
    return e / ((1.0 + e) * (1.0 + e))


def _pow_const_partial(x: float, c: float) -> float:
    # d/dx x**0 is 0 everywhere; written out so x = 0 needs no 0**-1.
    return 0.0 if c == 0.0 else c * ieee_pow(x, c - 1.0)


def _max_partials(inputs: Floats) -> Floats:
    # Ties split the gradient evenly, as torch.maximum does.
    x, y = inputs
    if x > y:
        return 1.0, 0.0
    if y > x:
        return 0.0, 1.0
    return 0.5, 0.5


def _pow_const_domain(inputs: Floats, c: float) -> DomainError | None:
    (x,) = inputs
    if x == 0.0 and c < 0.0:
        return DivisionByZeroError(f"0.0 ** {c!r}: zero cannot be raised to a negative power")
    if x == 0.0 and 0.0 < c < 1.0:
        return DomainError(f"0.0 ** {c!r}: the derivative of x ** {c!r} is infinite at x = 0")
    if x < 0.0 and not c.is_integer():
        return DomainError(f"{x!r} ** {c!r}: a negative base needs an integer exponent")
    return None


def _pow_domain(inputs: Floats, c: float) -> DomainError | None:
    x, y = inputs
    if x <= 0.0:
        return DomainError(f"{x!r} ** Value({y!r}): a Value exponent needs a positive base")
    return None


def _div_domain(inputs: Floats, c: float) -> DomainError | None:
    x, y = inputs
    return division_by_zero_error(x) if y == 0.0 else None


def _log_domain(inputs: Floats, c: float) -> DomainError | None:
    (x,) = inputs
    return None if x > 0.0 else DomainError(f"log({x!r}): the input must be positive")


_SAMPLE = (-3.0, 3.0)
_POSITIVE = (0.2, 3.0)

# fmt: off
_ROWS = [
    # --- binary -----------------------------------------------------------------
    OpSpec(OpCode.ADD, "add", "+", 2, False, method="__add__",
           forward=lambda i, c: i[0] + i[1],
           partials=lambda i, c, out: (1.0, 1.0),
           domain=_no_domain, domain_text="all finite x, y",
           rule="d/dx = d/dy = 1; IEEE addition, so -0.0 + -0.0 is -0.0",
           sample_ranges=(_SAMPLE, _SAMPLE), kink_distance=_smooth,
           edge_points=(((0.0, -0.0), 0.0), ((-0.0, -0.0), 0.0), ((1e300, 1e300), 0.0)),
           symbolic=lambda sp, x, y: x + y),
    OpSpec(OpCode.MUL, "mul", "*", 2, False, method="__mul__",
           forward=lambda i, c: i[0] * i[1],
           partials=lambda i, c, out: (i[1], i[0]),
           domain=_no_domain, domain_text="all finite x, y",
           rule="d/dx = y, d/dy = x",
           sample_ranges=(_SAMPLE, _SAMPLE), kink_distance=_smooth,
           edge_points=(((0.0, 5.0), 0.0), ((-0.0, 5.0), 0.0), ((-1e-300, 1e-300), 0.0)),
           symbolic=lambda sp, x, y: x * y),
    OpSpec(OpCode.POW, "pow", "**", 2, False, method="__pow__",
           forward=lambda i, c: i[0] ** i[1],
           partials=lambda i, c, out: (i[1] * ieee_pow(i[0], i[1] - 1.0), out * math.log(i[0])),
           domain=_pow_domain, domain_text="x > 0 (the partial in y is out * log x)",
           rule="d/dx = y * x ** (y - 1), d/dy = out * log(x), with out the rounded x ** y",
           sample_ranges=(_POSITIVE, _SAMPLE), kink_distance=_smooth,
           edge_points=(((2.0, 0.0), 0.0), ((0.5, -2.0), 0.0), ((1.0, 7.5), 0.0)),
           symbolic=lambda sp, x, y: x**y),
    # x / y itself, not x * y ** -1: a quotient is rounded once, and 1e-10 / 1e-310 is finite
    # although 1 / 1e-310 is not.
    OpSpec(OpCode.DIV, "truediv", "/", 2, False, method="__truediv__",
           forward=lambda i, c: i[0] / i[1],
           partials=lambda i, c, out: (1.0 / i[1], -out / i[1]),
           domain=_div_domain, domain_text="y != 0",
           rule="x / y rounded once (not x * y ** -1); d/dx = 1 / y, d/dy = -out / y",
           sample_ranges=(_SAMPLE, _POSITIVE), kink_distance=lambda i: abs(i[1]),
           edge_points=(((6.0, 3.0), 0.0), ((1.0, 3.0), 0.0), ((0.0, -3.0), 0.0), ((-0.0, 2.0), 0.0),
                        ((1e-10, 1e-310), 0.0), ((-1e-300, 5e-324), 0.0), ((5e-324, 1e-309), 0.0),
                        ((1e-170, 1e-170), 0.0)),
           symbolic=lambda sp, x, y: x / y),
    OpSpec(OpCode.MAX, "max", "max", 2, False, method="max",
           # Python's max(x, y): x unless y is larger, so max(-0.0, 0.0) is -0.0.
           forward=lambda i, c: i[1] if i[1] > i[0] else i[0],
           partials=lambda i, c, out: _max_partials(i),
           domain=_no_domain, domain_text="all finite x, y; a tie splits the gradient 0.5 / 0.5",
           rule="y if y > x else x, so max(0.0, -0.0) is 0.0 and max(-0.0, 0.0) is -0.0; "
                "a tie splits the gradient 0.5 / 0.5",
           sample_ranges=(_SAMPLE, _SAMPLE), kink_distance=lambda i: abs(i[0] - i[1]),
           edge_points=(((1.5, 1.5), 0.0), ((0.0, -0.0), 0.0), ((-0.0, 0.0), 0.0), ((3.0, -2.0), 0.0),
                        ((-2.0, 3.0), 0.0), ((-800.0, 800.0), 0.0), ((1e300, -1e300), 0.0)),
           symbolic=lambda sp, x, y: sp.Piecewise((x, x > y), (y, x < y), ((x + y) / 2, True))),
    # --- unary with a constant --------------------------------------------------
    OpSpec(OpCode.POW_CONST, "pow_const", "**", 1, True, method="__pow__",
           forward=lambda i, c: i[0] ** c,
           partials=lambda i, c, out: (_pow_const_partial(i[0], c),),
           domain=_pow_const_domain,
           domain_text="x > 0; x = 0 with c = 0 or c >= 1; x < 0 with integer c",
           rule="d/dx = c * x ** (c - 1), and 0 where c = 0 (x ** 0 is flat, 0 ** 0 included); "
                "a partial that overflows is an infinity",
           sample_ranges=(_POSITIVE, _SAMPLE), kink_distance=_smooth,
           edge_points=(((0.0,), 0.0), ((0.0,), 1.0), ((0.0,), 2.0), ((-2.0,), 3.0), ((-0.0,), 3.0),
                        ((-2.0,), -2.0), ((4.0,), 0.5), ((5.0,), 0.0)),
           symbolic=lambda sp, x, c: x**c),
    # --- unary ------------------------------------------------------------------
    OpSpec(OpCode.EXP, "exp", "exp", 1, False, method="exp",
           forward=lambda i, c: math.exp(i[0]),
           partials=lambda i, c, out: (out,),
           domain=_no_domain, domain_text="x <= log(max float64) ~ 709.78, else overflow",
           rule="d/dx = out, the rounded exp(x)",
           sample_ranges=((-4.0, 4.0),), kink_distance=_smooth,
           edge_points=(((0.0,), 0.0), ((700.0,), 0.0), ((-800.0,), 0.0)),
           symbolic=lambda sp, x: sp.exp(x)),
    OpSpec(OpCode.LOG, "log", "log", 1, False, method="log",
           forward=lambda i, c: math.log(i[0]),
           partials=lambda i, c, out: (1.0 / i[0],),
           domain=_log_domain, domain_text="x > 0",
           rule="d/dx = 1 / x",
           sample_ranges=((0.05, 10.0),), kink_distance=_smooth,
           edge_points=(((1.0,), 0.0), ((1e-300,), 0.0), ((1e300,), 0.0)),
           symbolic=lambda sp, x: sp.log(x)),
    OpSpec(OpCode.TANH, "tanh", "tanh", 1, False, method="tanh",
           forward=lambda i, c: math.tanh(i[0]),
           partials=lambda i, c, out: (_tanh_partial(i[0]),),
           domain=_no_domain, domain_text="all finite x",
           rule="d/dx = 4e / (1 + e)**2 with e = exp(-2|x|), not 1 - tanh(x)**2 "
                "(which rounds to 0 once |x| > ~10)",
           sample_ranges=((-4.0, 4.0),), kink_distance=_smooth,
           edge_points=(((0.0,), 0.0), ((-0.0,), 0.0), ((20.0,), 0.0), ((-20.0,), 0.0)),
           symbolic=lambda sp, x: sp.tanh(x)),
    OpSpec(OpCode.RELU, "relu", "ReLU", 1, False, method="relu",
           # 0.0 if x < 0 else x: micrograd's rule, so relu(-0.0) is -0.0.
           forward=lambda i, c: 0.0 if i[0] < 0.0 else i[0],
           # The derivative at 0 is 0, as in micrograd and PyTorch.
           partials=lambda i, c, out: (1.0 if out > 0.0 else 0.0,),
           domain=_no_domain, domain_text="all finite x; relu'(0) = 0",
           rule="0.0 if x < 0 else x, so relu(-0.0) is -0.0; d/dx = 1 if out > 0 else 0, so relu'(0) = 0",
           sample_ranges=(_SAMPLE,), kink_distance=lambda i: abs(i[0]),
           edge_points=(((0.0,), 0.0), ((-0.0,), 0.0), ((-1.0,), 0.0), ((1e-300,), 0.0)),
           symbolic=lambda sp, x: sp.Piecewise((x, x > 0), (0, True))),
    OpSpec(OpCode.SIGMOID, "sigmoid", "sigmoid", 1, False, method="sigmoid",
           forward=lambda i, c: _sigmoid(i[0]),
           partials=lambda i, c, out: (_sigmoid_partial(i[0]),),
           domain=_no_domain, domain_text="all finite x",
           rule="1 / (1 + exp(-x)) for x >= 0, e / (1 + e) with e = exp(x) below; "
                "d/dx = e / (1 + e)**2 with e = exp(-|x|), not s * (1 - s)",
           sample_ranges=((-6.0, 6.0),), kink_distance=_smooth,
           edge_points=(((0.0,), 0.0), ((30.0,), 0.0), ((-30.0,), 0.0), ((-800.0,), 0.0), ((800.0,), 0.0)),
           symbolic=lambda sp, x: 1 / (1 + sp.exp(-x))),
]
# fmt: on


def _check_rows(rows: Sequence[OpSpec]) -> None:
    """Refuse, naming the op, a row that lacks something a consumer needs."""
    codes = [row.code for row in rows]
    if sorted(codes) != sorted(set(OpCode) - {OpCode.LEAF}):
        raise ImportError("spec.ops: every OpCode but LEAF needs exactly one row")
    if max(codes) >= FIRST_INTERNAL_CODE:
        raise ImportError(f"spec.ops: op codes must stay below FIRST_INTERNAL_CODE ({FIRST_INTERNAL_CODE})")
    for row in rows:
        empty = [f.name for f in fields(row) if getattr(row, f.name) in (None, "", ())]
        inputs = row.arity + row.has_constant
        problems = [f"no {name}" for name in empty] + [
            f"{what} for {inputs} inputs"
            for what, n in (
                ("sample_ranges", len(row.sample_ranges)),
                *((f"edge point {point}", len(point[0]) + row.has_constant) for point in row.edge_points),
            )
            if n != inputs
        ]
        if row.arity not in (1, 2):
            problems.append(f"arity {row.arity}")
        if problems:
            raise ImportError(f"spec.ops: the row of {row.name or row.code!r} has {'; '.join(problems)}")
    names = [row.name for row in rows]
    if len(set(names)) != len(names):
        raise ImportError(f"spec.ops: op names must be unique, got {names}")


_check_rows(_ROWS)

#: The table, keyed by op code. LEAF has no row: a leaf is not an operation.
OPS: Mapping[OpCode, OpSpec] = {row.code: row for row in _ROWS}

#: Composite operations and the primitive graph each one builds. ``n`` is a
#: plain number operand; a number operand of a primitive becomes a leaf Value.
COMPOSITES: Mapping[str, str] = {
    "neg": "-a         = a * -1",
    "sub": "a - b      = a + (-b)          (a - n = a + leaf(-n))",
    "rsub": "n - a      = (-a) + leaf(n)",
    "rtruediv": "n / a      = leaf(n) / a       (DIV: a = 0 raises)",
    "radd": "n + a      = a + leaf(n)",
    "rmul": "n * a      = a * leaf(n)",
    "rpow": "n ** a     = leaf(n) ** a      (POW: needs n > 0)",
}


def op_symbol(code: OpCode | int, constant: float = 0.0) -> str:
    """The ``Value.op`` string of a node: ``""`` for a leaf, ``"**2"`` for x ** 2."""
    if code == OpCode.LEAF:
        return ""
    row = OPS[OpCode(code)]
    return f"{row.symbol}{constant:g}" if row.has_constant else row.symbol


def check_domain(code: OpCode | int, inputs: Floats, constant: float = 0.0) -> None:
    """Raise the contract's error if ``inputs`` lie outside the op's domain."""
    error = OPS[OpCode(code)].domain(inputs, constant)
    if error is not None:
        raise note_failure(error)


def overflow_error(code: OpCode | int, inputs: Floats, constant: float = 0.0) -> ResultOverflowError:
    """The contract's error for an op whose result does not fit a finite float64."""
    row = OPS[OpCode(code)]
    args = ", ".join(repr(x) for x in inputs)
    if row.has_constant:
        args += f"; constant {constant!r}"
    return note_failure(ResultOverflowError(f"{row.name}({args}) overflows float64"))


def division_by_zero_error(numerator: float) -> DivisionByZeroError:
    """The contract's error for ``a / 0`` (no node is built, nor a number divisor's leaf)."""
    return DivisionByZeroError(f"division by zero: {numerator!r} / 0")
