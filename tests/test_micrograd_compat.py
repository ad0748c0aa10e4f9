"""micrograd's own tests and demo, with only the import line changed.

``test_sanity_check`` and ``test_more_ops`` are micrograd's ``test/test_engine.py``;
where micrograd compares with PyTorch, these compare with the golden fixtures
of the same expressions (computed by the independent oracle in spec.fixtures).
The demo is micrograd's ``demo.ipynb`` training loop, verbatim (:mod:`benchmarks.micrograd_loop`).
"""

from __future__ import annotations

import importlib

import pytest

from benchmarks.datasets import moons
from benchmarks.micrograd_loop import demo
from spec import available_backends
from spec.fixtures import expression_cases

ORACLE = {case.name: case for case in expression_cases()}


def test_sanity_check(backend_module):
    Value = backend_module.Value

    x = Value(-4.0)
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    xmg, ymg = x, y

    oracle = ORACLE["micrograd_test_sanity_check"]
    # forward pass went well
    assert ymg.data == oracle.value
    # backward pass went well
    assert xmg.grad == oracle.grads["x"]


def test_more_ops(backend_module):
    Value = backend_module.Value

    a = Value(-4.0)
    b = Value(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    g.backward()
    amg, bmg, gmg = a, b, g

    oracle = ORACLE["micrograd_test_more_ops"]
    tol = 1e-6
    # forward pass went well
    assert abs(gmg.data - oracle.value) < tol
    # backward pass went well
    assert abs(amg.grad - oracle.grads["a"]) < tol
    assert abs(bmg.grad - oracle.grads["b"]) < tol


def micrograd_demo(backend, X, y, steps=100):
    """micrograd's demo.ipynb training cells (benchmarks.micrograd_loop) on ``backend``: ``[(loss, accuracy)]``."""
    _, step, _ = demo(backend.Value, backend.MLP, X, y)
    trajectory = []
    for k in range(steps):
        total_loss, acc = step(k)
        trajectory.append((total_loss.data, acc))
    return trajectory


@pytest.fixture(scope="module")
def demo_runs():
    """The full demo on every registered backend (make_moons -> exactly micrograd's 100 points)."""
    X, y = moons()
    return {
        name: micrograd_demo(importlib.import_module(f"backends.{name}"), X, y)
        for name in available_backends()
    }


def test_moons_demo_reaches_micrograds_result(demo_runs):
    for name, trajectory in demo_runs.items():
        # micrograd's notebook prints "step 0 loss 0.8958441028683222, accuracy 50.0%" ...
        assert trajectory[0] == (0.8958441028683222, 0.5), name
        # ... and "step 99 loss 0.010978..., accuracy 100.0%".
        loss, accuracy = trajectory[-1]
        assert accuracy == 1.0 and abs(loss - 0.010978) < 5e-7, (name, loss, accuracy)


def test_moons_demo_is_identical_on_every_backend(demo_runs):
    reference = demo_runs["python"]
    for name, trajectory in demo_runs.items():
        assert trajectory == reference, f"{name} differs from the python backend step for step"
