"""The pure-Python backend: micrograd's closures, without its reference cycles.

>>> from backends.python import Value
>>> a = Value(2.0); b = a * a + a
>>> b.backward(); a.grad
5.0
"""

from backends.python._value import BACKWARD_RULES, Value
from spec import (
    SGD,
    Backend,
    binary_cross_entropy,
    bind_nn,
    l2_penalty,
    linear_decay,
    mse_loss,
    svm_loss,
)
from spec import __version__ as _spec_version

Neuron, Layer, MLP = bind_nn(Value)

BACKEND = Backend(
    name="python",
    version=_spec_version,
    Value=Value,
    Neuron=Neuron,
    Layer=Layer,
    MLP=MLP,
    lowerings=BACKWARD_RULES,
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
