"""spec.guards: the change counter, tracked lists and snapshots a compiled step's guard rests on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import backends.numba as numba_backend
import backends.python as python_backend
from spec import SGD, compile_step, mse_loss
from spec.guards import Guard, TrackedList, changes, tracked

X = [[0.5, -1.0], [1.5, 0.25], [-0.75, 0.5]]
Y = [1.0, -1.0, 0.5]

#: every way to change a list in place
MUTATIONS: dict[str, Callable[[list[Any]], Any]] = {
    "setitem": lambda xs: xs.__setitem__(0, 9),
    "setitem_slice": lambda xs: xs.__setitem__(slice(0, 1), [9]),
    "delitem": lambda xs: xs.__delitem__(0),
    "iadd": lambda xs: xs.__iadd__([9]),
    "imul": lambda xs: xs.__imul__(2),
    "append": lambda xs: xs.append(9),
    "extend": lambda xs: xs.extend([9]),
    "insert": lambda xs: xs.insert(0, 9),
    "pop": lambda xs: xs.pop(),
    "remove": lambda xs: xs.remove(1),
    "clear": lambda xs: xs.clear(),
    "reverse": lambda xs: xs.reverse(),
    "sort": lambda xs: xs.sort(reverse=True),
}


@pytest.mark.parametrize("mutate", MUTATIONS.values(), ids=list(MUTATIONS))
def test_every_change_of_a_tracked_list_is_counted(mutate: Callable[[list[Any]], Any]) -> None:
    values = tracked([1, 2, 3])
    plain = [1, 2, 3]
    before = changes()
    mutate(values)
    mutate(plain)
    assert changes() > before and values == plain and type(values) is TrackedList


def test_modules_store_lists_tracked_and_count_their_assignments() -> None:
    model = python_backend.MLP(2, [3, 1], seed=0)
    neuron = model.layers[0].neurons[0]
    assert all(type(xs) is TrackedList for xs in (model.layers, model.layers[0].neurons, neuron.w))
    before = changes()
    neuron.activation = "tanh"
    assert changes() == before + 1
    neuron.w = np.array(neuron.w, dtype=object)  # a NumPy array of Values: stored as a tracked list
    assert type(neuron.w) is TrackedList and neuron.parameters()[-1] is neuron.b
    nested = tracked([[1], [2]])
    assert all(type(xs) is TrackedList for xs in nested), "lists inside lists are tracked too"


def test_patching_a_watched_class_is_counted_and_undone_alike() -> None:
    before = changes()
    numba_backend.Neuron.extra = 1
    del numba_backend.Neuron.extra
    assert changes() == before + 2


def _loss(m: Any, x: Any, t: Any) -> Any:
    return mse_loss([m(row) for row in x], t)


def test_a_guard_holds_until_something_changes_and_names_what_did() -> None:
    model = numba_backend.MLP(2, [3, 1], seed=0)
    optimizer = SGD(model.parameters(), 0.1)
    guard = Guard(model, optimizer, numba_backend.Value)
    assert guard.changed() is None
    model.layers[0].neurons[2].activation = "relu"  # counted, but the same: still holds
    assert guard.changed() is None
    model.layers[0].neurons[2].activation = "sigmoid"
    assert guard.changed() == "model.layers[0].neurons[2].activation"
    model.layers[0].neurons[2].activation = "relu"
    assert guard.changed() is None, "undone: what was captured stands again"
    numba_backend.Value.relu = numba_backend.Value.relu  # the same function, resolved alike: holds
    try:
        assert guard.changed() is None
    finally:
        del numba_backend.Value.relu
    optimizer.params = optimizer.params[::-1]
    assert guard.changed() == "optimizer.params[0]"


def test_a_model_out_of_the_counters_sight_is_compared_at_every_call() -> None:
    class Plain:
        def __init__(self) -> None:
            self.params = [numba_backend.Value(0.5)]

        def parameters(self) -> list[Any]:
            return list(self.params)

    model = Plain()
    guard = Guard(model, SGD(model.parameters(), 0.1), numba_backend.Value)
    before = changes()
    model.params[0] = numba_backend.Value(0.25)  # a plain list: nothing is counted
    assert changes() == before and guard.changed() == "model.parameters()[0]"


@pytest.mark.parametrize("backend", [python_backend, numba_backend], ids=["python", "numba"])
def test_a_step_counts_its_recaptures(backend: Any) -> None:
    model = backend.MLP(2, [3, 1], seed=0)
    step = compile_step(model, _loss, X, Y, SGD(model.parameters(), 0.1))
    step(X, Y)
    model.layers = list(model.layers)  # the same structure: no recapture
    step(X, Y)
    assert step.info["recaptures"] == 0
    model.layers[0].neurons[1].activation = "tanh"
    step(X, Y)
    step(X, Y)
    assert step.info["recaptures"] == 1
    assert step.info["recaptured_after"] == "model.layers[0].neurons[1].activation"
