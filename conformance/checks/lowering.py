"""Every backend lowers every op of the table, and computes exactly the table's rules.

Two checks per op, so that adding an op to :data:`spec.ops.OPS` fails, by name, every
backend that lacks it or gets it wrong:

- ``check_op_lowering``: the op through the public API against the reference rules
  (written with :mod:`math` on Python floats), at its edge points and sampled points,
  values and gradients within 2 ulps (bit-identical in practice; the slack only admits
  a libm that rounds differently), zeros with the table's sign;
- ``check_op_through_every_path``: the op with each operand the trained parameter,
  the others Values or plain numbers, through every engine path the backend has (the
  eager op and its backward, and ``compile_step``), at its edge points, sampled points
  and points where it fails: the same float64s bit for bit, and the same errors.
"""

from __future__ import annotations

import math
import operator
import random
from functools import reduce
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from conformance._registry import checks_in
from conformance.checks.contract import need, need_ops
from conformance.gradcheck import float_difference
from conformance.loss_programs import OptimizerChoice, ProgramModel, assert_trains_like_eager
from conformance.strategies import sample_floats
from spec import OPS, Backend, OpCode, OpSpec, compile_step

check = checks_in("ops")


def _ops() -> list[tuple[str, OpCode]]:
    return [(row.name, code) for code, row in OPS.items()]


def _same(actual: float, expected: float) -> bool:
    if actual == expected:  # zeros must agree in sign too: relu(-0.0) is -0.0
        return math.copysign(1.0, actual) == math.copysign(1.0, expected)
    return abs(actual - expected) <= 2 * math.ulp(expected)


def _assert_lowering(backend: Backend, row: OpSpec, inputs: tuple[float, ...], constant: float) -> None:
    where = f"{row.name}{tuple(inputs[: row.arity])}" + (
        f" with constant {constant!r}" if row.has_constant else ""
    )
    try:
        _compare_lowering(backend, row, inputs, constant, where)
    except AssertionError as failure:
        raise AssertionError(f"{failure}\nthe table's rule for {row.name}: {row.rule}") from None
    except Exception as error:
        raise AssertionError(
            f"{where} raised {type(error).__name__}: {error}\nthe table's rule for {row.name}: {row.rule}"
        ) from error


def _compare_lowering(
    backend: Backend, row: OpSpec, inputs: tuple[float, ...], constant: float, where: str
) -> None:
    leaves = [backend.Value(x) for x in inputs[: row.arity]]
    out = row.apply(*leaves, constant) if row.has_constant else row.apply(*leaves)
    assert out.op.startswith(row.symbol), f"{where}: op is {out.op!r}, expected {row.symbol!r}"
    expected = row.forward(tuple(inputs[: row.arity]), constant)
    assert _same(out.data, expected), f"{where}: value {float_difference(out.data, expected)}"
    out.backward()
    partials = row.partials(tuple(inputs[: row.arity]), constant, expected)
    for i, (leaf, partial) in enumerate(zip(leaves, partials, strict=True)):
        accumulated = 0.0 + partial * 1.0  # a leaf's grad starts at 0.0 and accumulates (spec.interface)
        assert _same(leaf.grad, accumulated), (
            f"{where}: d out/d input {i} is {float_difference(leaf.grad, accumulated)}"
        )


def _describe(node: Any) -> tuple[Any, ...]:
    return (node.op, node.data, tuple(child.data for child in node.children))


def _assert_apply_builds_the_public_node(
    backend: Backend, row: OpSpec, inputs: tuple[float, ...], constant: float
) -> None:
    """``Value._apply`` (which ValueBase's spellings call) builds the node the public spelling builds,
    with a Value operand and, for a binary op, with a number, which must become a leaf."""
    operands: list[list[Any]] = [[backend.Value(x) for x in inputs]]
    constant_row = any(other.method == row.method and other.has_constant for other in OPS.values())
    if row.arity == 2 and not constant_row:  # (x ** 2.0 is the constant row's, not a leaf's)
        operands.append([backend.Value(inputs[0]), inputs[1]])
    for ops in operands:
        public = row.apply(*ops, constant) if row.has_constant else row.apply(*ops)
        direct = ops[0]._apply(row.code, *ops[1:], constant=constant)
        assert _describe(direct) == _describe(public), (
            f"{row.name}{tuple(inputs)}: _apply builds {_describe(direct)}, the public spelling {_describe(public)}"
        )


@check(params=_ops)
def check_op_lowering(backend: Backend, code: OpCode) -> None:
    need_ops(backend, [code])
    row = OPS[code]
    assert code in backend.lowerings, f"backend {backend.name!r} does not lower {row.name}"
    for inputs, constant in row.edge_points:
        _assert_lowering(backend, row, inputs, constant)
    ranges = row.sample_ranges
    n_inputs = row.arity
    inputs_strategy = st.tuples(*(sample_floats(*r) for r in ranges[:n_inputs]))
    constant_strategy = sample_floats(*ranges[n_inputs]) if row.has_constant else st.just(0.0)

    @given(inputs=inputs_strategy, constant=constant_strategy)
    def sampled(inputs: tuple[float, ...], constant: float) -> None:
        _assert_lowering(backend, row, inputs, constant)

    sampled()


@check(params=_ops, also=("api",))
def check_apply_builds_the_public_node(backend: Backend, code: OpCode) -> None:
    need(backend, "Value._apply")
    need_ops(backend, [code])
    row = OPS[code]
    for inputs, constant in row.edge_points:
        _assert_apply_builds_the_public_node(backend, row, inputs, constant)


# --- every path -------------------------------------------------------------------------------------
#: values where ops overflow, leave their domain or sit on a kink, for every operand in turn
SPECIAL = (0.0, -0.0, 1.0, -1.0, 800.0, -800.0, 1e300, -1e300)
SAMPLED = 4


def _points(row: OpSpec, constant: float) -> list[tuple[float, ...]]:
    """The row's edge points with this constant, and points sampled from its ranges."""
    rng = random.Random(f"{row.name}/{constant}")
    sampled = [tuple(rng.uniform(*r) for r in row.sample_ranges[: row.arity]) for _ in range(SAMPLED)]
    return _edges(row, constant) + sampled


def _edges(row: OpSpec, constant: float) -> list[tuple[float, ...]]:
    return [inputs for inputs, c in row.edge_points if c == constant]


def _train_one_step(
    backend: Backend,
    row: OpSpec,
    constant: float,
    points: list[tuple[float, ...]],
    position: int,
    numbers: bool,
) -> None:
    """One step of ``op(point 0) + op(point 1) + ...``, one parameter per point in ``position``, compiled and eager."""
    n = len(points)
    other = 1 - position if row.arity == 2 else position
    inputs = [[point[other]] for point in points]

    def model() -> Any:
        return ProgramModel(backend, [point[position] for point in points], nin=1)

    def loss_fn(m: Any, x: Any, t: Any) -> Any:
        terms = []
        for s, p in enumerate(m.parameters()):
            operands = [
                p if k == position else (points[s][k] if numbers else x[s][0]) for k in range(row.arity)
            ]
            terms.append(row.apply(*operands, constant) if row.has_constant else row.apply(*operands))
        return reduce(operator.add, terms)  # not sum(), whose 0 + t would hide the sign of a zero

    spelled = "plain numbers" if numbers else "input Values"
    what = f"{row.name} at {points} (constant {constant!r}), operand {position} trained, the others {spelled}"
    batch = (inputs, [0.0] * n)
    choice = OptimizerChoice("sgd", 1e-3)
    assert_trains_like_eager(backend, model, loss_fn, choice, batch, [batch], what)
    expected = None if numbers else _reference(row, constant, points, position)
    if expected is not None:  # and every path against the table's rules
        m = model()
        step = compile_step(m, loss_fn, *batch, choice.build(m.parameters()), backend=backend)
        loss, grads = step(*batch), [p.grad for p in m.parameters()]
        assert _same(loss, expected[0]), (
            f"{what}: the loss is {loss!r}, the table's rules give {expected[0]!r}"
        )
        for s, (got, want) in enumerate(zip(grads, expected[1], strict=True)):
            assert _same(got, want), f"{what}: point {s}'s grad is {got!r}, the table's rules give {want!r}"


def _reference(
    row: OpSpec, constant: float, points: list[tuple[float, ...]], position: int
) -> tuple[float, list[float]] | None:
    """The loss and grads the table's rules give, or None where the eager loop raises (in the
    forward pass, or in the update, for a gradient that is not finite)."""
    total: float | None = None
    grads = []
    for point in points:
        if row.domain(point, constant) is not None:
            return None
        try:
            out = row.forward(point, constant)
        except OverflowError:
            return None
        total = out if total is None else total + out
        if not (math.isfinite(out) and math.isfinite(total)):
            return None
        grads.append(0.0 + row.partials(point, constant, out)[position] * 1.0)
        if not math.isfinite(grads[-1]):
            return None
    assert total is not None
    return total, grads


@check(params=_ops, also=("compiled", "precision"), ordered=True)
def check_op_through_every_path(backend: Backend, code: OpCode) -> None:
    need_ops(backend, [code])
    row = OPS[code]
    constants = sorted({c for _, c in row.edge_points}) if row.has_constant else [0.0]
    for constant in constants:
        for position in range(row.arity):
            for numbers in (False, True) if row.arity == 2 else (False,):
                _train_one_step(backend, row, constant, _points(row, constant), position, numbers)
                # One a batch too: one point that fails (or overflows a gradient) would leave the
                # rest of a batch unchecked against the table.
                for point in _edges(row, constant) + _special_points(row):
                    _train_one_step(backend, row, constant, [point], position, numbers)


def _special_points(row: OpSpec) -> list[tuple[float, ...]]:
    if row.arity == 1:
        return [(special,) for special in SPECIAL]
    return [point for special in SPECIAL for point in ((special, 0.75), (0.75, special))]
