"""Saving and loading a model's parameters, the same way for every backend.

A *state* is plain JSON-able data::

    {"format": "gradspec.mlp/1",
     "architecture": {"kind": "MLP", "nin": 2, "nouts": [16, 16, 1],
                      "activations": ["relu", "relu", "linear"]},
     "parameters": [0.23, -0.71, ...]}

``parameters`` lists every parameter's ``data`` in ``module.parameters()`` order;
``architecture`` identifies the model's shape (a Layer or Neuron records its sizes and
activation; any other Module only its parameter count). Floats go through JSON
exactly (``repr`` round-trips), so a model saved from one backend loads into another
and gives bit-identical outputs.

Loading validates everything before it assigns anything: a state that does not fit
the model raises and leaves the model untouched. Every such error is a
:class:`ValueError`: :class:`~spec.errors.ShapeError` when the architecture or the
number of parameters differs, :class:`~spec.errors.NonFiniteError` for a NaN or an
infinity, and a plain :class:`ValueError` for data that is not a gradspec state
(a wrong format tag, a missing key, a non-number, a corrupt or truncated file).

Example::

    model.save("moons.json")
    other = load_backend("numba").MLP(2, [16, 16, 1])
    other.load("moons.json")
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from collections.abc import Mapping
from numbers import Real
from pathlib import Path
from typing import Any

from spec.errors import NonFiniteError, ShapeError
from spec.nn import MLP, Layer, Module, Neuron

__all__ = ["FORMAT", "architecture", "load", "load_state_dict", "save", "state_dict"]

#: the format tag of every state; a new layout gets a new number
FORMAT = "gradspec.mlp/1"
_KEYS = {"format", "architecture", "parameters"}


def architecture(module: Module) -> dict[str, Any]:
    """What identifies ``module``'s shape: sizes and activations, or the parameter count."""
    if isinstance(module, MLP):
        return {
            "kind": "MLP",
            "nin": module.nin,
            "nouts": [len(layer.neurons) for layer in module.layers],
            "activations": [layer.neurons[0].activation for layer in module.layers],
        }
    if isinstance(module, Layer):
        first = module.neurons[0]
        return {
            "kind": "Layer",
            "nin": first.nin,
            "nout": len(module.neurons),
            "activation": first.activation,
        }
    if isinstance(module, Neuron):
        return {"kind": "Neuron", "nin": module.nin, "activation": module.activation}
    return {"kind": "Module", "parameters": len(module.parameters())}


def state_dict(module: Module) -> dict[str, Any]:
    """``module``'s state: format tag, architecture and parameter values (see the module docstring)."""
    return {
        "format": FORMAT,
        "architecture": architecture(module),
        "parameters": [p.data for p in module.parameters()],
    }


def load_state_dict(module: Module, state: object) -> None:
    """Set ``module``'s parameters from ``state``; on any problem raise and change nothing."""
    values = _validated_parameters(module, state)
    for p, value in zip(module.parameters(), values, strict=True):
        p.data = value


def save(module: Module, path: str | os.PathLike[str]) -> None:
    """Write ``module``'s state to ``path`` as JSON.

    Atomic: the JSON goes to a temporary file in the same folder, is flushed to disk,
    and then replaces ``path`` in one step, so ``path`` never holds a partial file.
    """
    path = Path(path)
    text = json.dumps(state_dict(module), indent=1, allow_nan=False) + "\n"
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)  # mkstemp makes the file private; keep the usual permissions
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load(module: Module, path: str | os.PathLike[str]) -> None:
    """Read a state written by :func:`save` into ``module``; on any problem raise and change nothing."""
    raw = Path(path).read_bytes()
    try:
        state = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{os.fspath(path)} is not a gradspec state file ({error}); it may be truncated or corrupt"
        ) from None
    try:
        load_state_dict(module, state)
    except ValueError as error:
        raise type(error)(f"{os.fspath(path)}: {error}") from None


def _validated_parameters(module: Module, state: object) -> list[float]:
    """The parameter values of ``state`` as floats, once every check has passed."""
    if not isinstance(state, Mapping):
        raise ValueError(
            f"a gradspec state is a mapping with keys {sorted(_KEYS)}, got {type(state).__name__}"
        )
    if state.get("format") != FORMAT:
        raise ValueError(f"not a gradspec state of format {FORMAT!r}: its format is {state.get('format')!r}")
    if set(state) != _KEYS:
        missing, unknown = sorted(_KEYS - set(state)), sorted(set(state) - _KEYS)
        raise ValueError(
            f"a gradspec state has exactly the keys {sorted(_KEYS)}: missing {missing}, unknown {unknown}"
        )
    expected = architecture(module)
    if state["architecture"] != expected:
        raise ShapeError(
            f"the state is for {json.dumps(state['architecture'])}, but this model is {json.dumps(expected)}"
        )
    values = state["parameters"]
    count = len(module.parameters())
    if not isinstance(values, list):
        raise ValueError(f"a state's parameters are a list of numbers, got {type(values).__name__}")
    if len(values) != count:
        raise ShapeError(f"the state has {len(values)} parameters, but this model has {count}")
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, Real):
            raise ValueError(f"parameter {index} of the state is not a number: {value!r:.80}")
        if not math.isfinite(value):
            raise NonFiniteError(f"parameter {index} of the state is {value!r}; parameters must be finite")
    return [float(value) for value in values]
