"""The printer: :func:`describe` writes a :class:`~._program.Program` as text, a line a group.

Columns and plan decisions appear by name, slots by what they hold: ``p3`` parameter 3,
``x[s, j]`` input ``j`` of sample ``s``, ``y[s, j]`` column ``j`` of sample ``s``'s target,
``c17`` a constant (the 1.0 among them), ``v42`` the node in slot 42; a lane place reads
``...+s``, its sample's. ``GRADSPEC_REPLAY_DEBUG=2`` prints it for every compiled step.
"""

from __future__ import annotations

import numpy as np

from backends.numba._replay._program import (
    BOTH_FACTORS,
    DISTINCT,
    DOT,
    DOT_PLAIN,
    FACTORS_BY_NEEDS,
    FIRST_FACTOR,
    FOLD_END,
    FOLD_START,
    HI,
    KIND,
    LANE,
    LO,
    MODE,
    NEEDS,
    PUSHING,
    SHARED,
    SLOT,
    SUM,
    TERM,
    WIDTH,
    N,
    Program,
)
from backends.numba._replay._verify import term_rows
from spec.ops import OpCode

__all__ = ["describe", "slot_name"]

_FUSED_KINDS = {SUM: "SUM", DOT: "DOT", DOT_PLAIN: "DOT_PLAIN"}
_MODES = {FIRST_FACTOR: "first factor", BOTH_FACTORS: "both factors", FACTORS_BY_NEEDS: "factors by needs"}


def slot_name(program: Program, slot: int) -> str:
    """What ``slot`` holds, by name (see the module docstring)."""
    slots = program.slots
    first_node = int(program.groups[0, LO]) if len(program.groups) else len(program.val)
    if slot < slots.parameters:
        return f"p{slot}"
    for name, first, end in (
        ("x", slots.first_input, slots.first_target),
        ("y", slots.first_target, slots.first_constant),
    ):
        if first <= slot < end:
            column, sample = divmod(slot - first, slots.samples)
            return f"{name}[{sample}, {column}]"
    return f"c{slot}" if slot < first_node else f"v{slot}"


def _place(program: Program, place: int) -> str:
    name = slot_name(program, place & SLOT)
    return name + "+s" if place & LANE else name


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}" + ("" if number == 1 else "s")


def _kind_name(kind: int) -> str:
    return _FUSED_KINDS.get(kind) or OpCode(kind).name


def _plan_of(program: Program, t: int, rows: int) -> str:
    plan = program.plan[t : t + rows]
    decisions = []
    if plan[0, SHARED]:
        decisions.append("shared pass")
    folding = int((plan[:, FOLD_END] > plan[:, FOLD_START]).sum())
    if folding:
        decisions.append(_count(folding, "four-unit fold"))
    pushing = np.unique(plan[:, PUSHING][plan[:, PUSHING] > 0]).tolist()
    if pushing:
        decisions.append("pushes " + "/".join(map(str, pushing)) + " units at once")
    return "plan: " + (", ".join(decisions) or "one by one, no shared pass")


def describe(program: Program, terms: int = 2) -> str:
    """``program`` as text: its slots, then each group (its first ``terms`` term rows too)."""
    slots = program.slots
    lines = [
        f"program: {len(program.val)} slots, {len(program.groups)} groups, {len(program.terms)} term rows; "
        f"{slots.parameters} parameters, {slots.samples} samples (inputs from slot {slots.first_input}, "
        f"targets from {slots.first_target}), loss {slot_name(program, slots.root)}"
    ]
    for g, (row, rows) in enumerate(
        zip(program.groups.tolist(), term_rows(program.groups).tolist(), strict=True)
    ):
        lo, hi, width, t = row[LO], row[HI], row[WIDTH], row[TERM]
        units = (hi - lo) // width
        shape = f"{_count(units, 'unit')} x {width} lanes" if width > 1 else _count(units, "node")
        traits = [f"{_count(row[N], 'term')} a unit"]
        if row[KIND] in (DOT, DOT_PLAIN):
            traits.append(f"grads into {_MODES[row[MODE]]}")
        if not row[NEEDS]:
            traits.append("no backward")
        if row[DISTINCT]:
            traits.append("distinct")
        line = (
            f"  group {g}: {_kind_name(row[KIND])} {shape}, slots {lo}..{hi - 1}, terms {t}..{t + rows - 1}; "
        )
        line += ", ".join(traits)
        if width > 1:
            line += "; " + _plan_of(program, t, rows)
        lines.append(line)
        for k in range(t, t + min(terms, rows)):
            a, b = program.terms[k].tolist()
            lines.append(f"    term {k}: {_place(program, a)}, {_place(program, b)}")
    return "\n".join(lines)
