"""spec.compile and spec.capture: dispatch, data checks, placeholders, and the portable EagerStep."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

import backends.numba as numba_backend
import backends.python as python_backend
from backends.numba._replay import extract
from spec import (
    SGD,
    Adam,
    BackendMismatchError,
    CaptureError,
    NonFiniteError,
    OperandTypeError,
    ShapeError,
    binary_cross_entropy,
    compile_step,
    load_backend,
    mse_loss,
    svm_loss,
)
from spec.capture import as_data, capture_graph
from spec.compile import EagerStep, ReplayStep, UpdateRule

X = np.array([[0.5, -1.0], [1.5, 0.25], [-0.75, 0.5]])
Y = np.array([1.0, -1.0, 1.0])


def mse(model: Any, inputs: Any, targets: Any) -> Any:
    return mse_loss([model(x) for x in inputs], targets)


def test_dispatch_follows_the_backend_capability() -> None:
    numba_model = numba_backend.MLP(2, [3, 1], seed=0)
    step = compile_step(numba_model, mse, X, Y, SGD(numba_model.parameters(), 0.1))
    assert isinstance(step, ReplayStep) and step.mode == "replay"
    python_model = python_backend.MLP(2, [3, 1], seed=0)
    step = compile_step(python_model, mse, X, Y, SGD(python_model.parameters(), 0.1))
    assert isinstance(step, EagerStep) and step.mode == "eager"
    assert repr(step) == "<EagerStep (eager) of 3 samples x 2 inputs>"


def test_the_eager_fallback_equals_replay_on_numba() -> None:
    losses = {}
    for kind in ("replay", "eager"):
        model = numba_backend.MLP(2, [4, 1], activation="tanh", seed=3)
        optimizer = SGD(model.parameters(), 0.1, momentum=0.5)
        if kind == "replay":
            step = compile_step(model, mse, X, Y, optimizer)
        else:
            step = EagerStep(model, mse, X, Y, optimizer)
        losses[kind] = ([step(X, Y) for _ in range(5)], [p.data for p in model.parameters()])
    assert losses["replay"] == losses["eager"]


def test_backend_declares_compile_step_consistently() -> None:
    numba = load_backend("numba")
    assert "compile_step" in numba.capabilities and numba.compile_step is not None
    with pytest.raises(ValueError, match="capabilities"):
        dataclasses.replace(numba, compile_step=None)
    with pytest.raises(ValueError, match="capabilities"):
        dataclasses.replace(load_backend("python"), compile_step=numba.compile_step)


@pytest.mark.parametrize(
    ("inputs", "targets", "error"),
    [
        (X[:2], Y, ShapeError),
        (X.ravel(), Y, ShapeError),
        ([[0.5, -1.0], [1.5], [0.0, 0.0]], Y, ShapeError),
        (X, Y[:2], ShapeError),
        ([["a", "b"]] * 3, Y, OperandTypeError),
        (X.astype(object) * np.nan, Y, NonFiniteError),
        (X, [np.inf, 0.0, 0.0], NonFiniteError),
        (X.astype(np.complex128), Y, OperandTypeError),
    ],
)
def test_data_checks(inputs: Any, targets: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        as_data(inputs, targets, (3, 2))


@pytest.mark.parametrize(
    ("targets", "target_shape"),
    [
        (np.zeros((3, 0)), None),  # rows of no targets
        (np.zeros((3, 2, 1)), None),
        (np.zeros((2, 4)), None),  # a row per input row
        (np.zeros((3, 4)), (3, 5)),  # compiled for 5 classes
        (np.zeros(3), (3, 4)),
        (np.zeros((3, 1)), (3,)),
    ],
)
def test_target_shape_checks(targets: Any, target_shape: Any) -> None:
    with pytest.raises(ShapeError, match="targets"):
        as_data(X, targets, (3, 2), target_shape)


def test_targets_may_be_rows() -> None:
    _, rows = as_data(X, [[0, 1], [1, 0], [0, 1]], (3, 2), (3, 2))
    assert rows.shape == (3, 2) and rows.dtype == np.float64


def test_lists_and_integer_arrays_are_data() -> None:
    Xs, Ys = as_data(X.tolist(), [1, -1, 1], (3, 2))
    assert Xs.dtype == Ys.dtype == np.float64 and (Xs == X).all() and (Ys == Y).all()


@pytest.mark.parametrize("loss", ["mse", "svm", "bce"])
def test_targets_are_placeholder_leaves(loss: str) -> None:
    model = numba_backend.MLP(2, [3, 1], output_activation="sigmoid" if loss == "bce" else "linear", seed=1)
    targets = (Y + 1.0) / 2.0 if loss == "bce" else Y * 0.3

    def loss_fn(m: Any, x: Any, t: Any) -> Any:
        outs = [m(row) for row in x]
        return {"mse": mse_loss, "svm": svm_loss, "bce": binary_cross_entropy}[loss](outs, t)

    captured = capture_graph(model, loss_fn, X, targets, SGD(model.parameters(), 0.1), extract)
    graph = captured.graph
    assert (captured.targets >= 0).all() and (graph.op[captured.targets] == 0).all()
    assert graph.data[captured.targets].tolist() == targets.tolist()
    # The loss's arithmetic on the targets (-t, -y, 1 - t) is graph nodes that read them.
    readers = np.isin(graph.a, captured.targets) | np.isin(graph.b, captured.targets)
    assert readers.sum() == {"mse": 3, "svm": 3, "bce": 6}[loss]


def test_capture_refuses_what_it_cannot_replay() -> None:
    model = numba_backend.MLP(2, [3, 1], seed=1)

    def reads_data(m: Any, x: Any, t: Any) -> Any:
        return mse(m, x, t) * (1.0 + x[0][0].data)

    with pytest.raises(CaptureError, match=r"reading \.data of a traced Value"):
        compile_step(model, reads_data, X, Y, SGD(model.parameters(), 0.1))

    def leaf_loss(m: Any, x: Any, t: Any) -> Any:
        return m.parameters()[0]

    with pytest.raises(CaptureError, match="leaf"):
        compile_step(model, leaf_loss, X, Y, SGD(model.parameters(), 0.1))
    with pytest.raises(ShapeError, match="takes 2 inputs"):
        compile_step(model, mse, np.ones((3, 3)), Y, SGD(model.parameters(), 0.1))


def test_only_spec_optimizers_replay() -> None:
    class Halving(SGD):
        pass

    model = numba_backend.MLP(2, [3, 1], seed=1)
    with pytest.raises(CaptureError, match="Halving"):
        compile_step(model, mse, X, Y, Halving(model.parameters(), 0.1))
    assert UpdateRule.of(Adam(model.parameters())).kind == UpdateRule.ADAM
    with pytest.raises(CaptureError, match=r"spec\.Optimizer"):
        compile_step(model, mse, X, Y, object())  # type: ignore[arg-type]


def test_eager_step_checks_what_capture_checks() -> None:
    model = python_backend.MLP(2, [3, 1], seed=1)
    with pytest.raises(CaptureError, match="does not depend"):
        EagerStep(model, lambda m, x, t: m.parameters()[0] * 1.0, X, Y, SGD(model.parameters(), 0.1))
    numba_model = numba_backend.MLP(2, [3, 1], seed=1)
    with pytest.raises(CaptureError, match="numba"):
        EagerStep(
            numba_model,
            lambda m, x, t: python_backend.Value(1.0) * 1.0,
            X,
            Y,
            SGD(numba_model.parameters(), 0.1),
        )


def test_state_assigned_between_calls_is_read_back() -> None:
    model = numba_backend.MLP(2, [3, 1], seed=2)
    optimizer = SGD(model.parameters(), 0.1, momentum=0.9)
    step = compile_step(model, mse, X, Y, optimizer)
    step(X, Y)
    assert any(v != 0.0 for v in optimizer.velocity)
    optimizer.velocity = [0.0] * len(optimizer.velocity)
    twin = numba_backend.MLP(2, [3, 1], seed=2)
    for p, q in zip(twin.parameters(), model.parameters(), strict=True):
        p.data = q.data
    twin_optimizer = SGD(twin.parameters(), 0.1, momentum=0.9)
    twin_optimizer.steps = 1
    assert step(X, Y) == EagerStep(twin, mse, X, Y, twin_optimizer)(X, Y)
    assert [p.data for p in model.parameters()] == [p.data for p in twin.parameters()]


def test_a_backend_other_than_the_models_is_refused() -> None:
    model = python_backend.MLP(2, [1], seed=0)
    with pytest.raises(BackendMismatchError, match="numba"):
        compile_step(
            model,
            lambda m, x, t: mse_loss([m(r) for r in x], t),
            X,
            Y,
            SGD(model.parameters(), 0.1),
            backend=load_backend("numba"),
        )


@pytest.mark.parametrize("where", ["inputs", "targets"])
def test_integers_beyond_float64_are_not_finite_data(where: str) -> None:
    inputs, targets = X.tolist(), Y.tolist()
    (inputs[0] if where == "inputs" else targets)[0] = 10**400
    with pytest.raises(NonFiniteError, match=where):
        as_data(inputs, targets, (3, 2))


def test_boolean_arrays_are_not_numbers() -> None:
    with pytest.raises(OperandTypeError, match="bool"):
        as_data(X, np.array([True, False, True]), (3, 2))
