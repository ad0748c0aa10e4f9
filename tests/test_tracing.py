"""spec.tracing: traced Values refuse to be numbers, only in the tracing thread, only while it traces."""

from __future__ import annotations

import inspect
import threading
from typing import Any

import pytest

import backends.numba as numba_backend
import backends.python as python_backend
from spec import CaptureError, ValueBase
from spec.tracing import Trace, tracing, untraced


class Slotted(ValueBase):
    """A minimal Value whose ``data`` and ``grad`` are plain slots, as a backend may have them.

    Its ``+`` reads the public ``data``, as micrograd's does, so it cannot build a graph
    while tracing: a backend's ops must read their own storage (README, "Add a backend").
    """

    __slots__ = ("children", "data", "grad")

    def __init__(self, data: float, *children: Any) -> None:
        self.data, self.grad, self.children = data, 0.0, children

    def __add__(self, other: object) -> Slotted:
        assert isinstance(other, Slotted)
        return Slotted(self.data + other.data, self, other)


BACKENDS = [python_backend.Value, numba_backend.Value, Slotted]


def _attributes(value_type: type) -> dict[str, Any]:
    return {name: inspect.getattr_static(value_type, name) for name in ("data", "grad", "__repr__")}


@pytest.mark.parametrize("value_type", BACKENDS, ids=lambda t: t.__module__)
def test_guards_exist_only_while_tracing(value_type: type) -> None:
    before = _attributes(value_type)
    leaf, constant = value_type(2.0), value_type(3.0)
    traced, fixed = leaf + leaf, constant + constant
    with tracing(value_type, [leaf]):
        for read in (lambda: traced.data, lambda: leaf.grad, lambda: setattr(leaf, "data", 1.0)):
            with pytest.raises(CaptureError, match="traced Value"):
                read()
        assert fixed.data == 6.0 and constant.grad == 0.0, "constants stay readable"
        assert "traced" in repr(traced) and "traced" not in repr(fixed)
    assert _attributes(value_type) == before
    assert traced.data == 4.0 and leaf.data == 2.0, "after the trace every Value reads as before"


def test_guards_come_off_after_an_error_and_nest() -> None:
    before = _attributes(numba_backend.Value)
    leaf = numba_backend.Value(1.0)
    with pytest.raises(ZeroDivisionError), tracing(numba_backend.Value, [leaf]):
        with tracing(numba_backend.Value, []):
            assert leaf.data == 1.0, "the inner trace's leaves decide"
        with pytest.raises(CaptureError):
            leaf.data  # noqa: B018
        1 / 0  # noqa: B018
    assert _attributes(numba_backend.Value) == before and leaf.data == 1.0


def test_other_threads_read_freely_during_a_trace() -> None:
    leaf = python_backend.Value(5.0)
    inside, done = threading.Event(), threading.Event()
    seen: list[float] = []

    def reader() -> None:
        inside.wait()
        seen.append(leaf.data)
        done.set()

    thread = threading.Thread(target=reader)
    thread.start()
    with tracing(python_backend.Value, [leaf]):
        inside.set()
        done.wait(10)
        with pytest.raises(CaptureError):
            leaf.data  # noqa: B018
    thread.join()
    assert seen == [5.0]


def test_untraced_lets_spec_read_for_its_messages() -> None:
    leaf = python_backend.Value(0.0)
    with tracing(python_backend.Value, [leaf]):
        with untraced():
            assert leaf.data == 0.0
        with pytest.raises(ZeroDivisionError, match=r"0\.0 / 0"):
            leaf / 0  # the error of the eager loop, not a CaptureError
        with pytest.raises(ValueError, match="positive base"):
            (-2.0) ** leaf


def test_trace_knows_what_depends_on_its_leaves() -> None:
    a, b, c = (python_backend.Value(x) for x in (1.0, 2.0, 3.0))
    trace = Trace([a])
    deep = c
    for _ in range(1000):
        deep = deep + b
    assert not trace.is_traced(deep) and not trace.is_traced(b)
    assert trace.is_traced(deep + a) and trace.is_traced(a)
    assert not trace.is_traced(deep), "the answer for a Value does not change"


def test_numbers_are_never_implicit_outside_a_trace() -> None:
    v = numba_backend.Value(1.5)
    for convert in (float, int, lambda x: x < 1, lambda x: f"{x:.2f}"):
        with pytest.raises(TypeError):
            convert(v)
    assert bool(v) and f"{v}" == repr(v)


def test_a_refusal_quotes_a_huge_format_spec_in_short() -> None:
    leaf = python_backend.Value(1.0)
    with tracing(python_backend.Value, [leaf]), pytest.raises(CaptureError, match="formatting") as refused:
        format(leaf, "x" * 10_000_000)
    assert len(str(refused.value)) < 1_000, "the message must not echo a 10 MB format string"
