"""gradspec on micrograd 0.1.0: micrograd's own Value, unpatched, and the primitives it lacks
written in its style (a new Value with a ``_backward`` closure), as its README suggests.

Run the suite: ``pytest --pyargs conformance --backend micrograd_adapter:BACKEND`` with this
folder on ``PYTHONPATH`` (``nox -s engines`` does it in a venv of its own).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from micrograd.engine import Value as Micrograd

from spec import SPEC_VERSION, Backend, OpCode, as_float
from spec.adapter import EngineValue


def _made(data: float, operands: tuple[Micrograd, ...], op: str, push: Any) -> Micrograd:
    """A micrograd node, as micrograd's own methods make one: ``push(out)`` is its backward."""
    out = Micrograd(data, operands, op)
    out._backward = lambda: push(out)
    return out


def _exp(x: Micrograd) -> Micrograd:
    def push(out: Micrograd) -> None:
        x.grad += out.data * out.grad

    return _made(math.exp(x.data), (x,), "exp", push)


def _log(x: Micrograd) -> Micrograd:
    def push(out: Micrograd) -> None:
        x.grad += out.grad / x.data

    return _made(math.log(x.data), (x,), "log", push)


def _tanh(x: Micrograd) -> Micrograd:  # the textbook derivative, as in micrograd's lecture
    def push(out: Micrograd) -> None:
        x.grad += (1 - out.data**2) * out.grad

    return _made(math.tanh(x.data), (x,), "tanh", push)


def _sigmoid(x: Micrograd) -> Micrograd:
    def push(out: Micrograd) -> None:
        x.grad += out.data * (1 - out.data) * out.grad

    return _made(1 / (1 + math.exp(-x.data)), (x,), "sigmoid", push)


def _pow(x: Micrograd, y: Micrograd) -> Micrograd:  # a Value exponent; micrograd takes numbers only
    def push(out: Micrograd) -> None:
        x.grad += y.data * x.data ** (y.data - 1) * out.grad
        y.grad += out.data * math.log(x.data) * out.grad

    return _made(x.data**y.data, (x, y), "**", push)


def _max(x: Micrograd, y: Micrograd) -> Micrograd:
    def push(out: Micrograd) -> None:
        x.grad += (x.data >= y.data) * out.grad
        y.grad += (y.data > x.data) * out.grad

    return _made(max(x.data, y.data), (x, y), "max", push)


#: each primitive of spec.OPS in micrograd: its own methods where it has one
LOWERINGS: dict[OpCode, Any] = {
    OpCode.ADD: lambda x, y, c: x + y,
    OpCode.MUL: lambda x, y, c: x * y,
    OpCode.POW_CONST: lambda x, c: x**c,
    OpCode.RELU: lambda x, c: x.relu(),
    OpCode.DIV: lambda x, y, c: x / y,  # micrograd's: x * y ** -1
    OpCode.POW: lambda x, y, c: _pow(x, y),
    OpCode.MAX: lambda x, y, c: _max(x, y),
    OpCode.EXP: lambda x, c: _exp(x),
    OpCode.LOG: lambda x, c: _log(x),
    OpCode.TANH: lambda x, c: _tanh(x),
    OpCode.SIGMOID: lambda x, c: _sigmoid(x),
}


_RECURSION = (
    "backward's build_topo recurses once per node: Python's recursion limit stops graphs ~1000 nodes deep"
)
_INTERIOR = "backward never resets interior grads: a second backward adds to them, where the spec recomputes them from zero"
_TIE = "max in micrograd's style routes a tie's gradient to x (x >= y); the spec splits it 0.5 / 0.5"
_POWER = (
    "x ** c pushes c * x ** (c - 1): at x = 0, c = 0 that is 0.0 ** -1, a ZeroDivisionError; "
    "the spec's x ** 0 is flat"
)
_SIGMOID = "sigmoid is 1 / (1 + exp(-x)), whose exp(800) overflows at x = -800, and sigmoid' is s * (1 - s)"
_DIVISION = (
    "micrograd's x / y is x * y ** -1, rounded twice: 1e-10 / 1e-310 overflows there, as 1 / 1e-310 does"
)


class Value(EngineValue):
    """A micrograd node in gradspec's interface; its grad lives in the node, as micrograd keeps it."""

    backend_name = "micrograd"

    def _engine_leaf(self, x: float) -> Micrograd:
        return Micrograd(x)

    def _engine_apply(self, code: OpCode, nodes: Sequence[Micrograd], constant: float) -> Micrograd:
        return LOWERINGS[code](*nodes, constant)

    def _engine_value(self, node: Micrograd) -> float:
        return float(node.data)

    @property
    def grad(self) -> float:
        return float(self._node.grad)

    @grad.setter
    def grad(self, value: object) -> None:
        self._node.grad = as_float(value, "grad")

    def backward(self) -> None:
        self._node.backward()


BACKEND = Backend.build(
    "micrograd",
    Value,
    LOWERINGS,
    version="0.1.0",
    spec_version=SPEC_VERSION,
    # the conventions micrograd differs in (README, "The conformance suite")
    expected_failures={
        "category:determinism": "backward's topological sort walks each node's _prev, a set of Values ordered "
        "by their ids: the sums into a shared node change order from one build to the next",
        "check_deep_chain_has_no_recursion_limit": _RECURSION,
        "check_wide_sum": _RECURSION,
        "check_golden_expression[deep_mul_add_chain_1200]": _RECURSION,
        "check_backward_twice_doubles_leaf_grads": _INTERIOR,
        "check_shared_interior_node_gets_fresh_gradient": _INTERIOR,
        "check_op_lowering[max]": _TIE,
        "check_golden_expression[max_tie*]": _TIE,
        "check_op_lowering[pow_const]": _POWER,
        "check_golden_expression[pow_const_zero_at_zero]": _POWER,
        "check_op_lowering[tanh]": "tanh' is the textbook 1 - tanh(x)**2, which rounds to 0 past |x| ~ 19",
        "check_op_lowering[sigmoid]": _SIGMOID,
        "check_apply_builds_the_public_node[sigmoid]": _SIGMOID,
        "check_op_lowering[truediv]": _DIVISION,
        "check_apply_builds_the_public_node[truediv]": _DIVISION,
        "check_division_is_the_quotient": _DIVISION,
        "check_backward_overflow_gives_infinity": "backward computes x ** (c - 1) with Python's float **, which "
        "raises OverflowError where float64 gives an infinity",
    },
)
