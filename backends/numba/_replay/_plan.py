"""Pass: the plan. How the lane kernels run each lane group, decided once, not every step.

The lane kernels (:mod:`._lanes`) run several units of a group of sums at once where their
terms allow it: four units that read alike fold together in forward
(:func:`_four_units_run`), and units that push alike push together in backward
(:func:`_units_aligned`). Those answers depend on the program's terms alone, so this pass
walks every group as the kernels do and writes each decision into ``plan`` (int64, one row
per term row, :data:`PLAN_COLUMNS` columns), at the row of the unit's first term where the
kernel reads it:

- ``plan[t, FOLD_START]``, ``plan[t, FOLD_END]``: forward, the four units from the one whose
  terms start at row ``t`` fold term positions ``FOLD_START..FOLD_END-1`` at once; equal
  when they fold one by one.
- ``plan[t, PUSHING]``: backward into per-sample slots, how many units, from the one whose
  terms start at row ``t`` down, push at once (1: that unit alone).
- ``plan[t, SHARED]``, at a lane group's first term row: 1 when a term of the group pushes
  into a slot all samples share (a parameter); backward skips the others' shared pass,
  which would push nothing.

It keeps every number: it only records which of the kernels' equivalent paths a unit takes
(each path adds in the eager order, :mod:`._lanes`), and which shared passes have nothing
to push.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from backends.numba._jit import jit as _jit
from backends.numba._replay._program import (
    DOT,
    DOT_PLAIN,
    FOLD_END,
    FOLD_START,
    HI,
    KIND,
    LANE,
    LO,
    PLAN_COLUMNS,
    PUSHING,
    SHARED,
    SLOT,
    SUM,
    TERM,
    WIDTH,
    N,
)

__all__ = ["ALIKE", "one_by_one", "plan_lanes"]

#: the fewest positions at which four units must read alike for :func:`._lanes._four_units_fold`
ALIKE = 4


@_jit("boolean(uint32[:, ::1], int64, int64, int64)")
def _four_units_read_alike(terms: NDArray[np.uint32], t: int, n: int, j: int) -> bool:
    """Whether at term position ``j`` the four units from row ``t`` (``n`` terms each) each
    multiply the same per-sample place by a shared slot: a layer's neurons reading the
    previous layer's outputs."""
    a, c = terms[t + j, 0], terms[t + j, 1]
    if (a & LANE == 0) == (c & LANE == 0):
        return False
    side = 0 if a & LANE else 1
    for u in range(1, 4):
        if terms[t + u * n + j, side] != terms[t + j, side] or terms[t + u * n + j, 1 - side] & LANE:
            return False
    return True


@_jit("boolean(uint32[:, ::1], int64, int64, int64, int64)")
def _four_units_read_others(terms: NDArray[np.uint32], t: int, n: int, out: int, width: int) -> bool:
    """Whether no term of the four units from row ``t`` reads one of their own slots (from
    ``out``): units in creation order (no grouping by height) may read an earlier unit of
    their group, which must then be complete first."""
    for k in range(t, t + 4 * n):
        for side in range(2):
            place = terms[k, side]
            if place & LANE and out <= np.int64(place & SLOT) < out + 4 * width:
                return False
    return True


@_jit("UniTuple(int64, 2)(uint32[:, ::1], int64, int64, int64, int64)")
def _four_units_run(terms: NDArray[np.uint32], t: int, n: int, out: int, width: int) -> tuple[int, int]:
    """The first run of term positions, ``(start, end)``, at which the four units from row ``t``
    read alike (:func:`_four_units_read_alike`), when they read none of their own slots
    (:func:`_four_units_read_others`); ``start == end`` when there is none."""
    if not _four_units_read_others(terms, t, n, out, width):
        return 0, 0
    start = 0
    while start < n and not _four_units_read_alike(terms, t, n, start):
        start += 1
    end = start
    while end < n and _four_units_read_alike(terms, t, n, end):
        end += 1
    return start, end


@_jit("boolean(uint32[:, ::1], int64, int64, int64)")
def _units_aligned(terms: NDArray[np.uint32], t: int, n: int, count: int) -> bool:
    """Whether the ``count`` units of ``n`` terms from ``t``, ``t - n``, ``t - 2n``, ... push into
    per-sample places alike: at each term position, the same one place, times a shared factor;
    and no place twice (the places ascend). Then each place's pushes come from one position,
    unit after unit, and the units may push position by position."""
    last = -1
    for j in range(n):
        a, c = terms[t + j, 0], terms[t + j, 1]
        if a & LANE and c & LANE:
            return False
        place = np.int64(a if a & LANE else c)
        for i in range(1, count):
            x, y = terms[t - i * n + j, 0], terms[t - i * n + j, 1]
            if (
                x & LANE != a & LANE
                or y & LANE != c & LANE
                or (place & LANE and np.int64(x if x & LANE else y) != place)
            ):
                return False
        if place & LANE:
            if place <= last:
                return False
            last = place  # type: ignore[assignment]
    return True


@_jit("void(uint32[:, ::1], int64, int64, int64, int64, int64, int64[:, ::1])")
def _plan_folds(
    terms: NDArray[np.uint32], lo: int, hi: int, n: int, t: int, width: int, plan: NDArray[np.int64]
) -> None:
    """The forward folds of a group of sums, units from ``lo`` up, as ``lanes_forward`` walks them."""
    out = lo
    while out < hi:
        start, end = (0, 0) if out + 4 * width > hi else _four_units_run(terms, t, n, out, width)
        units = 1
        if end - start >= ALIKE:
            plan[t, FOLD_START], plan[t, FOLD_END] = start, end
            units = 4
        out += units * width
        t += units * n


@_jit("void(uint32[:, ::1], int64, int64, int64, int64, int64, int64[:, ::1])")
def _plan_pushes(
    terms: NDArray[np.uint32], lo: int, hi: int, n: int, t0: int, width: int, plan: NDArray[np.int64]
) -> None:
    """The per-sample pushes of a group of sums, units from the top one down, as
    ``lanes_backward_per_sample`` walks them: all the units left if they push alike, else
    four, else one."""
    t = t0 + (hi - lo) // width * n
    out = hi
    while out > lo:
        out -= width
        t -= n
        count = (out - lo) // width + 1  # this unit and the ones below it
        if not _units_aligned(terms, t, n, count):
            count = 4 if count >= 4 and _units_aligned(terms, t, n, 4) else 1
        plan[t, PUSHING] = count
        out -= (count - 1) * width
        t -= (count - 1) * n


def plan_lanes(groups: np.ndarray, terms: np.ndarray, needs: np.ndarray) -> np.ndarray:
    """The plan of a laid-out program's lane groups (see the module docstring)."""
    plan = np.zeros((len(terms), PLAN_COLUMNS), np.int64)
    for kind, lo, hi, n, t, width in groups[:, [KIND, LO, HI, N, TERM, WIDTH]].tolist():
        if width == 1:
            continue
        places = terms[t : t + (hi - lo) // width * n]
        plan[t, SHARED] = np.any((places & LANE == 0) & needs[places & SLOT])
        if kind in (DOT_PLAIN, DOT, SUM):
            _plan_folds(terms, lo, hi, n, t, width, plan)
            _plan_pushes(terms, lo, hi, n, t, width, plan)
    return plan


def one_by_one(terms: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The plan with every decision at its reference: each unit folds and pushes alone, and every
    lane group runs its shared pass (``GRADSPEC_REPLAY_OFF=plan``). The same numbers, slower."""
    alone = np.zeros((len(terms), PLAN_COLUMNS), np.int64)
    lanes = groups[groups[:, WIDTH] > 1]
    alone[lanes[:, TERM], SHARED] = 1
    return alone
