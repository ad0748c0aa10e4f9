"""The replay's passes as a list, run in order over one named state.

:data:`PIPELINE` is the program, not its description: :func:`run_pipeline` runs its passes
in order, each reading and filling fields of one :class:`State`. A pass that can be switched
off names a stand-in (``off``) that gives the simpler result that is still correct, and the
pass itself does not run. A pass may decline: it returns why, and the attempt stops.
:data:`FALLBACKS` are the named pipelines :func:`~backends.numba._replay.build_program`
tries in turn, each switching off more, down to the eager loop's own order, which every
graph passes.

The invariant every pass keeps (each module says why): every float64 operation, and the
order of every sum, of the eager loop.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from backends.numba._replay._describe import describe
from backends.numba._replay._fusion import FusedGraph, absorbed_nodes, fused_graph, product_modes
from backends.numba._replay._layout import lay_out, leaf_slots
from backends.numba._replay._order_check import backward_order_is_eager
from backends.numba._replay._plan import one_by_one, plan_lanes
from backends.numba._replay._program import Program, Units
from backends.numba._replay._requires_grad import consumers_and_needs
from backends.numba._replay._schedule import heights, schedule
from backends.numba._replay._template import lane_units
from spec.capture import CapturedGraph

__all__ = ["FALLBACKS", "PIPELINE", "SWITCHES", "Pass", "State", "run_pipeline"]


@dataclass
class State:
    """What the passes hand each other, field by field; each pass's docstring says which it fills."""

    captured: CapturedGraph
    #: the passes switched off in this attempt
    off: frozenset[str] = frozenset()
    count: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint8))
    needs: np.ndarray = field(default_factory=lambda: np.empty(0, np.bool_))
    fused: FusedGraph | None = None
    mode: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    units: Units | None = None
    order: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    starts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    program: Program | None = None
    term_pusher: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    pusher_at: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    #: how many leaf slots the program has (its parameters, inputs, targets and constants)
    leaves: int = 0
    #: the names of the passes that ran in this attempt (a stand-in under its pass's name + " off")
    ran: list[str] = field(default_factory=list)

    @property
    def m(self) -> int:
        return len(self.captured.graph.op)


#: a pass's body: None, or why it declines this attempt
Body = Callable[[State], "str | None"]


class Pass(NamedTuple):
    name: str
    does: str
    run: Body
    #: what stands in when the pass is switched off; None: it cannot be
    off: Body | None = None


def _requires_grad(state: State) -> None:
    """Fills ``count`` (consumers of each node, capped) and ``needs`` (backward visits it)."""
    g = state.captured.graph
    is_parameter = np.zeros(state.m, np.bool_)
    used = state.captured.parameters[state.captured.parameters >= 0]
    is_parameter[used] = True
    state.count, state.needs = consumers_and_needs(g.op, g.a, g.b, is_parameter, g.root)


def _fused(state: State, absorbed: np.ndarray) -> None:
    g = state.captured.graph
    fused = state.fused = fused_graph(g.op, g.a, g.b, g.const, absorbed)
    state.mode = product_modes(fused.kind, fused.n_terms, fused.first, fused.ta, fused.tc, state.needs)


def _fusion(state: State) -> None:
    """Fills ``fused`` (:func:`~._fusion.fuse`) and ``mode``, chains absorbed into n-ary nodes."""
    g = state.captured.graph
    _fused(state, absorbed_nodes(g.op, g.a, g.b, state.count, g.root))


def _no_fusion(state: State) -> None:
    """``fused`` with every node a fused node of its own."""
    _fused(state, np.zeros(state.m, np.bool_))


def _template(state: State) -> str | None:
    """Fills ``units`` with the samples' copies of one node as lane units."""
    assert state.fused is not None
    n_fused = len(state.fused.tops)
    units = lane_units(state.captured, state.fused, state.needs)
    if units is None:
        return "the samples' graphs are not copies of one template"
    if len(units.width) == n_fused:
        return "no node has a copy per sample"
    state.units = units
    return None


def _no_template(state: State) -> None:
    """Every fused node a unit of its own."""
    assert state.fused is not None
    state.units = Units.single(len(state.fused.tops))


def _scheduled(state: State, height: np.ndarray | None) -> None:
    assert state.units is not None and state.fused is not None
    fused, representative = state.fused, state.units.representative
    state.order, state.starts = schedule(
        fused.kind[representative],
        fused.n_terms[representative],
        state.mode[representative],
        state.needs[fused.tops[representative]].astype(np.int64),
        height,
        state.units.width,
    )


def _schedule(state: State) -> None:
    """Fills ``order`` and ``starts``: groups by height and kind, deepest first."""
    assert state.units is not None and state.fused is not None
    fused = state.fused
    fused_height = heights(fused.tops, fused.n_terms, fused.first, fused.ta, fused.tc, state.m)
    units = state.units
    _scheduled(state, np.maximum.reduceat(fused_height[units.lane_nodes], units.lane_first))


def _no_schedule(state: State) -> None:
    """The units in creation order, a group per run of alike units."""
    _scheduled(state, None)


def _layout(state: State) -> None:
    """Fills ``program`` (without its plan), ``leaves``, ``term_pusher`` and ``pusher_at``."""
    assert state.units is not None and state.fused is not None
    slot_of, one = leaf_slots(state.captured)
    state.leaves = one + 1
    state.program, state.term_pusher, state.pusher_at = lay_out(
        state.captured,
        slot_of=slot_of,
        one=one,
        needs=state.needs,
        fused=state.fused,
        mode=state.mode,
        units=state.units,
        order=state.order,
        starts=state.starts,
    )


def _order_check(state: State) -> str | None:
    """Declines a schedule whose backward would not add in the eager loop's order."""
    program = state.program
    assert program is not None
    if backward_order_is_eager(
        program.groups, program.terms, state.term_pusher, state.pusher_at, program.needs, program.slots.root
    ):
        return None
    return "backward would add in another order than the eager loop's"


def _plan(state: State) -> None:
    """Fills ``program.plan``: which units the lane kernels run at once."""
    assert state.program is not None
    state.program = state.program._replace(
        plan=plan_lanes(state.program.groups, state.program.terms, state.program.needs)
    )


def _no_plan(state: State) -> None:
    """Every unit alone, every lane group's shared pass run: the same numbers, slower."""
    assert state.program is not None
    state.program = state.program._replace(plan=one_by_one(state.program.terms, state.program.groups))


#: The passes, in order. The graph comes off the tape before them, at capture (:mod:`._extract`).
PIPELINE = (
    Pass("requires_grad", "which nodes backward visits: a parameter below, the loss above", _requires_grad),
    Pass("fusion", "chains of additions (of products) into one n-ary SUM or DOT node", _fusion, _no_fusion),
    Pass(
        "template", "the samples' copies of one per-sample node into one lane unit", _template, _no_template
    ),
    Pass("schedule", "branch-free groups by height and kind; forward deepest first", _schedule, _no_schedule),
    Pass("layout", "slots for leaves and nodes, terms as pairs of slots", _layout),
    Pass("order_check", "keep a schedule only if backward adds in the eager loop's order", _order_check),
    Pass("plan", "which units the lane kernels run at once, decided once", _plan, _no_plan),
)
#: the passes a caller may switch off
SWITCHES = tuple(p.name for p in PIPELINE if p.off is not None)
#: the pipelines tried in turn, by name, each with the passes it switches off beyond the caller's
FALLBACKS = (
    ("as asked", frozenset[str]()),
    ("without schedule", frozenset({"schedule"})),
    ("without template", frozenset({"template"})),
    ("without template and schedule", frozenset({"template", "schedule"})),
    ("eager order", frozenset({"fusion", "template", "schedule"})),
)


def run_pipeline(state: State, passes: tuple[Pass, ...] = PIPELINE) -> str | None:
    """Run ``passes`` over ``state`` in order, a switched-off one's stand-in in its place;
    None, or the first reason given to decline (as ``"pass: reason"``).
    ``GRADSPEC_REPLAY_DEBUG=2`` prints what each pass left."""
    debug = os.environ.get("GRADSPEC_REPLAY_DEBUG", "") == "2"
    for step in passes:
        switched_off = step.name in state.off and step.off is not None
        state.ran.append(step.name + " off" if switched_off else step.name)
        declined = (step.off if switched_off and step.off else step.run)(state)
        if debug:
            print(
                f"gradspec numba replay, after {state.ran[-1]}: {declined or _left(state)}", file=sys.stderr
            )
        if declined is not None:
            return f"{step.name}: {declined}"
    return None


def _left(state: State) -> str:
    """What the passes have filled in so far, in a line (the program: :func:`describe`)."""
    if state.ran[-1] == "order_check":
        return "backward adds in the eager loop's order"
    if state.program is not None and state.ran[-1].startswith(("layout", "plan")):
        return "\n" + describe(state.program)
    if state.units is not None and state.ran[-1].startswith("schedule"):
        return f"{len(state.units.width)} units in {len(state.starts)} groups"
    if state.units is not None:
        return f"{len(state.units.width)} units, {int((state.units.width > 1).sum())} of them lane units"
    if state.fused is not None:
        return f"{len(state.fused.tops)} fused nodes"
    return f"{state.m} nodes, {int(state.needs.sum())} of them visited by backward"


def info_of(state: State) -> dict[str, Any]:
    """What a compiled step reports of its program (``step.info``)."""
    program, units, fused = state.program, state.units, state.fused
    assert program is not None and units is not None and fused is not None
    return {
        "traced_nodes": state.m,
        "fused_nodes": len(fused.tops),
        "leaves": state.leaves,
        "terms": len(program.terms),
        "groups": len(program.groups),
        **{name: name not in state.off for name in SWITCHES},
        "lane_units": int((units.width > 1).sum()),
        "passes": list(state.ran),
        "bytes": int(sum(x.nbytes for x in program)),
    }
