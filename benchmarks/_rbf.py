"""A radial-basis-function model: a per-sample model that is not an MLP, for the benchmark.

``f(x) = b + sum_k a_k * exp(-gamma_k * sum_j (x_j - c_kj) ** 2)`` with ``K`` centres
``c_k``, widths ``gamma_k`` and weights ``a_k``. Written once with gradspec Values
(:class:`RBF`, generic over the backend's ``Value``), and once with NumPy for
accuracies and tests (:func:`rbf_scores`).

Parameter order (spec order, like an MLP's): centre by centre, ``c_k0 .. c_k(d-1),
gamma_k, a_k``, then the bias ``b``; :func:`rbf_blocks` splits a flat list that way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["RBF", "rbf_blocks", "rbf_initial_parameters", "rbf_scores"]

Floats = NDArray[np.float64]


class RBF:
    """``b + sum_k a_k * exp(-gamma_k * |x - c_k|**2)`` on the Values of ``value_type``."""

    def __init__(self, value_type: type[Any], nin: int, flat: Sequence[float]) -> None:
        self.nin = nin
        block, b = rbf_blocks(flat, nin)
        # each unit: [c_0, ..., c_(nin-1), gamma, a]
        self.units = [[value_type(float(v)) for v in row] for row in block]
        self.b = value_type(float(b))

    def __call__(self, x: Sequence[Any]) -> Any:
        out = self.b
        for *centre, gamma, a in self.units:
            d2 = (x[0] - centre[0]) ** 2
            for xj, cj in zip(x[1:], centre[1:], strict=True):
                d2 = d2 + (xj - cj) ** 2
            out = out + a * (-gamma * d2).exp()
        return out

    def parameters(self) -> list[Any]:
        return [p for unit in self.units for p in unit] + [self.b]

    def __repr__(self) -> str:
        return f"RBF({self.nin}, {len(self.units)} centres)"


def rbf_initial_parameters(X: Floats, centres: int, seed: int) -> list[float]:
    """Seeded: centres uniform over the data's bounding box, widths uniform(1, 3),
    weights uniform(-1, 1) / sqrt(K), bias 0."""
    rng = np.random.default_rng(seed)
    c = rng.uniform(X.min(axis=0), X.max(axis=0), size=(centres, X.shape[1]))
    gamma = rng.uniform(1.0, 3.0, centres)
    a = rng.uniform(-1.0, 1.0, centres) / np.sqrt(centres)
    return [float(v) for v in np.column_stack([c, gamma, a]).ravel()] + [0.0]


def rbf_blocks(flat: Sequence[float], nin: int) -> tuple[Floats, float]:
    """``(units, b)``: ``units`` of shape ``(K, nin + 2)``, each row ``[c_k..., gamma_k, a_k]``."""
    values = np.asarray(flat, np.float64)
    return values[:-1].reshape(-1, nin + 2), float(values[-1])


def rbf_scores(flat: Sequence[float], X: Floats) -> Floats:
    """The model's outputs for the rows of ``X`` (NumPy, batched)."""
    units, b = rbf_blocks(flat, X.shape[1])
    c, gamma, a = units[:, :-2], units[:, -2], units[:, -1]
    d2 = ((X[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
    scores: Floats = b + (a * np.exp(-gamma * d2)).sum(axis=1)
    return scores
