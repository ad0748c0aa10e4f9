"""The lowering lowers every op of spec.ops.OPS, and computes exactly the table's rules.

Parametrised over the op table: an op added to the spec fails here, by name,
until backends.numba._lowering lowers it.
"""

from __future__ import annotations

import math
import random
from enum import IntEnum
from types import SimpleNamespace

import pytest

import backends.numba as numba_backend
from backends import python as reference
from backends.numba import BACKEND, Value, _lowering
from spec import OPS, OpCode, OpSpec


def sample_points(row: OpSpec, count: int = 300) -> list[tuple[tuple[float, ...], float]]:
    """``count`` (inputs, constant) pairs drawn from the row's sampling ranges, seeded."""
    rng = random.Random(row.code)
    points = []
    for _ in range(count):
        inputs = tuple(rng.uniform(*r) for r in row.sample_ranges[: row.arity])
        constant = rng.uniform(*row.sample_ranges[row.arity]) if row.has_constant else 0.0
        if row.code == OpCode.POW_CONST and rng.random() < 0.3:
            constant = float(rng.randint(-3, 4))  # integer exponents: the usual case
        points.append((inputs, constant))
    return points


def same(x: float, y: float) -> bool:
    """Bit-identical (NaN equals NaN, 0.0 does not equal -0.0)."""
    return math.copysign(1.0, x) == math.copysign(1.0, y) and (x == y or (math.isnan(x) and math.isnan(y)))


OP_IDS = [row.name for row in OPS.values()]


@pytest.mark.parametrize("code", list(OPS), ids=OP_IDS)
def test_the_lowering_lowers_the_op(code: OpCode) -> None:
    assert code in _lowering.LOWERINGS, f"the numba backend does not lower {OPS[code].name}"
    assert _lowering.LOWERINGS[code].code == code
    assert BACKEND.lowerings[code] is _lowering.LOWERINGS[code]


@pytest.mark.parametrize("code", list(OPS), ids=OP_IDS)
def test_kernel_forward_and_partials_equal_the_table(code: OpCode) -> None:
    row = OPS[code]
    for inputs, constant in sample_points(row):
        x, y = inputs[0], inputs[1] if row.arity == 2 else 0.0
        expected = row.forward(inputs, constant)
        actual = _lowering.forward(code, x, y, constant)
        where = f"{row.name}{inputs} c={constant!r}"
        assert same(actual, expected), f"{where}: kernel {actual!r}, table {expected!r}"
        partials = _lowering.partials(code, x, y, constant, expected)
        for i, want in enumerate(row.partials(inputs, constant, expected)):
            assert same(partials[i], want), f"{where}: d/d input {i} kernel {partials[i]!r}, table {want!r}"


@pytest.mark.parametrize("code", list(OPS), ids=OP_IDS)
def test_eager_op_and_backward_equal_the_table_and_the_python_backend(code: OpCode) -> None:
    row = OPS[code]
    for inputs, constant in sample_points(row, 100):
        built = {}
        for backend in (numba_backend, reference):
            leaves = [backend.Value(x) for x in inputs]
            out = row.apply(*leaves, constant) if row.has_constant else row.apply(*leaves)
            out.backward()
            built[backend.__name__] = (out.data, *(leaf.grad for leaf in leaves))
        expected = row.forward(inputs, constant)
        partials = row.partials(inputs, constant, expected)
        ours = built[numba_backend.__name__]
        assert same(ours[0], expected), (row.name, inputs, constant)
        assert all(map(same, ours[1:], partials)), (row.name, inputs, constant, ours, partials)
        assert ours == built[reference.__name__], (row.name, inputs, constant)


def test_an_unknown_op_code_raises_in_the_kernels() -> None:
    for dispatch, args in ((_lowering.forward, ()), (_lowering.partials, (3.0,)), (_lowering.fails, (3.0,))):
        with pytest.raises(ValueError, match="does not lower"):
            dispatch(99, 1.0, 2.0, 0.0, *args)


def test_an_op_added_to_the_spec_fails_the_import_check() -> None:
    new_code = IntEnum("NewOpCode", {"CUBE": max(OpCode) + 1})
    extended = {**OPS, new_code.CUBE: SimpleNamespace(name="cube")}
    with pytest.raises(NotImplementedError, match="cube"):
        _lowering.check_lowerings(extended)
    _lowering.check_lowerings(OPS)


def test_every_dispatcher_calls_each_ops_own_functions() -> None:
    _lowering.check_dispatchers()


def test_every_op_in_one_graph_matches_the_python_backend() -> None:
    def program(v: type) -> tuple[object, list[object]]:
        a, b, c = v(0.8), v(-1.3), v(2.2)
        out = (a * b + c) ** 2.0 + c**a + (a.exp() + c.log()) * b.tanh() + b.relu() + (a * c).relu()
        out = out * (b.sigmoid() + (-b).sigmoid()) + 3.0 / c - a / b
        return out, [a, b, c]

    mine, leaves = program(Value)
    theirs, ref_leaves = program(reference.Value)
    mine.backward()
    theirs.backward()
    assert mine.data == theirs.data
    assert [x.grad for x in leaves] == [x.grad for x in ref_leaves]
