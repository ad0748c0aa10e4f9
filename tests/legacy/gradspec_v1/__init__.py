# gradspec_v1: the python backend as of dee1129 (2026-11-27), the last written for contract
# version 1, unchanged but for its name: how an out-of-tree backend of that contract looks.
"""The pure-Python backend: micrograd's closures, without its reference cycles.

>>> from backends.python import Value
>>> a = Value(2.0); b = a * a + a
>>> b.backward(); a.grad
5.0
"""

from gradspec_v1._value import BACKWARD_RULES, Value
from spec import Backend, common
from spec.common import *  # noqa: F403  (the losses and optimizers every backend re-exports)

BACKEND = Backend.build("legacy-v1", Value, BACKWARD_RULES)
Neuron, Layer, MLP = BACKEND.Neuron, BACKEND.Layer, BACKEND.MLP

__all__ = ["BACKEND", "MLP", "Layer", "Neuron", "Value", *common.__all__]
