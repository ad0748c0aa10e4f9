"""The fused call (backends.numba._fused): the generic code's very nodes, read off the tape.

The conformance suite compares fused and generic graphs through the public API; here the
tape itself is compared, column by column, so an extra unreachable node, a node in another
place, or a failed call's leftovers show too.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import numpy as np
import pytest

from backends.numba import BACKEND, MLP, Layer, Value
from backends.numba._fused import fused_outputs
from backends.numba._tape import Tape, current_tape
from conformance.checks.fused import generic_outputs

COLUMNS = ("data", "op", "a", "b", "const")


def appended(tape: Tape, build: Any) -> tuple[Any, dict[str, np.ndarray], int]:
    """Run ``build()``; its result, the columns of the nodes it appended, and where they start."""
    start = len(tape)
    try:
        result = build()
    except Exception as error:  # compared by the caller
        result = error
    columns = {name: np.array(getattr(tape, name)[start:]) for name in COLUMNS}
    return result, columns, start


def assert_same_nodes(
    first: tuple[Any, dict[str, np.ndarray], int], second: tuple[Any, dict[str, np.ndarray], int]
) -> None:
    (_, one, start_one), (_, two, start_two) = first, second
    assert len(one["op"]) == len(two["op"]), "a different number of nodes"
    assert np.array_equal(one["op"], two["op"])
    assert one["data"].tobytes() == two["data"].tobytes()
    assert one["const"].tobytes() == two["const"].tobytes()
    for parent in ("a", "b"):
        # a new node's operand is named relative to the call's first node; an older one absolutely
        rebased = [p - start_one if p >= start_one else p for p in one[parent]]
        assert rebased == [p - start_two if p >= start_two else p for p in two[parent]], parent


def model_and_row(seed: int, kind: str, activation: str = "tanh") -> tuple[MLP, list[Any]]:
    model = MLP(3, [4, 5, 2], activation=activation, output_activation="sigmoid", seed=seed)
    rng = random.Random(seed)
    for p in model.parameters():
        p.data = rng.uniform(-2, 2)
    values = [rng.uniform(-1, 1) for _ in range(3)]
    row = {"values": [Value(v) for v in values], "floats": values, "mixed": [Value(values[0]), *values[1:]]}
    return model, row[kind]


@pytest.mark.parametrize("kind", ["values", "floats", "mixed"])
@pytest.mark.parametrize("whole", [True, False])
@pytest.mark.parametrize("activation", ["tanh", "linear"])  # a linear neuron makes no activation node
def test_fused_call_appends_the_generic_nodes(kind: str, whole: bool, activation: str) -> None:
    tape = current_tape()
    model, x = model_and_row(3, kind, activation)
    module = model if whole else model.layers[0]
    with tape.holding_nodes():
        generic = appended(tape, lambda: generic_outputs(BACKEND, module, x))
        fused = appended(tape, lambda: fused_outputs(module, x))
    assert fused[0] is not None, "the fused path declined a call it handles"
    assert_same_nodes(fused, generic)


def test_only_the_outputs_get_handles() -> None:
    tape = current_tape()
    model, x = model_and_row(4, "values")
    tape.sweep()
    out = fused_outputs(model, x)
    assert out is not None
    assert tape.fresh[1:] == out, "a handle for each output, and none for the hidden nodes"


@pytest.mark.parametrize(
    ("weight", "row", "layers"),
    [(1e200, [1e200, 1.0, 1.0], 1), (1.5e308, [1.0, 1.0, 1.0], 1), (1e150, [1e150, 1e150, 1e150], 2)],
    ids=["product", "sum", "later_layer"],
)
def test_a_failing_call_leaves_what_the_generic_code_leaves(
    weight: float, row: list[float], layers: int
) -> None:
    tape = current_tape()
    model = MLP(3, [3, 1], seed=0)
    for layer in model.layers[:layers]:
        for p in layer.parameters():
            p.data = weight
    x = [Value(v) for v in row]
    with tape.holding_nodes():
        generic = appended(tape, lambda: generic_outputs(BACKEND, model, x))
        assert fused_outputs(model, x) is None, "the fused path must decline a call that raises"
        fused = appended(tape, lambda: model(x))
    assert isinstance(generic[0], OverflowError)
    assert type(fused[0]) is type(generic[0]) and str(fused[0]) == str(generic[0])
    assert_same_nodes(fused, generic)


def test_declines_what_it_does_not_handle() -> None:
    model, x = model_and_row(5, "values")
    assert fused_outputs(model, iter(x)) is None  # not a list or tuple
    assert fused_outputs(model, [*x, Value(1.0)]) is None  # too long
    assert fused_outputs(model, [x[0], "2.0", x[2]]) is None  # not a number

    class Loud(type(model.layers[0].neurons[0])):  # type: ignore[misc]
        def __call__(self, x: Any) -> Any:
            return super().__call__(x) * 2.0

    model.layers[1].neurons[0].__class__ = Loud
    assert fused_outputs(model, x) is None
    assert fused_outputs(model.layers[0], x) is not None  # its other layers are plain


def test_declines_values_of_another_thread() -> None:
    model, _ = model_and_row(6, "values")
    made: list[Any] = []
    worker = threading.Thread(target=lambda: made.extend([Value(0.1), Value(0.2), Value(0.3)]))
    worker.start()
    worker.join()
    assert fused_outputs(model, made) is None
    assert fused_outputs(model, [0.1, 0.2, 0.3]) is not None


def test_plans_follow_compaction() -> None:
    tape = current_tape()
    model, x = model_and_row(7, "values")
    before = model(x)
    compactions = tape.compactions
    v = Value(1.0)
    for _ in range(3 * (1 << 16)):
        v = v * 1.0
    del v
    assert tape.compactions > compactions
    with tape.holding_nodes():
        generic = appended(tape, lambda: generic_outputs(BACKEND, model, x))
        fused = appended(tape, lambda: fused_outputs(model, x))
    assert_same_nodes(fused, generic)
    assert [o.data for o in before] == [o.data for o in model(x)]


def test_layer_call_matches_micrograds_loop() -> None:
    # micrograd's demo model and loss, one step, fused and generic: the same loss and grads
    results = []
    for fused in (True, False):
        random.seed(1337)
        model = MLP(2, [16, 16, 1])
        if not fused:
            for layer in model.layers:
                layer.fused_outputs = None  # type: ignore[misc]  (this instance: generic code)
            model.fused_outputs = None  # type: ignore[misc]
        scores = [model([Value(0.5 * i), Value(-0.25 * i)]) for i in range(10)]
        loss = sum((1 + -s).relu() for s in scores) * 0.1
        loss.backward()
        results.append((loss.data, [p.grad for p in model.parameters()]))
    assert results[0] == results[1]


def test_the_backend_fuses_layers_and_mlps() -> None:
    assert Layer(2, 3).fused_outputs is fused_outputs
    assert MLP(2, [3, 1]).fused_outputs is fused_outputs
