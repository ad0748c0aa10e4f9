"""Hypothesis strategies: random programs whose every op stays inside its domain.

Everything comes from the op table: which ops a program may use (every row, by its
program name, and the composites of :mod:`spec.programs`), where each op is happy
(well inside ``OpSpec.domain``, away from ``OpSpec.kink_distance``), which constants are
worth trying (``OpSpec.edge_points``), and what each step computes (``OpSpec.forward``,
to track every intermediate value). A step
whose operands fall outside its op's ranges becomes ``tanh`` (defined everywhere and
keeping values small), so ``log`` only ever sees inputs well inside (0, inf) and
``relu`` never sees a value within reach of its kink, while the error contract tests
the outside. A new op joins the programs by its row alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from hypothesis import strategies as st

from spec import Backend
from spec.ops import OPS, OpCode, OpSpec
from spec.programs import BINARY_OPS, UNARY_OPS, Program

__all__ = ["programs", "sample_floats"]

# Keep intermediates where central differences stay accurate: moderate, and this far from
# a domain's edge or a kink.
_MAGNITUDE_LIMIT = 50.0
_MARGIN = 0.05
_ROWS = {row.name: row for row in OPS.values() if not row.has_constant}
#: the row a number exponent makes of ``pow``
_POW_CONST = OPS[OpCode.POW_CONST]
#: constants worth trying: those of the table's edge points (integers, halves, zero)
_CONSTANTS = sorted({c for _, c in _POW_CONST.edge_points})
_FALLBACK = "tanh"


def sample_floats(low: float, high: float) -> st.SearchStrategy[float]:
    """Finite floats in [low, high], without subnormal noise."""
    return st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def _happy(row: OpSpec, inputs: tuple[float, ...], constant: float = 0.0) -> bool:
    """Well inside the row's domain (each input may move by the margin) and away from its kinks."""
    nearby = [inputs] + [
        inputs[:i] + (x + delta,) + inputs[i + 1 :]
        for i, x in enumerate(inputs)
        for delta in (-_MARGIN, _MARGIN)
    ]
    return (
        all(row.domain(point, constant) is None for point in nearby) and row.kink_distance(inputs) > _MARGIN
    )


def _step(op: str, operands: list[float]) -> tuple[float, bool]:
    """The step's float value and whether its op is happy with these operands."""
    if op == "neg":
        return -operands[0], True
    if op == "sub":
        return operands[0] - operands[1], True
    return _forward(_ROWS[op], tuple(operands), 0.0)


def _forward(row: OpSpec, inputs: tuple[float, ...], constant: float) -> tuple[float, bool]:
    if not _happy(row, inputs, constant):
        return 0.0, False
    try:
        return row.forward(inputs, constant), True
    except OverflowError:  # Python's float ** raises where float64 overflows
        return 0.0, False


#: the op names the strategies draw: all of spec.programs', unless a check runs for a backend
#: of an older contract, which lacks some (:func:`drawing_ops_of`)
_IN_PLAY: ContextVar[frozenset[str] | None] = ContextVar("gradspec_ops_in_play", default=None)


@contextmanager
def drawing_ops_of(backend: Backend) -> Iterator[None]:
    """Within: the strategies draw only the ops ``backend`` has (see :mod:`spec.contract`)."""
    from conformance.checks.contract import lowered

    token = _IN_PLAY.set(frozenset(lowered(backend, [*BINARY_OPS, *UNARY_OPS])))
    try:
        yield
    finally:
        _IN_PLAY.reset(token)


def _in_play(ops: Mapping[str, Any]) -> list[str]:
    allowed = _IN_PLAY.get()
    return sorted(op for op in ops if allowed is None or op in allowed)


def binary_ops() -> list[str]:
    """The binary op names a program may use, sorted."""
    return _in_play(BINARY_OPS)


def unary_ops() -> list[str]:
    """The unary op names a program may use, sorted."""
    return _in_play(UNARY_OPS)


@st.composite
def programs(draw: st.DrawFn, max_inputs: int = 3, max_steps: int = 10) -> Program:
    """A random program over 1..max_inputs inputs with 1..max_steps steps.

    Operands are drawn from all earlier names (so nodes get shared) or are
    small constants; every op of :mod:`spec.programs` can appear.
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
        op = draw(st.sampled_from(binary_ops() + unary_ops()), label=f"{dest}.op")
        if op in UNARY_OPS:
            arg = draw(st.sampled_from(names), label=f"{dest}.arg")
            args: tuple[str | float, ...] = (arg,)
            result, happy = _step(op, [values[arg]])
        else:
            left = draw(st.sampled_from(names), label=f"{dest}.left")
            right: str | float = draw(
                st.one_of(st.sampled_from(names), sample_floats(-2.0, 2.0)), label=f"{dest}.right"
            )
            swap = isinstance(right, float) and draw(st.booleans(), label=f"{dest}.number_left")
            if op == "pow" and isinstance(right, float) and not swap:  # x ** c: the constant row
                right = draw(st.sampled_from(_CONSTANTS), label=f"{dest}.exponent")
                result, happy = _forward(_POW_CONST, (values[left],), right)
                args = (left, right)
            else:
                args = (right, left) if swap else (left, right)
                result, happy = _step(op, [values[x] if isinstance(x, str) else x for x in args])
        if not happy or not abs(result) <= _MAGNITUDE_LIMIT:
            arg = next(a for a in args if isinstance(a, str))
            op, args = _FALLBACK, (arg,)
            result = _ROWS[_FALLBACK].forward((values[arg],), 0.0)
        steps.append((dest, op, args))
        values[dest] = result
    program = Program(inputs, steps, f"v{len(steps) - 1}")
    program.validate()
    return program
