"""gradspec on PyTorch (CPU, float64): each Value a 0-d tensor that requires grad, each
primitive torch's own function, backward ``torch.autograd.grad`` of the root with respect
to every node of the graph.

Run the suite: ``pytest --pyargs conformance --backend torch_adapter:BACKEND`` with this
folder on ``PYTHONPATH`` (``nox -s engines`` does it in a venv of its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from spec import SPEC_VERSION, Backend, OpCode
from spec.adapter import EngineValue

#: each primitive of spec.OPS in torch
LOWERINGS: dict[OpCode, Any] = {
    OpCode.ADD: lambda x, y, c: x + y,
    OpCode.MUL: lambda x, y, c: x * y,
    OpCode.POW: torch.pow,
    OpCode.POW_CONST: lambda x, c: torch.pow(x, c),
    OpCode.DIV: lambda x, y, c: x / y,
    OpCode.MAX: lambda x, y, c: torch.maximum(x, y),
    OpCode.EXP: lambda x, c: torch.exp(x),
    OpCode.LOG: lambda x, c: torch.log(x),
    OpCode.TANH: lambda x, c: torch.tanh(x),
    OpCode.RELU: lambda x, c: torch.relu(x),
    OpCode.SIGMOID: lambda x, c: torch.sigmoid(x),
}


class Value(EngineValue):
    """A 0-d float64 tensor in gradspec's interface."""

    backend_name = "torch"

    def _engine_leaf(self, x: float) -> torch.Tensor:
        return torch.tensor(x, dtype=torch.float64, requires_grad=True)

    def _engine_apply(self, code: OpCode, nodes: Sequence[torch.Tensor], constant: float) -> torch.Tensor:
        if code == OpCode.POW:
            return torch.pow(*nodes)
        return LOWERINGS[code](*nodes, constant)

    def _engine_value(self, node: torch.Tensor) -> float:
        return float(node.item())

    def backward(self) -> None:
        nodes = self.graph()
        grads = torch.autograd.grad(
            self._node, [n._node for n in nodes], allow_unused=True, retain_graph=True
        )
        self._store_gradients(nodes, [0.0 if g is None else g.item() for g in grads])


BACKEND = Backend.build(
    "torch",
    Value,
    LOWERINGS,
    version=torch.__version__,
    spec_version=SPEC_VERSION,
    # the conventions torch differs in (README, "The conformance suite")
    expected_failures={
        "check_op_*[tanh]": "tanh' is 1 - tanh(x)**2, which rounds to 0 once tanh(x) rounds to 1 (|x| > ~19); "
        "the spec computes 4e / (1 + e)**2 with e = exp(-2|x|)",
        "check_op_*[sigmoid]": "sigmoid' is s * (1 - s), which loses its digits as s rounds to 1 (x = 30: "
        "9.348e-14 for 9.358e-14); the spec computes e / (1 + e)**2 with e = exp(-|x|)",
    },
)
