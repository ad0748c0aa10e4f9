"""Capture on the Numba tape: the trace is held whole, read off once, and its memory given back."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

import backends.numba as numba_backend
from backends.numba._replay import build_program, extract
from backends.numba._tape import MIN_GROWTH, current_tape
from spec import SGD, CaptureError, DomainError, OpCode, compile_step, mse_loss
from spec.capture import capture_graph
from spec.compile import EagerStep

X = np.array([[0.5, 1.0], [1.5, 0.25], [0.75, 0.5]])
Y = np.array([1.0, -1.0, 0.5])


def mse(model: Any, inputs: Any, targets: Any) -> Any:
    return mse_loss([model(x) for x in inputs], targets)


def test_nodes_the_loss_drops_survive_the_compactions_a_big_trace_would_run(in_new_thread) -> None:  # type: ignore[no-untyped-def]
    # loss_fn takes log(x0 * p) and drops it, then makes enough garbage to pass the tape's
    # compaction point: the tape must still hold the dropped node, or replay stops checking it.
    def run() -> None:
        model = numba_backend.MLP(2, [3, 1], seed=1)
        p = model.parameters()[0]

        def wasteful(m: Any, x: Any, t: Any) -> Any:
            for row in x:
                (row[0] * p * p).log()
            junk = p * 1.0
            for _ in range(MIN_GROWTH):
                junk = junk * 1.0
            return mse(m, x, t)

        step = compile_step(model, wasteful, X, Y, SGD(model.parameters(), 0.1))
        before = [(q.data, q.grad) for q in model.parameters()]
        with pytest.raises(DomainError, match="log"):
            step(-X, Y)
        assert [(q.data, q.grad) for q in model.parameters()] == before

    in_new_thread(run)


def test_capture_gives_the_trace_back_to_the_tape(in_new_thread) -> None:  # type: ignore[no-untyped-def]
    def run() -> tuple[int, int]:
        model = numba_backend.MLP(2, [8, 8, 1], seed=1)
        tape = current_tape()
        start = len(tape)
        compile_step(model, mse, X, Y, SGD(model.parameters(), 0.1))
        return start, len(tape)

    start, after = in_new_thread(run)
    assert after == start, f"the trace's {after - start} nodes stayed on the tape after capture"


def test_values_kept_from_inside_loss_fn_stay_intact(in_new_thread) -> None:  # type: ignore[no-untyped-def]
    def run() -> None:
        model = numba_backend.MLP(2, [3, 1], seed=1)
        kept: list[Any] = []

        def remembering(m: Any, x: Any, t: Any) -> Any:
            outs = [m(row) for row in x]
            kept.append(outs[0] * 2.0)
            return mse_loss(outs, t)

        compile_step(model, remembering, X, Y, SGD(model.parameters(), 0.1))
        value = kept[0]
        assert value.op == "*" and value.children[1].data == 2.0
        eager = mse_loss([model(row) for row in X.tolist()], Y.tolist())
        assert value.children[0].data == model(X[0].tolist()).data and eager.data > 0.0
        value.backward()
        assert model.parameters()[-1].grad == 2.0, "d(2 * out)/d(output bias) is 2"

    in_new_thread(run)


def test_values_made_outside_loss_fn_that_are_not_parameters_are_refused() -> None:
    model = numba_backend.MLP(2, [3, 1], seed=1)
    outside = numba_backend.Value(2.0)  # neither a parameter nor made in loss_fn: replay would freeze it

    def uses_outside_value(m: Any, x: Any, t: Any) -> Any:
        return mse(m, x, t) * outside

    with pytest.raises(CaptureError, match=r"1 Value\(s\) made before compile_step .* holds 2\.0"):
        compile_step(model, uses_outside_value, X, Y, SGD(model.parameters(), 0.1))
    assert EagerStep(model, uses_outside_value, X, Y, SGD(model.parameters(), 0.1))(X, Y) > 0.0


def test_values_computed_from_parameters_before_capture_are_refused() -> None:
    # The eager loop keeps such a Value's number and backpropagates through it as it is; a
    # replay would recompute it from the parameters at every step.
    model = numba_backend.MLP(2, [3, 1], seed=1)
    p = model.parameters()
    cached = (p[0] * p[1]).tanh()

    def uses_cached_value(m: Any, x: Any, t: Any) -> Any:
        return mse(m, x, t) + cached

    with pytest.raises(
        CaptureError, match=r"made before compile_step .*2 of them computed; the first computed"
    ):
        compile_step(model, uses_cached_value, X, Y, SGD(model.parameters(), 0.1))


def test_a_node_of_an_op_the_replay_does_not_lower_is_refused() -> None:
    model = numba_backend.MLP(2, [3, 1], activation="tanh", seed=1)
    captured = capture_graph(model, mse, X, Y, SGD(model.parameters(), 0.1), extract)
    op = captured.graph.op.copy()
    op[op == OpCode.TANH] = 99  # an op added to the table, say, but not to this replay
    unknown = dataclasses.replace(captured, graph=dataclasses.replace(captured.graph, op=op))
    with pytest.raises(CaptureError, match="lowers no op 99"):
        build_program(unknown)


def test_a_graph_too_large_for_int32_node_numbers_is_refused() -> None:
    model = numba_backend.MLP(2, [1], seed=1)
    captured = capture_graph(model, mse, X, Y, SGD(model.parameters(), 0.1), extract)
    op = np.broadcast_to(np.int8(0), (2**31,))  # the length alone: no memory behind it
    huge = dataclasses.replace(captured, graph=dataclasses.replace(captured.graph, op=op))
    with pytest.raises(CaptureError, match=r"2147483648 nodes; .* fewer than 2\*\*31"):
        build_program(huge)
