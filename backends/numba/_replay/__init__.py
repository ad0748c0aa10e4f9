"""Replay for the Numba backend: a compiler from a captured training step to Numba kernels.

:func:`compile_step` captures the step with :func:`spec.capture.capture_graph`, runs the
passes of :data:`PIPELINE` over the graph, and returns a :class:`NumbaStep`, whose every
call is one kernel (:func:`~._kernels.run`). Every pass keeps every float64 operation, and
the order of every sum, of the eager loop, so results are bit-identical (spec.interface,
step 5); each pass's module says why. A pass switched off (a ``compile_step`` option, or
``GRADSPEC_REPLAY_OFF=fusion,template,grouping,plan`` for a whole test run) leaves the simpler program
that is still correct: with every pass off, replay is the eager loop's own order.
``GRADSPEC_REPLAY_DEBUG=1`` prints which passes a compiled step ran with.
"""

from __future__ import annotations

import os
import sys
from functools import partial
from typing import Any

import numba
import numpy as np

from backends.numba._compiling import announced
from backends.numba._kernels import LEAF
from backends.numba._lowering import LOWERINGS, check_dispatchers
from backends.numba._replay._extract import extract
from backends.numba._replay._fusion import absorbed_nodes, fuse, product_modes
from backends.numba._replay._layout import Units, lay_out, leaf_slots
from backends.numba._replay._order_check import backward_order_is_eager
from backends.numba._replay._plan import one_by_one, plan_lanes
from backends.numba._replay._program import DOT, DOT_PLAIN, HI, KIND, LO, MODE, SUM, WIDTH, N, Program
from backends.numba._replay._requires_grad import consumers_and_needs
from backends.numba._replay._schedule import heights, schedule
from backends.numba._replay._step import NumbaStep
from backends.numba._replay._template import lane_units
from backends.numba._tape import current_tape
from spec.capture import CapturedGraph, capture_graph
from spec.errors import CaptureError
from spec.ops import OPS, OpCode

__all__ = [
    "DOT",
    "DOT_PLAIN",
    "HI",
    "KIND",
    "LO",
    "MODE",
    "PIPELINE",
    "SUM",
    "WIDTH",
    "N",
    "NumbaStep",
    "Program",
    "backward_order_is_eager",
    "build_program",
    "capture_program",
    "compile_step",
    "extract",
]

#: The passes, in order: (name, what it does). Their modules are ``_<name>.py``.
PIPELINE = (
    ("extract", "the loss's graph off the tape, renumbered in creation order"),
    ("requires_grad", "which nodes backward visits: a parameter below, the loss above"),
    ("fusion", "chains of additions (of products) into one n-ary SUM or DOT node"),
    ("template", "the samples' copies of one per-sample node into one lane unit"),
    ("schedule", "branch-free groups by height and kind; forward deepest first"),
    ("layout", "slots for leaves and nodes, terms as pairs of slots"),
    ("order_check", "keep a schedule only if backward adds in the eager loop's order"),
    ("plan", "which units the lane kernels run at once, decided once"),
)
#: the passes a caller may switch off
SWITCHES = ("fusion", "template", "grouping", "plan")


def passes_switched_off() -> frozenset[str]:
    """The passes ``GRADSPEC_REPLAY_OFF`` (comma-separated names of :data:`SWITCHES`) turns off."""
    names = {name.strip() for name in os.environ.get("GRADSPEC_REPLAY_OFF", "").split(",") if name.strip()}
    unknown = names - set(SWITCHES)
    if unknown:
        raise ValueError(
            f"GRADSPEC_REPLAY_OFF names no pass {', '.join(sorted(unknown))}: choose from {', '.join(SWITCHES)}"
        )
    return frozenset(names)


def build_program(
    captured: CapturedGraph, fusion: bool = True, grouping: bool = True, template: bool = True
) -> tuple[Program, dict[str, Any]]:
    """The program of a captured step, and a description of what the passes did.

    ``fusion``, ``grouping`` and ``template`` turn those passes off (for tests and benchmarks),
    as does ``GRADSPEC_REPLAY_OFF``; the order check then chooses among the schedules that remain.
    """
    off = passes_switched_off()
    fusion, grouping = fusion and "fusion" not in off, grouping and "grouping" not in off
    template = template and "template" not in off
    g = captured.graph
    op, a, b = g.op, g.a, g.b
    _check_replayable(op)
    m = len(op)
    is_parameter = np.zeros(m, np.bool_)
    used = captured.parameters[captured.parameters >= 0]
    is_parameter[used] = True
    count, needs = consumers_and_needs(op, a, b, is_parameter, g.root)
    slot_of, one = leaf_slots(captured)

    attempts = [
        (fusion, template, grouping),
        (fusion, template, False),
        (fusion, False, grouping),
        (fusion, False, False),
        (False, False, False),
    ]
    for fuse_on, template_on, group_on in dict.fromkeys(attempts):
        absorbed = absorbed_nodes(op, a, b, count, g.root) if fuse_on else np.zeros(m, np.bool_)
        fused = fuse(op, a, b, g.const, absorbed)
        tops, kind, n_terms, first, ta, tc, _, _ = fused
        units = (lane_units(captured, fused, needs) if template_on else None) or Units.single(len(tops))
        if template_on and len(units.width) == len(tops):
            continue  # no per-sample structure: the attempt without the template is the same
        mode = product_modes(kind, n_terms, first, ta, tc, needs)
        representative = units.representative
        height = None
        if group_on:
            fused_height = heights(tops, n_terms, first, ta, tc, m)
            height = np.maximum.reduceat(fused_height[units.lane_nodes], units.lane_first)
        order, starts = schedule(
            kind[representative],
            n_terms[representative],
            mode[representative],
            needs[tops[representative]].astype(np.int64),
            height,
            units.width,
        )
        program, term_pusher, pusher_at = lay_out(
            captured, slot_of, one, needs, fused, mode, units, order, starts
        )
        if backward_order_is_eager(
            program.groups, program.terms, term_pusher, pusher_at, program.needs, int(program.meta[3])
        ):
            plan = plan_lanes(program.groups, program.terms, program.needs)
            if "plan" in off:
                plan = one_by_one(plan, program.groups)
            program = program._replace(plan=plan)
            info = {
                "traced_nodes": int(m),
                "fused_nodes": len(tops),
                "leaves": int(one + 1),
                "terms": len(program.terms),
                "groups": len(program.groups),
                "fusion": fuse_on,
                "template": template_on,
                "lane_units": int((units.width > 1).sum()),
                "grouping": group_on,
                "bytes": int(sum(x.nbytes for x in program)),
            }
            if os.environ.get("GRADSPEC_REPLAY_DEBUG"):
                print(f"gradspec numba replay: {info}", file=sys.stderr)
            return program, info
    raise RuntimeError("no schedule of this graph passed the order check; the unfused one always should")


def _check_replayable(op: np.ndarray) -> None:
    """Refuse a graph with a node this replay cannot compute (it never guesses), or one too
    large for the passes' int32 node numbers."""
    if len(op) >= 2**31:
        raise CaptureError(
            f"the step's graph has {len(op)} nodes; the numba replay handles fewer than 2**31: "
            "train this loss with the eager loop"
        )
    lowered = {LEAF} | {lowering.code for lowering in LOWERINGS.values()}
    unknown = sorted(set(np.unique(op).tolist()) - lowered)
    if unknown:
        names = ", ".join(OPS[OpCode(c)].name if c in OpCode._value2member_map_ else str(c) for c in unknown)
        raise CaptureError(f"the numba replay lowers no op {names}: train this loss with the eager loop")


def _check_threads(threads: Any) -> None:
    """Refuse a thread count that is not a whole number from 1 to Numba's thread pool size."""
    most = numba.config.NUMBA_NUM_THREADS
    if isinstance(threads, bool) or not isinstance(threads, int | np.integer) or not 1 <= threads <= most:
        raise ValueError(
            f"threads must be a whole number from 1 to {most} (Numba's thread pool), got {threads!r}"
        )


def capture_program(
    model: Any,
    loss_fn: Any,
    inputs: Any,
    targets: Any,
    optimizer: Any,
    *,
    allow_unused_parameters: bool = False,
    fusion: bool = True,
    grouping: bool = True,
    template: bool = True,
) -> tuple[Program, dict[str, Any]]:
    """Trace ``loss_fn`` on this batch (spec.capture.capture_graph) and compile its program."""
    tape = current_tape()
    start = len(tape)
    try:
        with tape.holding_nodes():  # a node loss_fn made but the loss does not use still checks
            captured = capture_graph(
                model,
                loss_fn,
                inputs,
                targets,
                optimizer,
                extract,
                allow_unused_parameters=allow_unused_parameters,
            )
    finally:
        tape.drop_from(start)  # the trace is garbage now: give its memory back before the passes run
    return build_program(captured, fusion=fusion, grouping=grouping, template=template)


def compile_step(
    model: Any,
    loss_fn: Any,
    inputs: Any,
    targets: Any,
    optimizer: Any,
    *,
    allow_unused_parameters: bool = False,
    fusion: bool = True,
    grouping: bool = True,
    template: bool = True,
    threads: int = 1,
) -> NumbaStep:
    """The Numba backend's ``Backend.compile_step`` (spec.compile.compile_step).

    ``threads``: how many of Numba's threads a step runs its per-sample work on (at most
    ``numba.config.NUMBA_NUM_THREADS``); the results are bit-identical to one thread's.
    """
    _check_threads(threads)

    capture = partial(
        capture_program,
        model,
        loss_fn,
        optimizer=optimizer,
        allow_unused_parameters=allow_unused_parameters,
        fusion=fusion,
        grouping=grouping,
        template=template,
    )
    return NumbaStep(model, loss_fn, inputs, targets, optimizer, capture, threads)


with announced("the op dispatchers"):
    check_dispatchers()  # compiles them, eager and lane, or loads them
