"""The pipeline (backends.numba._replay._pipeline): PIPELINE is what build_program runs."""

from __future__ import annotations

import ast
import contextlib
import io
from pathlib import Path
from typing import Any

import pytest

import backends.numba as numba_backend
from backends.numba import _replay
from backends.numba._replay import _pipeline
from spec import SGD, svm_loss

X, Y = [[0.5, -0.5], [1.0, 2.0], [-1.5, 0.25]], [1.0, -1.0, 1.0]


def loss_fn(model: Any, inputs: Any, targets: Any) -> Any:
    return svm_loss([model(x) for x in inputs], targets)


def compiled(**options: Any) -> Any:
    model = numba_backend.MLP(2, [4, 4, 1], seed=1)
    return _replay.compile_step(model, loss_fn, X, Y, SGD(model.parameters(), 0.1), **options)


def pipeline_with(monkeypatch: pytest.MonkeyPatch, change: Any) -> tuple[_pipeline.Pass, ...]:
    passes = tuple(change(p) for p in _pipeline.PIPELINE)
    monkeypatch.setattr(_replay, "PIPELINE", passes)
    return passes


def test_build_program_runs_the_passes_of_pipeline_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []

    def recorded(p: _pipeline.Pass) -> _pipeline.Pass:
        def run(state: _pipeline.State) -> str | None:
            ran.append(p.name)
            return p.run(state)

        return p._replace(run=run)

    pipeline_with(monkeypatch, recorded)
    step = compiled()
    names = [p.name for p in _pipeline.PIPELINE]
    assert ran == names and step.info["passes"] == names, (ran, step.info)
    assert step.info["pipeline"] == "as asked" and step.info["declined"] == []


@pytest.mark.parametrize("name", _pipeline.SWITCHES)
def test_a_pass_switched_off_by_name_does_not_run(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    def failing(p: _pipeline.Pass) -> _pipeline.Pass:
        def run(state: _pipeline.State) -> str | None:
            raise AssertionError(f"{p.name} ran")

        return p._replace(run=run) if p.name == name else p

    pipeline_with(monkeypatch, failing)
    step = compiled(**{name: False})
    assert step.info[name] is False and f"{name} off" in step.info["passes"], step.info
    assert name not in step.info["passes"]
    with pytest.raises(AssertionError, match=f"{name} ran"):
        compiled()
    monkeypatch.setenv("GRADSPEC_REPLAY_OFF", name)
    assert f"{name} off" in compiled().info["passes"]


def test_a_declined_pipeline_says_which_pass_declined_it_and_why() -> None:
    # unfused, the loss's running sum starts with 0 + loss_0, a node of sample 0 alone
    step = compiled(fusion=False)
    assert step.info["pipeline"] == "without template", step.info
    assert step.info["declined"] == ["as asked: template: the samples' graphs are not copies of one template"]


def test_only_passes_that_stand_in_for_themselves_can_be_switched_off() -> None:
    assert _pipeline.SWITCHES == tuple(p.name for p in _pipeline.PIPELINE if p.off is not None)
    assert {"requires_grad", "layout", "order_check"}.isdisjoint(_pipeline.SWITCHES)
    for _, off in _pipeline.FALLBACKS:
        assert off <= set(_pipeline.SWITCHES)
    assert _pipeline.FALLBACKS[-1][1] == {"fusion", "template", "schedule"}  # the eager order


def test_nox_switches_off_the_passes_of_the_pipeline() -> None:
    noxfile = ast.parse((Path(__file__).parents[3] / "noxfile.py").read_text())
    snippet = next(
        ast.literal_eval(node.value)
        for node in noxfile.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_PRINT_SWITCHES"
    )
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(snippet, {})
    assert printed.getvalue().split() == list(_pipeline.SWITCHES)
