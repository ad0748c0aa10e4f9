"""The verifier: :func:`check_program` refuses a :class:`~._program.Program` the kernels must not run.

The kernels trust the program's structure on every step (they check no bounds). So every
program :func:`~backends.numba._replay.build_program` returns has passed these checks, each
the precondition of some kernel loop, in vectorised NumPy (linear in the terms):

- shapes and dtypes: ``val``, ``grad``, ``const``, ``needs`` one per slot; ``terms``
  (rows, 2) uint32; ``plan`` one row per term row; ``meta`` a valid slot layout;
- groups tile the nodes: each starts where the one before ends, the last ends at the last
  slot, and each holds whole units of its width;
- term rows tile the terms: each group's rows start where the one before's end, ``n`` a unit;
- every term place is a slot, a lane place's run of ``width`` slots too;
- every place reads before the node that reads it (forward order): a unit of a lane group
  reads its own sample's run of an earlier unit, or a slot from before its segment (the
  kernels run a segment's groups block of samples by block);
- the plan decides only for lane groups, within each unit's terms and its group's units,
  and a group's shared pass only at its first row.

A failure is a compiler bug, never the user's: :class:`MalformedProgram` says which rule,
and where.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from backends.numba._replay._program import (
    FOLD_END,
    FOLD_START,
    GROUP_COLUMNS,
    HI,
    LANE,
    LO,
    PLAN_COLUMNS,
    PUSHING,
    SHARED,
    SLOT,
    TERM,
    WIDTH,
    N,
    Program,
)

__all__ = ["MalformedProgram", "check_program", "term_rows"]


class MalformedProgram(ValueError):
    """A program breaks a rule the kernels rely on (a bug in a replay pass)."""


def _require(holds: bool | np.bool_, rule: str) -> None:
    if not holds:
        raise MalformedProgram(rule)


def _require_each(holds: np.ndarray, what: str, rule: str) -> None:
    """``holds[i]`` for every ``i``, else name the first ``what`` (a group, a term row) that breaks ``rule``."""
    if not holds.all():
        raise MalformedProgram(f"{what} {int(np.flatnonzero(~holds)[0])}: {rule}")


def term_rows(groups: NDArray[np.int64]) -> NDArray[np.int64]:
    """How many rows of terms each group has: ``n`` per unit."""
    return (groups[:, HI] - groups[:, LO]) // groups[:, WIDTH] * groups[:, N]


def check_program(program: Program) -> None:
    """Raise :class:`MalformedProgram` unless ``program`` keeps every rule of the module docstring."""
    groups, terms, plan, meta = program.groups, program.terms, program.plan, program.meta
    n_slots = len(program.val)
    _require(
        groups.dtype == np.int64 and groups.shape[1:] == (GROUP_COLUMNS,), "groups: int64, one row a group"
    )
    _require(terms.dtype == np.uint32 and terms.shape[1:] == (2,), "terms: uint32 pairs of places")
    _require(plan.dtype == np.int64 and plan.shape == (len(terms), PLAN_COLUMNS), "plan: a row per term row")
    for name, column, dtype in (
        ("grad", program.grad, np.float64),
        ("const", program.const, np.float64),
        ("needs", program.needs, np.bool_),
    ):
        _require(column.dtype == dtype and column.shape == (n_slots,), f"{name}: one {dtype.__name__} a slot")
    _require(meta.shape == (6,), "meta: P, first input, first target, root, n, first constant")
    slots = program.slots
    _require(
        0 <= slots.parameters <= slots.first_input <= slots.first_target <= slots.first_constant <= n_slots
        and slots.samples >= 1,
        f"meta {meta.tolist()}: slots out of order",
    )
    _require(0 <= slots.root < n_slots, f"meta: the root slot {slots.root} is no slot")
    if not len(groups):
        return
    lo, hi, width, t = groups[:, LO], groups[:, HI], groups[:, WIDTH], groups[:, TERM]
    units_whole = (width >= 1) & (hi > lo) & ((hi - lo) % np.maximum(width, 1) == 0)
    _require_each(units_whole, "group", "does not hold whole units of its width")
    tiled = np.append(lo[1:] == hi[:-1], hi[-1] == n_slots)
    _require_each(tiled, "group", "does not end where the next starts (the last: at the last slot)")
    rows = term_rows(groups)
    starts = np.concatenate(([0], np.cumsum(rows)[:-1]))
    in_order = t == starts
    _require_each(in_order, "group", "its terms do not start where the group before's end")
    _require(rows.sum() == len(terms), "terms: rows beyond the last group's")
    _check_places(groups, terms, rows, n_slots)
    _check_plan(groups, plan, rows)


def _check_places(groups: np.ndarray, terms: np.ndarray, rows: np.ndarray, n_slots: int) -> None:
    lo, width, n_terms = groups[:, LO], groups[:, WIDTH], groups[:, N]
    group_of = np.repeat(np.arange(len(groups)), rows)
    row = np.arange(len(terms))
    owner = lo[group_of] + (row - groups[group_of, TERM]) // n_terms[group_of] * width[group_of]
    # a segment: consecutive groups of one width; a lane group's shared reads come from before it
    new_segment = np.append(True, width[1:] != width[:-1])
    segment_start = lo[np.flatnonzero(new_segment)][np.cumsum(new_segment) - 1]
    row_width = width[group_of]
    for place in (terms[:, 0], terms[:, 1]):
        slot = (place & SLOT).astype(np.int64)
        is_lane = (place & LANE) != 0
        fits = slot + np.where(is_lane, row_width - 1, 0) < n_slots
        _require_each(fits, "term row", "a place beyond the slots")
        lanes_in_lane_groups = ~is_lane | (row_width > 1)
        _require_each(lanes_in_lane_groups, "term row", "a lane place in a group of single nodes")
        before = np.where(is_lane | (row_width == 1), slot < owner, slot < segment_start[group_of])
        _require_each(
            before,
            "term row",
            "reads a slot not yet computed (in a lane group: a shared slot of its segment)",
        )


def _check_plan(groups: np.ndarray, plan: np.ndarray, rows: np.ndarray) -> None:
    group_of = np.repeat(np.arange(len(groups)), rows)
    n_terms = groups[group_of, N]
    units = ((groups[:, HI] - groups[:, LO]) // groups[:, WIDTH])[group_of]
    folds = (
        (0 <= plan[:, FOLD_START])
        & (plan[:, FOLD_START] <= plan[:, FOLD_END])
        & (plan[:, FOLD_END] <= n_terms)
    )
    _require_each(folds, "plan row", "folds term positions its unit does not have")
    _require_each(
        (0 <= plan[:, PUSHING]) & (plan[:, PUSHING] <= units),
        "plan row",
        "pushes more units than its group has",
    )
    _require_each(
        (plan[:, SHARED] == 0) | (plan[:, SHARED] == 1), "plan row", "a shared pass neither on nor off"
    )
    single = np.repeat(groups[:, WIDTH] == 1, rows)
    quiet = ~single | ~plan.any(axis=1)
    _require_each(quiet, "plan row", "a decision for single nodes")
    first_row = np.zeros(len(plan), np.bool_)
    first_row[groups[rows > 0, TERM]] = True
    shared_at_first = first_row | (plan[:, SHARED] == 0)
    _require_each(shared_at_first, "plan row", "a shared pass decided inside a group")
