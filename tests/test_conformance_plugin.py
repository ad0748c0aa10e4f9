"""The conformance plugin as a backend author meets it: the report names the backend under
test, and a misspelt expected failure is reported, through ``--pyargs conformance`` and
through ``@parametrize_with_checks`` alike."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

AUTHOR_TESTS = """
    import dataclasses

    from backends.python import BACKEND
    from conformance import parametrize_with_checks

    MINE = dataclasses.replace(
        BACKEND, name="mine", version="9.9", expected_failures={"check_no_such_thing": "misspelt"}
    )

    @parametrize_with_checks(MINE)
    def test_conformance(check):
        check()
"""


def _pytest(tmp_path: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    return result.stdout + result.stderr


def test_parametrize_with_checks_names_its_backend_and_warns_of_misspelt_ids(tmp_path: Path) -> None:
    (tmp_path / "test_mine.py").write_text(textwrap.dedent(AUTHOR_TESTS))
    report = _pytest(tmp_path, "test_mine.py", "--collect-only", "-q")
    assert "gradspec backend under test: mine 9.9" in report, report
    assert "gradspec backend under test: python" not in report, report
    assert "'check_no_such_thing' that matches no conformance check" in report, report


def test_pyargs_conformance_names_the_chosen_backend(tmp_path: Path) -> None:
    report = _pytest(tmp_path, "--pyargs", "conformance", "--backend", "numba", "--collect-only", "-q")
    assert "gradspec backend under test: numba" in report, report
    assert "gradspec backend under test: python" not in report, report


def _author_backend(tmp_path: Path, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))


def test_expected_failures_by_pattern_and_category_strict_or_not(tmp_path: Path) -> None:
    _author_backend(
        tmp_path,
        "declared",
        """
        import dataclasses

        from backends.python import BACKEND
        from spec import ExpectedFailure

        PATTERN = dataclasses.replace(
            BACKEND,
            name="pattern",
            expected_failures={"check_op_lowering[ta*]": "tanh' differs", "check_op_lowerin[relu]": "misspelt"},
        )
        CATEGORY = dataclasses.replace(
            BACKEND, name="category", expected_failures={"category:api": ExpectedFailure("flaky", strict=False)}
        )
        """,
    )
    strict = _pytest(
        tmp_path, "--pyargs", "conformance", "--backend", "declared:PATTERN", "-k", "check_op_lowering", "-rX"
    )
    assert "[XPASS(strict)] tanh' differs" in strict and "1 failed" in strict, strict  # tanh, by the pattern
    assert "did you mean 'check_op_lowering[relu]'" in strict, strict
    flaky = _pytest(tmp_path, "--pyargs", "conformance", "--backend", "declared:CATEGORY", "-m", "api")
    xpassed = re.search(r"deselected, (\d+) xpassed in", flaky)  # non-strict: a pass fails nothing
    assert xpassed, flaky
    row = next(line for line in flaky.splitlines() if line.startswith("api "))
    assert row.split() == ["api", "0", xpassed[1], "0", "0"], flaky  # passed, declared, skipped, failed


def test_the_backend_must_be_named_and_a_misspelt_one_gets_a_suggestion(tmp_path: Path) -> None:
    import os

    env_free = {k: v for k, v in os.environ.items() if k != "GRADSPEC_BACKEND"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--pyargs",
            "conformance",
            "--collect-only",
            "-q",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env_free,
    )
    assert result.returncode != 0 and "choose the backend under test: --backend NAME" in result.stdout, result
    report = _pytest(tmp_path, "--pyargs", "conformance", "--backend", "numbaa", "--collect-only", "-q")
    assert "no gradspec backend named 'numbaa' is installed; did you mean 'numba'?" in report, report


def test_a_nondeterministic_backward_fails_once_and_skips_what_depends_on_it(tmp_path: Path) -> None:
    # Kahn's algorithm with random picks: a valid order of backward, another at every call.
    _author_backend(
        tmp_path,
        "shuffled",
        """
        import random

        from backends.python import BACKEND, _value

        def backward(self):
            nodes = _value._graph(self)
            readers = {id(n): 0 for n in nodes}
            for n in nodes:
                for c in (n._a, n._b):
                    if c is not None:
                        readers[id(c)] += 1
            for n in nodes:
                if n._backward is not None:
                    n._grad = 0.0
            self._grad = 1.0
            ready = [self] if self._backward is not None else []
            while ready:
                node = ready.pop(random.randrange(len(ready)))
                node._backward(node, node._grad)
                for c in (node._a, node._b):
                    if c is not None:
                        readers[id(c)] -= 1
                        if readers[id(c)] == 0 and c._backward is not None:
                            ready.append(c)

        _value.Value.backward = backward
        """,
    )
    selected = "deterministic or building_twice or accumulation_follows or check_wide_sum"
    report = _pytest(
        tmp_path, "--pyargs", "conformance", "--backend", "shuffled:BACKEND", "-k", selected, "-rs"
    )
    assert "1 failed" in report and "backward is not deterministic: " in report, report
    assert "ulps apart" in report, report
    assert "2 skipped" in report, report  # building twice, and the accumulation order
    assert "(check_backward_is_deterministic)" in report and "1 passed" in report, report  # the wide sum runs


def test_an_exception_escaping_a_check_names_the_op_its_inputs_and_the_rule(tmp_path: Path) -> None:
    _author_backend(
        tmp_path,
        "raw_division",
        """
        from backends.python import BACKEND, _value
        from spec import OpCode

        def divide(x, y, c):
            raise ZeroDivisionError("float division by zero")

        _value.LOWERINGS[OpCode.DIV] = _value.LOWERINGS[OpCode.DIV]._replace(forward=divide)
        """,
    )
    report = _pytest(
        tmp_path,
        "--pyargs",
        "conformance",
        "--backend",
        "raw_division:BACKEND",
        "-k",
        "check_op_lowering[truediv]",
    )
    assert "truediv(6.0, 3.0) raised ZeroDivisionError: float division by zero" in report, report
    assert "the table's rule for truediv: x / y rounded once" in report, report


def test_checks_of_an_undeclared_capability_are_skipped_saying_so(tmp_path: Path) -> None:
    report = _pytest(tmp_path, "--pyargs", "conformance", "--backend", "python", "-k", "check_fused", "-rs")
    assert "python does not declare fused_call" in report, report
    assert re.search(r"=+ \d+ skipped, \d+ deselected in", report), report  # nothing passed or failed


def test_the_readme_lists_every_category_and_every_ops_rule() -> None:
    from conformance import CATEGORIES
    from spec import OPS

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for name, text in CATEGORIES.items():
        assert f"| `{name}` | {text} |" in readme, name
    for row in OPS.values():
        assert f"| `{row.name}` | {row.rule.replace('|', chr(92) + '|')} |" in readme, row.name
