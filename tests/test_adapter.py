"""spec.adapter.EngineValue: an adapter over the op table's own rules passes every conformance check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_an_engine_value_adapter_passes_the_whole_suite(tmp_path: Path) -> None:
    adapters = Path(__file__).parent / "adapters"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(adapters), os.environ.get("PYTHONPATH", "")])}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-x",
        "--pyargs",
        "conformance",
    ]
    result = subprocess.run(
        [*command, "--backend", "table_adapter:BACKEND"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0 and " passed" in report, report[-6000:]
