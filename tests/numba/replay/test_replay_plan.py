"""The plan pass: the decisions it records, and that a plan changes no number."""

from __future__ import annotations

import itertools
import random
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import backends.numba as numba_backend
from backends.numba._replay._plan import (
    _four_units_read_alike,
    _four_units_run,
    _units_aligned,
    one_by_one,
    plan_lanes,
)
from backends.numba._replay._program import (
    DOT,
    DOT_PLAIN,
    FOLD_END,
    FOLD_START,
    GROUP_COLUMNS,
    HI,
    KIND,
    LANE,
    LO,
    PUSHING,
    SHARED,
    SUM,
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
    alone_plan = one_by_one(alone.program.plan, alone.program.groups)
    assert alone.program.plan[:, [FOLD_START, FOLD_END, PUSHING]].any()
    assert not alone_plan[:, [FOLD_START, FOLD_END, PUSHING]].any()
    assert alone_plan[:, SHARED].sum() > alone.program.plan[:, SHARED].sum(), "every shared pass runs"
    alone.program = alone.program._replace(plan=alone_plan)
    assert train(planned, planned_model, X, y) == train(alone, alone_model, X, y)


# --- each decision against its definition, on random terms -------------------------------------------
# A term is a pair of places; a place is a slot all samples share, or (with LANE) the first of a
# row of per-sample slots. A few of each, so that random units often read alike.
SHARED_PLACES = [0, 1, 2]
LANE_PLACES = [LANE | 40, LANE | 48, LANE | 56]


def _terms(draw: st.DrawFn, units: int, n: int) -> np.ndarray:
    """``units`` units of ``n`` terms: copies of one unit (each with shared factors of its own),
    then perhaps one place of one unit changed: units that read alike, and near misses (random
    terms almost never read alike)."""
    places = st.sampled_from(SHARED_PLACES + LANE_PLACES)
    base = [[draw(places), draw(places)] for _ in range(n)]
    rows = []
    for _ in range(units):
        for pair in base:
            rows.append([p if p & LANE else draw(st.sampled_from(SHARED_PLACES)) for p in pair])
    if draw(st.booleans()):  # most often the first, the fourth or the last unit
        unit = draw(st.sampled_from([0, min(3, units - 1), units - 1, draw(st.integers(0, units - 1))]))
        rows[unit * n + draw(st.integers(0, n - 1))][draw(st.integers(0, 1))] = draw(places)
    return np.array(rows, np.uint32)


def _reads_alike(terms: np.ndarray, n: int, j: int) -> bool:
    """Definition: at position ``j`` each of the four units multiplies one and the same per-sample
    place, on the same side, by a slot all samples share."""
    pairs = [(int(terms[u * n + j, 0]), int(terms[u * n + j, 1])) for u in range(4)]
    sides = {tuple(bool(place & LANE) for place in pair) for pair in pairs}
    if sides not in ({(True, False)}, {(False, True)}):
        return False
    side = 0 if pairs[0][0] & LANE else 1
    return len({pair[side] for pair in pairs}) == 1


@given(data=st.data(), n=st.integers(1, 7))
def test_the_four_unit_fold_is_the_first_run_of_positions_read_alike(data: st.DataObject, n: int) -> None:
    terms = data.draw(st.composite(lambda draw: _terms(draw, 4, n))())
    alike = [_reads_alike(terms, n, j) for j in range(n)]
    start = next((j for j, a in enumerate(alike) if a), n)
    end = next((j for j in range(start, n) if not alike[j]), n)
    out, width = 1000, 8  # the units' own slots: far from every place the terms read
    assert _four_units_run(terms, 0, n, out, width) == (start, end)
    for j in range(n):
        assert _four_units_read_alike(terms, 0, n, j) == alike[j], j


@given(data=st.data(), n=st.integers(1, 5), count=st.integers(2, 5))
def test_units_push_together_exactly_when_they_push_alike(data: st.DataObject, n: int, count: int) -> None:
    terms = data.draw(st.composite(lambda draw: _terms(draw, count, n))())
    top = (count - 1) * n  # _units_aligned walks down from the top unit

    def pattern(unit: int, j: int) -> tuple[Any, ...]:
        a, c = (int(x) for x in terms[unit * n + j])
        lane = a if a & LANE else c if c & LANE else None
        return bool(a & LANE), bool(c & LANE), lane

    per_position = [[pattern(u, j) for u in range(count)] for j in range(n)]
    alike = all(
        not (p[0][0] and p[0][1]) and all(q[:2] == p[0][:2] for q in p) and len({q[2] for q in p}) == 1
        for p in per_position
    )
    lanes = [p[0][2] for p in per_position if p[0][2] is not None]
    ascending = all(a < b for a, b in itertools.pairwise(lanes))
    assert _units_aligned(terms, top, n, count) == (alike and ascending)


@given(data=st.data(), n=st.integers(1, 4), units=st.integers(2, 6))
def test_a_group_runs_its_shared_pass_exactly_when_one_of_its_units_pushes_into_a_shared_slot(
    data: st.DataObject, n: int, units: int
) -> None:
    terms = data.draw(st.composite(lambda draw: _terms(draw, units, n))())
    needs = np.array([data.draw(st.booleans()) for _ in range(64)], np.bool_)
    width = 2
    group = np.zeros((1, GROUP_COLUMNS), np.int64)
    group[0, [KIND, LO, HI, N, TERM, WIDTH]] = [SUM, 0, units * width, n, 0, width]
    plan = plan_lanes(group, terms, needs)
    pushes = any(
        not place & LANE and needs[place] for row in terms.tolist() for place in row
    )  # any unit, not only the first
    assert bool(plan[0, SHARED]) == pushes
