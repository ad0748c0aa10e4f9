"""The verifier (backends.numba._replay._verify) and the printer (._describe) on a real program:
every rule refuses the program broken in its one way, and the printer names what it shows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import backends.numba as numba_backend
from backends.numba._replay._describe import describe, slot_name
from backends.numba._replay._program import (
    FOLD_END,
    HI,
    LANE,
    LO,
    PUSHING,
    SHARED,
    TERM,
    WIDTH,
    Program,
)
from backends.numba._replay._verify import MalformedProgram, check_program, term_rows
from spec import SGD, svm_loss

X, Y = [[0.5, -0.5], [1.0, 2.0], [-1.5, 0.25]], [1.0, -1.0, 1.0]


@pytest.fixture(scope="module")
def program() -> Program:
    model = numba_backend.MLP(2, [4, 4, 1], seed=1)
    step = numba_backend.compile_step(
        model, lambda m, x, y: svm_loss([m(r) for r in x], y), X, Y, SGD(model.parameters(), 0.1)
    )
    assert step.info["template"], step.info  # lane groups, and single nodes after them
    return step.program


def _rows_of(program: Program, lane: bool) -> tuple[int, int, int]:
    """(group, its first term row, its rows) of the first lane group (or group of single nodes) with 2+ rows."""
    rows = term_rows(program.groups)
    for g, row in enumerate(program.groups):
        if (row[WIDTH] > 1) == lane and rows[g] > 1:
            return g, int(row[TERM]), int(rows[g])
    raise AssertionError("no such group")


def _broken(program: Program, change: Callable[[dict[str, np.ndarray]], None]) -> Program:
    arrays = {name: np.array(value) for name, value in program._asdict().items()}
    change(arrays)
    return Program(**arrays)


def _set_lane_flag(a: dict[str, np.ndarray], row: int) -> None:
    a["terms"][row, 0] |= np.uint32(LANE)


def _shift_group(a: dict[str, np.ndarray], g: int) -> None:
    """Group ``g``'s slots one unit on: still whole units, no longer where group ``g - 1`` ends."""
    a["groups"][g, [LO, HI]] += a["groups"][g, WIDTH]


def _breaks(program: Program) -> list[tuple[str, Callable[[dict[str, np.ndarray]], None]]]:
    n_slots = len(program.val)
    lane_group, lane_t, _ = _rows_of(program, lane=True)
    single_group, single_t, _ = _rows_of(program, lane=False)
    lane_lo = int(program.groups[lane_group, LO])
    return [
        ("plan: a row per term row", lambda a: a.update(plan=a["plan"][:-1])),
        ("the root slot", lambda a: a["meta"].__setitem__(3, n_slots)),
        ("slots out of order", lambda a: a["meta"].__setitem__(1, n_slots + 1)),
        (
            "does not end where the next starts",
            lambda a: _shift_group(a, 1),
        ),
        ("whole units", lambda a: a["groups"].__setitem__((lane_group, WIDTH), 5)),
        ("its terms do not start", lambda a: a["groups"].__setitem__((1, TERM), a["groups"][1, TERM] + 1)),
        ("a place beyond the slots", lambda a: a["terms"].__setitem__((0, 1), n_slots)),
        ("a lane place in a group of single nodes", lambda a: _set_lane_flag(a, single_t)),
        (
            "reads a slot not yet computed",
            lambda a: a["terms"].__setitem__((single_t, 0), a["groups"][single_group, HI] - 1),
        ),
        ("shared slot of its segment", lambda a: a["terms"].__setitem__((lane_t + 1, 0), lane_lo)),
        ("a decision for single nodes", lambda a: a["plan"].__setitem__((single_t, PUSHING), 1)),
        ("a shared pass decided inside a group", lambda a: a["plan"].__setitem__((lane_t + 1, SHARED), 1)),
        ("folds term positions", lambda a: a["plan"].__setitem__((lane_t, FOLD_END), 10**6)),
        ("pushes more units", lambda a: a["plan"].__setitem__((lane_t, PUSHING), 10**6)),
        ("neither on nor off", lambda a: a["plan"].__setitem__((lane_t, SHARED), 2)),
    ]


def test_a_built_program_passes_the_verifier(program: Program) -> None:
    check_program(program)


def test_each_rule_refuses_the_program_broken_its_way(program: Program) -> None:
    for rule, change in _breaks(program):
        broken = _broken(program, change)
        with pytest.raises(MalformedProgram, match=rule):
            check_program(broken)


def test_slots_are_named_by_what_they_hold(program: Program) -> None:
    P, first_input, first_target, root, n, first_constant = program.slots
    assert slot_name(program, 0) == "p0" and slot_name(program, P - 1) == f"p{P - 1}"
    assert slot_name(program, first_input + 1) == "x[1, 0]"  # column by column: sample 1's input 0
    assert slot_name(program, first_input + n) == "x[0, 1]"
    assert slot_name(program, first_target + 2) == "y[2, 0]"
    assert slot_name(program, first_constant) == f"c{first_constant}"
    assert slot_name(program, root) == f"v{root}"


def test_the_printer_shows_every_group_and_its_plan(program: Program) -> None:
    text = describe(program, terms=1)
    lines = text.splitlines()
    assert lines[0].startswith(f"program: {len(program.val)} slots, {len(program.groups)} groups")
    group_lines = [line for line in lines if line.startswith("  group ")]
    assert len(group_lines) == len(program.groups)
    lane_group, lane_t, _ = _rows_of(program, lane=True)
    assert " x 3 lanes" in group_lines[lane_group] and "plan: " in group_lines[lane_group]
    assert f"    term {lane_t}: " in text and "+s" in text
