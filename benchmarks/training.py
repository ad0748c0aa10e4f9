"""Training an MLP on a demo dataset: the loop behind ``python -m benchmarks.demo``.

The defaults are micrograd's demo, step for step: its 100 moons, ``random.seed(1337)``
then ``MLP(2, [16, 16, 1])``, the SVM loss plus ``1e-4 * sum(p * p)``, and 100 full-batch
SGD steps with learning rate ``1.0 - 0.9 * k / 100``. On the python backend the loss of
the last step is 0.010978... and the accuracy 100%.

Example::

    result = train(TrainConfig(backend="numba", dataset="circles", optimizer="adam"))
    result.final_loss, result.final_accuracy, result.seconds_per_step
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm  # type: ignore[import-untyped]

from benchmarks import datasets
from spec import (
    ACTIVATIONS,
    SGD,
    Activation,
    Backend,
    GradspecError,
    available_backends,
    binary_cross_entropy,
    l2_penalty,
    linear_decay,
    load_backend,
    mse_loss,
    svm_loss,
)
from spec.optim import Adam

__all__ = [
    "DATASETS",
    "DEFAULT_LR",
    "LOSSES",
    "MAX_LAYER_SIZE",
    "MAX_STEPS",
    "OPTIMIZERS",
    "Objective",
    "TrainConfig",
    "TrainResult",
    "check_choice",
    "check_count",
    "check_hidden",
    "learning_rate",
    "load_dataset",
    "make_optimizer",
    "predict",
    "train",
    "try_load_backends",
]

DATASETS = ("moons", "circles", "toy")
OPTIMIZERS = ("sgd", "momentum", "adam")
#: the starting learning rate of each optimizer (a tenth of it for the mse loss, whose
#: gradients are larger); every run decays its learning rate linearly to a tenth
DEFAULT_LR = {"sgd": 1.0, "momentum": 0.1, "adam": 0.05}
_MOMENTUM = 0.9


@dataclass(frozen=True)
class Objective:
    """What a loss needs: the output layer's activation, targets made from labels, a decision rule."""

    loss: Callable[[Sequence[Any], Sequence[float]], Any]
    output_activation: Activation
    #: labels (±1, or real targets for regression) -> what the loss compares outputs with
    targets: Callable[[NDArray[np.float64]], NDArray[np.float64]]
    #: an output above this is class +1
    threshold: float


LOSSES: dict[str, Objective] = {
    "svm": Objective(svm_loss, "linear", lambda y: y, 0.0),
    "mse": Objective(mse_loss, "linear", lambda y: y, 0.0),
    "bce": Objective(binary_cross_entropy, "sigmoid", lambda y: (y + 1.0) / 2.0, 0.5),
}


@dataclass(frozen=True)
class TrainConfig:
    """One training run; the defaults reproduce micrograd's demo.

    ``loss=None`` picks ``"svm"`` for the classification datasets and ``"mse"`` for
    ``"toy"`` (the regression ``y = x**2 + 1``); ``lr=None`` picks from :data:`DEFAULT_LR`.
    The learning rate decays linearly from ``lr`` to ``lr / 10`` over the run.
    ``seed`` seeds Python's :mod:`random` before the model is built (as micrograd does)
    and the generated datasets (``moons`` is fixed data).
    """

    backend: str = "python"
    dataset: str = "moons"
    hidden: tuple[int, ...] = (16, 16)
    activation: Activation = "relu"
    loss: str | None = None
    optimizer: str = "sgd"
    steps: int = 100
    lr: float | None = None
    seed: int = 1337
    #: weight of micrograd's L2 penalty ``alpha * sum(p * p)``; 0 leaves it out
    alpha: float = 1e-4

    def __post_init__(self) -> None:
        check_choice(self.dataset, DATASETS, "dataset")
        check_choice(self.activation, ACTIVATIONS, "activation")
        check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        if self.loss is None:
            object.__setattr__(self, "loss", "mse" if self.is_regression else "svm")
        check_choice(self.loss, tuple(LOSSES), "loss")
        if self.is_regression and self.loss != "mse":
            raise ValueError(f"the toy regression is trained with the mse loss, not {self.loss!r}")
        check_hidden(self.hidden)
        check_count(self.steps, "steps")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.lr is None:
            scale = 0.1 if self.loss == "mse" else 1.0
            object.__setattr__(self, "lr", DEFAULT_LR[self.optimizer] * scale)
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (math.isfinite(self.alpha) and self.alpha >= 0):
            raise ValueError(f"alpha must be a number >= 0, got {self.alpha!r}")

    @property
    def is_regression(self) -> bool:
        return self.dataset == "toy"

    @property
    def objective(self) -> Objective:
        return LOSSES[self.loss or "svm"]


@dataclass
class TrainResult:
    """A finished run: the trained model, its data, and the loss and accuracy of every step.

    ``losses[k]`` and ``accuracies[k]`` are measured at step ``k``, before its update
    (micrograd's demo prints the same numbers). Regression runs have no accuracies.
    """

    config: TrainConfig
    backend: Backend
    model: Any
    X: NDArray[np.float64]
    y: NDArray[np.float64]
    losses: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def final_loss(self) -> float:
        return self.losses[-1]

    @property
    def final_accuracy(self) -> float | None:
        return self.accuracies[-1] if self.accuracies else None

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / len(self.losses)

    def summary(self) -> dict[str, Any]:
        """The run as plain JSON-able data."""
        return {
            "backend": self.backend.name,
            "backend_version": self.backend.version,
            "config": asdict(self.config),
            "points": len(self.y),
            "parameters": len(self.model.parameters()),
            "final_loss": self.final_loss,
            "final_accuracy": self.final_accuracy,
            "seconds_per_step": self.seconds_per_step,
            "losses": self.losses,
            "accuracies": self.accuracies,
        }


def load_dataset(name: str, seed: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(X, y)`` of a dataset in :data:`DATASETS` (``seed`` only matters for generated ones)."""
    check_choice(name, DATASETS, "dataset")
    if name == "moons":
        return datasets.moons()
    if name == "circles":
        return datasets.make_circles(100, noise=0.05, factor=0.5, seed=seed)
    return datasets.toy_regression(20, seed=seed)


def learning_rate(lr: float, steps: int) -> Callable[[int], float]:
    """The schedule of a run of ``steps`` steps: ``lr`` decayed linearly to ``lr / 10``."""
    return linear_decay(lr, lr / 10, steps)


def make_optimizer(name: str, parameters: list[Any], lr: float, steps: int) -> SGD | Adam:
    """An optimizer of :data:`OPTIMIZERS` with :func:`learning_rate`'s schedule over ``steps`` steps."""
    schedule = learning_rate(lr, steps)
    if name == "sgd":
        return SGD(parameters, schedule)
    if name == "momentum":
        return SGD(parameters, schedule, momentum=_MOMENTUM)
    check_choice(name, OPTIMIZERS, "optimizer")
    return Adam(parameters, schedule)


def train(config: TrainConfig, progress: bool = False) -> TrainResult:
    """Train an MLP as ``config`` says; ``progress`` shows a tqdm bar with loss and accuracy."""
    backend = load_backend(config.backend)
    X, y = load_dataset(config.dataset, config.seed)
    objective = config.objective
    random.seed(config.seed)  # then seed=None: the draws of micrograd's demo
    model = backend.MLP(
        X.shape[1],
        [*config.hidden, 1],
        activation=config.activation,
        output_activation=objective.output_activation,
    )
    parameters = model.parameters()
    assert config.lr is not None  # TrainConfig fills in the default
    optimizer = make_optimizer(config.optimizer, parameters, config.lr, config.steps)
    inputs, targets = X.tolist(), objective.targets(y).tolist()
    positive = (y > 0).tolist()

    def step() -> tuple[float, float | None]:
        """One full-batch step: the loss and accuracy before the update."""
        outputs = [model(x) for x in inputs]
        loss = objective.loss(outputs, targets)
        if config.alpha:
            loss = loss + l2_penalty(parameters, config.alpha)
        accuracy = None
        if not config.is_regression:
            hits = [(out.data > objective.threshold) == p for out, p in zip(outputs, positive, strict=True)]
            accuracy = sum(hits) / len(hits)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.data, accuracy

    result = TrainResult(config, backend, model, X, y)
    bar = tqdm(range(config.steps), desc=f"{backend.name} {config.dataset}", disable=not progress)
    start = time.perf_counter()
    for k in bar:
        try:
            loss, accuracy = step()
        except GradspecError as error:
            error.add_note(f"raised at training step {k} of {config.steps}")
            raise
        result.losses.append(loss)
        if accuracy is None:
            bar.set_postfix(loss=f"{loss:.6f}", refresh=False)
        else:
            result.accuracies.append(accuracy)
            bar.set_postfix({"loss": f"{loss:.6f}", "acc": f"{accuracy:.0%}"}, refresh=False)
    result.seconds = time.perf_counter() - start
    return result


def predict(model: Any, points: NDArray[np.float64]) -> NDArray[np.float64]:
    """The model's output for each row of ``points`` (one forward graph per row, no backward)."""
    return np.array([model(row).data for row in points.tolist()], dtype=np.float64)


def try_load_backends() -> tuple[dict[str, Backend], dict[str, str]]:
    """The registered backends that import, by name, and why each of the others did not."""
    loaded: dict[str, Backend] = {}
    failed: dict[str, str] = {}
    for name in available_backends():
        try:
            loaded[name] = load_backend(name)
        except ImportError as error:
            failed[name] = f"{type(error).__name__}: {error}"
    return loaded, failed


#: The largest run the demos accept: beyond these a run would not finish (or tqdm overflows).
MAX_LAYER_SIZE = 4096
MAX_STEPS = 1_000_000


def check_choice(value: object, choices: Sequence[str], what: str) -> None:
    """ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}; got {value!r:.80}")


def check_count(n: object, what: str, limit: int = MAX_STEPS) -> None:
    """ValueError unless ``n`` is an integer in ``[1, limit]``."""
    if not (isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= limit):
        raise ValueError(f"{what} must be an integer from 1 to {limit:,}, got {n!r:.80}")


def check_hidden(hidden: object) -> None:
    """ValueError unless ``hidden`` lists one or more layer sizes in ``[1, MAX_LAYER_SIZE]``."""
    if not isinstance(hidden, tuple | list) or not hidden:
        raise ValueError(f"hidden must list one or more layer sizes, got {hidden!r:.80}")
    for n in hidden:
        check_count(n, "each hidden layer size", MAX_LAYER_SIZE)
