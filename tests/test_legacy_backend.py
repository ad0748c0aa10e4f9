"""A backend written for contract version 1 still runs the conformance suite: what it lacks
fails once each, by name and version, and every other check passes or is skipped naming the
requirement it needs.

``tests/legacy/gradspec_v1`` is the python backend as it stood at dee1129 (2026-11-27), the
last commit of contract version 1: dunder methods, no ``_apply``, no max or division
primitive, ``__array_ufunc__ = None``, no ``spec_version``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

LEGACY = Path(__file__).parent / "legacy"


def test_a_backend_of_contract_version_1_fails_only_what_later_versions_added(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(LEGACY), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-rfs", "-q"]
    result = subprocess.run(
        [*command, "--pyargs", "conformance", "--backend", "gradspec_v1:BACKEND"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    report = result.stdout + result.stderr
    failed = sorted(re.findall(r"^FAILED \S+::test_conformance\[(.*?)\](?: - |$)", report, re.M))
    assert failed == [
        "check_contract[Backend.spec_version]",
        "check_contract[NumPy functions refused]",
        "check_contract[Value._apply]",
        "check_contract[op max]",
        "check_contract[op truediv]",
    ], report[-5000:]
    for requirement, version in (
        ("Value._apply", 2),
        ("op max", 2),
        ("op truediv", 2),
        ("NumPy functions refused", 3),
    ):
        assert f"{requirement}: added in contract version {version} (" in report, requirement
        assert f"needs {requirement} (contract version {version}), which legacy-v1 does not meet" in report
    reasons = re.findall(r"^SKIPPED \[\d+\] \S+: (.*)$", report, re.M)
    assert reasons and all(
        reason.startswith("needs ") or reason == "legacy-v1 does not declare fused_call" for reason in reasons
    ), reasons
    assert re.search(r"5 failed, \d+ passed, \d+ skipped", report), report[-2000:]


def test_the_readme_has_the_contracts_changelog() -> None:
    from spec.contract import CHANGES

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for change in CHANGES:
        assert f"| {change.version} | {change.date} | {change.name} | {change.what} |" in readme, change.name
