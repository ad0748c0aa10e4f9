"""micrograd's demo loop, verbatim but for the import, with a clock between its parts.

The training cells of micrograd's ``demo.ipynb``: the ``loss()`` function and the update
loop, line for line. The only additions are the ``clock.mark`` calls, which add the time
since the previous mark to one of :data:`PARTS`, so a benchmark can say where a step goes:

- ``forward``: the inputs made Values, and the model applied to every row;
- ``loss``: the SVM loss, the L2 penalty and the accuracy;
- ``backward``: ``model.zero_grad()`` and ``total_loss.backward()``;
- ``update``: the SGD loop over ``model.parameters()``.

The benchmark runs it on micrograd and on each gradspec backend (:mod:`benchmarks._systems`);
tests/test_micrograd_compat.py runs it to check every backend reproduces micrograd's numbers.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["PARTS", "Clock", "demo"]

PARTS = ("forward", "loss", "backward", "update")


class Clock:
    """Seconds spent in each of :data:`PARTS`, one entry a step."""

    def __init__(self) -> None:
        self.parts: dict[str, list[float]] = {part: [] for part in PARTS}
        self.last = time.perf_counter()

    def start(self) -> None:
        self.last = time.perf_counter()

    def mark(self, part: str) -> None:
        """The time since the previous mark (or :meth:`start`) went to ``part``."""
        now = time.perf_counter()
        self.parts[part].append(now - self.last)
        self.last = now


def demo(
    Value: Any, MLP: Any, X: NDArray[np.float64], y: NDArray[np.float64]
) -> tuple[Any, Callable[[int], tuple[Any, float]], Clock]:
    """micrograd's demo on ``Value`` and ``MLP``: ``(model, step, clock)``; ``step(k)`` gives ``(total_loss, acc)``."""
    np.random.seed(1337)
    random.seed(1337)

    model = MLP(2, [16, 16, 1])  # 2-layer neural network
    clock = Clock()

    # loss function
    def loss(batch_size=None):  # type: ignore[no-untyped-def]
        # inline DataLoader :)
        if batch_size is None:
            Xb, yb = X, y
        else:
            ri = np.random.permutation(X.shape[0])[:batch_size]
            Xb, yb = X[ri], y[ri]
        inputs = [list(map(Value, xrow)) for xrow in Xb]

        # forward the model to get scores
        scores = list(map(model, inputs))
        clock.mark("forward")

        # svm "max-margin" loss
        losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(yb, scores)]  # noqa: B905
        data_loss = sum(losses) * (1.0 / len(losses))
        # L2 regularization
        alpha = 1e-4
        reg_loss = alpha * sum(p * p for p in model.parameters())
        total_loss = data_loss + reg_loss

        # also get accuracy
        accuracy = [(yi > 0) == (scorei.data > 0) for yi, scorei in zip(yb, scores)]  # noqa: B905
        clock.mark("loss")
        return total_loss, sum(accuracy) / len(accuracy)

    def step(k: int) -> tuple[Any, float]:
        clock.start()
        # forward
        total_loss, acc = loss()

        # backward
        model.zero_grad()
        total_loss.backward()
        clock.mark("backward")

        # update (sgd)
        learning_rate = 1.0 - 0.9 * k / 100
        for p in model.parameters():
            p.data -= learning_rate * p.grad
        clock.mark("update")

        return total_loss, acc

    return model, step, clock
