"""Guards: what a compiled step assumed at capture, checked at every call for one integer's cost.

A compiled step replays the graph ``loss_fn`` built at capture. Besides the batch's numbers,
that graph depends on objects a user may change between calls, and the eager loop would
then build another graph:

- the parameters (the very Value objects, in ``model.parameters()`` order);
- the model's structure: every module's class and attributes (sizes, activations, the
  lists of neurons and layers, plain numbers and strings held by a custom module);
- ``optimizer.params`` and the optimizer's class;
- the methods that build the graph: the attributes of every class above, and of the
  backend's Value class, along their MROs (``Value.relu``, ``Neuron.__call__``,
  ``Layer.generic_outputs``, ...).

A :class:`Guard` takes a snapshot of all of it at capture. Comparing the snapshot at every
call would cost as much as a small step, so every change that could matter bumps one
process-wide counter instead, and a guard whose counter is unchanged holds without looking:

- assigning or deleting an attribute of a :class:`spec.nn.Module` or of an optimizer's
  ``params`` (their ``__setattr__``);
- changing a list such a module holds: lists assigned to a module (``neuron.w``,
  ``layer.neurons``, ``mlp.layers``) are stored as a :class:`TrackedList`, a list that
  bumps the counter when changed, so ``neuron.w[0] = v`` is seen too;
- assigning or deleting an attribute of a class whose metaclass is :class:`Watched`
  (the Value, module and optimizer classes).

When the counter has moved the guard compares a fresh snapshot with its own and says
what differs, if anything. Where part of a model is out of the counter's sight (a model
that is not a ``spec.nn.Module``, or a module holding a dict or another mutable container),
the guard compares the snapshot at every call: correct, only slower.

What is not guarded, as under ``jax.jit``: Python values ``loss_fn`` reads from anywhere
else (globals, closures, module-level functions such as :func:`spec.losses.svm_loss`);
they are constants of the step. The optimizer's settings and state are not structure:
every call reads them anew.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, SupportsIndex

import numpy as np

__all__ = ["Guard", "TrackedList", "Watched", "changes", "note_change", "tracked"]


class _Counter:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


_counter = _Counter()


def note_change() -> None:
    """Tell every guard that something it may depend on changed."""
    _counter.value += 1


def changes() -> int:
    """How many changes guards were told of so far (see the module docstring)."""
    return _counter.value


class Watched(type):
    """A metaclass whose classes tell the guards when one of their attributes is set or deleted."""

    def __setattr__(cls, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        note_change()

    def __delattr__(cls, name: str) -> None:
        super().__delattr__(name)
        note_change()


class TrackedList(list[Any]):
    """A list that tells the guards when it changes: how modules store the lists assigned to them."""

    __slots__ = ()

    def __setitem__(self, index: Any, value: Any) -> None:
        super().__setitem__(
            index, tracked(value) if not isinstance(index, slice) else list(map(tracked, value))
        )
        note_change()

    def __delitem__(self, index: Any) -> None:
        super().__delitem__(index)
        note_change()

    def __iadd__(self, values: Iterable[Any]) -> TrackedList:  # type: ignore[override,misc]
        super().extend(map(tracked, values))
        note_change()
        return self

    def __imul__(self, times: SupportsIndex) -> TrackedList:
        super().__imul__(times)
        note_change()
        return self

    def append(self, value: Any) -> None:
        super().append(tracked(value))
        note_change()

    def extend(self, values: Iterable[Any]) -> None:
        super().extend(map(tracked, values))
        note_change()

    def insert(self, index: SupportsIndex, value: Any) -> None:
        super().insert(index, tracked(value))
        note_change()

    def pop(self, index: SupportsIndex = -1) -> Any:
        value = super().pop(index)
        note_change()
        return value

    def remove(self, value: Any) -> None:
        super().remove(value)
        note_change()

    def clear(self) -> None:
        super().clear()
        note_change()

    def reverse(self) -> None:
        super().reverse()
        note_change()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        super().sort(*args, **kwargs)
        note_change()


def tracked(value: Any) -> Any:
    """``value`` as a module stores it: a list (or a NumPy array of objects) becomes a TrackedList."""
    if type(value) is list or (isinstance(value, np.ndarray) and value.dtype == object):
        return TrackedList(map(tracked, value))
    return value


# --- snapshots ----------------------------------------------------------------------------------
#: compared by value; everything else by identity
_PLAIN = (int, float, complex, str, bytes, bool, type(None))
#: containers whose changes the counter does not see
_UNTRACKED = (list, dict, set, bytearray, np.ndarray)


class _Snapshot:
    """The guarded objects flattened into one list, compared item by item (``paths`` name them)."""

    def __init__(self, model: Any, optimizer: Any, value_type: type, paths: bool = False) -> None:
        from spec.nn import Module  # spec.nn imports this module

        self.items: list[Any] = []
        self.paths: list[str] | None = [] if paths else None
        #: False where a change could escape the counter: then every call compares snapshots
        self.watched = isinstance(model, Module)
        self._module_type = Module
        self._walked: set[int] = set()
        self._classes: dict[type, None] = {type(model): None, type(optimizer): None, value_type: None}
        self._sequence("model.parameters()", model.parameters())
        self._walked.add(id(model))
        self._attributes("model", model)
        self._sequence("optimizer.params", optimizer.params)
        for cls in self._classes:  # each attribute as the class resolves it, along its MRO
            resolved: dict[str, Any] = {}
            for base in reversed(cls.__mro__):
                resolved.update(vars(base))
            for name, attribute in resolved.items():
                self._put(f"{cls.__qualname__}.{name}", attribute)

    def _put(self, path: str, item: Any) -> None:
        self.items.append(item)
        if self.paths is not None:
            self.paths.append(path)

    def _sequence(self, path: str, values: Any) -> None:
        self._put(path, len(values))
        for i, item in enumerate(values):
            self._add(f"{path}[{i}]", item)

    def _attributes(self, path: str, owner: Any) -> None:
        self._classes[type(owner)] = None
        for name, attribute in getattr(owner, "__dict__", {}).items():
            self._add(f"{path}.{name}", attribute)

    def _add(self, path: str, value: Any) -> None:
        kind = type(value)
        if kind in _PLAIN:
            self._put(path, kind)
            self._put(path, value)
            return
        if isinstance(value, list | tuple):  # by what it holds
            self._put(path, type(value))
            if id(value) in self._walked:
                return
            self._walked.add(id(value))
            self.watched &= not isinstance(value, _UNTRACKED) or isinstance(value, TrackedList)
            self._sequence(path, value)
            return
        self._put(path, value)  # by identity
        if id(value) in self._walked:
            return
        if isinstance(value, self._module_type):
            self._walked.add(id(value))
            self._attributes(path, value)
        elif isinstance(value, _UNTRACKED):
            self.watched = False

    def difference(self, other: _Snapshot) -> int | None:
        """The index of the first item that differs from ``other``'s, or None."""
        mine, theirs = self.items, other.items
        for i, (a, b) in enumerate(zip(mine, theirs, strict=False)):
            if a is not b and not (type(a) is type(b) and type(a) in _PLAIN and a == b):
                return i
        return None if len(mine) == len(theirs) else min(len(mine), len(theirs))


class Guard:
    """What a compiled step captured, and whether it still stands (see the module docstring)."""

    def __init__(self, model: Any, optimizer: Any, value_type: type) -> None:
        self._objects = (model, optimizer, value_type)
        self._seen = changes()
        self._snapshot = _Snapshot(model, optimizer, value_type)
        #: whether the counter sees every change that matters (else every call compares)
        self._watched = self._snapshot.watched

    def changed(self) -> str | None:
        """None while everything captured still stands; else what changed first, in words."""
        seen = _counter.value
        if seen == self._seen and self._watched:
            return None
        now = _Snapshot(*self._objects)
        where = self._snapshot.difference(now)
        if where is None:
            self._seen, self._snapshot, self._watched = seen, now, now.watched
            return None
        named = _Snapshot(*self._objects, paths=True)
        assert named.paths is not None
        return named.paths[min(where, len(named.paths) - 1)]
