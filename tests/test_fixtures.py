"""The golden fixtures: complete, reproducible, and computed by an oracle independent of the spec."""

from __future__ import annotations

import ast
import csv
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from spec.fixtures import FIXTURE_FILES, expression_cases, mlp_cases
from spec.fixtures._cases import MOONS_HEAD, expression_programs
from spec.nn import initial_parameters
from spec.ops import COMPOSITES, OPS, OpCode
from spec.programs import BINARY_OPS, UNARY_OPS

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_DIR = ROOT / "spec" / "fixtures"


def _step_forms(op: str, args: tuple[str | float, ...]) -> tuple[set[OpCode], set[str]]:
    """The primitives (spec.ops) and composite forms (spec.ops.COMPOSITES) a program step builds."""
    values = [isinstance(a, str) for a in args]
    if op == "add":
        return {OpCode.ADD}, {"radd"} if values == [False, True] else set()
    if op == "sub":
        if values == [True, True]:
            return {OpCode.ADD, OpCode.MUL}, {"sub", "neg"}
        return ({OpCode.ADD}, {"sub"}) if values[0] else ({OpCode.ADD, OpCode.MUL}, {"rsub", "neg"})
    if op == "mul":
        return {OpCode.MUL}, {"rmul"} if values == [False, True] else set()
    if op == "truediv":
        return {OpCode.DIV}, {"rtruediv"} if values == [False, True] else set()
    if op == "pow":
        if values == [True, False]:
            return {OpCode.POW_CONST}, set()
        return {OpCode.POW}, {"rpow"} if values == [False, True] else set()
    if op == "neg":
        return {OpCode.MUL}, {"neg"}
    return {OpCode[op.upper()]}, set()


# --- contents ------------------------------------------------------------------------------
def test_expression_fixtures_load_with_unique_names() -> None:
    cases = expression_cases()
    names = [case.name for case in cases]
    assert len(cases) >= 40
    assert len(set(names)) == len(names)
    assert names == list(expression_programs())
    for case in cases:
        assert set(case.grads) == set(case.program.inputs), case.name
        assert all(math.isfinite(x) for x in [case.value, *case.grads.values()]), case.name


def test_expression_fixtures_cover_every_op_and_composite() -> None:
    program_ops, primitives, composites = set(), set(), set()
    for case in expression_cases():
        for _, op, args in case.program.steps:
            program_ops.add(op)
            codes, forms = _step_forms(op, args)
            primitives |= codes
            composites |= forms
    assert program_ops == set(BINARY_OPS) | set(UNARY_OPS)
    assert primitives == set(OPS)
    assert composites == set(COMPOSITES)


def test_relu_at_zero_has_zero_gradient() -> None:
    cases = {case.name: case for case in expression_cases()}
    for name in ("relu_at_zero", "relu_at_negative_zero", "relu_of_exact_zero_difference"):
        assert cases[name].value == 0.0
        assert all(g == 0.0 for g in cases[name].grads.values()), name


def test_micrograd_engine_tests_match_micrograds_pytorch_numbers() -> None:
    # The numbers micrograd's test_engine.py gets from PyTorch (float64), to rounding error.
    cases = {case.name: case for case in expression_cases()}
    sanity = cases["micrograd_test_sanity_check"]
    assert sanity.value == -20.0
    assert sanity.grads == {"x": 46.0}
    more = cases["micrograd_test_more_ops"]
    for actual, torch in [
        (more.value, 24.70408163265306),
        (more.grads["a"], 138.83381924198252),
        (more.grads["b"], 645.5772594752186),
    ]:
        assert math.isclose(actual, torch, rel_tol=1e-14)


def test_mlp_fixtures_are_consistent() -> None:
    cases = mlp_cases()
    assert len(cases) >= 4
    assert {case.loss for case in cases} == {"mse", "svm", "bce"}
    for case in cases:
        count = len(initial_parameters(case.nin, list(case.nouts), case.seed))
        expected = case.expected
        assert len(expected.outputs) == len(case.inputs) == len(case.targets), case.name
        assert len(expected.grads) == len(expected.params_after) == count, case.name
        assert len(expected.losses) == case.steps, case.name
        assert expected.losses[0] == expected.loss, case.name
        assert (case.alpha is not None) == (case.loss == "svm"), case.name
        assert all(len(x) == case.nin for x in case.inputs), case.name


def test_moons_rows_are_the_benchmark_data() -> None:
    with (ROOT / "benchmarks" / "data" / "moons-1337.csv").open() as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    head = [(float(r["x0"]), float(r["x1"]), int(r["y"])) for r in rows[: len(MOONS_HEAD)]]
    assert head == list(MOONS_HEAD)


def test_fixture_files_are_small() -> None:
    assert sum((FIXTURE_DIR / name).stat().st_size for name in FIXTURE_FILES) < 1_000_000


def test_loading_needs_neither_sympy_nor_mpmath() -> None:
    code = (
        "import sys, spec.fixtures as f; f.expression_cases(); f.mlp_cases(); "
        "loaded = [m for m in ('sympy', 'mpmath') if m in sys.modules]; print(loaded); sys.exit(bool(loaded))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


# --- reproducibility -------------------------------------------------------------------------
def test_fixtures_match_a_fresh_oracle_run() -> None:
    pytest.importorskip("sympy")
    pytest.importorskip("mpmath")
    result = subprocess.run(
        [sys.executable, "-m", "spec.fixtures", "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]


def test_stepwise_method_agrees_with_whole_expression_sympy() -> None:
    pytest.importorskip("sympy")
    from spec.fixtures import _oracle

    for name, program in expression_programs().items():
        if len(program.steps) > _oracle.SYMPY_MAX_STEPS:
            continue
        _, _, value, grads = _oracle._symbolic(program)
        _, _, step_value, step_grads = _oracle._stepwise(program)
        _oracle._check(f"{name}: value", value, step_value)
        for input_name in program.inputs:
            _oracle._check(f"{name}: d/d{input_name}", grads[input_name], step_grads[input_name])


# --- independence ------------------------------------------------------------------------------
def _imports(path: Path) -> dict[str, set[str]]:
    """Module -> names imported from it (an empty set for ``import module``)."""
    found: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.setdefault(alias.name, set())
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.setdefault(node.module, set()).update(alias.name for alias in node.names)
    return found


def test_oracle_imports_no_backend_and_no_spec_arithmetic() -> None:
    source = FIXTURE_DIR / "_oracle.py"
    imports = _imports(source)
    assert not [m for m in imports if m == "backends" or m.startswith("backends.")]
    ours = {m: names for m, names in imports.items() if m == "spec" or m.startswith("spec.")}
    # Data only: the Program format, the case lists, the spec's deterministic parameter draw, and
    # the op table, of which the oracle reads the exact symbolic forms and nothing that computes.
    assert ours == {
        "spec.fixtures._cases": {"CompositeSetup", "MLPSetup"},
        "spec.nn": {"initial_parameters"},
        "spec.ops": {"OPS"},
        "spec.programs": {"Program"},
    }
    text = source.read_text()
    assert "__import__" not in text and "import_module" not in text
    attributes = {node.attr for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Attribute)}
    assert not attributes & {"partials", "apply", "domain"}, "the oracle uses the spec's arithmetic"
    assert not re.search(r"(row|_ROWS\[[^]]*\]|OPS\[[^]]*\])\.forward", text), (
        "the oracle uses the spec's forward rules"
    )


def test_oracle_run_loads_no_backend() -> None:
    pytest.importorskip("sympy")
    code = (
        "import sys; from spec.fixtures.__main__ import generate; generate(); "
        "loaded = [m for m in sys.modules if m.split('.')[0] == 'backends']; "
        "print(loaded); sys.exit(bool(loaded))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
