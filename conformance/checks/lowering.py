"""Every backend lowers every op of the table, and computes exactly the table's rules.

One check per op: adding an op to :data:`spec.ops.OPS` fails, by name, every
backend that lacks it. Values and gradients must equal the reference rules
(written with :mod:`math` on Python floats) to within 2 ulps — bit-identical
in practice; the slack only admits a libm that rounds differently. Zeros must
carry the table's sign.
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from conformance._registry import check
from conformance.strategies import sample_floats
from spec import OPS, Backend, OpCode, OpSpec

# Points every lowering must get right, beyond the sampled ones: kinks, zeros,
# special exponents, saturation.
EDGE_POINTS: dict[OpCode, list[tuple[tuple[float, ...], float]]] = {
    OpCode.ADD: [((0.0, -0.0), 0.0), ((-0.0, -0.0), 0.0), ((1e300, 1e300), 0.0)],
    OpCode.MUL: [((0.0, 5.0), 0.0), ((-0.0, 5.0), 0.0), ((-1e-300, 1e-300), 0.0)],
    OpCode.POW: [((2.0, 0.0), 0.0), ((0.5, -2.0), 0.0), ((1.0, 7.5), 0.0)],
    OpCode.POW_CONST: [
        ((0.0, 0.0), 0.0),
        ((0.0, 0.0), 1.0),
        ((0.0, 0.0), 2.0),
        ((-2.0, 0.0), 3.0),
        ((-0.0, 0.0), 3.0),
        ((-2.0, 0.0), -2.0),
        ((4.0, 0.0), 0.5),
        ((5.0, 0.0), 0.0),
    ],
    OpCode.EXP: [((0.0,), 0.0), ((700.0,), 0.0), ((-800.0,), 0.0)],
    OpCode.LOG: [((1.0,), 0.0), ((1e-300,), 0.0), ((1e300,), 0.0)],
    OpCode.TANH: [((0.0,), 0.0), ((-0.0,), 0.0), ((20.0,), 0.0), ((-20.0,), 0.0)],
    OpCode.RELU: [((0.0,), 0.0), ((-0.0,), 0.0), ((-1.0,), 0.0), ((1e-300,), 0.0)],
    OpCode.SIGMOID: [((0.0,), 0.0), ((30.0,), 0.0), ((-30.0,), 0.0), ((-800.0,), 0.0), ((800.0,), 0.0)],
}


def _ops() -> list[tuple[str, OpCode]]:
    return [(row.name, code) for code, row in OPS.items()]


def _same(actual: float, expected: float) -> bool:
    if actual == expected:  # zeros must agree in sign too: relu(-0.0) is -0.0
        return math.copysign(1.0, actual) == math.copysign(1.0, expected)
    return abs(actual - expected) <= 2 * math.ulp(expected)


def _assert_lowering(backend: Backend, row: OpSpec, inputs: tuple[float, ...], constant: float) -> None:
    leaves = [backend.Value(x) for x in inputs[: row.arity]]
    out = row.apply(*leaves, constant) if row.has_constant else row.apply(*leaves)
    where = f"{row.name}{tuple(inputs[: row.arity])}" + (
        f" with constant {constant!r}" if row.has_constant else ""
    )
    assert out.op.startswith(row.symbol), f"{where}: op is {out.op!r}, expected {row.symbol!r}"
    expected = row.forward(tuple(inputs[: row.arity]), constant)
    assert _same(out.data, expected), f"{where}: value {out.data!r}, table says {expected!r}"
    out.backward()
    partials = row.partials(tuple(inputs[: row.arity]), constant, expected)
    for i, (leaf, partial) in enumerate(zip(leaves, partials, strict=True)):
        accumulated = 0.0 + partial * 1.0  # a leaf's grad starts at 0.0 and accumulates (spec.interface)
        assert _same(leaf.grad, accumulated), (
            f"{where}: d out/d input {i} is {leaf.grad!r}, table says {accumulated!r}"
        )


@check(params=_ops)
def check_op_lowering(backend: Backend, code: OpCode) -> None:
    row = OPS[code]
    assert code in backend.lowerings, f"backend {backend.name!r} does not lower {row.name}"
    for inputs, constant in EDGE_POINTS.get(code, []):
        _assert_lowering(backend, row, inputs, constant)
    ranges = row.sample_ranges
    n_inputs = row.arity
    inputs_strategy = st.tuples(*(sample_floats(*r) for r in ranges[:n_inputs]))
    constant_strategy = sample_floats(*ranges[n_inputs]) if row.has_constant else st.just(0.0)

    @given(inputs=inputs_strategy, constant=constant_strategy)
    def sampled(inputs: tuple[float, ...], constant: float) -> None:
        _assert_lowering(backend, row, inputs, constant)

    sampled()
