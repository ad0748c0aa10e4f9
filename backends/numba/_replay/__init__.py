"""Replay for the Numba backend: a compiler from a captured training step to Numba kernels.

:func:`compile_step` captures the step with :func:`spec.capture.capture_graph`, runs the
passes of :data:`PIPELINE` over the graph, and returns a :class:`NumbaStep`, whose every
call is one kernel (:func:`~._kernels.run`). Every pass keeps every float64 operation, and
the order of every sum, of the eager loop, so results are bit-identical (spec.interface,
step 5); each pass's module says why. A pass switched off (a ``compile_step`` option, or
``GRADSPEC_REPLAY_OFF=fusion,template,schedule,plan`` for a whole test run) leaves the simpler program
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
from backends.numba._replay._order_check import backward_order_is_eager
from backends.numba._replay._pipeline import FALLBACKS, PIPELINE, SWITCHES, State, info_of, run_pipeline
from backends.numba._replay._program import DOT, DOT_PLAIN, HI, KIND, LO, MODE, SUM, WIDTH, N, Program
from backends.numba._replay._step import NumbaStep
from backends.numba._replay._verify import check_program
from backends.numba._tape import current_tape
from spec.capture import CapturedGraph, capture_graph
from spec.errors import CaptureError
from spec.ops import OPS, OpCode

__all__ = [
    "DOT",
    "DOT_PLAIN",
    "FALLBACKS",
    "HI",
    "KIND",
    "LO",
    "MODE",
    "PIPELINE",
    "SUM",
    "SWITCHES",
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
    captured: CapturedGraph, off: frozenset[str] = frozenset()
) -> tuple[Program, dict[str, Any]]:
    """The program of a captured step, and a description of what the passes did.

    Runs :data:`PIPELINE` with the passes ``off`` (names of :data:`SWITCHES`, for tests and
    benchmarks) and those ``GRADSPEC_REPLAY_OFF`` names switched off, then each of
    :data:`FALLBACKS` in turn until one passes every check. ``info["declined"]`` says, for
    each pipeline that did not, which pass declined it and why.
    """
    _check_replayable(captured.graph.op)
    asked = off | passes_switched_off()
    state = State(captured)
    position = {step.name: i for i, step in enumerate(PIPELINE)}
    first_switch = min(position[name] for name in SWITCHES)
    declined: list[str] = []
    tried: list[tuple[frozenset[str], int]] = []  # each declined attempt's switches, and where it stopped
    for name, also_off in FALLBACKS:
        state.off = asked | also_off
        # an attempt whose switches differ only after where an earlier one stopped stops there too
        if any(all(position[n] > stop for n in state.off ^ before) for before, stop in tried):
            continue
        # the passes before the first switch read only the graph: they run once
        passes = PIPELINE[first_switch:] if tried else PIPELINE
        state.ran = state.ran[:first_switch] if tried else []
        reason = run_pipeline(state, passes)
        if reason is None:
            assert state.program is not None
            check_program(state.program)
            info = {**info_of(state), "pipeline": name, "declined": declined}
            if os.environ.get("GRADSPEC_REPLAY_DEBUG"):
                print(f"gradspec numba replay: {info}", file=sys.stderr)
            return state.program, info
        declined.append(f"{name}: {reason}")
        tried.append((state.off, position[state.ran[-1].removesuffix(" off")]))
    raise RuntimeError(
        f"no pipeline of this graph passed its checks; the eager order always should: {declined}"
    )


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
    off: frozenset[str] = frozenset(),
) -> tuple[Program, dict[str, Any]]:
    """Trace ``loss_fn`` on this batch (spec.capture.capture_graph) and compile its program,
    the passes ``off`` switched off."""
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
    return build_program(captured, off)


def compile_step(
    model: Any,
    loss_fn: Any,
    inputs: Any,
    targets: Any,
    optimizer: Any,
    *,
    allow_unused_parameters: bool = False,
    fusion: bool = True,
    template: bool = True,
    schedule: bool = True,
    plan: bool = True,
    threads: int = 1,
) -> NumbaStep:
    """The Numba backend's ``Backend.compile_step`` (spec.compile.compile_step).

    ``fusion``, ``template``, ``schedule``, ``plan``: False switches that pass of
    :data:`PIPELINE` off (for tests and benchmarks); the program computes the same numbers.

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
        off=frozenset(
            name
            for name, on in {
                "fusion": fusion,
                "template": template,
                "schedule": schedule,
                "plan": plan,
            }.items()
            if not on
        ),
    )
    return NumbaStep(model, loss_fn, inputs, targets, optimizer, capture, threads)


with announced("the op dispatchers"):
    check_dispatchers()  # compiles them, eager and lane, or loads them
