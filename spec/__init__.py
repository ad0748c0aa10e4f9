"""gradspec's contract: the op table, the error contract, the interface, and
the parts written once for every backend (models, losses, optimizers).

Backend authors start here: subclass :class:`ValueBase` and lower every op of
:data:`OPS` in its ``_apply``, describe the result with :class:`Backend` (which
binds the models), register it, and run the conformance suite.
"""

from spec.backend import ENTRY_POINT_GROUP, Backend, ExpectedFailure, available_backends, load_backend
from spec.compile import TrainingStep, compile_step
from spec.contract import SPEC_VERSION
from spec.errors import (
    BackendMismatchError,
    CaptureError,
    DivisionByZeroError,
    DomainError,
    GradspecError,
    NonFiniteError,
    OperandTypeError,
    ResultOverflowError,
    ShapeError,
)
from spec.interface import MLPProtocol, ModuleProtocol, ValueProtocol
from spec.losses import (
    binary_cross_entropy,
    cross_entropy,
    l2_penalty,
    logsumexp,
    mse_loss,
    one_hot,
    softmax,
    svm_loss,
)
from spec.nn import ACTIVATIONS, INITS, MLP, Activation, Layer, Module, Neuron, bind_nn, initial_parameters
from spec.operands import as_finite_float, as_float
from spec.ops import COMPOSITES, OPS, OpCode, OpSpec, check_domain, ieee_pow, op_symbol, overflow_error
from spec.optim import SGD, Adam, LearningRate, Optimizer, linear_decay
from spec.value import StoredValue, ValueBase

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "COMPOSITES",
    "ENTRY_POINT_GROUP",
    "INITS",
    "MLP",
    "OPS",
    "SGD",
    "SPEC_VERSION",
    "Activation",
    "Adam",
    "Backend",
    "BackendMismatchError",
    "CaptureError",
    "DivisionByZeroError",
    "DomainError",
    "ExpectedFailure",
    "GradspecError",
    "Layer",
    "LearningRate",
    "MLPProtocol",
    "Module",
    "ModuleProtocol",
    "Neuron",
    "NonFiniteError",
    "OpCode",
    "OpSpec",
    "OperandTypeError",
    "Optimizer",
    "ResultOverflowError",
    "ShapeError",
    "StoredValue",
    "TrainingStep",
    "ValueBase",
    "ValueProtocol",
    "as_finite_float",
    "as_float",
    "available_backends",
    "binary_cross_entropy",
    "bind_nn",
    "check_domain",
    "compile_step",
    "cross_entropy",
    "ieee_pow",
    "initial_parameters",
    "l2_penalty",
    "linear_decay",
    "load_backend",
    "logsumexp",
    "mse_loss",
    "one_hot",
    "op_symbol",
    "overflow_error",
    "softmax",
    "svm_loss",
]
