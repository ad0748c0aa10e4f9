"""The conformance plugin as a backend author meets it: the report names the backend under
test, and a misspelt expected failure is reported, through ``--pyargs conformance`` and
through ``@parametrize_with_checks`` alike."""

from __future__ import annotations

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
