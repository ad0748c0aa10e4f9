"""Shared pieces of the Numba backend's tests: micrograd's moons demo, on any backend."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, TypeVar

import pytest

from benchmarks.datasets import moons

T = TypeVar("T")


@pytest.fixture(scope="session")
def moons_data() -> tuple[list[list[float]], list[float]]:
    """micrograd's 100 moons as plain lists: inputs ``[x0, x1]`` and labels ±1."""
    X, y = moons()
    return X.tolist(), y.tolist()


def _demo_model(backend: ModuleType) -> Any:
    """micrograd's demo model: ``MLP(2, [16, 16, 1])`` after ``random.seed(1337)``."""
    random.seed(1337)
    return backend.MLP(2, [16, 16, 1])


def _demo_step(backend: ModuleType, model: Any, X: Sequence[Any], y: Sequence[float], k: int) -> Any:
    """One eager step of the demo (svm loss + L2, lr ``1.0 - 0.9*k/100``); returns the loss."""
    params = model.parameters()
    scores = [model(x) for x in X]
    total = backend.svm_loss(scores, y) + backend.l2_penalty(params, 1e-4)
    model.zero_grad()
    total.backward()
    learning_rate = 1.0 - 0.9 * k / 100
    for p in params:
        p.data -= learning_rate * p.grad
    return total


def _in_new_thread(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` run in a new thread, so on a fresh tape; its result, or its exception."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = function(*args)
        except BaseException as error:  # handed to the calling thread
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def demo_model() -> Callable[[ModuleType], Any]:
    """``demo_model(backend)``: micrograd's demo model on that backend."""
    return _demo_model


@pytest.fixture(scope="session")
def demo_step() -> Callable[..., Any]:
    """``demo_step(backend, model, X, y, k)``: one eager step of micrograd's demo; the loss."""
    return _demo_step


@pytest.fixture(scope="session")
def in_new_thread() -> Callable[..., Any]:
    """``in_new_thread(function, *args)``: run it in a new thread (a fresh tape), return or raise."""
    return _in_new_thread
