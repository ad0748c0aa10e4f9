"""benchmarks.bench: systems side by side, each step's parts, and agreement with the reference."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from benchmarks import _probes, _report
from benchmarks._systems import Unavailable, make_runner
from benchmarks._workloads import Workload, forward, workload
from benchmarks.bench import machine_info, run_workload
from benchmarks.micrograd_loop import PARTS
from spec import load_backend


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


def _tiny(name: str, n: int = 12, steps: int = 3) -> Workload:
    """Workload ``name`` at its --quick size, cut to ``n`` samples and ``steps`` steps."""
    w = workload(name, quick=True)
    return replace(w, X=w.X[:n], y=w.y[:n], steps=steps)


# --- the RBF workload: a per-sample model that is not an MLP ------------------------------------------
def _rbf_loss_by_hand(flat: list[float], X: np.ndarray, y: np.ndarray, alpha: float) -> float:
    """The RBF workload's loss, written out again: b + sum_k a_k exp(-g_k |x - c_k|^2), SVM + L2."""
    p = np.asarray(flat)
    units, b = p[:-1].reshape(-1, 4), p[-1]
    scores = np.array(
        [b + sum(a * np.exp(-g * ((x[0] - c0) ** 2 + (x[1] - c1) ** 2)) for c0, c1, g, a in units) for x in X]
    )
    return float(np.mean(np.maximum(1.0 - y * scores, 0.0)) + alpha * np.sum(p * p))


@pytest.mark.parametrize("backend_name", ["python", "numba"])
def test_the_rbf_loss_is_the_formula_at_the_initial_parameters(backend_name: str) -> None:
    w = workload("rbf")  # the full size: 100 moons, 32 centres
    assert w.model == "rbf" and len(w.init) == 32 * 4 + 1
    model = w.build(load_backend(backend_name))
    assert [p.data for p in model.parameters()] == w.init
    loss = w.loss_fn(model, w.X.tolist(), w.y.tolist())
    expected = _rbf_loss_by_hand(w.init, w.X, w.y, w.alpha)
    assert loss.data == pytest.approx(expected, rel=1e-12)
    assert np.allclose(forward(w.init, w, w.X), [model(x).data for x in w.X.tolist()], rtol=1e-12, atol=0)


def test_the_rbf_workload_runs_on_every_system_that_has_it() -> None:
    systems = ["numba-eager", "numba-compiled", "python-compiled", "torch", "jax", "numpy", "micrograd"]
    result = run_workload(_tiny("rbf"), systems, budget=1.0, min_steps=3, log=lambda *_: None)
    rows = {r["key"]: r for r in result["results"]}
    for key in ("numba-eager", "python-compiled"):
        assert rows[key]["bit_identical"], key
    assert "MLP" in rows["numpy"]["skipped"] and "moons only" in rows["micrograd"]["skipped"]
    for key in ("torch", "jax"):
        assert "skipped" in rows[key] or rows[key]["agrees"], key
    assert result["graph_nodes"] > 0


def test_the_report_gives_each_workloads_capture() -> None:
    captures = _probes.capture_probes(["toy", "rbf"], quick=True)  # a fresh process, a fork each
    assert list(captures) == ["toy", "rbf"], captures
    capture = captures["rbf"]
    assert capture["capture_s"] > 0 and capture["peak_mb"] >= 0, capture
    wl = {"title": "t", "results": [], "capture": capture}
    results = {"workloads": {"rbf": wl, "toy": {**wl, "capture": {"error": "boom"}}}, "targets": []}
    text = _report.table(results)
    assert "capture (compile_step, numba, fresh process): " in text and "MB" in text
    assert "failed: boom" in text


def test_the_compile_probe_reports_cpu_seconds_and_compilations() -> None:
    cached = _probes._run(["compile"])  # this process's cache: the project session warmed it up
    assert 0 < cached["import_cpu_s"] <= cached["to_first_step_cpu_s"], cached
    assert isinstance(cached["compilations"], int) and cached["compilations"] >= 0, cached
    results = {
        "workloads": {},
        "targets": [],
        "probes": {"compile": {"cold": cached, "cached": cached, "jax": {}}},
    }
    text = _report.table(results)
    assert f"to the first compiled step {cached['to_first_step_cpu_s']:.1f} cold" in text, text
    assert "JAX to its first jitted step -" in text, text  # no JAX result: a dash, not a number


# --- CasADi: the reference scalar-graph engine ------------------------------------------------------
@pytest.mark.parametrize("name", ["moons", "toy", "rbf", "large"])
def test_casadi_takes_gradspecs_first_step(name: str) -> None:
    pytest.importorskip("casadi", reason="CasADi is not installed (pip install 'gradspec[bench]')")
    w = _tiny(name, steps=1)
    casadi, eager = make_runner("casadi", w), make_runner("python-eager", w)
    assert casadi.mode == "SX VM (loss + grad)" and casadi.compile_seconds is not None
    assert casadi.parameters() == eager.parameters() == w.init
    assert casadi.step(0) == pytest.approx(eager.step(0), rel=1e-12)
    np.testing.assert_allclose(casadi.parameters(), eager.parameters(), rtol=1e-12, atol=0)


# --- hand-fused Numba loops: the practical floor -------------------------------------------------------
@pytest.mark.parametrize("name", ["moons", "toy", "large"])
def test_hand_fused_numba_takes_gradspecs_steps(name: str) -> None:
    w = _tiny(name, steps=2)
    hand, eager = make_runner("numba-hand", w), make_runner("python-eager", w)
    assert hand.parameters() == eager.parameters() == w.init
    for k in range(2):
        assert hand.step(k) == pytest.approx(eager.step(k), rel=1e-12)
        np.testing.assert_allclose(hand.parameters(), eager.parameters(), rtol=1e-10, atol=1e-15)


def test_hand_fused_numba_has_only_the_mlp() -> None:
    with pytest.raises(Unavailable, match="only the MLP's step"):
        make_runner("numba-hand", _tiny("rbf"))


def test_casadi_is_unavailable_when_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "casadi", None)  # import casadi raises ImportError
    with pytest.raises(Unavailable, match="CasADi is not installed"):
        make_runner("casadi", _tiny("toy"))


def test_guard_cost_reports_the_moons_step_with_and_without_its_guard(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from benchmarks import guard_cost

    guard_cost.main(["--rounds", "1", "--calls", "2"])
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("moons compiled step: guarded ") and " unguarded " in line and "ratio" in line
