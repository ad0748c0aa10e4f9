"""Capture: trace one training step's loss once, as arrays, with every placeholder marked.

``loss_fn(model, inputs, targets)`` runs once, under :func:`spec.tracing.tracing`, with
*placeholders*: ``inputs`` is ``n`` rows of ``nin`` leaf Values and ``targets`` ``n``
leaf Values (or ``n`` rows of ``k``, for targets of shape ``(n, k)`` such as one-hot
labels), holding the example batch. The graph it builds is the step's graph for
every batch of that shape: a replay writes each batch into the placeholders' slots and
the parameters into theirs, and recomputes everything else. Nothing is inferred from the
numbers: target arithmetic (``1 - t``, ``2 * t``, ``t_j - t_i``) is part of the graph like
any other Value operation, and no traced number can reach Python code (spec.tracing).

What the graph may contain besides placeholders and parameters: *constants*, leaves made
inside ``loss_fn`` from plain numbers (``x * 2.0``, ``Value(0.5)``). They are fixed at
capture, as Python values are under ``jax.jit``: a number ``loss_fn`` computes from
anything but its arguments (a global, a random draw, a model built inside ``loss_fn``)
is the same number at every step. A Value made *before* the trace that is neither a
parameter nor a placeholder (a model attribute outside ``parameters()``, or ``p0 * p1``
computed from parameters before capture and kept) would be frozen or recomputed, while the
eager loop reads its current number and backpropagates through it as it stands: capture
refuses it. So does a trace in which an op failed, or a traced number was refused, and
``loss_fn`` caught the error (:mod:`spec.tracing`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spec.errors import CaptureError, NonFiniteError, OperandTypeError, ShapeError
from spec.operands import echo
from spec.ops import OpCode
from spec.optim import Optimizer
from spec.tracing import tracing
from spec.value import ValueBase

__all__ = [
    "CapturedGraph",
    "GraphExtractor",
    "LossFunction",
    "TracedGraph",
    "as_data",
    "capture_graph",
    "check_all_used",
    "check_arguments",
    "check_parameters",
    "placeholders",
    "trace_loss",
]

#: ``loss_fn(model, inputs, targets) -> loss Value``; inputs and targets are Values
LossFunction = Callable[[Any, list[list[Any]], list[Any]], Any]
Floats = NDArray[np.float64]
Ints = NDArray[np.int64]


# --- data --------------------------------------------------------------------------------------
def as_data(
    inputs: Any, targets: Any, shape: tuple[int, int] | None, target_shape: tuple[int, ...] | None = None
) -> tuple[Floats, Floats]:
    """``inputs`` as an ``(n, nin)`` and ``targets`` as an ``(n,)`` or ``(n, k)`` float64 array, checked.

    ``shape=None`` accepts any ``n >= 1``, ``nin >= 1``; ``target_shape=None`` any targets
    of ``n`` numbers or ``n`` rows of ``k >= 1``. Raises ShapeError, OperandTypeError or
    NonFiniteError.
    """
    X = _as_array(inputs, "inputs")
    T = _as_array(targets, "targets")
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ShapeError(
            f"inputs must be n rows of nin numbers (n, nin >= 1), got an array of shape {X.shape}"
        )
    if shape is not None and X.shape != shape:
        raise ShapeError(
            f"this step was compiled for inputs of shape {shape} (samples, inputs), got {X.shape}; "
            "compile another step for another batch size"
        )
    if T.ndim not in (1, 2) or T.shape[0] != X.shape[0] or 0 in T.shape:
        raise ShapeError(
            f"targets must be {X.shape[0]} numbers, or {X.shape[0]} rows of k >= 1 numbers: one per "
            f"input row, got shape {T.shape}"
        )
    if target_shape is not None and T.shape != target_shape:
        raise ShapeError(f"this step was compiled for targets of shape {target_shape}, got {T.shape}")
    for array, what in ((X, "inputs"), (T, "targets")):
        if not np.isfinite(array).all():
            bad = array[~np.isfinite(array)][0]
            raise NonFiniteError(f"{what} must be finite, got {bad!r}")
    return X, T


def _as_array(data: Any, what: str) -> Floats:
    if isinstance(data, np.ndarray) and data.dtype == np.float64:
        return data
    if isinstance(data, np.ndarray) and data.dtype.kind not in "iufO":  # bools are not numbers
        raise OperandTypeError(f"{what} must be real numbers, got an array of {data.dtype}")
    try:
        return np.asarray(data, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        raise NonFiniteError(f"{what} must be finite, got a number too large for a float64") from None
    except (TypeError, ValueError) as error:
        if isinstance(data, Sequence) and len({len(row) for row in data if isinstance(row, Sequence)}) > 1:
            raise ShapeError(f"{what}: rows of different lengths") from None
        raise OperandTypeError(f"{what} must be real numbers: {error}") from None


def placeholders(value_type: type[ValueBase], X: Floats, T: Floats) -> tuple[list[list[Any]], list[Any]]:
    """The Values ``loss_fn`` receives: ``n`` rows of input leaves; ``n`` target leaves, or rows of them."""
    rows = [[value_type(x) for x in row] for row in X.tolist()]
    if T.ndim == 2:
        return rows, [[value_type(t) for t in row] for row in T.tolist()]
    return rows, [value_type(t) for t in T.tolist()]


def _flat(rows: list[Any]) -> list[Any]:
    return [v for row in rows for v in (row if isinstance(row, list) else [row])]


# --- checks shared by every kind of step ------------------------------------------------------------
def check_arguments(model: Any, loss_fn: Any, optimizer: Any) -> None:
    """Refuse a model without ``parameters()``, a ``loss_fn`` that cannot be called, or an
    optimizer that is not a :class:`spec.optim.Optimizer`."""
    if not callable(getattr(model, "parameters", None)):
        raise CaptureError(
            f"compile_step's model must have a parameters() method (an MLP, a Layer, a spec.Module), "
            f"got {echo(model)}"
        )
    if not callable(loss_fn):
        raise CaptureError(
            f"compile_step's loss_fn must be a function loss_fn(model, inputs, targets) -> loss Value, "
            f"got {echo(loss_fn)}"
        )
    if not isinstance(optimizer, Optimizer):
        raise CaptureError(f"optimizer must be a spec.Optimizer (SGD, Adam), got {type(optimizer).__name__}")


def check_parameters(model: Any, optimizer: Optimizer, nin: int) -> tuple[list[Any], type[ValueBase]]:
    """The optimizer's parameters and their Value class, after checking they are the model's."""
    params = list(optimizer.params)
    model_params = list(model.parameters())
    if len(params) != len(model_params) or any(
        p is not q for p, q in zip(params, model_params, strict=False)
    ):
        raise CaptureError(
            "the optimizer must hold exactly model.parameters(), in order: build it as "
            "SGD(model.parameters(), ...) for the model given to compile_step"
        )
    if not params:
        raise CaptureError("the model has no parameters to train")
    if len({id(p) for p in params}) != len(params):
        raise CaptureError("a parameter is listed twice in model.parameters()")
    value_type = type(params[0])
    if not isinstance(params[0], ValueBase) or any(type(p) is not value_type for p in params):
        kinds = sorted({type(p).__name__ for p in params})
        raise CaptureError(f"the parameters must be Values of one backend, got {', '.join(kinds)}")
    model_nin = getattr(model, "nin", nin)
    if model_nin != nin:
        raise ShapeError(f"the model takes {model_nin} inputs, but the example inputs have {nin} columns")
    return params, value_type


def trace_loss(
    loss_fn: LossFunction,
    model: Any,
    rows: list[list[Any]],
    labels: list[Any],
    params: list[Any],
    value_type: type[ValueBase],
) -> Any:
    """``loss_fn(model, rows, labels)`` with the parameters and placeholders traced (spec.tracing).

    Refuses a trace during which an error was raised and caught (:func:`spec.tracing.note_failure`).
    """
    with tracing(value_type, [*params, *(v for row in rows for v in row), *labels]) as trace:
        root = loss_fn(model, rows, labels)
    if trace.failures:
        raise CaptureError(
            f"an error was raised while loss_fn was traced, and loss_fn went on ({trace.failures[0]}"
            f"{f'; {len(trace.failures) - 1} more' if len(trace.failures) > 1 else ''}): catching it "
            "chooses a path by the batch's numbers, and a compiled step would take that path for every "
            "batch. Let the error propagate, keep the inputs in the op's domain (x.log() of "
            "x.relu() + 1e-12, say), or train with the plain eager loop"
        )
    if type(root) is not value_type:
        raise CaptureError(
            f"loss_fn must return a {value_type.backend_name or value_type.__name__} Value like the "
            f"parameters, got {type(root).__name__}"
        )
    if not root.children:
        raise CaptureError("loss_fn returned a leaf, not a Value computed from the model's parameters")
    return root


def check_all_used(used: Sequence[bool], allowed: bool) -> None:
    """Refuse a loss that misses parameters, unless ``allow_unused_parameters``."""
    unused = [i for i, u in enumerate(used) if not u]
    if unused and not allowed:
        shown = ", ".join(map(str, unused[:8])) + (", ..." if len(unused) > 8 else "")
        raise CaptureError(
            f"the loss does not depend on {len(unused)} of the {len(used)} parameters (indices {shown} "
            "of model.parameters()); pass allow_unused_parameters=True if that is intended"
        )


# --- the traced graph ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TracedGraph:
    """One trace: the loss's graph as arrays, what a backend's :data:`GraphExtractor` returns.

    Nodes are those ``root`` reaches and every node made after the extractor's ``since``
    Value, with what they are computed from: ``loss_fn`` computes a node the loss does not
    use at every step too, and raises where it leaves its op's domain. They are numbered
    ``0..m-1`` in creation order (so parents come first), with the fields of :mod:`spec.ops`
    (op code, first and second parent or -1, the POW_CONST constant, the value).
    ``leaves[j]`` is the node of the ``j``-th Value the extractor was given, -1 where the
    graph does not hold it; ``outside`` lists the other nodes made before ``since`` that the
    graph reads (leaves, or nodes computed before the trace, from parameters or not).
    """

    op: NDArray[np.int8]
    a: Ints
    b: Ints
    const: Floats
    data: Floats
    root: int
    leaves: Ints
    outside: Ints


#: ``extract(root, leaves, since) -> TracedGraph``: a backend's view of a traced graph.
GraphExtractor = Callable[[Any, Sequence[Any], Any], TracedGraph]


@dataclass(frozen=True)
class CapturedGraph:
    """The graph of one training step, ready to replay: a trace plus what each leaf stands for.

    ``parameters[i]`` is the node of ``optimizer.params[i]``, ``inputs[s, j]`` of input ``j``
    of sample ``s`` and ``targets`` of the target numbers, row by row (-1 where unused); every
    other leaf is a constant, its value in ``graph.data``.
    """

    graph: TracedGraph
    parameters: Ints
    inputs: Ints
    targets: Ints
    shape: tuple[int, int]
    target_shape: tuple[int, ...]

    @property
    def op(self) -> NDArray[np.int8]:
        return self.graph.op

    @property
    def root(self) -> int:
        return self.graph.root


def capture_graph(
    model: Any,
    loss_fn: LossFunction,
    inputs: Any,
    targets: Any,
    optimizer: Optimizer,
    extract: GraphExtractor,
    *,
    allow_unused_parameters: bool = False,
) -> CapturedGraph:
    """Trace ``loss_fn`` once on placeholders and read its graph with ``extract`` (module docstring)."""
    check_arguments(model, loss_fn, optimizer)
    X, T = as_data(inputs, targets, None)
    n, nin = X.shape
    params, value_type = check_parameters(model, optimizer, nin)
    rows, labels = placeholders(value_type, X, T)
    since = value_type(0.0)  # every Value made before this one existed before the trace
    root = trace_loss(loss_fn, model, rows, labels, params, value_type)
    graph = extract(root, [*params, *_flat(rows), *_flat(labels)], since)
    P = len(params)
    param_nodes = graph.leaves[:P]
    if (graph.op[param_nodes[param_nodes >= 0]] != OpCode.LEAF).any():
        raise CaptureError("every parameter must be a leaf Value (made by Value(...)), not computed")
    if len(graph.outside):
        computed = graph.op[graph.outside] != OpCode.LEAF
        first = int(graph.outside[np.argmax(computed)] if computed.any() else graph.outside[0])
        raise CaptureError(
            f"loss_fn uses {len(graph.outside)} Value(s) made before compile_step that are neither the "
            f"optimizer's parameters nor its inputs or targets ({int(computed.sum())} of them computed; "
            f"the first {'computed ' if computed.any() else ''}one holds {float(graph.data[first])!r}): "
            "the eager loop keeps such a Value's number and backpropagates through it as it is, where "
            "replay would read or recompute it. Compute it inside loss_fn, pass it as a plain number, "
            "or make it a parameter"
        )
    check_all_used(list(param_nodes >= 0), allow_unused_parameters)
    return CapturedGraph(
        graph=graph,
        parameters=param_nodes.copy(),
        inputs=graph.leaves[P : P + n * nin].reshape(n, nin).copy(),
        targets=graph.leaves[P + n * nin :].copy(),
        shape=(n, nin),
        target_shape=T.shape,
    )
