"""spec.state and Module.save/load: plain JSON, validated before any change, portable across backends."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from benchmarks.training import try_load_backends
from spec import SGD, Backend, Module, NonFiniteError, ShapeError, load_backend, mse_loss
from spec.state import FORMAT, architecture

BACKENDS, _ = try_load_backends()
PYTHON = load_backend("python")  # always tested, even if the registry lost it


def _backends() -> list[Backend]:
    return [PYTHON, *(b for name, b in sorted(BACKENDS.items()) if name != "python")]


def _data(model: Any) -> list[float]:
    return [p.data for p in model.parameters()]


class Pair(Module):
    """A Module that is not an MLP: two bare parameters."""

    def __init__(self, value_type: type) -> None:
        self.a, self.b = value_type(1.5), value_type(-2.0)

    def parameters(self) -> list[Any]:
        return [self.a, self.b]


def test_state_dict_is_plain_json_with_the_architecture() -> None:
    model = PYTHON.MLP(2, [3, 1], activation="tanh", output_activation="sigmoid", seed=0)
    state = model.state_dict()
    assert json.loads(json.dumps(state)) == state
    assert state["format"] == FORMAT == "gradspec.mlp/1"
    assert state["architecture"] == {
        "kind": "MLP",
        "nin": 2,
        "nouts": [3, 1],
        "activations": ["tanh", "sigmoid"],
    }
    assert state["parameters"] == _data(model) and len(state["parameters"]) == 13


def test_architecture_of_each_kind_of_module() -> None:
    assert architecture(PYTHON.Layer(3, 2, activation="relu")) == {
        "kind": "Layer",
        "nin": 3,
        "nout": 2,
        "activation": "relu",
    }
    assert architecture(PYTHON.Neuron(4, nonlin=False)) == {
        "kind": "Neuron",
        "nin": 4,
        "activation": "linear",
    }
    assert architecture(Pair(PYTHON.Value)) == {"kind": "Module", "parameters": 2}


def test_save_and_load_round_trip_every_float_exactly(tmp_path: Path) -> None:
    model = PYTHON.MLP(3, [4, 2], seed=1)
    model.parameters()[0].data = 0.1 + 0.2  # a float whose shortest repr has 17 digits
    path = tmp_path / "model.json"
    model.save(path)
    other = PYTHON.MLP(3, [4, 2], seed=2)
    other.load(path)
    assert _data(other) == _data(model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"], "the temporary file was left behind"
    if os.name == "posix":
        assert path.stat().st_mode & 0o777 == 0o644


def test_a_generic_module_round_trips() -> None:
    source, target = Pair(PYTHON.Value), Pair(PYTHON.Value)
    source.a.data = 7.25
    target.load_state_dict(source.state_dict())
    assert _data(target) == [7.25, -2.0]


@pytest.mark.parametrize("target", _backends(), ids=lambda b: b.name)
@pytest.mark.parametrize("source", _backends(), ids=lambda b: b.name)
def test_a_model_trained_on_one_backend_gives_the_same_outputs_on_another(
    source: Backend, target: Backend, tmp_path: Path
) -> None:
    trained = source.MLP(2, [8, 8, 1], activation="tanh", seed=3)
    optimizer = SGD(trained.parameters(), lr=0.1)
    inputs, targets = [[0.5, -1.0], [2.0, 0.25], [-1.5, 1.0]], [1.0, -1.0, 0.5]
    for _ in range(3):
        loss = mse_loss([trained(x) for x in inputs], targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trained.save(tmp_path / "trained.json")
    loaded = target.MLP(2, [8, 8, 1], activation="tanh", seed=4)
    loaded.load(tmp_path / "trained.json")
    probes = [*inputs, [0.0, 0.0], [3.0, -2.0]]
    assert [loaded(x).data for x in probes] == [trained(x).data for x in probes]


def _with(**changes: Any) -> dict[str, Any]:
    state = PYTHON.MLP(2, [3, 1], seed=0).state_dict()
    for key, value in changes.items():
        if value is _DELETE:
            del state[key]
        else:
            state[key] = value
    return state


_DELETE = object()
_PARAMETERS = PYTHON.MLP(2, [3, 1], seed=0).state_dict()["parameters"]

BAD_STATES = {
    "not a mapping": ([1.0, 2.0], ValueError, "a gradspec state is a mapping"),
    "wrong format": (_with(format="gradspec.mlp/0"), ValueError, "its format is 'gradspec.mlp/0'"),
    "missing parameters": (_with(parameters=_DELETE), ValueError, r"missing \['parameters'\]"),
    "unknown key": (_with(extra=1), ValueError, r"unknown \['extra'\]"),
    "other widths": (
        _with(architecture={"kind": "MLP", "nin": 2, "nouts": [4, 1], "activations": ["relu", "linear"]}),
        ShapeError,
        "the state is for",
    ),
    "other activation": (
        _with(architecture={"kind": "MLP", "nin": 2, "nouts": [3, 1], "activations": ["tanh", "linear"]}),
        ShapeError,
        "but this model is",
    ),
    "too few parameters": (_with(parameters=_PARAMETERS[:-1]), ShapeError, "the state has 12 parameters"),
    "parameters not a list": (_with(parameters="0.5"), ValueError, "a list of numbers"),
    "a string": (_with(parameters=[*_PARAMETERS[:-1], "0.5"]), ValueError, "parameter 12 .* not a number"),
    "a null": (_with(parameters=[None, *_PARAMETERS[1:]]), ValueError, "parameter 0 .* not a number"),
    "a boolean": (_with(parameters=[True, *_PARAMETERS[1:]]), ValueError, "parameter 0 .* not a number"),
    "a NaN": (
        _with(parameters=[*_PARAMETERS[:5], math.nan, *_PARAMETERS[6:]]),
        NonFiniteError,
        "parameter 5",
    ),
    "an infinity": (_with(parameters=[-math.inf, *_PARAMETERS[1:]]), NonFiniteError, "parameter 0"),
}


@pytest.mark.parametrize(("state", "error", "message"), BAD_STATES.values(), ids=BAD_STATES.keys())
def test_a_bad_state_raises_and_leaves_the_model_untouched(state: Any, error: type, message: str) -> None:
    model = PYTHON.MLP(2, [3, 1], seed=9)
    before = _data(model)
    with pytest.raises(error, match=message):
        model.load_state_dict(state)
    assert _data(model) == before


def _with_nan_token(text: str) -> str:
    state = json.loads(text)
    state["parameters"][0] = math.nan
    return json.dumps(state)  # writes the non-standard token NaN, which json.loads accepts


@pytest.mark.parametrize(
    ("contents", "error", "message"),
    [
        (lambda text: text[: len(text) // 2], ValueError, "truncated or corrupt"),
        (lambda text: "", ValueError, "truncated or corrupt"),
        (lambda text: "\udcff", ValueError, "truncated or corrupt"),
        (_with_nan_token, NonFiniteError, "parameter 0 of the state is nan"),
    ],
    ids=["truncated", "empty", "not utf-8", "NaN token"],
)
def test_a_corrupt_file_raises_and_leaves_the_model_untouched(
    contents: Any, error: type, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "model.json"
    PYTHON.MLP(2, [3, 1], seed=0).save(path)
    path.write_bytes(contents(path.read_text()).encode("utf-8", "surrogateescape"))
    model = PYTHON.MLP(2, [3, 1], seed=9)
    before = _data(model)
    with pytest.raises(error, match=message) as raised:
        model.load(path)
    assert str(path) in str(raised.value)
    assert _data(model) == before


def test_a_failed_save_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.json"
    PYTHON.MLP(2, [3, 1], seed=0).save(path)
    old = path.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        PYTHON.MLP(2, [3, 1], seed=5).save(path)
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]
