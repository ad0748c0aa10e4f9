"""micrograd's own tests and demo, with only the import line changed.

``test_sanity_check`` and ``test_more_ops`` are micrograd's ``test/test_engine.py``;
where micrograd compares with PyTorch, these compare with the golden fixtures
of the same expressions (computed by the independent oracle in spec.fixtures).
The demo is micrograd's ``demo.ipynb`` training loop, verbatim.
"""

from __future__ import annotations

import random

import numpy as np

from benchmarks.datasets import moons
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


def test_moons_demo(backend_module):
    Value, MLP = backend_module.Value, backend_module.MLP

    # --- micrograd's demo.ipynb, verbatim from here (make_moons -> the same 100 points) ---
    np.random.seed(1337)
    random.seed(1337)
    X, y = moons()  # make_moons(n_samples=100, noise=0.1), y*2 - 1: exactly micrograd's points

    model = MLP(2, [16, 16, 1])  # 2-layer neural network

    def loss(batch_size=None):
        # inline DataLoader :)
        if batch_size is None:
            Xb, yb = X, y
        else:
            ri = np.random.permutation(X.shape[0])[:batch_size]
            Xb, yb = X[ri], y[ri]
        inputs = [list(map(Value, xrow)) for xrow in Xb]

        # forward the model to get scores
        scores = list(map(model, inputs))

        # svm "max-margin" loss
        losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(yb, scores)]  # noqa: B905
        data_loss = sum(losses) * (1.0 / len(losses))
        # L2 regularization
        alpha = 1e-4
        reg_loss = alpha * sum(p * p for p in model.parameters())
        total_loss = data_loss + reg_loss

        # also get accuracy
        accuracy = [(yi > 0) == (scorei.data > 0) for yi, scorei in zip(yb, scores)]  # noqa: B905
        return total_loss, sum(accuracy) / len(accuracy)

    for k in range(100):
        # forward
        total_loss, acc = loss()

        # backward
        model.zero_grad()
        total_loss.backward()

        # update (sgd)
        learning_rate = 1.0 - 0.9 * k / 100
        for p in model.parameters():
            p.data -= learning_rate * p.grad
    # --- end of micrograd's demo ---

    # micrograd's notebook prints "step 99 loss 0.010978..., accuracy 100.0%".
    assert acc == 1.0
    assert abs(total_loss.data - 0.010978) < 5e-7, total_loss.data
