"""The public interface every backend provides, as typing Protocols.

``from backends.<name> import Value, Neuron, Layer, MLP`` gives classes that
satisfy these protocols; :mod:`spec.nn`, :mod:`spec.losses` and
:mod:`spec.optim` provide the model, loss and optimizer parts generically.

Backward semantics (``Value.backward``), stated once for all backends:

1. Let G be the graph of ``root``: every node reachable through ``children``.
2. ``root.grad`` is set to 1.0 (assigned, not accumulated).
3. Every *interior* node of G (a node made by an operation) other than the root
   has its grad reset to 0.0 and then receives exactly d root / d node.
4. Every *leaf* of G (a node made by ``Value(...)``) *accumulates*: its grad
   grows by d root / d leaf, so two ``backward()`` calls double leaf grads, and
   ``zero_grad()`` (on a model, an optimizer, or on the root for its whole graph)
   resets them. Nodes outside G are never touched.
5. Order: nodes are processed in reverse creation order; each node adds its
   local contributions to its children in argument order. Float addition is not
   associative, so fixing this order is what makes backends bit-identical.

Not covered: assigning ``data`` to a node *after* other nodes were computed from
it leaves those nodes' values stale, and their partials are then evaluated at
the new data (possibly outside an op's domain, where results are IEEE infinities
or NaNs on compiled backends and unspecified in general). Assign to leaves
between steps, as optimizers do, not in the middle of a graph.

micrograd differs in step 3 (it never resets interior nodes, so a second call
also doubles interior grads) and in step 5 (its order depends on set iteration).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from spec.ops import OPS

__all__ = ["MLPProtocol", "ModuleProtocol", "ValueProtocol"]


class _ValueSurface(Protocol):
    """A float64 scalar node of a computation graph.

    Construction: ``Value(data, label="")``; ``data`` must be a finite real number.
    Operators: ``+ - * / **`` and unary ``-``, with numbers on either side
    (Python and NumPy scalars), ``**`` with a number or a Value exponent; and a
    method for every other op of :data:`spec.ops.OPS` (``exp()``, ``log()``, ...).
    """

    label: str

    @property
    def data(self) -> float: ...
    @data.setter
    def data(self, value: float) -> None: ...
    @property
    def grad(self) -> float: ...
    @grad.setter
    def grad(self, value: float) -> None: ...
    @property
    def op(self) -> str:
        """The op symbol of the node that made this Value (``"+"``, ``"tanh"``), ``""`` for a leaf."""

    @property
    def children(self) -> tuple[Any, ...]:
        """The operands of that op, in argument order; ``()`` for a leaf."""

    def __add__(self, other: Any) -> Any: ...
    def __radd__(self, other: Any) -> Any: ...
    def __sub__(self, other: Any) -> Any: ...
    def __rsub__(self, other: Any) -> Any: ...
    def __mul__(self, other: Any) -> Any: ...
    def __rmul__(self, other: Any) -> Any: ...
    def __truediv__(self, other: Any) -> Any: ...
    def __rtruediv__(self, other: Any) -> Any: ...
    def __pow__(self, other: Any) -> Any: ...
    def __rpow__(self, other: Any) -> Any: ...
    def __neg__(self) -> Any: ...

    def backward(self) -> None:
        """Backpropagate from this Value (see the module docstring for the exact semantics)."""

    def zero_grad(self) -> None:
        """Set the grad of every node of this graph to 0."""


def _op_method(name: str) -> Any:
    def method(self: Any, *operands: Any) -> Any: ...

    method.__name__ = name
    return method


#: The protocol every backend's Value satisfies: the surface above, and a method for every
#: op of the table (read from :data:`spec.ops.OPS`, so a new op joins it by its row).
ValueProtocol: type[Any] = runtime_checkable(
    type(
        "ValueProtocol",
        (_ValueSurface, Protocol),
        {
            "__doc__": _ValueSurface.__doc__,
            "__module__": __name__,
            **{
                row.method: _op_method(row.method)
                for row in OPS.values()
                if not hasattr(_ValueSurface, row.method)
            },
        },
    )
)


@runtime_checkable
class ModuleProtocol(Protocol):
    """Neuron, Layer and MLP: callables with parameters."""

    def __call__(self, x: Sequence[Any]) -> Any: ...
    def parameters(self) -> list[Any]: ...
    def zero_grad(self) -> None: ...


class MLPProtocol(ModuleProtocol, Protocol):
    """``MLP(nin, nouts, activation="relu", output_activation="linear", seed=None)``."""

    nin: int
    layers: list[Any]
