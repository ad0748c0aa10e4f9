"""Neuron, Layer and MLP, written once for every backend.

The classes are generic over the backend's ``Value`` class: a backend calls
:func:`bind_nn` with its ``Value`` and gets subclasses that build Values of
that backend. The maths is micrograd's, operation for operation, so a model
built after ``random.seed(1337)`` reproduces micrograd's demo numbers.

Initialisation. Each weight is ``rng.uniform(-1, 1)``, each bias ``0``, drawn
in parameter order (layer by layer, neuron by neuron, weights before the
bias). With ``seed=None`` the draws come from Python's global :mod:`random`
(exactly micrograd's behaviour); with an integer seed from
``random.Random(seed)``, so ``MLP(..., seed=s)`` is bit-identical on every
backend. :func:`initial_parameters` gives the same numbers without a backend.

``init="scaled"`` divides each weight by ``sqrt(nin)`` (``rng.uniform(-1, 1) / sqrt(nin)``,
the range of PyTorch's ``nn.Linear`` weights): with 64 inputs micrograd's uniform(-1, 1)
gives pre-activations of spread ~4.6 and saturated, slow training; scaled ones stay near
0.6. micrograd's ``"uniform"`` stays the default, for its demo's numbers.

Fused calls (an optional backend capability). The code here is the *definition* of a
model's graph: ``generic_outputs`` of a Layer or an MLP builds it one scalar op at a time.
A backend may also give :func:`bind_nn` a :data:`ModuleLowering`, which builds a whole
layer or MLP application to one input row in one call. It must append exactly the nodes
the generic code appends (same ops, operands, constants and values, in the same creation
order) and return Values that ``children``, ``op``, ``backward`` and drawing cannot tell
apart; or, having appended nothing, return ``None`` where it does not handle the call (an
input type it does not take, a neuron or layer whose method was overridden, an op that
would raise), and the generic code runs, raising its own errors. The conformance suite
checks the two agree, node for node and bit for bit (:mod:`conformance.checks.fused`).
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Iterable, Sequence
from itertools import pairwise
from numbers import Integral
from typing import Any, ClassVar, Literal, TypeAlias, cast

from spec.errors import ShapeError
from spec.guards import Watched, note_change, tracked
from spec.operands import echo
from spec.value import ValueBase

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "MLP",
    "Activation",
    "Layer",
    "Module",
    "ModuleLowering",
    "Neuron",
    "bind_nn",
    "initial_parameters",
]

Activation: TypeAlias = Literal["relu", "tanh", "sigmoid", "linear"]
ACTIVATIONS: tuple[Activation, ...] = ("relu", "tanh", "sigmoid", "linear")
Init: TypeAlias = Literal["uniform", "scaled"]
#: weight initialisations (module docstring)
INITS: tuple[Init, ...] = ("uniform", "scaled")
Rng: TypeAlias = random.Random | Any  # the random module itself is a valid rng
#: A backend's fused ``outputs(x)`` of a Layer or MLP (module docstring): the outputs, or
#: None to decline.
ModuleLowering: TypeAlias = Callable[[Any, Sequence[Any]], "list[Any] | None"]


def _activate(x: Any, activation: Activation) -> Any:
    if activation == "linear":
        return x
    method: Callable[[], Any] = getattr(x, activation)
    return method()


def _check_size(n: object, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 1:
        raise ShapeError(f"{what} must be a positive integer, got {echo(n)}")
    return int(n)


def _check_activation(activation: object) -> Activation:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {echo(activation)}")
    return activation  # type: ignore[return-value]


def _draw_weights(rng: Rng, nin: int, init: Init) -> list[float]:
    if init == "scaled":
        scale = math.sqrt(nin)
        return [rng.uniform(-1, 1) / scale for _ in range(nin)]
    return [rng.uniform(-1, 1) for _ in range(nin)]


def _check_init(init: object) -> Init:
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}; got {echo(init)}")
    return init  # type: ignore[return-value]


def _layer_sizes(nin: object, nouts: object) -> list[int]:
    if not isinstance(nouts, Sequence) or isinstance(nouts, str) or len(nouts) == 0:
        raise ShapeError(f"nouts must be a non-empty list of layer sizes, got {echo(nouts)}")
    return [_check_size(nin, "nin")] + [_check_size(n, "layer size") for n in nouts]


def initial_parameters(nin: int, nouts: Sequence[int], seed: int, init: Init = "uniform") -> list[float]:
    """The initial parameters of ``MLP(nin, nouts, seed=seed, init=init)``, in parameter order."""
    rng = random.Random(seed)
    sizes = _layer_sizes(nin, nouts)
    init = _check_init(init)
    params: list[float] = []
    for fan_in, fan_out in pairwise(sizes):
        for _ in range(fan_out):
            params += _draw_weights(rng, fan_in, init) + [0.0]
    return params


class Module(metaclass=Watched):
    """Something with parameters: micrograd's ``Module``.

    Assigning or deleting an attribute, changing a list a module holds, or changing a
    module class tells compiled steps to check what they captured (:mod:`spec.guards`): a
    list assigned to a module is stored as a :class:`~spec.guards.TrackedList`, a copy
    that reports its changes (as is a NumPy array of objects, such as Values).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, tracked(value))
        note_change()

    def __delattr__(self, name: str) -> None:
        object.__delattr__(self, name)
        note_change()

    def parameters(self) -> list[Any]:
        return []

    def zero_grad(self) -> None:
        """Set every parameter's grad to 0."""
        for p in self.parameters():
            p.grad = 0.0

    # Saving and loading: thin wrappers over spec.state (imported here: it imports this module).
    def state_dict(self) -> dict[str, Any]:
        """The parameters and architecture as plain JSON-able data (see :mod:`spec.state`)."""
        from spec.state import state_dict

        return state_dict(self)

    def load_state_dict(self, state: Any) -> None:
        """Set the parameters from :meth:`state_dict` data; on any problem raise and change nothing."""
        from spec.state import load_state_dict

        load_state_dict(self, state)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`state_dict` to ``path`` as JSON, atomically."""
        from spec.state import save

        save(self, path)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Read parameters saved by :meth:`save`; on any problem raise and change nothing."""
        from spec.state import load

        load(self, path)


class Neuron(Module):
    """``activation(w · x + b)`` with ``nin`` weights: micrograd's ``Neuron``."""

    value_type: ClassVar[type[ValueBase]]

    def __init__(
        self,
        nin: int,
        nonlin: bool = True,
        activation: Activation = "relu",
        *,
        rng: Rng | None = None,
        init: Init = "uniform",
    ) -> None:
        self.nin = _check_size(nin, "nin")
        self.activation: Activation = _check_activation(activation) if nonlin else "linear"
        weights = _draw_weights(random if rng is None else rng, self.nin, _check_init(init))
        self.w = [self.value_type(w) for w in weights]
        self.b = self.value_type(0)

    @property
    def nonlin(self) -> bool:
        return self.activation != "linear"

    def __call__(self, x: Sequence[Any]) -> Any:
        if len(x) != self.nin or len(self.w) != self.nin:
            raise ShapeError(
                f"this neuron takes {self.nin} inputs with {len(self.w)} weights, got {len(x)} inputs"
            )
        # sum(..., self.b): b + w0*x0 + w1*x1 + ..., micrograd's order of additions.
        act = sum((wi * xi for wi, xi in zip(self.w, x, strict=True)), self.b)
        return _activate(act, self.activation)

    def parameters(self) -> list[Any]:
        return self.w + [self.b]

    def __repr__(self) -> str:
        return f"{self.activation.capitalize()}Neuron({self.nin})"


class Layer(Module):
    """``nout`` neurons over the same inputs: micrograd's ``Layer``."""

    neuron_type: ClassVar[type[Neuron]]
    #: the backend's fused lowering of :meth:`outputs`, if it has one (module docstring)
    fused_outputs: ClassVar[ModuleLowering | None] = None

    def __init__(self, nin: int, nout: int, **kwargs: Any) -> None:
        nout = _check_size(nout, "nout")
        self.neurons = [self.neuron_type(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x: Sequence[Any]) -> Any:
        out = self.outputs(x)
        return out[0] if len(out) == 1 else out

    def outputs(self, x: Sequence[Any]) -> list[Any]:
        """The output of every neuron, as a list even for one neuron."""
        return _fused_or_generic(self, x)

    def generic_outputs(self, x: Sequence[Any]) -> list[Any]:
        """:meth:`outputs` one scalar op at a time: the definition a fused lowering must match."""
        return [n(x) for n in self.neurons]

    def parameters(self) -> list[Any]:
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self) -> str:
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """A multi-layer perceptron: micrograd's ``MLP`` plus activation choice and a seed.

    Example::

        model = MLP(2, [16, 16, 1], seed=0)        # ReLU hidden layers, linear output
        model = MLP(3, [4, 4, 1], activation="tanh", output_activation="tanh")
        model = MLP(64, [32, 10], init="scaled")   # weights / sqrt(nin): wide inputs
        score = model([0.5, -1.0])                 # one output: a Value; k outputs: a list
    """

    layer_type: ClassVar[type[Layer]]
    #: the backend's fused lowering of :meth:`outputs`, if it has one (module docstring)
    fused_outputs: ClassVar[ModuleLowering | None] = None

    def __init__(
        self,
        nin: int,
        nouts: Sequence[int],
        activation: Activation = "relu",
        output_activation: Activation = "linear",
        seed: int | None = None,
        init: Init = "uniform",
    ) -> None:
        sizes = _layer_sizes(nin, nouts)
        _check_activation(activation)
        _check_activation(output_activation)
        _check_init(init)
        rng = random if seed is None else random.Random(seed)
        last = len(sizes) - 2
        self.nin = sizes[0]
        self.layers = [
            self.layer_type(
                sizes[i],
                sizes[i + 1],
                activation=output_activation if i == last else activation,
                rng=rng,
                init=init,
            )
            for i in range(len(sizes) - 1)
        ]

    def __call__(self, x: Sequence[Any]) -> Any:
        """The output for one input vector: a Value if the last layer has one neuron, else a list."""
        out = self.outputs(x)
        return out[0] if len(out) == 1 else out

    def outputs(self, x: Sequence[Any]) -> list[Any]:
        """The outputs of the last layer, as a list even for one output."""
        if isinstance(x, str | bytes) or not isinstance(x, Sequence):
            x = _as_sequence(x)
        if len(x) != self.nin:
            raise ShapeError(f"this MLP takes {self.nin} inputs, got {len(x)}")
        return _fused_or_generic(self, x)

    def generic_outputs(self, x: Sequence[Any]) -> list[Any]:
        """:meth:`outputs` layer by layer: the definition a fused lowering must match."""
        for layer in self.layers:
            x = layer.outputs(x)
        return list(x)

    def parameters(self) -> list[Any]:
        """Every parameter: layer by layer, neuron by neuron, weights then bias."""
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self) -> str:
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"


def _fused_or_generic(module: Layer | MLP, x: Sequence[Any]) -> list[Any]:
    fused = cast("ModuleLowering | None", module.fused_outputs)  # a staticmethod: not bound
    if fused is not None:
        built = fused(module, x)
        if built is not None:
            return built
    return module.generic_outputs(x)


def _as_sequence(x: object) -> Sequence[Any]:
    # NumPy rows are not Sequences; anything else iterable is taken as a list.
    try:
        return list(cast(Iterable[Any], x))
    except TypeError:
        raise ShapeError(f"an MLP input must be a sequence of numbers or Values, got {echo(x)}") from None


def bind_nn(
    value_type: type[ValueBase], fused_call: ModuleLowering | None = None
) -> tuple[type[Neuron], type[Layer], type[MLP]]:
    """Neuron, Layer and MLP classes that build ``value_type`` Values (fused by ``fused_call``, if given)."""
    module = value_type.__module__.rpartition(".")[0] or value_type.__module__
    fused = None if fused_call is None else staticmethod(fused_call)
    neuron = type("Neuron", (Neuron,), {"value_type": value_type, "__module__": module})
    layer = type("Layer", (Layer,), {"neuron_type": neuron, "fused_outputs": fused, "__module__": module})
    mlp = type("MLP", (MLP,), {"layer_type": layer, "fused_outputs": fused, "__module__": module})
    return neuron, layer, mlp
