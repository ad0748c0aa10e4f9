"""Compiled training steps (spec.compile): the compiled step trains exactly as the eager loop.

``spec.compile_step`` gives the backend's replay where ``Backend.compile_step`` is declared and
the portable ``EagerStep`` elsewhere; these checks run whichever the backend gets, so a backend
without replay still has its fallback checked against a hand-written eager loop.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from conformance._registry import checks_in, named_by_keys
from conformance._training import model_loss
from conformance.checks.contract import need
from conformance.gradcheck import assert_same_bits
from conformance.loss_programs import (
    OptimizerChoice,
    assert_same_outcome,
    assert_same_state,
    eager_step,
    state_of,
)
from spec import (
    SGD,
    Adam,
    Backend,
    BackendMismatchError,
    CaptureError,
    DomainError,
    NonFiniteError,
    OperandTypeError,
    ResultOverflowError,
    ShapeError,
    TrainingStep,
    compile_step,
    linear_decay,
    mse_loss,
    one_hot,
)

check = checks_in("compiled", ordered=True)


@dataclass(frozen=True)
class Case:
    nin: int
    nouts: tuple[int, ...]
    activation: str
    output_activation: str
    loss: str
    optimizer: Callable[[list[Any]], Any]
    alpha: float = 0.0


CASES: dict[str, Case] = {
    "moons_relu_svm_l2_sgd_schedule": Case(
        2, (8, 8, 1), "relu", "linear", "svm", lambda p: SGD(p, linear_decay(0.5, 0.05, 6)), alpha=1e-4
    ),
    "toy_tanh_mse_momentum": Case(3, (4, 4, 1), "tanh", "tanh", "mse", lambda p: SGD(p, 0.05, momentum=0.9)),
    "sigmoid_bce_adam": Case(2, (5, 1), "tanh", "sigmoid", "bce", lambda p: Adam(p, lr=0.05)),
    # k outputs per sample, one-hot targets of shape (n, k): rows of k Values in loss_fn
    "three_classes_cross_entropy_adam": Case(
        4, (6, 3), "relu", "linear", "cross_entropy", lambda p: Adam(p, lr=0.05)
    ),
}
STEPS = 6
BATCH = 12


def _batches(case: Case, seed: int) -> list[tuple[list[list[float]], list[Any]]]:
    """STEPS batches of BATCH samples, a new batch each step; targets to suit the loss."""
    rng = random.Random(seed)
    batches = []
    for _ in range(STEPS):
        inputs = [[rng.uniform(-1.5, 1.5) for _ in range(case.nin)] for _ in range(BATCH)]
        if case.loss == "svm":
            targets = [1.0 if x[0] * x[-1] > 0 else -1.0 for x in inputs]
        elif case.loss == "bce":
            targets = [1.0 if x[0] > 0 else 0.0 for x in inputs]
        elif case.loss == "cross_entropy":
            k = case.nouts[-1]
            targets = one_hot([int(k * (x[0] + 1.5) / 3.0) % k for x in inputs], k).tolist()
        else:
            targets = [rng.uniform(-0.9, 0.9) for _ in inputs]
        batches.append((inputs, targets))
    return batches


def _model(backend: Backend, case: Case) -> Any:
    return backend.MLP(
        case.nin,
        list(case.nouts),
        activation=case.activation,
        output_activation=case.output_activation,
        seed=5,
    )


def _loss_fn(case: Case) -> Callable[[Any, Any, Any], Any]:
    return lambda model, inputs, targets: model_loss(model, inputs, targets, case.loss, case.alpha)


def _compile(
    backend: Backend, model: Any, loss_fn: Any, inputs: Any, targets: Any, optimizer: Any
) -> TrainingStep:
    step = compile_step(model, loss_fn, inputs, targets, optimizer, backend=backend)
    expected = "replay" if "compile_step" in backend.capabilities else "eager"
    assert step.mode == expected, f"compile_step gave a {step.mode} step; the backend declares {expected}"
    return step


def _case_params() -> Iterator[tuple[str, Case]]:
    yield from CASES.items()


@check(params=_case_params)
def check_compiled_step_trains_like_the_eager_loop(backend: Backend, case: Case) -> None:
    if case.loss == "cross_entropy":
        need(backend, "op max")  # logsumexp's largest logit
    # The eager loop as micrograd users write it: plain float data and targets.
    batches = _batches(case, seed=3)
    eager = _model(backend, case)
    eager_optimizer = case.optimizer(eager.parameters())
    expected = []
    for inputs, targets in batches:
        loss = model_loss(eager, inputs, targets, case.loss, case.alpha)
        eager_optimizer.zero_grad()
        loss.backward()
        eager_optimizer.step()
        expected.append(loss.data)

    model = _model(backend, case)
    optimizer = case.optimizer(model.parameters())
    step = _compile(backend, model, _loss_fn(case), *batches[0], optimizer)
    for k, (inputs, targets) in enumerate(batches):
        assert_same_bits(step(inputs, targets), expected[k], f"loss at step {k}")
    assert_same_state(state_of(model, optimizer), state_of(eager, eager_optimizer), f"after {STEPS} steps")


@check
def check_compiled_step_sees_parameters_assigned_between_calls(backend: Backend) -> None:
    case = CASES["toy_tanh_mse_momentum"]
    (inputs, targets), *_ = _batches(case, seed=4)
    model = _model(backend, case)
    step = _compile(backend, model, _loss_fn(case), inputs, targets, SGD(model.parameters(), 0.1))
    step(inputs, targets)
    state = model.state_dict()
    first = step(inputs, targets)
    model.load_state_dict(state)
    again = step(inputs, targets)
    assert first == again, (
        f"after load_state_dict the step must start from the loaded parameters: {first} vs {again}"
    )


@check
def check_compiled_step_misuse_raises(backend: Backend) -> None:
    case = CASES["toy_tanh_mse_momentum"]
    (inputs, targets), *_ = _batches(case, seed=5)
    loss_fn = _loss_fn(case)
    model = _model(backend, case)
    step = _compile(backend, model, loss_fn, inputs, targets, SGD(model.parameters(), 0.1))
    before = [p.data for p in model.parameters()]
    bad_calls: list[tuple[Callable[[], Any], type[Exception]]] = [
        (lambda: step(inputs[:-1], targets[:-1]), ShapeError),
        (lambda: step([row + [0.0] for row in inputs], targets), ShapeError),
        (lambda: step(inputs, targets + [1.0]), ShapeError),
        (lambda: step(inputs, [[t] for t in targets]), ShapeError),  # (n, 1) where it was compiled for (n,)
        (lambda: step([[float("nan")] * case.nin] + inputs[1:], targets), NonFiniteError),
        (lambda: step(inputs, ["x"] * len(targets)), OperandTypeError),
    ]
    for call, error in bad_calls:
        with pytest.raises(error):
            call()
    assert [p.data for p in model.parameters()] == before, "a refused call must change no parameter"

    other = _model(backend, case)
    with pytest.raises(CaptureError, match=r"model\.parameters"):
        compile_step(model, loss_fn, inputs, targets, SGD(other.parameters(), 0.1), backend=backend)
    with pytest.raises(CaptureError, match="Value"):
        compile_step(
            model, lambda m, x, t: 1.0, inputs, targets, SGD(model.parameters(), 0.1), backend=backend
        )

    def first_neuron_only(m: Any, x: Any, t: Any) -> Any:
        return (m.layers[0].neurons[0](x[0]) - t[0]) ** 2

    with pytest.raises(CaptureError, match="does not depend on"):
        compile_step(model, first_neuron_only, inputs, targets, SGD(model.parameters(), 0.1), backend=backend)
    optimizer = SGD(model.parameters(), 0.1)
    partial = compile_step(
        model, first_neuron_only, inputs, targets, optimizer, backend=backend, allow_unused_parameters=True
    )
    unused = model.parameters()[-1]
    kept = unused.data
    partial(inputs, targets)
    assert unused.data == kept and unused.grad == 0.0, "an unused parameter has grad 0 and stays put"


@check
def check_compiled_step_raises_the_eager_errors_and_changes_nothing(backend: Backend) -> None:
    # out = w * x (+ b = 0); loss = log(out): fine while w * x > 0, a DomainError after.
    model = backend.MLP(1, [1], seed=2)
    w = model.parameters()[0].data
    good, bad = [[1.0 if w > 0 else -1.0]], [[-1.0 if w > 0 else 1.0]]

    def log_loss(m: Any, x: Any, t: Any) -> Any:
        return m(x[0]).log() * t[0]

    optimizer = SGD(model.parameters(), 0.01)
    step = compile_step(model, log_loss, good, [1.0], optimizer, backend=backend)
    step(good, [1.0])
    before = [(p.data, p.grad) for p in model.parameters()]
    with pytest.raises(DomainError, match="log"):
        step(bad, [1.0])
    assert [(p.data, p.grad) for p in model.parameters()] == before and optimizer.steps == 1, (
        "a step that fails in its forward pass must change nothing"
    )
    optimizer.lr = 1e308
    with pytest.raises(ResultOverflowError, match="SGD step: parameter"):
        step(good, [1e10])
    assert [(p.data, p.grad) for p in model.parameters()] == before and optimizer.steps == 1, (
        "a step whose update fails must change nothing, grads included"
    )
    assert optimizer.velocity == [grad for _, grad in before], (
        "a step whose update fails must leave SGD's velocity the last step's grads"
    )


#: optimizer -> changes a user may make between calls, each applied to both runs
CHANGES: dict[str, tuple[OptimizerChoice, list[Callable[[Any], None]]]] = {
    "sgd": (
        OptimizerChoice("sgd", 0.1),
        [
            lambda o: setattr(o, "lr", 0.05),
            lambda o: setattr(o, "lr", linear_decay(0.2, 0.01, 10)),
            lambda o: setattr(o, "steps", 7),
        ],
    ),
    "momentum": (
        OptimizerChoice("momentum", 0.1),
        [
            lambda o: o.velocity.__setitem__(0, 3.0),
            lambda o: setattr(o, "velocity", [0.5 * v for v in o.velocity]),
            lambda o: setattr(o, "momentum", 0.5),
            lambda o: setattr(o, "momentum", 0.0),
            lambda o: setattr(o, "momentum", 0.8),
        ],
    ),
    "adam": (
        OptimizerChoice("adam", 0.05),
        [
            lambda o: o.m.__setitem__(1, 0.5),
            lambda o: o.v.__setitem__(2, 0.25),
            lambda o: setattr(o, "v", [2.0 * v for v in o.v]),
            lambda o: setattr(o, "steps", 3),
            lambda o: setattr(o, "beta1", 0.8),
            lambda o: setattr(o, "beta2", 0.99),
            lambda o: setattr(o, "eps", 1e-4),
            lambda o: setattr(o, "lr", 0.01),
        ],
    ),
}


def _mse(m: Any, x: Any, t: Any) -> Any:
    return mse_loss([m(row) for row in x], t)


@check(params=named_by_keys(CHANGES))
def check_compiled_step_honours_optimizer_changes_between_calls(backend: Backend, name: str) -> None:
    choice, changes = CHANGES[name]
    batch = _batches(CASES["toy_tanh_mse_momentum"], seed=7)[0]
    eager, model = (backend.MLP(3, [4, 1], activation="tanh", seed=6) for _ in range(2))
    eager_optimizer, optimizer = choice.build(eager.parameters()), choice.build(model.parameters())
    step = _compile(backend, model, _mse, *batch, optimizer)
    for k, change in enumerate([lambda o: None, *changes]):
        change(eager_optimizer)
        change(optimizer)
        want = eager_step(backend, eager, eager_optimizer, _mse, batch)
        assert_same_outcome(step(*batch), want, f"{name}: the step after change {k}")
        assert_same_state(
            state_of(model, optimizer), state_of(eager, eager_optimizer), f"{name}: after change {k}"
        )


@check
def check_compiled_step_called_from_another_thread(backend: Backend) -> None:
    # Where another thread may not use this thread's Values (BackendMismatchError: a tape per
    # thread), it may not run this thread's step either, and the refused call changes nothing;
    # elsewhere the call computes what the eager loop computes.
    batch = _batches(CASES["toy_tanh_mse_momentum"], seed=8)[0]
    eager, model = (backend.MLP(3, [4, 1], seed=6) for _ in range(2))
    eager_optimizer, optimizer = SGD(eager.parameters(), 0.1), SGD(model.parameters(), 0.1)
    step = _compile(backend, model, _mse, *batch, optimizer)
    before = state_of(model, optimizer)
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            model.parameters()[0] * 1.0
        except BackendMismatchError:
            outcome["values belong to a thread"] = True
        try:
            outcome["loss"] = step(*batch)
        except BackendMismatchError as error:
            outcome["refused"] = error

    worker = threading.Thread(target=call)
    worker.start()
    worker.join()
    if "values belong to a thread" in outcome:
        assert "refused" in outcome, "the step ran in a thread that may not use its Values"
        assert_same_state(state_of(model, optimizer), before, "a call refused in another thread changed")
        outcome["loss"] = step(*batch)
    want = eager_step(backend, eager, eager_optimizer, _mse, batch)
    assert_same_outcome(outcome["loss"], want, "the loss")
    assert_same_state(state_of(model, optimizer), state_of(eager, eager_optimizer), "after one step")
