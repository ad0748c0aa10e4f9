"""The Numba backend's replay: bit-identical to the eager loop, whatever the passes did."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

import backends.numba as numba_backend
from backends.numba import _replay
from backends.numba._tape import current_tape
from spec import (
    SGD,
    Adam,
    BackendMismatchError,
    ResultOverflowError,
    compile_step,
    l2_penalty,
    linear_decay,
    mse_loss,
    svm_loss,
)

STEPS = 15
PASSES = [(True, True), (True, False), (False, False)]


def demo_loss(model: Any, inputs: Any, targets: Any) -> Any:
    scores = [model(x) for x in inputs]
    return svm_loss(scores, targets) + l2_penalty(model.parameters(), 1e-4)


def eager_run(model: Any, optimizer: Any, batches: list[tuple[Any, Any]], loss_fn: Any) -> list[float]:
    losses = []
    for inputs, targets in batches:
        loss = loss_fn(model, np.asarray(inputs).tolist(), np.asarray(targets).tolist())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.data)
    return losses


def snapshot(model: Any) -> list[tuple[float, float]]:
    return [(p.data, p.grad) for p in model.parameters()]


@pytest.mark.parametrize("template", [True, False], ids=["lanes", "nodes"])
@pytest.mark.parametrize(("fusion", "schedule"), PASSES, ids=["fused-scheduled", "fused", "unfused"])
def test_moons_demo_replay_is_bit_identical(moons_data, demo_model, fusion, schedule, template) -> None:  # type: ignore[no-untyped-def]
    X, y = moons_data
    eager = demo_model(numba_backend)
    eager_optimizer = SGD(eager.parameters(), linear_decay(1.0, 0.1, 100))
    expected = eager_run(eager, eager_optimizer, [(X, y)] * STEPS, demo_loss)
    model = demo_model(numba_backend)
    optimizer = SGD(model.parameters(), linear_decay(1.0, 0.1, 100))
    step = _replay.compile_step(
        model, demo_loss, X, y, optimizer, fusion=fusion, schedule=schedule, template=template
    )
    assert step.info["fusion"] is fusion and step.info["schedule"] is schedule
    # unfused, the loss's running sum starts with ``0 + loss_0``, a node of sample 0 alone: no match
    assert step.info["template"] is (template and fusion)
    losses = [step(X, y) for _ in range(STEPS)]
    assert losses == expected, "losses must be bit-identical"
    assert snapshot(model) == snapshot(eager), "parameters and grads must be bit-identical"
    assert optimizer.velocity == eager_optimizer.velocity and optimizer.steps == STEPS


def test_passes_shrink_the_moons_graph(moons_data, demo_model) -> None:  # type: ignore[no-untyped-def]
    X, y = moons_data
    model = demo_model(numba_backend)
    step = compile_step(model, demo_loss, X, y, SGD(model.parameters(), 0.1))
    info = step.info
    # 100 samples x (16 + 16 + 1 neurons + their activations + the loss term), plus the sums.
    assert info["traced_nodes"] > 65_000 and info["fused_nodes"] < 7_000
    assert info["groups"] <= 12, f"one branch-free loop per height and kind: {info}"
    assert info["bytes"] < 1_000_000


def test_minibatches_with_new_data_and_adam_match_eager(demo_model) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    batches = [(rng.uniform(-2, 2, (16, 2)), rng.choice([-1.0, 1.0], 16)) for _ in range(STEPS)]
    eager = demo_model(numba_backend)
    eager_optimizer = Adam(eager.parameters(), 0.01)
    expected = eager_run(eager, eager_optimizer, batches, demo_loss)
    model = demo_model(numba_backend)
    optimizer = Adam(model.parameters(), 0.01)
    step = compile_step(model, demo_loss, *batches[0], optimizer)
    assert [step(x, t) for x, t in batches] == expected
    assert snapshot(model) == snapshot(eager)
    assert (optimizer.m, optimizer.v) == (eager_optimizer.m, eager_optimizer.v)


class OneParameter:
    """A model with one parameter ``p``, for hand-made graphs."""

    nin = 1

    def __init__(self, value: float) -> None:
        self.p = numba_backend.Value(value)

    def parameters(self) -> list[Any]:
        return [self.p]


def three_consumers(model: Any, inputs: Any, targets: Any) -> Any:
    # p's grad gets 1, 1e16 and -1e16 (spec.interface: reverse creation order gives 1.0; any
    # other order 0.0). The first product is folded into the loss's sum, where grouping by
    # height would push its 1.0 first; the order check must catch that.
    p = model.p
    first = p * 1.0
    second = (p * 1e16) * 1.0
    third = ((p * -1e16) * 1.0) * 1.0
    return first + second + third + inputs[0][0] * 0.0


def test_the_order_check_falls_back_to_eager_order() -> None:
    model = OneParameter(0.5)
    step = compile_step(model, three_consumers, [[1.0]], [0.0], SGD(model.parameters(), 0.1))
    step([[1.0]], [0.0])
    assert model.p.grad == 1.0, f"contributions in the wrong order: grad {model.p.grad!r}"
    assert not step.info["schedule"], step.info


def test_program_kernels_check_their_own_order(moons_data, demo_model) -> None:  # type: ignore[no-untyped-def]
    X, y = moons_data
    model = demo_model(numba_backend)
    step = compile_step(model, demo_loss, X, y, SGD(model.parameters(), 0.1))
    program = step.program
    lanes = program.groups[:, _replay.WIDTH]
    assert (lanes > 1).any(), "the moons step runs its samples as lane units"
    # one pusher per term and sample, in the order backward pushes them
    groups = program.groups
    units = (groups[:, _replay.HI] - groups[:, _replay.LO]) // lanes
    term_width = np.repeat(lanes, units * groups[:, _replay.N])
    pusher_at = np.concatenate([[0], np.cumsum(term_width)[:-1]])
    pushes = int(term_width.sum())
    pusher = np.zeros(pushes, np.int64)  # every push "from node 0": any order passes
    assert _replay.backward_order_is_eager(program.groups, program.terms, pusher, pusher_at, program.needs, 0)
    pusher = -np.arange(pushes, dtype=np.int64)  # decreasing in term order: backward runs terms in reverse
    assert not _replay.backward_order_is_eager(
        program.groups, program.terms, pusher, pusher_at, program.needs, 0
    )


def test_replay_survives_compaction_between_calls(demo_model) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    X, y = rng.uniform(-1, 1, (8, 2)), rng.choice([-1.0, 1.0], 8)
    eager = demo_model(numba_backend)
    expected = eager_run(eager, SGD(eager.parameters(), 0.1), [(X, y)] * 3, demo_loss)
    model = demo_model(numba_backend)
    step = compile_step(model, demo_loss, X, y, SGD(model.parameters(), 0.1))
    tape = current_tape()
    losses = []
    for _ in range(3):
        losses.append(step(X, y))
        runs = tape.compactions
        for _ in range(150_000):
            numba_backend.Value(1.0) + 1.0  # garbage: the tape compacts and renumbers the parameters
        assert tape.compactions > runs
    assert losses == expected and snapshot(model) == snapshot(eager)


def test_forward_failures_raise_the_eager_error_word_for_word() -> None:
    model = OneParameter(2.0)

    def exp_loss(m: Any, x: Any, t: Any) -> Any:
        return (m.p * x[0][0]).exp() + (m.p * 1.0).tanh()

    step = compile_step(model, exp_loss, [[1.0]], [0.0], SGD(model.parameters(), 0.1))
    with pytest.raises(Exception) as replayed:
        step([[400.0]], [0.0])
    with pytest.raises(Exception) as eager:
        exp_loss(model, [[400.0]], [0.0])
    assert type(replayed.value) is type(eager.value) and str(replayed.value) == str(eager.value)


def test_update_overflow_raises_and_changes_nothing() -> None:
    model = OneParameter(1.0)

    def square(m: Any, x: Any, t: Any) -> Any:
        return (m.p * x[0][0] - t[0]) ** 2

    optimizer = SGD(model.parameters(), 1e300)
    step = compile_step(model, square, [[1.0]], [0.0], optimizer)
    with pytest.raises(ResultOverflowError, match=r"SGD step: parameter 0 would become -inf"):
        step([[1e10]], [0.0])
    assert model.p.data == 1.0 and optimizer.steps == 0


def test_a_step_belongs_to_the_thread_that_captured_it(demo_model) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(2)
    X, y = rng.uniform(-1, 1, (6, 2)), rng.uniform(-1, 1, 6)

    def loss_fn(m: Any, x: Any, t: Any) -> Any:
        return mse_loss([m(row) for row in x], t)

    model = demo_model(numba_backend)
    optimizer = SGD(model.parameters(), 0.05)
    step = compile_step(model, loss_fn, X, y, optimizer)
    before = snapshot(model)
    errors: list[Exception] = []

    def call() -> None:
        try:
            step(X, y)
        except BackendMismatchError as error:
            errors.append(error)

    worker = threading.Thread(target=call)
    worker.start()
    worker.join()
    assert errors and "thread" in str(errors[0])
    assert snapshot(model) == before and optimizer.steps == 0
    tape = current_tape()
    for _ in range(3):  # the owner goes on building and replaying: its tape was never touched
        numba_backend.Value(1.0) + 1.0
        step(X, y)
    assert optimizer.steps == 3 and len(tape) > 0


def test_the_conformance_example_of_dot_modes_is_grouped() -> None:
    # Its three chains, one per mode, reach one height only if the grouping pass runs; else
    # the example cannot catch a grouping that ignores the mode.
    from conformance.checks.compiled_programs import DOT_MODES, EXAMPLES

    case = next(c for c in EXAMPLES if c.program is DOT_MODES)
    model = DOT_MODES.model(numba_backend.BACKEND)
    step = compile_step(model, DOT_MODES.loss_fn, *case.example, case.optimizer.build(model.parameters()))
    groups = step.program.groups
    dots = groups[groups[:, _replay.KIND] == _replay.DOT]
    assert step.info["schedule"] and {0, 1, 2} <= set(dots[:, _replay.MODE].tolist()), groups


def test_the_environment_switches_passes_off_and_refuses_unknown_names(monkeypatch, demo_model) -> None:  # type: ignore[no-untyped-def]
    assert _replay.SWITCHES == ("fusion", "template", "schedule", "plan")
    X, y = [[0.5, -0.5], [1.0, 2.0]], [1.0, -1.0]
    model = demo_model(numba_backend)
    monkeypatch.setenv("GRADSPEC_REPLAY_OFF", "schedule")
    step = compile_step(model, demo_loss, X, y, SGD(model.parameters(), 0.1))
    assert step.info["fusion"] and not step.info["schedule"]
    monkeypatch.setenv("GRADSPEC_REPLAY_OFF", "fusion, schedule")
    step = compile_step(model, demo_loss, X, y, SGD(model.parameters(), 0.1))
    assert not step.info["fusion"] and not step.info["schedule"]
    monkeypatch.setenv("GRADSPEC_REPLAY_OFF", "fusoin")
    with pytest.raises(
        ValueError,
        match="GRADSPEC_REPLAY_OFF names no pass fusoin: choose from fusion, template, schedule, plan",
    ):
        compile_step(model, demo_loss, X, y, SGD(model.parameters(), 0.1))


@pytest.mark.parametrize("off", ["template", "template,schedule"])
def test_forward_failures_at_every_position_without_lane_units(monkeypatch, off) -> None:  # type: ignore[no-untyped-def]
    # Conformance runs with every pass on, where samples are lane units; the scalar kernels'
    # four-nodes-at-a-time loop must refuse a failure at each of its four places too.
    from conformance.checks.compiled_programs import FAILURES, check_compiled_forward_failures_at_every_lane

    monkeypatch.setenv("GRADSPEC_REPLAY_OFF", off)
    for name in FAILURES:
        check_compiled_forward_failures_at_every_lane(numba_backend.BACKEND, name)
