"""Differential checks: the backend under test against one reference backend, the python
backend unless ``--compare-with NAME`` names another (so installing a third backend never
changes the verdict on the first).

Same float64 operations in the same order give bit-identical results; the
tolerance below only admits libm differences (see spec.ops).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from hypothesis import given

from conformance._registry import REFERENCE, checks_in
from conformance._training import train
from conformance.gradcheck import Tolerance, assert_close, leaf_grads
from conformance.strategies import programs
from spec import Backend, load_backend
from spec.programs import Program, run_program

check = checks_in("precision")

DIFFERENTIAL = Tolerance(rtol=1e-12, atol=1e-300)
TRAJECTORY = Tolerance(rtol=1e-9, atol=1e-300)


def _others(backend: Backend) -> Iterator[Backend]:
    """The reference backend (``--compare-with``); the check is skipped where it is the backend under test."""
    name = REFERENCE["name"]
    if name == backend.name:
        pytest.skip(f"{name} is the reference itself: choose another with --compare-with NAME")
    yield load_backend(name)


def _toy_classification(n: int) -> tuple[list[list[float]], list[float]]:
    rng = random.Random(7)
    points = [[rng.uniform(-1, 1), rng.uniform(-1, 1)] for _ in range(n)]
    return points, [1.0 if x * y > 0 else -1.0 for x, y in points]


@check
def check_programs_agree_across_backends(backend: Backend) -> None:
    others = list(_others(backend))

    @given(program=programs(max_steps=14))
    def prop(program: Program) -> None:
        mine_out, mine = run_program(program, backend.Value)
        mine_out.backward()
        for other in others:
            theirs_out, theirs = run_program(program, other.Value)
            assert_close(mine_out.data, theirs_out.data, DIFFERENTIAL, f"value vs {other.name}", program)
            theirs_out.backward()
            theirs_grads = leaf_grads(theirs)
            for name, grad in leaf_grads(mine).items():
                assert_close(
                    grad, theirs_grads[name], DIFFERENTIAL, f"d out/d {name} vs {other.name}", program
                )

    prop()


@check
def check_training_agrees_across_backends(backend: Backend) -> None:
    inputs, targets = _toy_classification(20)
    for loss in ("svm", "mse"):
        mine = train(
            backend.MLP(2, [8, 8, 1], seed=11), inputs, targets, loss=loss, lr=0.1, steps=10, alpha=1e-4
        )
        for other in _others(backend):
            theirs = train(
                other.MLP(2, [8, 8, 1], seed=11), inputs, targets, loss=loss, lr=0.1, steps=10, alpha=1e-4
            )
            for k, (a, b) in enumerate(zip(mine.losses, theirs.losses, strict=True)):
                assert_close(a, b, TRAJECTORY, f"{loss} loss at step {k} vs {other.name}")
            for i, (a, b) in enumerate(zip(mine.parameters, theirs.parameters, strict=True)):
                assert_close(a, b, TRAJECTORY, f"{loss}: parameter {i} after training vs {other.name}")
