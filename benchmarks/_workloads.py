"""The benchmark workloads: data, model, loss, schedule and initial parameters, shared by every system.

Every system starts from the same float64 parameters (spec order: for an MLP layer by layer,
neuron by neuron, weights then bias; for the RBF model :mod:`benchmarks._rbf`'s order) and
runs the same full-batch SGD schedule, so their losses can be compared step by step.

A workload's ``model`` is its kind: ``"mlp"`` (spec's ``MLP``, sized by ``hidden``) or
``"rbf"`` (:class:`benchmarks._rbf.RBF` with ``centres`` centres). :meth:`Workload.build`
makes it on any gradspec backend; the reference systems write each kind in their own terms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks import datasets
from benchmarks._rbf import RBF, rbf_initial_parameters, rbf_scores
from spec import initial_parameters, l2_penalty, linear_decay, mse_loss, svm_loss

__all__ = ["MODELS", "WORKLOADS", "Workload", "dense_layers", "forward", "workload"]

Floats = NDArray[np.float64]

#: the model kinds a workload trains
MODELS = ("mlp", "rbf")


@dataclass(frozen=True)
class Workload:
    """One training problem."""

    name: str
    title: str
    X: Floats
    y: Floats
    loss: str  # "svm" (+ alpha * L2) or "mse"
    alpha: float
    lr: Callable[[int], float]
    steps: int
    seed: int
    model: str = "mlp"  # one of MODELS
    # "mlp": MLP(nin, [*hidden, 1], activation, output_activation)
    hidden: tuple[int, ...] = ()
    activation: str = "relu"  # hidden layers
    output_activation: str = "linear"
    # "rbf": RBF with this many centres
    centres: int = 0

    @property
    def sizes(self) -> list[int]:
        """An MLP's layer sizes, inputs to output."""
        return [self.X.shape[1], *self.hidden, 1]

    @property
    def init(self) -> list[float]:
        """The initial parameters: ``MLP(..., seed=seed)``'s (micrograd's after random.seed(seed)),
        or the RBF model's seeded NumPy draw."""
        if self.model == "rbf":
            return rbf_initial_parameters(self.X, self.centres, self.seed)
        return initial_parameters(self.X.shape[1], [*self.hidden, 1], self.seed)

    def build(self, backend: Any) -> Any:
        """The model on a gradspec ``backend`` (``spec.load_backend``'s), at :attr:`init`."""
        if self.model == "rbf":
            return RBF(backend.Value, self.X.shape[1], self.init)
        return backend.MLP(
            self.X.shape[1],
            [*self.hidden, 1],
            activation=self.activation,
            output_activation=self.output_activation,
            seed=self.seed,
        )

    @property
    def classification(self) -> bool:
        return self.loss == "svm"

    def loss_fn(self, model: Any, inputs: Any, targets: Any) -> Any:
        """The gradspec loss: ``loss_fn(model, inputs, targets)`` (spec.compile_step's form)."""
        return self.loss_of(model, [model(x) for x in inputs], targets)

    def loss_of(self, model: Any, outputs: Any, targets: Any) -> Any:
        """The loss of the model's ``outputs`` (its regulariser reads the model's parameters)."""
        if self.loss == "svm":
            return svm_loss(outputs, targets) + l2_penalty(model.parameters(), self.alpha)
        return mse_loss(outputs, targets)


def _constant(lr: float) -> Callable[[int], float]:
    return lambda k: lr


def _toy() -> tuple[Floats, Floats]:
    # micrograd's lecture (and the Go seed): four points in R^3 with targets ±1.
    X = np.array([[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]])
    return X, np.array([1.0, -1.0, -1.0, 1.0])


def workload(name: str, quick: bool = False) -> Workload:
    """The workload ``name`` (``--quick`` shrinks two: large to 50 samples and 5 steps, rbf to
    40 samples, 8 centres and 20 steps)."""
    if name == "moons":
        X, y = datasets.moons()
        return Workload(
            "moons",
            "micrograd's moons demo: 100 samples, MLP(2,[16,16,1]), SVM + L2, SGD",
            X, y, "svm", 1e-4, linear_decay(1.0, 0.1, 100), 100, 1337, hidden=(16, 16),
        )  # fmt: skip
    if name == "toy":
        X, y = _toy()
        return Workload(
            "toy",
            "the Go seed's toy: 4 samples, MLP(3,[4,4,1]) tanh, MSE, SGD lr 0.05",
            X, y, "mse", 0.0, _constant(0.05), 500, 1,
            hidden=(4, 4), activation="tanh", output_activation="tanh",
        )  # fmt: skip
    if name == "large":
        n = 50 if quick else 1000
        X, y = datasets.make_moons(n, noise=0.1, seed=0)
        return Workload(
            "large",
            f"larger: {n} moons, MLP(2,[64,64,1]), SVM + L2, SGD",
            X, y, "svm", 1e-4, linear_decay(1.0, 0.1, 100), 5 if quick else 20, 0, hidden=(64, 64),
        )  # fmt: skip
    if name == "rbf":
        n, centres, steps = (40, 8, 20) if quick else (100, 32, 100)
        X, y = datasets.moons()
        return Workload(
            "rbf",
            f"not an MLP: {n} moons, RBF b + sum_k a_k exp(-g_k |x - c_k|^2), {centres} centres, SVM + L2, SGD",
            X[:n], y[:n], "svm", 1e-4, linear_decay(1.0, 0.1, 100), steps, 0, model="rbf", centres=centres,
        )  # fmt: skip
    raise ValueError(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")


WORKLOADS = ("moons", "toy", "large", "rbf")


def dense_layers(flat: list[float], sizes: list[int]) -> list[tuple[Floats, Floats]]:
    """Spec-ordered parameters as ``(W, b)`` per layer, ``W`` of shape ``(fan_out, fan_in)``."""
    layers, i = [], 0
    for fan_in, fan_out in pairwise(sizes):
        block = np.array(flat[i : i + fan_out * (fan_in + 1)], np.float64).reshape(fan_out, fan_in + 1)
        layers.append((block[:, :fan_in].copy(), block[:, fan_in].copy()))
        i += fan_out * (fan_in + 1)
    return layers


def flatten(layers: list[tuple[Floats, Floats]]) -> list[float]:
    """The inverse of :func:`dense_layers`."""
    return [float(x) for W, b in layers for x in np.column_stack([W, b]).ravel()]


ACTIVATIONS: dict[str, Callable[[Floats], Floats]] = {
    "relu": lambda h: np.maximum(h, 0.0),
    "tanh": np.tanh,
    "linear": lambda h: h,
}


def forward(flat: list[float], w: Workload, X: Floats) -> Floats:
    """The model's outputs for the rows of ``X`` (NumPy; for accuracies)."""
    if w.model == "rbf":
        return rbf_scores(flat, X)
    h = X
    layers = dense_layers(flat, w.sizes)
    for i, (W, b) in enumerate(layers):
        h = ACTIVATIONS[w.output_activation if i == len(layers) - 1 else w.activation](h @ W.T + b)
    return h[:, 0]
