"""A minimal gradspec backend, to copy when writing your own.

>>> from gradspec_template import Value
>>> a = Value(2.0); b = a * a + a
>>> b.backward(); a.grad
5.0

Registered under the entry-point group ``gradspec.backends`` as ``template``
(see ``pyproject.toml``), so ``spec.load_backend("template")`` finds it and the
conformance suite runs against it with ``pytest --pyargs conformance --backend template``.
"""

from spec import Backend, bind_nn

from gradspec_template._value import LOWERINGS, Value

__version__ = "0.1.0"

# Neuron, Layer and MLP are written once in spec.nn; bind them to this Value.
Neuron, Layer, MLP = bind_nn(Value)

BACKEND = Backend(
    name="template",
    version=__version__,
    Value=Value,
    Neuron=Neuron,
    Layer=Layer,
    MLP=MLP,
    lowerings=LOWERINGS,
    # conformance check id -> reason, for checks this backend is known to fail
    expected_failures={},
)

__all__ = ["BACKEND", "MLP", "Layer", "Neuron", "Value"]
