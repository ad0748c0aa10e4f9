"""The tape: one thread's nodes in flat arrays, and how dead nodes are reclaimed.

Layout. A :class:`Tape` holds one ``array.array`` per node field (``data``,
``grad``, ``op``, ``a``, ``b``, ``const``; see :mod:`backends.numba._kernels`
for the layout). Appending a node is a few ``array.append`` calls, which grow
their buffer geometrically (amortised O(1), no per-node reallocation); a kernel
sees the same memory through ``np.frombuffer`` without copying. ``grad`` is
grown lazily, to the tape's length, only when a kernel or a grad assignment
needs it (a node past its end has grad 0.0).

Handles. A :class:`~backends.numba.Value` is a handle: ``(tape, node number)``.
The tape keeps every handle it hands out (``fresh``, then ``survivors``), so
``children`` can return the very objects the operands were, as the spec asks.
Keeping handles does not keep them alive for long: at each *sweep* the tape
asks CPython's reference count which handles anyone else still holds
(``sys.getrefcount`` above that of a probe object held only by the tape's
list or dict) and drops the others. A sweep of the fresh handles runs every
:data:`SWEEP_INTERVAL` appends, so a handle the program has dropped dies within
that many appends, before Python's cyclic collector moves it to an old
generation (which would make its full collections slow, as they are for the
Python backend); the survivors are swept at each compaction.

Reclaiming nodes (*compaction*). A node is needed if a live handle points to
it or to a node that depends on it. When the tape reaches ``compact_at``
nodes, a kernel marks the nodes reachable from the live handles, renumbers
them in their old relative order (so creation order stays a topological
order), moves them down in place and truncates the arrays; then each live
handle's node number is updated. ``compact_at`` is then set to twice the kept
length (at least :data:`MIN_GROWTH` more), so compaction costs O(1) per node
appended, amortised. In micrograd's eager loop (build, backward, update,
repeat) the previous step's graph dies when ``loss`` is rebound, so the tape
stays between two and four steps' worth of nodes, or :data:`MIN_GROWTH` more.
Node numbers change only inside an append (never during a kernel), and every
handle the program can reach is updated.

Threads. Each thread appends to its own tape (:func:`current_tape`, a
``threading.local``), so graphs built in different threads never touch the
same arrays, and no lock is needed. A tape belongs to its thread: operations,
``backward`` and ``zero_grad`` check that they run in the operands' thread, and
using a Value in another thread, or combining Values of two tapes, raises
:class:`~spec.errors.BackendMismatchError`. Another thread may still read or
assign ``data``, ``grad`` and ``label`` (say, the parameters a worker thread
trained, once it is done); doing so *while* the owner appends is a data race,
as it would be for a list.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from operator import attrgetter
from sys import getrefcount
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np
from numpy.typing import NDArray

from backends.numba import _kernels
from spec.errors import BackendMismatchError

__all__ = ["MIN_GROWTH", "SWEEP_INTERVAL", "Tape", "current_tape", "wrong_thread_error"]

#: Appends between two sweeps of the handles the tape keeps.
SWEEP_INTERVAL = 256
#: The fewest appends between two compactions.
MIN_GROWTH = 1 << 16

_node_number = attrgetter("_i")


class Tape:
    """One thread's nodes, as a structure of arrays, and the handles pointing into it."""

    __slots__ = (
        "a",
        "b",
        "compact_at",
        "compactions",
        "const",
        "data",
        "fresh",
        "grad",
        "holding",
        "labels",
        "limit",
        "op",
        "plans",
        "survivors",
        "thread",
    )

    def __init__(self) -> None:
        self.data = array("d")
        self.grad = array("d")
        self.op = array("b")
        self.a = array("q")
        self.b = array("q")
        self.const = array("d")
        #: node number -> label, for nodes with a non-empty label
        self.labels: dict[int, str] = {}
        #: a probe object, then the handles made since the last sweep, in node order
        #: (a number operand's leaf has none)
        self.fresh: list[Any] = [object()]
        #: node number -> handle, for handles found alive by a sweep; first, a probe at -1
        self.survivors: dict[int, Any] = {-1: object()}
        self.compact_at = MIN_GROWTH
        #: the length at which the next append first runs :meth:`housekeep`
        self.limit = SWEEP_INTERVAL
        self.compactions = 0
        #: how many :meth:`holding_nodes` blocks are open: compaction waits for none
        self.holding = 0
        #: layer -> its fused plan on this tape (backends.numba._fused)
        self.plans: WeakKeyDictionary[Any, Any] = WeakKeyDictionary()
        self.thread = threading.get_ident()

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"<numba Tape of thread {self.thread}: {len(self.data)} nodes>"

    # --- kernels' view -------------------------------------------------------------
    def arrays(
        self,
    ) -> tuple[
        NDArray[np.float64],
        NDArray[np.float64],
        NDArray[np.int8],
        NDArray[np.int64],
        NDArray[np.int64],
        NDArray[np.float64],
    ]:
        """NumPy views (no copy) of ``data, grad, op, a, b, const``, all of the tape's length.

        While a view exists the arrays cannot grow: drop the views before appending.
        """
        self.fill_grad()
        return (
            np.frombuffer(self.data, np.float64),
            np.frombuffer(self.grad, np.float64),
            np.frombuffer(self.op, np.int8),
            np.frombuffer(self.a, np.int64),
            np.frombuffer(self.b, np.int64),
            np.frombuffer(self.const, np.float64),
        )

    def node_arrays(
        self,
    ) -> tuple[
        NDArray[np.float64], NDArray[np.int8], NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]
    ]:
        """NumPy views (no copy) of ``data, op, a, b, const``: :meth:`arrays` without ``grad``."""
        return (
            np.frombuffer(self.data, np.float64),
            np.frombuffer(self.op, np.int8),
            np.frombuffer(self.a, np.int64),
            np.frombuffer(self.b, np.int64),
            np.frombuffer(self.const, np.float64),
        )

    def grow(self, count: int) -> int:
        """Lengthen every column but ``grad`` (grown lazily) by ``count`` zeros; the first new node."""
        start = len(self.data)
        wide = bytes(8 * count)
        self.data.frombytes(wide)
        self.op.frombytes(bytes(count))
        self.a.frombytes(wide)
        self.b.frombytes(wide)
        self.const.frombytes(wide)
        return start

    def truncate(self, length: int) -> None:
        """Drop every node from ``length`` on, from every column (no view may exist)."""
        for column in (self.data, self.grad, self.op, self.a, self.b, self.const):
            del column[length:]

    def fill_grad(self) -> None:
        """Grow ``grad`` with zeros to the tape's length."""
        missing = len(self.data) - len(self.grad)
        if missing > 0:
            self.grad.frombytes(bytes(8 * missing))

    # --- handles ---------------------------------------------------------------------
    def handle(self, node: int, value_type: type) -> Any:
        """The handle of ``node``: the one already handed out if it is alive, else a new one."""
        found = self.survivors.get(node)
        if found is not None:
            return found
        fresh = self.fresh
        k = bisect_left(fresh, node, lo=1, key=_node_number)
        if k < len(fresh) and fresh[k]._i == node:
            return fresh[k]
        made: Any = object.__new__(value_type)
        made._t = self
        made._i = node
        self.survivors[node] = made
        return made

    def sweep(self) -> None:
        """Drop the fresh handles nobody else holds; keep the others as survivors."""
        fresh = self.fresh
        if len(fresh) > 1:
            survivors = self.survivors
            handles = iter(fresh)
            for probe in handles:  # fresh[0]: held by this list only, as a dead handle is
                dead = getrefcount(probe)
                break
            for handle in handles:
                if getrefcount(handle) > dead:
                    survivors[handle._i] = handle
            fresh.clear()
            fresh.append(object())

    def housekeep(self) -> None:
        """Run at every ``limit``: sweep the handles, and compact when due (and not held)."""
        self.sweep()
        n = len(self.data)
        if self.holding:
            self.limit = n + SWEEP_INTERVAL
            return
        if n >= self.compact_at:
            self.compact()
        self.limit = min(len(self.data) + SWEEP_INTERVAL, self.compact_at)

    @contextmanager
    def holding_nodes(self) -> Iterator[None]:
        """Compact nothing meanwhile: every node made stays, reachable or not (a trace needs them all)."""
        self.holding += 1
        try:
            yield
        finally:
            self.holding -= 1

    def _live_handles(self) -> list[Any]:
        """The handles someone else still holds, after a sweep."""
        self.sweep()
        handles = []
        items = iter(list(self.survivors.items()))
        for _, probe in items:  # the first entry: a probe held by the dict only
            dead = getrefcount(probe)
            break
        for _, handle in items:
            if getrefcount(handle) > dead:
                handles.append(handle)
        return handles

    def drop_from(self, start: int) -> None:
        """Drop nodes ``start..`` if no live handle points at one (a finished trace); else compact.

        Nothing older depends on a newer node, so the nodes no live handle reaches then are
        exactly those from ``start`` on: truncating needs no renumbering and no memory.
        """
        handles = self._live_handles()
        if any(handle._i >= start for handle in handles):
            self.compact()
            return
        self.truncate(start)
        self.labels = {node: label for node, label in self.labels.items() if node < start}
        self.survivors = {-1: self.survivors[-1]}
        self.survivors.update((handle._i, handle) for handle in handles)
        self.limit = min(len(self.data) + SWEEP_INTERVAL, self.compact_at)

    def compact(self) -> None:
        """Drop every node no live handle needs, renumber the rest in order, update handles."""
        handles = self._live_handles()
        roots = np.fromiter(map(_node_number, handles), np.int64, len(handles))
        n = len(self.data)
        new_index = np.empty(n, np.int64)
        data, op, a, b, const = self.node_arrays()
        grad = np.frombuffer(self.grad, np.float64)  # maybe shorter: compaction need not grow it
        kept = _kernels.renumber(op, a, b, roots, new_index)
        if kept < n:
            _kernels.compact(data, grad, op, a, b, const, new_index)
        del data, grad, op, a, b, const  # release the buffers before resizing them
        self.truncate(kept)
        if kept < n:
            for handle, node in zip(handles, new_index[roots].tolist(), strict=True):
                handle._i = node
            labels = list(self.labels.items())
            renumbered = new_index[[node for node, _ in labels]].tolist()
            self.labels = {
                node: label for node, (_, label) in zip(renumbered, labels, strict=True) if node >= 0
            }
        self.survivors = {-1: object()}
        self.survivors.update((handle._i, handle) for handle in handles)
        self.compact_at = kept + max(kept, MIN_GROWTH)
        self.compactions += 1


class _ThreadTapes(threading.local):
    def __init__(self) -> None:
        self.tape = Tape()


_threads = _ThreadTapes()


def current_tape() -> Tape:
    """The calling thread's tape (made on first use)."""
    return _threads.tape


def wrong_thread_error(tape: Tape) -> BackendMismatchError:
    """The error for using a Value outside the thread whose tape holds it."""
    return BackendMismatchError(
        f"this numba backend Value lives on the tape of thread {tape.thread}, not of the calling "
        f"thread {threading.get_ident()}: each thread builds its graphs on its own tape, so Values "
        "of one thread can neither be used in operations by another nor combined with its Values"
    )
