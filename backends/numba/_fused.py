"""Fused calls: one kernel call appends a whole ``Layer.outputs(x)`` or ``MLP.outputs(x)``.

spec.nn's generic code builds a model application one scalar op at a time, hundreds of
nanoseconds of Python per node. :func:`fused_outputs` appends the very same nodes, in the
same order, with :func:`backends.numba._kernels.append_layers`, and makes handles only for
the outputs it returns; ``children`` makes the others on demand, as it does for any node
whose handle has died.

It declines (returns ``None``, having appended nothing, so the generic code runs) wherever
the generic code could do anything else: an input that is neither a Value of this thread's
tape nor a finite number, sizes that do not chain, a weight or bias that is not a Value of
this tape, a class that overrides a method the generic call goes through, an activation
outside :data:`ACTIVATION_CODES`, and any op that fails: the generic code then raises its
own error, at its own node.

Plans. Reading every weight's node number at each call would cost much of what fusing
saves, so a layer's node numbers are kept in a :class:`Plan`, per tape (they are that
tape's numbers). A plan holds without a look while nothing changed anywhere since it was
last checked (:func:`spec.guards.changes`: any module attribute assigned, list changed or
class patched) and the tape was not compacted (compaction renumbers nodes). Otherwise the
call checks the plan against the layer as it is now: its class, and each neuron's weights
(the very objects, in order), bias, activation, ``nin`` and class, compared in C; and that
the methods the generic call goes through (``Neuron.__call__``, ``Layer.generic_outputs``,
``Value.__add__``, ``Value.relu``, ...) are those defined when this module was imported. An
MLP's plan joins its layers' plans, and is rebuilt whenever one of them is. A module that
cannot be a dict key (a class defining ``__eq__`` but no ``__hash__``) gets no plan.
"""

from __future__ import annotations

from itertools import pairwise
from operator import attrgetter
from typing import Any, NamedTuple, TypeGuard, TypeVar, cast, overload

import numpy as np

from backends.numba._kernels import LINEAR, append_layers
from backends.numba._lowering import LOWERINGS
from backends.numba._tape import SWEEP_INTERVAL, Tape, _threads
from backends.numba._value import Value
from spec.guards import changes
from spec.nn import ACTIVATIONS, MLP, Layer, Neuron
from spec.operands import as_finite_float
from spec.ops import OPS

__all__ = ["ACTIVATION_CODES", "Plan", "fused_outputs"]

#: activation name -> the kernel code of its node: the unary op the neuron calls by that name
#: (spec.nn's ``getattr(x, activation)()``), read off the op table; "linear" makes no node
ACTIVATION_CODES = {"linear": LINEAR} | {
    row.method: LOWERINGS[code].code
    for code, row in OPS.items()
    if row.method in ACTIVATIONS and row.arity == 1 and not row.has_constant
}

_new = object.__new__
_node = attrgetter("_i")
_tape_of = attrgetter("_t")
#: what a neuron's call reads, so what a layer's plan depends on
_neuron_state = attrgetter("w", "b", "activation", "nin", "__class__")
_NO_NUMBERS = np.empty(0, np.float64)


class Plan(NamedTuple):
    """The arguments of :func:`append_layers` for one module on one tape."""

    shapes: np.ndarray  # int64, (layers, 2): (nout, nin) of each layer
    weights: np.ndarray  # int64 node numbers, each layer's nout x nin in turn
    biases: np.ndarray  # int64 node numbers
    activations: np.ndarray  # int64 op codes, one per neuron
    #: nodes appended for one row of Value inputs
    nodes: int

    @property
    def nin(self) -> int:
        return int(self.shapes[0, 1])


class _LayerEntry(NamedTuple):
    compactions: int
    #: _neuron_state of every neuron when the plan was made (weight lists copied)
    neurons: list[tuple[Any, ...]]
    plan: Plan | None
    #: spec.guards.changes() when the plan was last found to hold
    changes: int


class _MLPEntry(NamedTuple):
    compactions: int
    layers: list[Layer]
    layer_plans: list[Plan | None]
    plan: Plan | None
    changes: int


_Entry = TypeVar("_Entry", _LayerEntry, _MLPEntry)


#: The methods the generic call goes through, as they were when this module was imported: a
#: class patched since (``Neuron.__call__ = ...``, ``Value.relu = ...``) makes the generic code
#: do something else, and the fused call declines.
_NEURON_CALL = Neuron.__call__
_LAYER_OUTPUTS = Layer.outputs
_LAYER_GENERIC = Layer.generic_outputs
_MLP_GENERIC = MLP.generic_outputs
_VALUE_METHODS = {
    name: getattr(Value, name)
    for name in ("__add__", "__mul__", "_apply", "_is_mine", "_number", *ACTIVATION_CODES)
    if hasattr(Value, name)
}


def _value_methods_intact() -> bool:
    return all(getattr(Value, name, None) is method for name, method in _VALUE_METHODS.items())


def fused_outputs(module: Layer | MLP, x: Any) -> list[Value] | None:
    """``module.outputs(x)`` in one kernel call, or ``None`` where the generic code must run."""
    t = _threads.tape
    if x.__class__ is not list and x.__class__ is not tuple:
        return None
    if set(map(type, x)) == {Value}:
        if set(map(_tape_of, x)) != {t}:
            return None
        numbers = None
    else:
        numbers = _numbers(x, t)
        if numbers is None:
            return None
    plan = _plan(module, t)
    if plan is None or len(x) != plan.nin:
        return None
    count = plan.nodes
    if numbers is not None:  # each neuron of the first layer makes a leaf of each number
        count += int(plan.shapes[0, 0]) * int(np.count_nonzero(~np.isnan(numbers)))
    # Sweep once a sweep interval's worth of handles was made (a block makes few), and compact
    # once due, as the scalar path does: node numbers are read only after.
    if len(t.fresh) > SWEEP_INTERVAL or len(t.data) >= t.compact_at:
        compactions = t.compactions
        t.housekeep()
        if t.compactions != compactions:  # node numbers moved: read them anew
            plan = _plan(module, t)
            if plan is None:
                return None
    if numbers is None:
        inputs = np.fromiter(map(_node, x), np.int64, len(x))
        numbers = _NO_NUMBERS
    else:
        inputs = np.array([xi._i if xi.__class__ is Value else -1 for xi in x], np.int64)
    outputs = np.empty(int(plan.shapes[-1, 0]), np.int64)
    start = t.grow(count)
    end = append_layers(
        *t.node_arrays(),
        start,
        plan.shapes,
        plan.weights,
        plan.biases,
        plan.activations,
        inputs,
        numbers,
        outputs,
    )
    if end < 0:  # an op fails: the generic code raises its error
        t.truncate(start)
        return None
    made = []
    for node in outputs.tolist():
        handle = _new(Value)
        handle._t = t
        handle._i = node
        made.append(handle)
    t.fresh.extend(made)
    return made


def _numbers(x: Any, t: Tape) -> np.ndarray | None:
    """Per input, the number a generic op takes (NaN for a Value); None if any would raise."""
    numbers = np.full(len(x), np.nan)
    for i, xi in enumerate(x):
        if xi.__class__ is Value:
            if xi._t is not t:
                return None
        else:
            try:
                numbers[i] = as_finite_float(xi, "operand")
            except Exception:  # the generic code raises it
                return None
    return numbers


def _plan(module: Layer | MLP, t: Tape) -> Plan | None:
    if isinstance(module, Layer):
        return _layer_plan(module, t)
    return _mlp_plan(module, t)


@overload
def _entry(module: Layer, t: Tape) -> tuple[bool, _LayerEntry | None]: ...
@overload
def _entry(module: MLP, t: Tape) -> tuple[bool, _MLPEntry | None]: ...
def _entry(module: Layer | MLP, t: Tape) -> tuple[bool, _LayerEntry | _MLPEntry | None]:
    """``(whether the module can be planned, its entry or None)``: a module that cannot be a
    key (a subclass defining ``__eq__`` but no ``__hash__``) gets no plan; the generic code runs."""
    try:
        return True, t.plans.get(module)
    except TypeError:
        return False, None


def _holds(entry: _Entry | None, t: Tape) -> TypeGuard[_Entry]:
    """Whether nothing that could change the plan happened since it was last checked."""
    return entry is not None and entry.changes == changes() and entry.compactions == t.compactions


def _layer_plan(layer: Layer, t: Tape) -> Plan | None:
    """The layer's plan on tape ``t``, made anew if the layer, its classes or the tape's numbering changed.

    While no change was noted anywhere (:func:`spec.guards.changes`) and the tape was not
    compacted, the plan holds without a look at the layer.
    """
    plannable, entry = _entry(layer, t)
    if not plannable:
        return None
    if _holds(entry, t):
        return entry.plan
    seen = changes()
    neurons = list(map(_neuron_state, layer.neurons))
    if entry is None or entry.compactions != t.compactions or entry.neurons != neurons:
        snapshot = [(list(w), *rest) for w, *rest in neurons]
        plan = _make_layer_plan(layer.__class__, neurons, t)
        entry = _LayerEntry(t.compactions, snapshot, plan, -1)
    if entry.plan is not None and not _methods_intact(layer.__class__, neurons):
        return None
    t.plans[layer] = entry._replace(changes=seen)
    return entry.plan


def _methods_intact(cls: type[Layer], neurons: list[tuple[Any, ...]]) -> bool:
    """Whether the generic call of a layer of class ``cls`` runs the methods the kernel stands for."""
    return (
        cls.generic_outputs is _LAYER_GENERIC
        and all(neuron_cls.__call__ is _NEURON_CALL for *_, neuron_cls in neurons)
        and _value_methods_intact()
    )


def _make_layer_plan(cls: type[Layer], neurons: list[tuple[Any, ...]], t: Tape) -> Plan | None:
    if not neurons or not _methods_intact(cls, neurons):
        return None
    nin = neurons[0][3]
    codes = []
    for w, b, activation, n_in, _ in neurons:
        if n_in != nin or len(w) != nin:
            return None
        if activation not in ACTIVATION_CODES:
            return None
        codes.append(ACTIVATION_CODES[activation])
        for p in (*w, b):
            if p.__class__ is not Value or p._t is not t:
                return None
    return Plan(
        shapes=np.array([[len(neurons), nin]], np.int64),
        weights=np.array([p._i for w, *_ in neurons for p in w], np.int64),
        biases=np.array([b._i for _, b, *_ in neurons], np.int64),
        activations=np.array(codes, np.int64),
        nodes=len(neurons) * 2 * nin + sum(code != LINEAR for code in codes),
    )


def _mlp_plan(mlp: MLP, t: Tape) -> Plan | None:
    """The MLP's plan: its layers' plans joined, made anew when the MLP or one of them changes."""
    plannable, entry = _entry(mlp, t)
    if not plannable:
        return None
    if _holds(entry, t):
        return entry.plan
    seen = changes()
    layers = mlp.layers
    layer_plans = [_layer_plan(layer, t) for layer in layers]
    if (
        entry is None
        or entry.layers != layers
        or list(map(id, entry.layer_plans)) != list(map(id, layer_plans))
    ):
        plan = _join(mlp.__class__, layers, layer_plans)
        entry = _MLPEntry(t.compactions, list(layers), layer_plans, plan, -1)
    if entry.plan is not None and not _mlp_methods_intact(mlp.__class__, layers):
        return None
    t.plans[mlp] = entry._replace(compactions=t.compactions, changes=seen)
    return entry.plan


def _mlp_methods_intact(cls: type[MLP], layers: list[Layer]) -> bool:
    return cls.generic_outputs is _MLP_GENERIC and all(
        layer.__class__.outputs is _LAYER_OUTPUTS for layer in layers
    )


def _join(cls: type[MLP], layers: list[Layer], plans: list[Plan | None]) -> Plan | None:
    if not plans or not _mlp_methods_intact(cls, layers):
        return None
    if any(plan is None for plan in plans):
        return None
    joined = cast("list[Plan]", plans)
    if any(after.nin != before.shapes[0, 0] for before, after in pairwise(joined)):
        return None  # the generic code raises the ShapeError
    return Plan(
        shapes=np.concatenate([p.shapes for p in joined]),
        weights=np.concatenate([p.weights for p in joined]),
        biases=np.concatenate([p.biases for p in joined]),
        activations=np.concatenate([p.activations for p in joined]),
        nodes=sum(p.nodes for p in joined),
    )
