"""gradspec on HIPS autograd: each primitive written with autograd.numpy, as an autograd user
writes it, and its vector-Jacobian product taken from autograd (``autograd.make_vjp``) when
the node is made; backward sweeps the graph newest node first, pulling each node's grad
back through its VJP.

Run the suite: ``pytest --pyargs conformance --backend autograd_adapter:BACKEND`` with this
folder on ``PYTHONPATH`` (``nox -s engines`` does it in a venv of its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version
from typing import Any, NamedTuple

import autograd.numpy as anp
import numpy as np
from autograd import make_vjp

from spec import SPEC_VERSION, Backend, OpCode
from spec.adapter import EngineValue


class Node(NamedTuple):
    """A value, and autograd's VJP of the function that made it (None for a leaf)."""

    value: Any
    vjp: Any = None


#: each primitive of spec.OPS in autograd.numpy: a function of the operands and the constant
LOWERINGS: dict[OpCode, Any] = {
    OpCode.ADD: lambda x, y, c: x + y,
    OpCode.MUL: lambda x, y, c: x * y,
    OpCode.POW: lambda x, y, c: x**y,
    OpCode.POW_CONST: lambda x, c: x**c,
    OpCode.DIV: lambda x, y, c: x / y,
    OpCode.MAX: lambda x, y, c: anp.maximum(x, y),
    OpCode.EXP: lambda x, c: anp.exp(x),
    OpCode.LOG: lambda x, c: anp.log(x),
    OpCode.TANH: lambda x, c: anp.tanh(x),
    OpCode.RELU: lambda x, c: anp.maximum(x, 0.0),
    OpCode.SIGMOID: lambda x, c: 1.0 / (1.0 + anp.exp(-x)),
}


_RELU = "relu written np.maximum(x, 0.0), autograd's idiom: its VJP splits a tie, so relu'(0) is 0.5; the spec's is 0"


class Value(EngineValue):
    """An autograd.numpy float64 in gradspec's interface."""

    backend_name = "autograd"

    def _engine_leaf(self, x: float) -> Node:
        return Node(np.float64(x))

    def _engine_apply(self, code: OpCode, nodes: Sequence[Node], constant: float) -> Node:
        lowering = LOWERINGS[code]
        with np.errstate(all="ignore"):  # an overflow is an infinity, which EngineValue refuses
            vjp, value = make_vjp(lambda operands: lowering(*operands, constant))(
                tuple(n.value for n in nodes)
            )
        return Node(value, vjp)

    def _engine_value(self, node: Node) -> float:
        return float(node.value)

    def backward(self) -> None:
        nodes = self.graph()
        grads = {id(node): 0.0 for node in nodes}
        grads[id(self)] = 1.0
        with np.errstate(all="ignore"):
            for node in reversed(nodes):
                if node._node.vjp is None:
                    continue
                pulled = node._node.vjp(np.float64(grads[id(node)]))
                for child, grad in zip(node.children, pulled, strict=True):
                    grads[id(child)] = grads[id(child)] + grad
        self._store_gradients(nodes, [float(grads[id(node)]) for node in nodes])


BACKEND = Backend.build(
    "autograd",
    Value,
    LOWERINGS,
    version=version("autograd"),
    spec_version=SPEC_VERSION,
    # the conventions autograd differs in (README, "The conformance suite")
    expected_failures={
        "check_op_*[relu]": _RELU,
        "check_golden_expression[relu_at_zero]": _RELU,
        "check_golden_expression[relu_at_negative_zero]": _RELU,
        "check_golden_expression[relu_of_exact_zero_difference]": _RELU,
        "check_op_*[max]": "np.maximum(0.0, -0.0) is -0.0 (NumPy keeps the first of equal zeros); the spec's "
        "max(x, y) is y if y > x else x, 0.0",
        "check_op_*[truediv]": "x / y's partial in y is -g * x / y**2, whose y**2 underflows to 0 for y ~ 1e-309 "
        "(an infinity); the spec computes -out / y",
        "check_op_lowering[tanh]": "tanh' is g / cosh(x)**2, up to 3 ulps from the spec's 4e / (1 + e)**2 with "
        "e = exp(-2|x|)",
        "check_op_*[sigmoid]": "sigmoid written 1 / (1 + exp(-x)), as autograd users write it: exp(800) is inf, "
        "and its VJP multiplies inf by 0 (nan) at x = -800",
    },
)
