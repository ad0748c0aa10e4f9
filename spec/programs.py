"""Programs: backend-neutral expression graphs, as data.

A program names its input leaves and lists steps ``[dest, op, *args]``; each
arg is the name of an earlier result or a plain number. Golden fixtures,
property tests and differential tests all speak this format, and
:func:`run_program` builds it on any backend through the public operators, so
numbers become leaves exactly as user code would make them.

Ops: every op of the table without a constant, by its row's name (``add``, ``mul``,
``pow``, ``truediv``, ``max``; ``exp``, ``log``, ``tanh``, ``relu``, ``sigmoid``), and the
composites ``sub`` and ``neg``. A number may stand on either side of a binary operator:
``["c", "sub", 1.0, "a"]`` is ``1.0 - a``; ``["c", "pow", "a", 2.0]`` is the POW_CONST
primitive, ``["c", "pow", 2.0, "a"]`` and ``["c", "pow", "a", "b"]`` are POW.

JSON form::

    {"inputs": {"a": -4.0, "b": 2.0},
     "steps": [["c", "mul", "a", "b"], ["d", "add", "c", 1.0], ["e", "tanh", "d"]],
     "output": "e"}
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spec.ops import OPS

__all__ = ["BINARY_OPS", "COMPOSITE_OPS", "UNARY_OPS", "Program", "run_program"]

#: The composites programs may use besides the table's ops (spec.ops.COMPOSITES).
COMPOSITE_OPS: Mapping[str, Callable[..., Any]] = {
    "sub": operator.sub,
    "neg": operator.neg,
}
_PRIMITIVES = [row for row in OPS.values() if not row.has_constant]
BINARY_OPS: Mapping[str, Callable[[Any, Any], Any]] = {
    **{row.name: row.apply for row in _PRIMITIVES if row.arity == 2},
    **{name: op for name, op in COMPOSITE_OPS.items() if name != "neg"},
}
UNARY_OPS: Mapping[str, Callable[[Any], Any]] = {
    **{row.name: row.apply for row in _PRIMITIVES if row.arity == 1},
    "neg": COMPOSITE_OPS["neg"],
}

Arg = str | float
Step = tuple[str, str, tuple[Arg, ...]]


@dataclass(frozen=True)
class Program:
    """An expression graph over named input leaves."""

    inputs: Mapping[str, float]
    steps: Sequence[Step]
    output: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Program:
        steps = [(s[0], s[1], tuple(s[2:])) for s in data["steps"]]
        program = cls(dict(data["inputs"]), steps, data["output"])
        program.validate()
        return program

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": dict(self.inputs),
            "steps": [[dest, op, *args] for dest, op, args in self.steps],
            "output": self.output,
        }

    def validate(self) -> None:
        """Raise ValueError unless every name is defined before use and every op is known."""
        defined = set(self.inputs)
        for dest, op, args in self.steps:
            arity = 2 if op in BINARY_OPS else 1 if op in UNARY_OPS else None
            if arity is None:
                raise ValueError(f"unknown op {op!r} in step {dest!r}")
            if len(args) != arity:
                raise ValueError(f"step {dest!r}: {op} takes {arity} args, got {len(args)}")
            names = [a for a in args if isinstance(a, str)]
            if not names:
                raise ValueError(f"step {dest!r}: at least one arg must name a Value")
            undefined = [n for n in names if n not in defined]
            if undefined:
                raise ValueError(f"step {dest!r} uses {undefined} before they are defined")
            if dest in defined:
                raise ValueError(f"step {dest!r} redefines a name")
            defined.add(dest)
        if self.output not in defined:
            raise ValueError(f"output {self.output!r} is never defined")

    def evaluate(self, leaf: Callable[[float], Any]) -> dict[str, Any]:
        """Every named result, with ``leaf(x)`` making each input (any number-like type works)."""
        env: dict[str, Any] = {name: leaf(x) for name, x in self.inputs.items()}
        for dest, op, args in self.steps:
            operands = [env[a] if isinstance(a, str) else a for a in args]
            if op in BINARY_OPS:
                env[dest] = BINARY_OPS[op](*operands)
            else:
                env[dest] = UNARY_OPS[op](*operands)
        return env


def run_program(program: Program, value_type: Callable[[float], Any]) -> tuple[Any, dict[str, Any]]:
    """Build ``program`` with a backend's ``Value``: the output Value and the input leaves by name."""
    env = program.evaluate(value_type)
    return env[program.output], {name: env[name] for name in program.inputs}
