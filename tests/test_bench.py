"""benchmarks.bench: systems side by side, each step's parts, and agreement with the reference."""

from __future__ import annotations

from pathlib import Path

from benchmarks import _report
from benchmarks._workloads import workload
from benchmarks.bench import machine_info, run_workload
from benchmarks.micrograd_loop import PARTS


def test_micrograds_loop_and_the_eager_loop_report_their_parts_and_agree(tmp_path: Path) -> None:
    systems = ["numba-loop", "numba-eager", "numba-compiled", "python-loop"]
    result = run_workload(workload("moons"), systems, budget=0.3, min_steps=3, log=lambda *_: None)
    rows = {r["key"]: r for r in result["results"]}
    for key in ("numba-loop", "numba-eager", "python-loop"):
        row = rows[key]
        assert list(row["parts_ms"]) == list(PARTS)
        assert all(ms > 0 for ms in row["parts_ms"].values())
        # micrograd's loop, unchanged, computes the compiled step's losses bit for bit
        assert row["bit_identical"] and row["agrees"], key
    assert "parts_ms" not in rows["numba-compiled"]
    lines = _report._parts_table(result["results"])
    assert lines[1].split()[-4:] == list(PARTS) and len(lines) == 2 + 3
    results = {"machine": machine_info(), "quick": True, "workloads": {"moons": result}}
    _report.chart(results, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").stat().st_size > 10_000  # the times panel and the parts panel
