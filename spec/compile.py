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

What one call does. ``step(inputs, targets)`` is exactly this eager step::

    rows = [[Value(x) for x in row] for row in inputs]    # the backend's Value
    labels = [Value(t) for t in targets]                  # rows of them for targets (n, k)
    loss = loss_fn(model, rows, labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.data

with the same float64 operations in the same order, so losses, gradients and parameters are
bit-identical to that loop's. ``loss_fn`` always receives Values, as inputs *and* targets,
whichever step runs it, so a loss that compiles runs the same on every backend; the losses
of :mod:`spec.losses` take Value targets. Targets of shape ``(n, k)`` reach ``loss_fn`` as
``n`` rows of ``k`` Values: one-hot labels for :func:`spec.cross_entropy`
(``compile_step(model, loss_fn, X, one_hot(y, 10), optimizer)``).

Capture and its one rule. ``loss_fn`` runs once, on placeholder Values holding the example
batch (:mod:`spec.capture`). While it runs, the placeholders, the parameters and every
Value computed from them are *traced*: reading one as a number (``.data``, ``.grad``,
``float()``, ``bool()``, comparisons, ``format``) raises :class:`CaptureError`
(:mod:`spec.tracing`). So Python code in ``loss_fn`` cannot branch on, or compute with,
a number that changes from step to step; it can use ``len()``, shapes and plain numbers,
which are fixed. :class:`EagerStep` applies the same rule at every call, so a loss
behaves the same on every backend.

State between calls. After every call each parameter's ``data`` and ``grad``,
``optimizer.steps`` and the optimizer's state (``SGD.velocity``, ``Adam.m``/``Adam.v``)
are what the eager loop leaves. At the start of every call the step reads back all of it,
and the optimizer's settings (``lr`` or its schedule, ``momentum``, ``beta1``, ``beta2``,
``eps``): a change made between calls, by assignment or in place
(``optimizer.velocity[0] = 0.0``, ``model.load_state_dict(...)``), takes effect as it
would in the eager loop. Settings are checked when assigned and state lists when read
(:mod:`spec.optim`), the same way on every path.

Structure between calls. What the graph was built from (the parameter objects, the
model's modules and their attributes, ``optimizer.params``, the methods of the classes
that build the graph) is guarded (:mod:`spec.guards`): a call that finds any of it changed
captures the step anew on its own batch, as ``jax.jit`` retraces a new structure, and
counts it in ``info["recaptures"]``. Re-capture, not refusal: the eager loop follows such
an edit, and so the step must, to stay that loop; where the eager loop would fail on the
edited model the new capture fails with the same error, changing nothing.

Errors. :class:`~spec.errors.CaptureError` at capture: a traced Value read as a number,
the loss is not a Value of the parameters' backend, the graph misses a parameter
(``allow_unused_parameters=True`` keeps them, unchanged by SGD as in the eager loop), the
optimizer's parameters are not the model's, an op failed or a traced number was refused
and ``loss_fn`` caught the error, or (for a replaying backend) an optimizer other than
spec's SGD and Adam or a Value made outside ``loss_fn`` that is not a parameter, a leaf
or computed. At a call: data of another shape than at capture raise
:class:`~spec.errors.ShapeError`, non-numbers :class:`~spec.errors.OperandTypeError`,
NaN or infinities :class:`~spec.errors.NonFiniteError`; a bad optimizer state list the
contract's error for it (:meth:`spec.optim.Optimizer.state_array`); an op whose input leaves its
domain, or whose result overflows, raises the error the eager loop raises at the same
node, and an update that would make a parameter non-finite the optimizer's
:class:`~spec.errors.ResultOverflowError` (:class:`~spec.errors.NonFiniteError` for a NaN,
from a non-finite gradient); a step whose graph lives on one thread's tape,
called from another thread, raises :class:`~spec.errors.BackendMismatchError`. A failed
call changes nothing, whatever it raises (a schedule's own exception passes through
unchanged): no parameter, grad, optimizer state or step count.

For backend authors. A backend offers replay through ``Backend.compile_step`` (and
``"compile_step"`` in its capabilities): a function with :func:`compile_step`'s signature
that returns a :class:`ReplayStep` subclass, whose ``_capture`` calls
:func:`spec.capture.capture_graph` with the backend's graph extractor and whose ``_replay``
runs forward, backward and update.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

import numpy as np

from spec.backend import Backend, available_backends, load_backend
from spec.capture import (
    Floats,
    LossFunction,
    as_data,
    check_all_used,
    check_arguments,
    check_parameters,
    placeholders,
    trace_loss,
)
from spec.errors import BackendMismatchError, CaptureError, GradspecError
from spec.guards import Guard
from spec.optim import SGD, Adam, Optimizer, update_failure

__all__ = [
    "EagerStep",
    "ReplayStep",
    "TrainingStep",
    "UpdateRule",
    "compile_step",
]


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

    ``inputs`` (``n`` rows of ``nin`` numbers) and ``targets`` (``n`` numbers, or ``n`` rows
    of ``k``) are example data: they fix the shapes every call must have. ``backend`` defaults to the registered
    backend of the parameters' Value class; when it offers no replay the step is the
    portable :class:`EagerStep`.
    """
    check_arguments(model, loss_fn, optimizer)
    chosen = backend if backend is not None else _backend_of(model)
    if backend is not None:
        _check_backend(model, backend)
    if chosen is not None and chosen.compile_step is not None:
        step: TrainingStep = chosen.compile_step(
            model, loss_fn, inputs, targets, optimizer, allow_unused_parameters=allow_unused_parameters
        )
        return step
    return EagerStep(
        model, loss_fn, inputs, targets, optimizer, allow_unused_parameters=allow_unused_parameters
    )


def _check_backend(model: Any, backend: Backend) -> None:
    """Refuse a backend whose Values are not the model's: its replay could not read them."""
    foreign = next((p for p in model.parameters() if not isinstance(p, backend.Value)), None)
    if foreign is not None:
        raise BackendMismatchError(
            f"compile_step(..., backend={backend.name!r}): the model's parameters are "
            f"{type(foreign).__module__}.{type(foreign).__name__} Values, not the {backend.name} "
            "backend's; build the model with that backend's MLP"
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

    def __init__(
        self,
        model: Any,
        loss_fn: LossFunction,
        optimizer: Optimizer,
        shape: tuple[int, int],
        target_shape: tuple[int, ...],
    ):
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        #: ``(n, nin)``: the shape of ``inputs`` every call must have
        self.shape = shape
        #: ``(n,)`` or ``(n, k)``: the shape of ``targets`` every call must have
        self.target_shape = target_shape
        #: what the backend made of the step (node counts, passes, schedule), for reports; and
        #: ``recaptures``, how many calls captured the step anew (:mod:`spec.guards`)
        self.info: dict[str, Any] = {"recaptures": 0}

    @abstractmethod
    def __call__(self, inputs: Any, targets: Any) -> float:
        """Forward, backward and the optimizer's update on this batch; the loss before the update."""

    def check_data(self, inputs: Any, targets: Any) -> tuple[Floats, Floats]:
        """``inputs`` and ``targets`` as float64 arrays of the captured shape, or the contract's error."""
        return as_data(inputs, targets, self.shape, self.target_shape)

    def _count_recapture(self, changed: str) -> None:
        self.info["recaptures"] += 1
        self.info["recaptured_after"] = changed

    def __repr__(self) -> str:
        n, nin = self.shape
        return f"<{type(self).__name__} ({self.mode}) of {n} samples x {nin} inputs>"


class EagerStep(TrainingStep):
    """The portable step: runs ``loss_fn`` and the eager loop at every call.

    Construction traces ``loss_fn`` once, as capture does, so misuse (a traced number read,
    a loss of another backend, parameters it does not reach) fails the same way on every
    backend; every call traces again, under the same rule. Its guard (:mod:`spec.guards`)
    re-reads the parameters whenever the model or optimizer changed, checking them as
    construction did.
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
        check_arguments(model, loss_fn, optimizer)
        X, T = as_data(inputs, targets, None)
        self._params, self._value_type = check_parameters(model, optimizer, X.shape[1])
        super().__init__(model, loss_fn, optimizer, (X.shape[0], X.shape[1]), T.shape)
        self._allow_unused = allow_unused_parameters
        self._check_used(self._loss(X, T))
        self._guard = Guard(model, optimizer, self._value_type)

    def _loss(self, X: Floats, T: Floats) -> Any:
        rows, labels = placeholders(self._value_type, X, T)
        return trace_loss(self.loss_fn, self.model, rows, labels, self._params, self._value_type)

    def _check_used(self, loss: Any) -> None:
        reached = _reachable_leaves(loss)
        check_all_used([id(p) in reached for p in self._params], self._allow_unused)

    def __call__(self, inputs: Any, targets: Any) -> float:
        X, T = self.check_data(inputs, targets)
        changed = self._guard.changed()
        if changed is not None:  # read the parameters anew, with capture's checks
            self._params, self._value_type = check_parameters(self.model, self.optimizer, X.shape[1])
        loss = self._loss(X, T)
        if changed is not None:
            self._check_used(loss)
            self._guard = Guard(self.model, self.optimizer, self._value_type)
            self._count_recapture(changed)
        optimizer = self.optimizer
        grads = [p.grad for p in self._params]
        try:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        except BaseException:  # whatever was raised, the step changed nothing; nor may the call
            for p, grad in zip(self._params, grads, strict=True):
                p.grad = grad
            raise
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


class ReplayStep(TrainingStep):
    """Base of a backend's replaying step: capture, guards, data checks, optimizer state, errors.

    A subclass implements :meth:`_capture`, which traces ``loss_fn`` on a batch (with
    :func:`spec.capture.capture_graph`) and makes its program, and :meth:`_replay`, which
    runs forward, backward and the update for one batch: it reads the parameters, writes
    them and their grads back, updates ``self.state`` in place, and returns ``(loss,
    grads)``; or, changing nothing, it calls :meth:`_raise_forward_failure` /
    :meth:`_raise_update_failure`. A backend whose graphs belong to a thread overrides
    :meth:`check_caller`.

    Guards. A call first checks, for the cost of one integer comparison, that nothing the
    capture depended on changed (:mod:`spec.guards`: the parameters, the model's
    structure, ``optimizer.params``, the methods that build the graph). When something did,
    the call captures the step anew on its own batch, as ``jax.jit`` traces a new structure,
    and counts it in ``info["recaptures"]``; a capture that fails raises and changes nothing.
    """

    mode = "replay"

    def __init__(
        self,
        model: Any,
        loss_fn: LossFunction,
        inputs: Any,
        targets: Any,
        optimizer: Optimizer,
    ):
        check_arguments(model, loss_fn, optimizer)
        X, T = as_data(inputs, targets, None)
        super().__init__(model, loss_fn, optimizer, (X.shape[0], X.shape[1]), T.shape)
        UpdateRule.of(optimizer)  # refuse other optimizers now, not at the first call
        self._capture(X, T)
        self._captured()

    def _captured(self) -> None:
        """What a capture fixes besides the program: the parameters, the state's size, the guard."""
        self.parameters = list(self.optimizer.params)
        #: the optimizer's state for the kernels, ``(2, P)``: velocity (or Adam's m) and Adam's v
        self.state = np.zeros((2, len(self.parameters)), np.float64)
        self._guard = Guard(self.model, self.optimizer, type(self.parameters[0]))

    @abstractmethod
    def _capture(self, inputs: Floats, targets: Floats) -> None:
        """Trace ``loss_fn`` on this batch and make the program :meth:`_replay` runs; on any
        error raise, keeping the program there was."""

    @abstractmethod
    def _replay(self, inputs: Floats, targets: Floats, constants: Floats) -> tuple[float, Floats]:
        """Forward, backward, update; ``(loss, grads)`` (see the class docstring)."""

    def check_caller(self) -> None:
        """Raise, changing nothing, if the calling thread may not run this step."""

    def __call__(self, inputs: Any, targets: Any) -> float:
        X, T = self.check_data(inputs, targets)
        self.check_caller()
        changed = self._guard.changed()
        if changed is not None:
            self._capture(X, T)
            self._captured()
            self._count_recapture(changed)
        optimizer = self.optimizer
        rule = UpdateRule.of(optimizer)  # settings assigned since the last call count
        constants = rule.constants(optimizer, optimizer.learning_rate())
        lists = optimizer.checked_state()  # in the rows UpdateRule's kinds read them from
        for row, values in enumerate(lists.values()):
            self.state[row] = values
        try:
            loss, grads = self._replay(X, T, constants)
        except GradspecError as error:
            error.add_note(f"raised while replaying the step compiled by {type(self).__name__}")
            raise
        if rule.kind == UpdateRule.SGD:  # SGD keeps the grads as its velocity (spec.optim)
            optimizer.leave_state("velocity", grads.copy())
        for row, name in enumerate(lists):
            optimizer.leave_state(name, self.state[row])  # a failing step changes no state
        optimizer.steps += 1
        return loss

    def _raise_forward_failure(self, inputs: Floats, targets: Floats) -> NoReturn:
        """Raise the error the eager loop raises on this batch: a kernel saw its forward pass fail.

        ``loss_fn`` runs eagerly on the batch, so the error is the eager loop's own, raised at
        the same node with the same message; the parameters are those the kernel left untouched.
        Where ``loss_fn`` catches that error, tracing refuses the batch (:func:`trace_loss`).
        """
        rows, labels = placeholders(type(self.parameters[0]), inputs, targets)
        trace_loss(self.loss_fn, self.model, rows, labels, self.parameters, type(self.parameters[0]))
        raise RuntimeError("the replay kernel reported a forward failure that the eager loop does not see")

    def _raise_update_failure(self, index: int, value: float) -> NoReturn:
        """Raise the optimizer's error, word for word, for a parameter that would become non-finite."""
        raise update_failure(self.optimizer, index, value)
