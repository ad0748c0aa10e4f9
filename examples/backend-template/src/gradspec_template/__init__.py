"""A minimal gradspec backend, to copy when writing your own.

>>> from gradspec_template import Value
>>> a = Value(2.0); b = a * a + a
>>> b.backward(); a.grad
5.0

Registered under the entry-point group ``gradspec.backends`` as ``template``
(see ``pyproject.toml``), so ``spec.load_backend("template")`` finds it and the
conformance suite runs against it with ``pytest --pyargs conformance --backend template``.
"""

from spec import Backend, common
from spec.common import *  # noqa: F403  (losses and optimizers, re-exported like every backend)

from gradspec_template._value import LOWERINGS, Value

__version__ = "0.1.0"

# Neuron, Layer and MLP are written once in spec.nn; Backend.build binds them to this Value.
BACKEND = Backend.build(
    "template",
    Value,
    LOWERINGS,
    version=__version__,
    # the contract version this backend is written for (spec.contract's changelog, README)
    spec_version=3,
    # checks this backend is known to fail, each with the convention it differs in: a check id,
    # a pattern ("check_op_lowering[ta*]") or "category:precision" -> reason or
    # spec.ExpectedFailure(reason, strict=False) for a flaky one
    expected_failures={},
)
Neuron, Layer, MLP = BACKEND.Neuron, BACKEND.Layer, BACKEND.MLP

__all__ = ["BACKEND", "MLP", "Layer", "Neuron", "Value", *common.__all__]
