"""Threads: each builds on its own tape; tapes never mix."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import backends.numba as numba_backend
from backends import python as reference
from backends.numba import MLP, Value, svm_loss
from backends.numba._tape import current_tape
from spec import BackendMismatchError

THREADS = 4


def train(backend, seed: int, X, y, barrier: threading.Barrier | None = None):  # type: ignore[no-untyped-def]
    """A few SGD steps of a small MLP on ``backend``; the losses and final parameters."""
    model = backend.MLP(2, [8, 8, 1], seed=seed)
    params = model.parameters()
    if barrier is not None:
        barrier.wait()  # all threads build and backpropagate at once
    losses = []
    for k in range(5):
        loss = backend.svm_loss([model(x) for x in X], y) + backend.l2_penalty(params, 1e-4)
        model.zero_grad()
        loss.backward()
        for p in params:
            p.data -= (1.0 - 0.1 * k) * p.grad
        losses.append(loss.data)
    return losses, [p.data for p in params]


def test_threads_building_and_backpropagating_at_once_do_not_interfere(moons_data) -> None:  # type: ignore[no-untyped-def]
    X, y = moons_data
    X, y = X[:40], y[:40]
    barrier = threading.Barrier(THREADS)
    with ThreadPoolExecutor(THREADS) as pool:
        concurrent = list(pool.map(lambda seed: train(numba_backend, seed, X, y, barrier), range(THREADS)))
    for seed, result in enumerate(concurrent):
        assert result == train(reference, seed, X, y), f"thread {seed} disagrees with the Python backend"


def test_each_thread_has_its_own_tape(in_new_thread) -> None:  # type: ignore[no-untyped-def]
    mine = current_tape()
    theirs = in_new_thread(current_tape)
    assert theirs is not mine and in_new_thread(lambda: Value(1.0)._t) is not mine


def test_combining_values_of_two_threads_is_a_backend_mismatch(in_new_thread) -> None:  # type: ignore[no-untyped-def]
    foreign = in_new_thread(lambda: Value(2.0))
    a = Value(3.0)
    before = len(current_tape())
    for combine in (
        lambda: a + foreign,
        lambda: a * foreign,
        lambda: a**foreign,
        lambda: a - foreign,
        lambda: a / foreign,
        lambda: foreign + a,
        lambda: 2.0**foreign,
    ):
        with pytest.raises(BackendMismatchError):
            combine()
    assert len(current_tape()) == before, "a refused combination appended nodes"
    with pytest.raises(BackendMismatchError):
        svm_loss([a, foreign], [1.0, -1.0])


def test_using_another_threads_value_raises_but_reading_it_works(in_new_thread) -> None:  # type: ignore[no-untyped-def]
    model = in_new_thread(lambda: MLP(2, [3, 1], seed=0))
    w = model.parameters()[0]
    assert isinstance(w.data, float) and w.grad == 0.0
    w.data, w.grad = 0.5, 1.0
    assert (w.data, w.grad) == (0.5, 1.0)
    uses = (lambda: w * 2.0, lambda: w + w, lambda: w * w, lambda: w.tanh(), lambda: model([1.0, 2.0]))
    for use in (*uses, w.backward, w.zero_grad):
        with pytest.raises(BackendMismatchError, match="thread"):
            use()
