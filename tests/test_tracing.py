"""spec.tracing: traced Values refuse to be numbers, in every thread, only while a trace is in progress."""

from __future__ import annotations

import inspect
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import backends.numba as numba_backend
import backends.python as python_backend
from spec import CaptureError, DomainError, ResultOverflowError, ValueBase
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
    leaf, other = numba_backend.Value(1.0), numba_backend.Value(2.0)
    with pytest.raises(ZeroDivisionError), tracing(numba_backend.Value, [leaf]):
        with tracing(numba_backend.Value, [other]):
            for read in (lambda: leaf.data, lambda: other.data):
                with pytest.raises(CaptureError):
                    read()  # every trace in progress counts, the outer one's leaves included
        assert other.data == 2.0, "the inner trace is over"
        with pytest.raises(CaptureError):
            leaf.data  # noqa: B018
        1 / 0  # noqa: B018
    assert _attributes(numba_backend.Value) == before and leaf.data == 1.0


def test_other_threads_cannot_read_a_traced_value() -> None:
    # A helper thread loss_fn starts (a thread pool, say) is refused as loss_fn is: the Values are
    # traced, not the thread. Values the trace does not reach stay readable there.
    leaf, free = python_backend.Value(5.0), python_backend.Value(7.0)
    traced = leaf * 2.0
    with tracing(python_backend.Value, [leaf]) as trace, ThreadPoolExecutor(1) as pool:
        for read in (lambda: traced.data, lambda: leaf.grad, lambda: float(traced)):
            with pytest.raises(CaptureError):
                pool.submit(read).result()
        assert pool.submit(lambda: free.data).result() == 7.0
    assert len(trace.failures) == 3, "each refusal is recorded, so capture refuses a loss that caught it"
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(lambda: traced.data).result() == 10.0, "after the trace every thread reads"


def test_a_caught_failure_is_recorded_in_every_trace_in_progress() -> None:
    leaf = python_backend.Value(-1.0)
    with tracing(python_backend.Value, [leaf]) as trace:
        with pytest.raises(DomainError):
            leaf.log()
        with pytest.raises(ResultOverflowError):
            (leaf * -1000.0).exp()
    assert [failure.split(":")[0] for failure in trace.failures] == ["DomainError", "ResultOverflowError"]
    with tracing(python_backend.Value, []) as quiet:
        python_backend.Value(2.0).log()
    assert quiet.failures == []


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
