"""Capture's one rule (spec.tracing): a traced Value cannot be read as a number inside ``loss_fn``.

Each leak below would freeze a number of the example batch into every later step; every
backend must refuse it with CaptureError when the step is made, the eager fallback
included, and change nothing. What stays allowed must compile and train like the eager loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from conformance._registry import checks_in, named_by_keys
from conformance.checks.contract import need
from conformance.loss_programs import OptimizerChoice, assert_trains_like_eager
from spec import SGD, Backend, CaptureError, compile_step, mse_loss

check = checks_in("compiled")

Loss = Callable[[Any, Any, Any], Any]
INPUTS = [[0.5, -1.0], [1.5, 0.25], [-0.75, 0.5], [0.2, 0.1]]
TARGETS = [1.0, -1.0, 0.5, 0.0]


def _outputs(m: Any, x: Any) -> list[Any]:
    return [m(row) for row in x]


def _mse(m: Any, x: Any, t: Any) -> Any:
    return mse_loss(_outputs(m, x), t)


def _branch(m: Any, x: Any, t: Any) -> Any:
    outs = _outputs(m, x)
    return mse_loss([o if o.data > 0 else -o for o in outs], t)


def _op_from_data(m: Any, x: Any, t: Any) -> Any:
    outs = _outputs(m, x)
    return mse_loss([o.tanh() if o.data > 0 else o.sigmoid() for o in outs], t)


def _scaled_by_batch_statistic(m: Any, x: Any, t: Any) -> Any:
    largest = max(abs(v.data) for row in x for v in row)
    return mse_loss(_outputs(m, [[v * (1.0 / largest) for v in row] for row in x]), t)


def _assign(attribute: str) -> Loss:
    def loss(m: Any, x: Any, t: Any) -> Any:
        setattr(m.parameters()[0], attribute, 0.25)
        return _mse(m, x, t)

    return loss


def _read(use: Callable[[Any, Any, Any], Any]) -> Loss:
    def loss(m: Any, x: Any, t: Any) -> Any:
        outs = _outputs(m, x)
        use(outs, x, t)
        return mse_loss(outs, t)

    return loss


#: id -> (a loss_fn that reads a traced number, words its CaptureError must contain)
LEAKS: dict[str, tuple[Loss, str]] = {
    "parameter_data_in_a_penalty": (
        lambda m, x, t: _mse(m, x, t) + 0.01 * sum(p * p.data for p in m.parameters()),
        ".data",
    ),
    "batch_statistic_of_inputs": (_scaled_by_batch_statistic, ".data"),
    "target_data": (lambda m, x, t: _mse(m, x, t) * t[0].data, ".data"),
    "branch_on_output_data": (_branch, ".data"),
    "op_chosen_from_data": (_op_from_data, ".data"),
    "parameter_grad": (lambda m, x, t: _mse(m, x, t) * (1.0 + m.parameters()[0].grad), ".grad"),
    "assign_parameter_data": (_assign("data"), "assigning .data"),
    "assign_parameter_grad": (_assign("grad"), "assigning .grad"),
    "float": (_read(lambda outs, x, t: float(outs[0])), "float()"),
    "int": (_read(lambda outs, x, t: int(outs[0])), "int()"),
    "math_function": (_read(lambda outs, x, t: math.exp(outs[0])), "float()"),
    "bool_of_output": (_read(lambda outs, x, t: bool(outs[0])), "bool()"),
    "if_on_target": (_read(lambda outs, x, t: 1 if t[0] else 0), "bool()"),
    "compare_with_number": (_read(lambda outs, x, t: outs[0] > 0), ">"),
    "compare_reflected": (_read(lambda outs, x, t: 0.5 <= x[0][0]), ">="),
    "compare_two_values": (_read(lambda outs, x, t: outs[0] < outs[1]), "<"),
    "max_of_values": (_read(lambda outs, x, t: max(outs)), "comparing"),
    "format_number": (_read(lambda outs, x, t: f"{outs[0]:.3f}"), "formatting"),
    "round": (_read(lambda outs, x, t: round(outs[0], 2)), "round()"),
    "abs": (_read(lambda outs, x, t: abs(outs[0])), "abs()"),
    "math_trunc": (_read(lambda outs, x, t: math.trunc(outs[0])), "math.trunc()"),
    "math_floor": (_read(lambda outs, x, t: math.floor(x[0][0])), "math.floor()"),
    "index": (_read(lambda outs, x, t: [0, 1][t[0]]), "operator.index()"),
    "numpy_function": (_read(lambda outs, x, t: np.tanh(outs[0])), "NumPy's tanh()"),
}


@check(params=named_by_keys(LEAKS))
def check_capture_refuses_reading_traced_numbers(backend: Backend, name: str) -> None:
    if name == "numpy_function":
        need(backend, "NumPy functions refused")
    loss_fn, words = LEAKS[name]
    model = backend.MLP(2, [3, 1], seed=4)
    before = [(p.data, p.grad) for p in model.parameters()]
    optimizer = SGD(model.parameters(), 0.1)
    with pytest.raises(CaptureError) as refused:
        compile_step(model, loss_fn, INPUTS, TARGETS, optimizer, backend=backend)
    message = str(refused.value)
    assert words in message and "outside loss_fn" in message, (
        f"the CaptureError must name the operation ({words!r}) and the way out: {message!r}"
    )
    assert [(p.data, p.grad) for p in model.parameters()] == before and optimizer.steps == 0, (
        "a refused capture must change no parameter"
    )


def _allowed(m: Any, x: Any, t: Any) -> Any:
    constant = type(m.parameters()[0])(2.0)  # made inside loss_fn from a number: a constant
    outs = _outputs(m, x)
    print(f"{outs[0]} {t[0]!r}")  # printing a traced Value shows no number, and is allowed
    scale = constant.data / len(x) if constant.data > 1.0 else 1.0
    return mse_loss(outs, t) * scale + sum(p * p for p in m.parameters()) * (1.0 / 8)


@check(ordered=True)  # it compares the compiled step's bits with the eager loop's
def check_capture_allows_constants_lengths_and_printing(backend: Backend) -> None:
    batches = [(INPUTS, TARGETS), ([[r[1], r[0]] for r in INPUTS], TARGETS[::-1])]
    assert_trains_like_eager(
        backend,
        lambda: backend.MLP(2, [3, 1], seed=4),
        _allowed,
        OptimizerChoice("momentum", 0.1),
        (INPUTS, TARGETS),
        batches,
        "a loss that reads a constant's data, len() of the data and prints traced Values",
    )


@check
def check_traced_values_print_without_their_numbers(backend: Backend) -> None:
    shown: list[str] = []

    def loss_fn(m: Any, x: Any, t: Any) -> Any:
        outs = _outputs(m, x)
        shown.extend([str(outs[0]), repr(t[0]), f"{x[0][0]}"])
        return mse_loss(outs, t)

    model = backend.MLP(2, [3, 1], seed=4)
    compile_step(model, loss_fn, INPUTS, TARGETS, SGD(model.parameters(), 0.1), backend=backend)
    numbers = [repr(float(TARGETS[0])), repr(float(INPUTS[0][0]))]
    for text in shown[:3]:
        assert "traced" in text and not any(n in text for n in numbers), (
            f"a traced Value prints as a traced Value, without a number: {text!r}"
        )
