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
- ``round()``, ``abs()``, ``math.trunc``/``floor``/``ceil``, ``operator.index()``, and
  NumPy functions (``np.tanh(v)``) other than arithmetic with a NumPy scalar;
- ``format()`` with a format spec (``f"{v:.3f}"``).

Refused at the end of the trace: a trace during which any op failed (a
:class:`~spec.errors.DomainError` or an overflow, on any Value) or any read above was
refused, although ``loss_fn`` caught the error and returned a loss. Catching it chose a
path by a traced number (``try: y = x.log() except DomainError: y = x``), and the replay
would follow that path on every batch.

Allowed: everything that builds the graph (Value operators and methods), ``.op``,
``.children`` and ``.label``; ``len()`` and the shape of the data; plain Python numbers;
and reading Values that are not traced (a constant such as ``Value(2.0)`` made inside
``loss_fn``, and what is computed from constants alone). ``repr()`` and ``str()`` of a
traced Value show no number: ``<traced numba Value: its data exists only when the step
runs>``.

How. :func:`tracing` installs guards on the backend's Value class for the duration of
the trace (``data``, ``grad``, ``__repr__``) and registers the trace's leaves;
:class:`spec.value.ValueBase` implements the conversions and comparisons above with the
same check. A Value is traced when one of a trace's leaves is reachable from it through
``children``, whichever thread reads it: a helper thread ``loss_fn`` starts is refused
as ``loss_fn`` itself is. Outside a trace nothing changes: no guard is installed, and no
backend pays for them in its eager loop. The op failures are recorded by the spec's
functions every backend raises them with (``spec.check_domain``, ``spec.overflow_error``),
in every trace in progress.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from spec.errors import CaptureError

__all__ = ["Trace", "note_failure", "refuse_if_traced", "tracing", "untraced"]


class Trace:
    """The leaves of one trace, which Values depend on them, and what failed while it ran."""

    def __init__(self, leaves: Iterable[Any]) -> None:
        self._leaves = {id(leaf): leaf for leaf in leaves}
        # id -> (the Value itself, so that its id cannot be reused; whether it is traced)
        self._known: dict[int, tuple[Any, bool]] = {}
        #: the errors raised while the trace ran, ``loss_fn`` may have caught them (see note_failure)
        self.failures: list[str] = []

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


#: the traces in progress, in every thread: a traced Value is traced wherever it is read
_active: list[Trace] = []


class _Suspended(threading.local):
    suspended = False


_local = _Suspended()


def _trace_of(value: Any) -> Trace | None:
    """The trace in progress that ``value`` belongs to, if any (and not suspended in this thread)."""
    if _local.suspended:
        return None
    return next((trace for trace in tuple(_active) if trace.is_traced(value)), None)


def refuse_if_traced(value: Any, operation: str) -> None:
    """Raise :class:`CaptureError` if ``value`` is traced, in whatever thread this runs."""
    if not _active:
        return
    trace = _trace_of(value)
    if trace is not None:
        trace.failures.append(f"CaptureError: {operation} of a traced Value")
        raise CaptureError(
            f"{operation} of a traced Value while compile_step traces loss_fn: the number exists only "
            "when the step runs, and Python code that uses it would be frozen at the example batch. "
            "Express it with Value operations, compute it outside loss_fn (pass it in the inputs or "
            "targets), or train with the plain eager loop (loss.backward(); optimizer.step())"
        )


Failure = TypeVar("Failure", bound=BaseException)


def note_failure(error: Failure) -> Failure:
    """Record, in every trace in progress, that an op raised ``error``; return ``error``.

    ``loss_fn`` may catch it and go on down another path, a path chosen by a traced number:
    capture refuses a trace that recorded any failure (:func:`spec.capture.trace_loss`).
    """
    for trace in tuple(_active):
        trace.failures.append(f"{type(error).__name__}: {error}")
    return error


@contextmanager
def untraced() -> Iterator[None]:
    """Suspend the checks in this thread: for spec's own reads (an error message's number)."""
    saved, _local.suspended = _local.suspended, True
    try:
        yield
    finally:
        _local.suspended = saved


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
        if _trace_of(value) is not None:
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
            # type.__setattr__: spec.guards need not hear of a change undone when the trace ends
            for name in ("data", "grad"):
                guarded = _GuardedAttribute(name, inspect.getattr_static(value_type, name))
                type.__setattr__(value_type, name, guarded)
            type.__setattr__(value_type, "__repr__", _guarded_repr(value_type.__repr__))
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
                type.__delattr__(value_type, name)
            else:
                type.__setattr__(value_type, name, original)


@contextmanager
def tracing(value_type: type, leaves: Iterable[Any]) -> Iterator[Trace]:
    """Trace in this thread: Values of ``value_type`` computed from ``leaves`` cannot be read."""
    trace = Trace(leaves)
    _install(value_type)
    _active.append(trace)
    try:
        yield trace
    finally:
        _active.remove(trace)
        _uninstall(value_type)
