"""Compiled training steps: capture the graph of one step once, replay it for every later step.

A training step (forward, backward, optimizer update) builds a graph of the same shape every
time; only the numbers differ. :func:`compile_step` traces that graph once and hands it to
the model's backend, which replays forward, backward and the update for each new batch
without building Python objects. A backend without replay gets the portable
:class:`EagerStep`, which runs the eager loop; the results are the same either way::

    from spec import SGD, compile_step, l2_penalty, linear_decay, svm_loss
    from backends.numba import MLP

    def loss_fn(model, inputs, targets):
        scores = [model(x) for x in inputs]
        return svm_loss(scores, targets) + l2_penalty(model.parameters(), 1e-4)

    model = MLP(2, [16, 16, 1], seed=1337)
    optimizer = SGD(model.parameters(), lr=linear_decay(1.0, 0.1, 100))
    step = compile_step(model, loss_fn, X, y, optimizer)  # X: (n, nin) numbers, y: n numbers
    for k in range(100):
        loss = step(X, y)  # or a new batch of the same shape

What one call does. ``step(inputs, targets)`` is exactly the eager loop's step::

    loss = loss_fn(model, inputs, targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.data

with the same float64 operations in the same order, so losses, gradients and parameters are
bit-identical to that loop's. After every call each parameter's ``data`` and ``grad``,
``optimizer.steps`` and the optimizer's state (``SGD.velocity``, ``Adam.m``/``Adam.v``) are
what the eager loop leaves; parameters and state are read back at the start of each call,
so assigning them between calls (``model.load_state_dict(...)``) takes effect.

Capture. ``loss_fn(model, inputs, targets)`` is ordinary code, run at capture time only:
``inputs`` is a list of rows of *placeholder* Values (leaves holding the example inputs) and
``targets`` a list of plain numbers, as :mod:`spec.losses` expects. The graph is traced
twice, the second time with the input rows rolled by one and each target shifted by a
different amount; the two graphs must have the same shape (else :class:`CaptureError`).
Leaves whose values differ between the traces come from the targets: each must be
``c + t`` or ``c - t`` of one target ``t`` (spec's losses make ``-t``, ``t`` and ``1 - t``);
any other use of a target (``2 * t``, ``t ** 2``) is refused with :class:`CaptureError`, so
compute such targets before the call. Every other leaf is a constant, frozen at capture.

Value-dependent Python control flow is frozen at capture, like a trace. Reading ``.data`` of
a traced node (``if out.data > 0: ...``) takes the branch of the example data for every
later step. The second trace catches a branch that goes another way for the rolled inputs
or shifted targets (the shapes differ), and a leaf made from ``.data``, from random numbers
or from a model built inside ``loss_fn`` (its value changes); a branch that happens to go
the same way in both traces cannot be seen. :class:`EagerStep` runs ``loss_fn`` at every
call and has no such restriction.

Errors. :class:`~spec.errors.CaptureError` at capture: the loss is not a Value of the
parameters' backend, the graph misses a parameter (``allow_unused_parameters=True`` keeps
them, unchanged by SGD as in the eager loop), the optimizer's parameters are not the
model's, or the second trace differs as above. At a call: data of another shape than at
capture raise :class:`~spec.errors.ShapeError`, non-numbers
:class:`~spec.errors.OperandTypeError`, NaN or infinities :class:`~spec.errors.NonFiniteError`;
an op whose input leaves its domain, or whose result overflows, raises the error the eager
loop raises at the same node, and an update that would make a parameter non-finite the
optimizer's :class:`~spec.errors.ResultOverflowError`. A failed call changes nothing:
no parameter, grad, optimizer state or step count.

For backend authors. A backend offers replay through ``Backend.compile_step`` (and
``"compile_step"`` in its capabilities): a function with :func:`compile_step`'s signature
that calls :func:`capture_graph` with the backend's graph extractor and returns a
:class:`ReplayStep` subclass, whose ``_replay`` runs forward, backward and update.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from spec.backend import Backend, available_backends, load_backend
from spec.errors import (
    CaptureError,
    GradspecError,
    NonFiniteError,
    OperandTypeError,
    ResultOverflowError,
    ShapeError,
)
from spec.ops import OPS, OpCode, check_domain, overflow_error
from spec.optim import SGD, Adam, Optimizer
from spec.value import ValueBase

__all__ = [
    "CapturedGraph",
    "EagerStep",
    "GraphExtractor",
    "LossFunction",
    "ReplayStep",
    "TracedGraph",
    "TrainingStep",
    "UpdateRule",
    "capture_graph",
    "compile_step",
]

#: ``loss_fn(model, inputs, targets) -> loss Value``
LossFunction = Callable[[Any, list[list[Any]], list[float]], Any]
Floats = NDArray[np.float64]
Ints = NDArray[np.int64]


def compile_step(
    model: Any,
    loss_fn: LossFunction,
    inputs: Any,
    targets: Any,
    optimizer: Optimizer,
    *,
    backend: Backend | None = None,
    allow_unused_parameters: bool = False,
) -> TrainingStep:
    """A :class:`TrainingStep` for this model, loss and optimizer (see the module docstring).

    ``inputs`` (``n`` rows of ``nin`` numbers) and ``targets`` (``n`` numbers) are example
    data: they fix the shape every call must have. ``backend`` defaults to the registered
    backend of the parameters' Value class; when it offers no replay the step is the
    portable :class:`EagerStep`.
    """
    chosen = backend if backend is not None else _backend_of(model)
    if chosen is not None and chosen.compile_step is not None:
        step: TrainingStep = chosen.compile_step(
            model, loss_fn, inputs, targets, optimizer, allow_unused_parameters=allow_unused_parameters
        )
        return step
    return EagerStep(
        model, loss_fn, inputs, targets, optimizer, allow_unused_parameters=allow_unused_parameters
    )


def _backend_of(model: Any) -> Backend | None:
    params = model.parameters()
    value_type = type(params[0]) if params else None
    name = getattr(value_type, "backend_name", "")
    if not name or name not in available_backends():
        return None
    backend = load_backend(name)
    return backend if backend.Value is value_type else None


# --- the step object -------------------------------------------------------------------------
class TrainingStep(ABC):
    """One compiled training step: ``step(inputs, targets) -> loss before the update``."""

    #: ``"replay"`` or ``"eager"``
    mode: ClassVar[str]

    def __init__(self, model: Any, loss_fn: LossFunction, optimizer: Optimizer, shape: tuple[int, int]):
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        #: ``(n, nin)``: the shape of ``inputs`` every call must have
        self.shape = shape
        #: what the backend made of the step (node counts, passes, schedule), for reports
        self.info: dict[str, Any] = {}

    @abstractmethod
    def __call__(self, inputs: Any, targets: Any) -> float:
        """Forward, backward and the optimizer's update on this batch; the loss before the update."""

    def check_data(self, inputs: Any, targets: Any) -> tuple[Floats, Floats]:
        """``inputs`` and ``targets`` as float64 arrays of the captured shape, or the contract's error."""
        return as_data(inputs, targets, self.shape)

    def __repr__(self) -> str:
        n, nin = self.shape
        return f"<{type(self).__name__} ({self.mode}) of {n} samples x {nin} inputs>"


class EagerStep(TrainingStep):
    """The portable step: runs ``loss_fn`` and the eager loop at every call.

    Construction checks what :func:`capture_graph` checks that does not depend on tracing
    twice (the optimizer holds the model's parameters, the loss is a Value of their
    backend and reaches every parameter), so misuse fails the same way on every backend.
    """

    mode = "eager"

    def __init__(
        self,
        model: Any,
        loss_fn: LossFunction,
        inputs: Any,
        targets: Any,
        optimizer: Optimizer,
        *,
        allow_unused_parameters: bool = False,
    ) -> None:
        X, T = as_data(inputs, targets, None)
        params, value_type = _check_parameters(model, optimizer, X.shape[1])
        super().__init__(model, loss_fn, optimizer, (X.shape[0], X.shape[1]))
        placeholders = [[value_type(x) for x in row] for row in X.tolist()]
        root = _trace(loss_fn, model, placeholders, T.tolist(), value_type, "the traced loss")
        reached = _reachable_leaves(root)
        used = [id(p) in reached for p in params]
        _check_all_used(used, allow_unused_parameters)

    def __call__(self, inputs: Any, targets: Any) -> float:
        X, T = self.check_data(inputs, targets)
        loss = self.loss_fn(self.model, X.tolist(), T.tolist())
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.data)


def _reachable_leaves(root: Any) -> set[int]:
    """``id`` of every leaf of ``root``'s graph, through the public ``children``."""
    seen = {id(root): root}  # holding every node keeps its id from being reused
    leaves: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        children = node.children
        if not children:
            leaves.add(id(node))
        for child in children:
            if id(child) not in seen:
                seen[id(child)] = child
                stack.append(child)
    return leaves


# --- data --------------------------------------------------------------------------------------
def as_data(inputs: Any, targets: Any, shape: tuple[int, int] | None) -> tuple[Floats, Floats]:
    """``inputs`` as an ``(n, nin)`` and ``targets`` as an ``(n,)`` float64 array, checked.

    ``shape=None`` accepts any ``n >= 1``, ``nin >= 1``. Raises ShapeError, OperandTypeError
    or NonFiniteError.
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
    if T.shape != (X.shape[0],):
        raise ShapeError(f"targets must be {X.shape[0]} numbers, one per input row, got shape {T.shape}")
    for array, what in ((X, "inputs"), (T, "targets")):
        if not np.isfinite(array).all():
            bad = array[~np.isfinite(array)][0]
            raise NonFiniteError(f"{what} must be finite, got {bad!r}")
    return X, T


def _as_array(data: Any, what: str) -> Floats:
    if isinstance(data, np.ndarray) and data.dtype == np.float64:
        return data
    if isinstance(data, np.ndarray) and data.dtype.kind not in "biufO":
        raise OperandTypeError(f"{what} must be real numbers, got an array of {data.dtype}")
    try:
        return np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as error:
        if isinstance(data, Sequence) and len({len(row) for row in data if isinstance(row, Sequence)}) > 1:
            raise ShapeError(f"{what}: rows of different lengths") from None
        raise OperandTypeError(f"{what} must be real numbers: {error}") from None


# --- capture -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TracedGraph:
    """One trace: the loss's graph as arrays, what a backend's :data:`GraphExtractor` returns.

    Nodes are those ``root`` reaches, numbered ``0..m-1`` in creation order (so parents come
    first), with the fields of :mod:`spec.ops` (op code, first and second parent or -1, the
    POW_CONST constant, the value). ``leaves[j]`` is the node of the ``j``-th Value the
    extractor was given, -1 where the graph does not reach it.
    """

    op: NDArray[np.int8]
    a: Ints
    b: Ints
    const: Floats
    data: Floats
    root: int
    leaves: Ints


#: ``extract(root, leaves) -> TracedGraph``: a backend's view of a traced graph.
GraphExtractor = Callable[[Any, Sequence[Any]], TracedGraph]


@dataclass(frozen=True)
class CapturedGraph:
    """The graph of one training step, ready to replay: a trace plus what each leaf stands for.

    Leaves are parameters (``parameters[i]`` is the node of ``optimizer.params[i]``, -1 if
    unused), input placeholders (``inputs[s, j]``, -1 if unused), target leaves (node
    ``target_nodes[k]`` holds ``target_offset[k] + target_sign[k] * targets[target_index[k]]``,
    or just the signed target when the offset is 0) or constants (their value in ``data``).
    """

    graph: TracedGraph
    parameters: Ints
    inputs: NDArray[np.int64]
    target_nodes: Ints
    target_index: Ints
    target_sign: Floats
    target_offset: Floats
    shape: tuple[int, int]

    @property
    def op(self) -> NDArray[np.int8]:
        return self.graph.op

    @property
    def root(self) -> int:
        return self.graph.root

    def target_values(self, targets: Floats) -> Floats:
        """The target leaves' values for these targets."""
        return _apply_recipes(self.target_index, self.target_sign, self.target_offset, targets)

    def leaf_values(self, parameters: Floats, inputs: Floats, target_values: Floats) -> Floats:
        """``data`` with every leaf set for one step (interior nodes keep the trace's values)."""
        data = self.graph.data.copy()
        used = self.parameters >= 0
        data[self.parameters[used]] = parameters[used]
        placed = self.inputs >= 0
        data[self.inputs[placed]] = inputs[placed]
        data[self.target_nodes] = target_values
        return data

    def first_failure(self, data: Floats) -> GradspecError | None:
        """The error the eager forward pass raises with these leaf values, or None.

        Evaluates every node in creation order with the reference rules of :mod:`spec.ops`
        and its domain and overflow checks; slow, for the failure path only.
        """
        g = self.graph
        values = data.copy()
        for node in range(len(g.op)):
            code = int(g.op[node])
            if code == OpCode.LEAF:
                continue
            row = OPS[OpCode(code)]
            parents = (g.a[node],) if row.arity == 1 else (g.a[node], g.b[node])
            inputs = tuple(float(values[p]) for p in parents)
            c = float(g.const[node])
            try:
                check_domain(code, inputs, c)
            except GradspecError as error:
                return error
            try:
                out = row.forward(inputs, c)
            except OverflowError:
                out = math.inf
            if not math.isfinite(out):
                return overflow_error(code, inputs, c)
            values[node] = out
        return None


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
    """Trace ``loss_fn`` twice with ``extract`` and work out what each leaf is (module docstring)."""
    X, T = as_data(inputs, targets, None)
    n, nin = X.shape
    params, value_type = _check_parameters(model, optimizer, nin)

    def trace(rows: Floats, labels: Floats, what: str) -> TracedGraph:
        placeholders = [[value_type(x) for x in row] for row in rows.tolist()]
        root = _trace(loss_fn, model, placeholders, labels.tolist(), value_type, what)
        if not root.children:
            raise CaptureError(f"{what} is a leaf, not computed from the model's parameters")
        return extract(root, [*params, *(v for row in placeholders for v in row)])

    first = trace(X, T, "the traced loss")
    # The second trace: input rows rolled by one, target i shifted by (i + 1) * scale, an
    # exact power of two 16 times above every |target| and |input|, so each shift names its
    # target and no difference of inputs passes for one.
    largest = max(1.0, float(np.abs(T).max()), float(np.abs(X).max()))
    scale = 2.0 ** (math.ceil(math.log2(largest)) + 4)
    shifted = T + scale * np.arange(1, n + 1, dtype=np.float64)
    try:
        second = trace(np.roll(X, -1, axis=0), shifted, "the second trace's loss")
    except CaptureError:
        raise
    except GradspecError as error:  # a domain error for the other data, say
        raise CaptureError(
            "compile_step traces the step twice, the second time with the input rows rolled by one "
            f"and the targets shifted; that trace raised {type(error).__name__}: {error}"
        ) from error
    _check_same_shape(first, second)

    P = len(params)
    leaf_nodes = first.leaves
    param_nodes = leaf_nodes[:P]
    _check_all_used(list(param_nodes >= 0), allow_unused_parameters)
    if (first.op[param_nodes[param_nodes >= 0]] != OpCode.LEAF).any():
        raise CaptureError("every parameter must be a leaf Value (made by Value(...)), not computed")
    known = np.zeros(len(first.op), np.bool_)
    known[leaf_nodes[leaf_nodes >= 0]] = True
    constants = np.flatnonzero((first.op == OpCode.LEAF) & ~known)
    changed = constants[first.data[constants].view(np.int64) != second.data[constants].view(np.int64)]
    index, sign, offset = _fit_recipes(first.data[changed], second.data[changed], T, shifted, scale)
    return CapturedGraph(
        graph=first,
        parameters=param_nodes.copy(),
        inputs=leaf_nodes[P:].reshape(n, nin).copy(),
        target_nodes=changed,
        target_index=index,
        target_sign=sign,
        target_offset=offset,
        shape=(n, nin),
    )


def _check_parameters(model: Any, optimizer: Optimizer, nin: int) -> tuple[list[Any], type[ValueBase]]:
    if not isinstance(optimizer, Optimizer):
        raise CaptureError(f"optimizer must be a spec.Optimizer (SGD, Adam), got {type(optimizer).__name__}")
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


def _trace(
    loss_fn: LossFunction,
    model: Any,
    placeholders: list[list[Any]],
    targets: list[float],
    value_type: type[ValueBase],
    what: str,
) -> Any:
    root = loss_fn(model, placeholders, targets)
    if type(root) is not value_type:
        raise CaptureError(
            f"{what} must be a {value_type.backend_name or value_type.__name__} Value like the parameters, "
            f"got {type(root).__name__}"
        )
    return root


def _check_all_used(used: Sequence[bool], allowed: bool) -> None:
    unused = [i for i, u in enumerate(used) if not u]
    if unused and not allowed:
        shown = ", ".join(map(str, unused[:8])) + (", ..." if len(unused) > 8 else "")
        raise CaptureError(
            f"the loss does not depend on {len(unused)} of the {len(used)} parameters (indices {shown} "
            "of model.parameters()); pass allow_unused_parameters=True if that is intended"
        )


def _check_same_shape(first: TracedGraph, second: TracedGraph) -> None:
    same = (
        len(first.op) == len(second.op)
        and first.root == second.root
        and np.array_equal(first.op, second.op)
        and np.array_equal(first.a, second.a)
        and np.array_equal(first.b, second.b)
        and np.array_equal(first.const.view(np.int64), second.const.view(np.int64))
        and np.array_equal(first.leaves, second.leaves)
    )
    if not same:
        raise CaptureError(
            "the graph changed between two traces with other data (input rows rolled by one, targets "
            f"shifted; {len(first.op)} then {len(second.op)} nodes): loss_fn takes Python branches on the "
            "values of Values (.data) or on the targets, so no single graph replays it; use EagerStep"
        )


def _apply_recipes(index: Ints, sign: Floats, offset: Floats, targets: Floats) -> Floats:
    signed = sign * targets[index]  # 1.0 * t and -1.0 * t are exact, -0.0 included
    result: Floats = np.where(offset != 0.0, offset + signed, signed)
    return result


def _fit_recipes(
    first: Floats, second: Floats, targets: Floats, shifted: Floats, scale: float
) -> tuple[Ints, Floats, Floats]:
    """For each changed leaf, ``(target index, sign, offset)`` with ``offset + sign * t`` exact."""
    n = len(targets)
    diff = second - first
    steps = np.rint(np.abs(diff) / scale)
    index = np.clip(steps.astype(np.int64) - 1, 0, n - 1)
    sign = np.where(diff < 0.0, -1.0, 1.0)
    estimate = first - sign * targets[index]
    fitted = np.zeros_like(first, dtype=np.bool_)
    offset = np.zeros_like(first)
    # The estimate may miss a round offset by an ulp (1 - t, then + t); try the rounded one too.
    for candidate in (np.where(estimate == 0.0, 0.0, estimate), np.round(estimate, 9)):
        ok = ~fitted & (steps >= 1) & (steps <= n)
        for values, data in ((targets, first), (shifted, second)):
            got = _apply_recipes(index, sign, candidate, values)
            ok &= got.view(np.int64) == data.view(np.int64)
        offset[ok] = candidate[ok]
        fitted |= ok
    if not fitted.all():
        k = int(np.flatnonzero(~fitted)[0])
        raise CaptureError(
            f"a leaf of the graph changed between two traces ({float(first[k])!r}, then {float(second[k])!r}) without "
            "being c + t or c - t of one target t: loss_fn makes Values from the data in another way "
            "(a target scaled or squared, .data of an input, random numbers, a model built inside "
            "loss_fn); compute such numbers before compile_step, or use EagerStep"
        )
    return index, sign, offset


# --- replay --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UpdateRule:
    """The optimizer's update as a replay kernel needs it: :mod:`spec.optim`'s formulas."""

    #: 0: SGD, 1: SGD with momentum, 2: Adam (the codes replay kernels switch on)
    kind: int
    momentum: float = 0.0
    beta1: float = 0.0
    beta2: float = 0.0
    eps: float = 0.0

    SGD: ClassVar[int] = 0
    MOMENTUM: ClassVar[int] = 1
    ADAM: ClassVar[int] = 2

    @classmethod
    def of(cls, optimizer: Optimizer) -> UpdateRule:
        """The rule of a spec.SGD or spec.Adam (exactly those classes: a subclass may change the maths)."""
        if type(optimizer) is SGD:
            return cls(cls.MOMENTUM, momentum=optimizer.momentum) if optimizer.momentum else cls(cls.SGD)
        if type(optimizer) is Adam:
            return cls(cls.ADAM, beta1=optimizer.beta1, beta2=optimizer.beta2, eps=optimizer.eps)
        raise CaptureError(
            f"compile_step replays the updates of spec.SGD and spec.Adam, not {type(optimizer).__name__}; "
            "use EagerStep for other optimizers"
        )

    def constants(self, optimizer: Optimizer, lr: float) -> Floats:
        """``[kind, lr, momentum, beta1, beta2, eps, m_scale, v_scale]`` for the coming step.

        ``m_scale, v_scale = 1 - beta1**t, 1 - beta2**t`` with ``t = steps + 1``, computed in
        Python exactly as :class:`spec.optim.Adam` does.
        """
        t = optimizer.steps + 1
        m_scale = 1.0 - self.beta1**t if self.kind == self.ADAM else 1.0
        v_scale = 1.0 - self.beta2**t if self.kind == self.ADAM else 1.0
        return np.array(
            [self.kind, lr, self.momentum, self.beta1, self.beta2, self.eps, m_scale, v_scale], np.float64
        )


@dataclass
class _State:
    """The optimizer's state as arrays (row 0: velocity or m; row 1: v) and the lists last written."""

    arrays: Floats
    written: list[Any] = field(default_factory=list)


class ReplayStep(TrainingStep):
    """Base of a backend's replaying step: data checks, learning rate, state sync, errors.

    A subclass implements :meth:`_replay`, which runs forward, backward and the update for
    one batch: it reads the parameters, writes them and their grads back, updates
    ``self.state`` in place, and returns ``(loss, grads)``; or, changing nothing, it calls
    :meth:`_raise_forward_failure` / :meth:`_raise_update_failure`.
    """

    mode = "replay"

    def __init__(self, model: Any, loss_fn: LossFunction, optimizer: Optimizer, graph: CapturedGraph):
        super().__init__(model, loss_fn, optimizer, graph.shape)
        self.graph = graph
        self.rule = UpdateRule.of(optimizer)
        self.parameters = list(optimizer.params)
        self._state = _State(np.zeros((2, len(self.parameters)), np.float64))

    @property
    def state(self) -> Floats:
        """The optimizer's state, ``(2, P)``: velocity (or Adam's m) and Adam's v."""
        return self._state.arrays

    @abstractmethod
    def _replay(self, inputs: Floats, target_values: Floats, constants: Floats) -> tuple[float, Floats]:
        """Forward, backward, update; ``(loss, grads)`` (see the class docstring)."""

    def __call__(self, inputs: Any, targets: Any) -> float:
        X, T = self.check_data(inputs, targets)
        optimizer = self.optimizer
        constants = self.rule.constants(optimizer, optimizer.learning_rate())
        self._load_state()
        try:
            loss, grads = self._replay(X, self.graph.target_values(T), constants)
        except GradspecError as error:
            error.add_note(f"raised while replaying the step compiled by {type(self).__name__}")
            raise
        self._store_state(grads)
        optimizer.steps += 1
        return loss

    def _load_state(self) -> None:
        optimizer, state = self.optimizer, self._state
        if isinstance(optimizer, Adam):
            lists = [optimizer.m, optimizer.v]
        elif isinstance(optimizer, SGD) and self.rule.kind == UpdateRule.MOMENTUM:
            lists = [optimizer.velocity]
        else:
            return
        for row, values in enumerate(lists):
            if row >= len(state.written) or values is not state.written[row]:
                state.arrays[row] = values

    def _store_state(self, grads: Floats) -> None:
        optimizer, state = self.optimizer, self._state
        if isinstance(optimizer, SGD):
            # SGD keeps the grads as its velocity when there is no momentum (spec.optim).
            velocity = grads if self.rule.kind == UpdateRule.SGD else state.arrays[0]
            optimizer.velocity = velocity.tolist()
            state.written = [optimizer.velocity]
        elif isinstance(optimizer, Adam):
            optimizer.m, optimizer.v = state.arrays[0].tolist(), state.arrays[1].tolist()
            state.written = [optimizer.m, optimizer.v]

    def _raise_forward_failure(self, parameters: Floats, inputs: Floats, target_values: Floats) -> None:
        """Raise the error the eager forward pass raises with these leaves (a kernel saw a failure)."""
        error = self.graph.first_failure(self.graph.leaf_values(parameters, inputs, target_values))
        if error is None:
            raise RuntimeError("the replay kernel reported a failure the reference evaluation does not see")
        raise error

    def _raise_update_failure(self, index: int, value: float) -> None:
        """Raise the optimizer's error, word for word, for a parameter that would become non-finite."""
        raise ResultOverflowError(
            f"{type(self.optimizer).__name__} step: parameter {index} would become {value!r}"
        )
