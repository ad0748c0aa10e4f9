"""The pure-Python backend: micrograd's closures, without its reference cycles.

>>> from backends.python import Value
>>> a = Value(2.0); b = a * a + a
>>> b.backward(); a.grad
5.0
"""

from backends.python._value import LOWERINGS, Value
from spec import SPEC_VERSION, Backend, common
from spec.common import *  # noqa: F403  (the losses and optimizers every backend re-exports)

BACKEND = Backend.build("python", Value, LOWERINGS, spec_version=SPEC_VERSION)
Neuron, Layer, MLP = BACKEND.Neuron, BACKEND.Layer, BACKEND.MLP

__all__ = ["BACKEND", "MLP", "Layer", "Neuron", "Value", *common.__all__]
