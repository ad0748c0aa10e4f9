"""While a training step is traced, its traced Values cannot be read as numbers.

:func:`spec.compile_step` runs ``loss_fn`` once and replays the graph it built. A number
that Python code reads off a Value during that run (``if out.data > 0:``, ``0.01 *
p.data``, ``max(abs(x.data) ...)``) would be frozen into the replay, and every later step
would silently use the example batch's number. So, as JAX does with its tracers, reading
a *traced* Value as a number raises :class:`~spec.errors.CaptureError` at once, naming
the operation and the way out.

Traced: the step's placeholders (every input and target Value ``loss_fn`` receives), the
optimizer's parameters, and every Value computed from them. Refused on a traced Value:

- ``.data`` and ``.grad``, read or assigned;
- ``float()``, ``int()``, ``bool()`` (so ``if v:``), ``<``, ``<=``, ``>``, ``>=``
  (so ``max()`` and ``sorted()``);
- ``format()`` with a format spec (``f"{v:.3f}"``).

Allowed: everything that builds the graph (Value operators and methods), ``.op``,
``.children`` and ``.label``; ``len()`` and the shape of the data; plain Python numbers;
and reading Values that are not traced (a constant such as ``Value(2.0)`` made inside
``loss_fn``, and what is computed from constants alone). ``repr()`` and ``str()`` of a
traced Value show no number: ``<traced numba Value: its data exists only when the step
runs>``.

How. :func:`tracing` installs guards on the backend's Value class for the duration of
the trace (``data``, ``grad``, ``__repr__``) and marks the calling thread as tracing;
:class:`spec.value.ValueBase` implements the conversions and comparisons above with the
same check. Outside a trace, and in other threads, nothing changes: the guards pass
straight through, and no backend pays for them in its eager loop. A Value is traced when
one of the trace's leaves is reachable from it through ``children``.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from spec.errors import CaptureError

__all__ = ["Trace", "refuse_if_traced", "tracing", "untraced"]


class Trace:
    """The leaves of one trace, and which Values depend on them."""

    def __init__(self, leaves: Iterable[Any]) -> None:
        self._leaves = {id(leaf): leaf for leaf in leaves}
        # id -> (the Value itself, so that its id cannot be reused; whether it is traced)
        self._known: dict[int, tuple[Any, bool]] = {}

    def is_traced(self, value: Any) -> bool:
        """Whether ``value`` is a leaf of this trace or is computed from one."""
        known = self._known.get(id(value))
        if known is not None:
            return known[1]
        seen = {id(value): value}
        stack = [value]
        traced = False
        while stack and not traced:
            node = stack.pop()
            if id(node) in self._leaves or self._known.get(id(node), (None, False))[1]:
                traced = True
                break
            for child in node.children:
                if id(child) not in seen:
                    seen[id(child)] = child
                    stack.append(child)
        if not traced:  # everything walked is a constant
            self._known.update((key, (node, False)) for key, node in seen.items())
        self._known[id(value)] = (value, traced)
        return traced


class _State(threading.local):
    trace: Trace | None = None


_state = _State()


def refuse_if_traced(value: Any, operation: str) -> None:
    """Raise :class:`CaptureError` if this thread is tracing and ``value`` is traced."""
    trace = _state.trace
    if trace is not None and trace.is_traced(value):
        raise CaptureError(
            f"{operation} of a traced Value while compile_step traces loss_fn: the number exists only "
            "when the step runs, and Python code that uses it would be frozen at the example batch. "
            "Express it with Value operations, compute it outside loss_fn (pass it in the inputs or "
            "targets), or train with the plain eager loop (loss.backward(); optimizer.step())"
        )


@contextmanager
def untraced() -> Iterator[None]:
    """Suspend the checks in this thread: for spec's own reads (an error message's number)."""
    saved, _state.trace = _state.trace, None
    try:
        yield
    finally:
        _state.trace = saved


# --- the guards on a backend's Value class ------------------------------------------------------
class _GuardedAttribute:
    """A Value attribute (``data``, ``grad``) that refuses traced Values, else defers to the original."""

    def __init__(self, name: str, original: Any) -> None:
        self.name = name
        self.original = original

    def __get__(self, value: Any, owner: type | None = None) -> Any:
        if value is None:
            return self.original.__get__(None, owner)
        refuse_if_traced(value, f"reading .{self.name}")
        return self.original.__get__(value, owner)

    def __set__(self, value: Any, new: Any) -> None:
        refuse_if_traced(value, f"assigning .{self.name}")
        self.original.__set__(value, new)


def _guarded_repr(original: Any) -> Any:
    def __repr__(value: Any) -> str:
        trace = _state.trace
        if trace is not None and trace.is_traced(value):
            backend = getattr(type(value), "backend_name", "") or type(value).__name__
            return f"<traced {backend} Value: its data exists only when the step runs>"
        text: str = original(value)
        return text

    return __repr__


_GUARDED = ("data", "grad", "__repr__")
_lock = threading.Lock()
_installed: dict[type, tuple[int, dict[str, Any]]] = {}


def _install(value_type: type) -> None:
    with _lock:
        count, saved = _installed.get(value_type, (0, {}))
        if count == 0:
            saved = {name: value_type.__dict__.get(name) for name in _GUARDED}
            for name in ("data", "grad"):
                setattr(value_type, name, _GuardedAttribute(name, inspect.getattr_static(value_type, name)))
            value_type.__repr__ = _guarded_repr(value_type.__repr__)  # type: ignore[method-assign]
        _installed[value_type] = (count + 1, saved)


def _uninstall(value_type: type) -> None:
    with _lock:
        count, saved = _installed[value_type]
        if count > 1:
            _installed[value_type] = (count - 1, saved)
            return
        del _installed[value_type]
        for name, original in saved.items():
            if original is None:
                delattr(value_type, name)
            else:
                setattr(value_type, name, original)


@contextmanager
def tracing(value_type: type, leaves: Iterable[Any]) -> Iterator[Trace]:
    """Trace in this thread: Values of ``value_type`` computed from ``leaves`` cannot be read."""
    trace = Trace(leaves)
    _install(value_type)
    saved, _state.trace = _state.trace, trace
    try:
        yield trace
    finally:
        _state.trace = saved
        _uninstall(value_type)
