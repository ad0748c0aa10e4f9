"""The Numba backend: nodes in flat arrays, backward as a compiled kernel.

Each thread appends its nodes to a tape, a structure of arrays (value, grad,
op code, parent numbers, constant) in creation order; a Value is a handle on
one node. ``backward()`` is an ``@njit(cache=True)`` kernel that sweeps the
tape once in reverse. Dead nodes are reclaimed by compaction, so an eager
training loop runs in bounded memory (see :mod:`backends.numba._tape`).

>>> from backends.numba import Value
>>> a = Value(2.0); b = a * a + a
>>> b.backward(); a.grad
5.0
"""

from backends.numba import _kernels
from backends.numba._value import FORWARD_RULES, Value
from spec import (
    SGD,
    Backend,
    OpCode,
    binary_cross_entropy,
    bind_nn,
    l2_penalty,
    linear_decay,
    mse_loss,
    svm_loss,
)
from spec import __version__ as _spec_version

Neuron, Layer, MLP = bind_nn(Value)

#: Each op's lowering: its eager forward (a Value method) and its op code in the kernels.
LOWERINGS = {OpCode[name]: (FORWARD_RULES[OpCode[name]], code) for name, code in _kernels.LOWERED_OPS.items()}

BACKEND = Backend(
    name="numba",
    version=_spec_version,
    Value=Value,
    Neuron=Neuron,
    Layer=Layer,
    MLP=MLP,
    lowerings=LOWERINGS,
)

__all__ = [
    "BACKEND",
    "MLP",
    "SGD",
    "Layer",
    "Neuron",
    "Value",
    "binary_cross_entropy",
    "l2_penalty",
    "linear_decay",
    "mse_loss",
    "svm_loss",
]
