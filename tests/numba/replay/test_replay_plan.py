"""The plan pass: the decisions it records, and that a plan changes no number."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

import backends.numba as numba_backend
from backends.numba._replay._program import (
    DOT,
    DOT_PLAIN,
    FOLD_END,
    FOLD_START,
    HI,
    KIND,
    LO,
    PUSHING,
    SHARED,
    TERM,
    WIDTH,
    N,
)
from spec import SGD, l2_penalty, svm_loss

SAMPLES, WIDE = 24, 8


def mlp_loss(model: Any, inputs: Any, targets: Any) -> Any:
    return svm_loss([model(x) for x in inputs], targets) + l2_penalty(model.parameters(), 1e-4)


def compiled() -> tuple[Any, Any, np.ndarray, np.ndarray]:
    random.seed(3)
    model = numba_backend.MLP(3, [WIDE, WIDE, 1])
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(SAMPLES, 3)), np.sign(rng.normal(size=SAMPLES))
    step = numba_backend.compile_step(model, mlp_loss, X, y, SGD(model.parameters(), 0.05))
    return model, step, X, y


def middle_layer(program: Any) -> tuple[int, int]:
    """The first term row and the terms per unit of the group of the middle layer's neurons."""
    (row,) = [
        g
        for g in program.groups
        if g[WIDTH] == SAMPLES and g[HI] - g[LO] == WIDE * SAMPLES and g[N] == WIDE + 1
    ]
    return int(row[TERM]), int(row[N])


def test_the_middle_layers_neurons_fold_four_at_a_time_and_push_all_at_once() -> None:
    _, step, _, _ = compiled()
    plan = step.program.plan
    t0, n = middle_layer(step.program)
    units = [plan[t0 + u * n] for u in range(WIDE)]
    # forward: neurons 0-3 and 4-7 fold the inputs they share (terms 1..8) at once; the bias,
    # term 0, is each neuron's own
    assert [(row[FOLD_START], row[FOLD_END]) for row in units] == [(1, n), (0, 0), (0, 0), (0, 0)] * 2
    # backward: the top neuron and all below push into the previous layer's outputs at once
    assert [row[PUSHING] for row in units] == [0] * (WIDE - 1) + [WIDE]


def test_only_the_groups_that_push_into_parameters_have_a_shared_pass() -> None:
    _, step, _, _ = compiled()
    program = step.program
    lanes = program.groups[program.groups[:, WIDTH] > 1]
    shared = [bool(program.plan[row[TERM], SHARED]) for row in lanes]
    # the three layers' neurons (a bias and 3 or WIDE weights each) push into parameters;
    # their tanh and the per-sample loss nodes push into per-sample slots alone
    layers = [bool(row[KIND] in (DOT, DOT_PLAIN) and row[N] in (3 + 1, WIDE + 1)) for row in lanes]
    assert sum(layers) == 3
    assert shared == layers


def test_units_run_alone_give_the_same_bits_as_the_planned_ones() -> None:
    def train(step: Any, model: Any, X: np.ndarray, y: np.ndarray) -> list[int]:
        losses = [step(X, y) for _ in range(3)]
        values = losses + [p.data for p in model.parameters()] + [p.grad for p in model.parameters()]
        return np.array(values).view(np.int64).tolist()

    planned_model, planned, X, y = compiled()
    alone_model, alone, _, _ = compiled()
    alone_plan = alone.program.plan.copy()
    assert alone_plan[:, [FOLD_START, FOLD_END, PUSHING]].any()
    alone_plan[:, [FOLD_START, FOLD_END, PUSHING]] = 0
    alone.program = alone.program._replace(plan=alone_plan)
    assert train(planned, planned_model, X, y) == train(alone, alone_model, X, y)
