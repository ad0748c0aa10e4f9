"""The spec package on its own: op table, registry, programs, operands, schedules."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

import spec
from spec import OPS, Backend, OpCode, load_backend
from spec.errors import NonFiniteError, OperandTypeError
from spec.operands import as_finite_float
from spec.programs import Program


def test_every_op_code_but_leaf_has_exactly_one_row():
    assert set(OPS) == set(OpCode) - {OpCode.LEAF}
    assert len({row.name for row in OPS.values()}) == len(OPS)
    for code, row in OPS.items():
        assert row.code is code
        assert len(row.sample_ranges) == row.arity + row.has_constant, row.name


@pytest.mark.parametrize("code", list(OPS), ids=lambda c: OPS[c].name)
def test_reference_partials_match_central_differences(code):
    row = OPS[code]
    point = tuple((low + high) / 2 + 0.1 for low, high in row.sample_ranges)
    inputs, constant = point[: row.arity], (point[row.arity] if row.has_constant else 0.0)
    out = row.forward(inputs, constant)
    for i, partial in enumerate(row.partials(inputs, constant, out)):
        h = 1e-6
        up = list(inputs)
        down = list(inputs)
        up[i] += h
        down[i] -= h
        numeric = (row.forward(tuple(up), constant) - row.forward(tuple(down), constant)) / (2 * h)
        assert partial == pytest.approx(numeric, rel=1e-6, abs=1e-8), (row.name, i)


def test_spec_imports_no_backend():
    code = "import sys, spec, spec.nn, spec.programs, spec.fixtures; print(any(m.startswith('backends') for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_backend_without_a_lowering_is_refused_by_name():
    python = load_backend("python")
    lowerings = {k: v for k, v in python.lowerings.items() if k != OpCode.SIGMOID}
    with pytest.raises(NotImplementedError, match="sigmoid"):
        dataclasses.replace(python, lowerings=lowerings)


def test_load_backend_by_name_and_by_path():
    assert load_backend("python") is load_backend("backends.python:BACKEND")
    assert "python" in spec.available_backends()


def test_load_backend_errors_are_clear():
    with pytest.raises(LookupError, match="no gradspec backend named 'nope'"):
        load_backend("nope")
    with pytest.raises(TypeError, match=r"not a spec\.Backend"):
        load_backend("spec:OPS")


def test_program_json_round_trip_and_validation():
    data = {"inputs": {"a": 1.0}, "steps": [["b", "mul", "a", 2.0], ["c", "sub", 1.0, "b"]], "output": "c"}
    assert Program.from_json(data).to_json() == data
    bad = [
        {"inputs": {"a": 1.0}, "steps": [["b", "frobnicate", "a"]], "output": "b"},
        {"inputs": {"a": 1.0}, "steps": [["b", "add", "a"]], "output": "b"},
        {"inputs": {"a": 1.0}, "steps": [["b", "add", 1.0, 2.0]], "output": "b"},
        {"inputs": {"a": 1.0}, "steps": [["b", "add", "a", "z"]], "output": "b"},
        {"inputs": {"a": 1.0}, "steps": [["a", "exp", "a"]], "output": "a"},
        {"inputs": {"a": 1.0}, "steps": [], "output": "b"},
    ]
    for data in bad:
        with pytest.raises(ValueError):
            Program.from_json(data)


def test_operands():
    assert as_finite_float(3) == 3.0 and as_finite_float(np.float32(0.5)) == 0.5
    # bool is not a number, whether Python's or NumPy's
    for flag in (True, np.False_):
        with pytest.raises(OperandTypeError, match="bool"):
            as_finite_float(flag)
    with pytest.raises(OperandTypeError, match=r"\(cut\)") as refused:
        as_finite_float("x" * 10_000_000)
    assert len(str(refused.value)) < 200, "an error message must not echo huge input"
    with pytest.raises(NonFiniteError, match="must be finite"):
        as_finite_float(float("inf"))
    with pytest.raises(OperandTypeError, match="must be a real number, got str"):
        as_finite_float("1")


def test_linear_decay_is_micrograds_schedule_bit_for_bit():
    schedule = spec.linear_decay(1.0, 0.1, 100)
    assert all(schedule(k) == 1.0 - 0.9 * k / 100 for k in range(100))


def test_backend_is_frozen_description():
    assert isinstance(load_backend("python"), Backend)
    with pytest.raises(dataclasses.FrozenInstanceError):
        load_backend("python").name = "x"  # type: ignore[misc]
