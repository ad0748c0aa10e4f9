"""Small 2-D datasets for the demo: micrograd's 100 moons, and seeded NumPy generators.

Every function returns ``(X, y)`` as float64 NumPy arrays: ``X`` of shape ``(n, d)``,
``y`` of shape ``(n,)``. Class labels are ``-1.0`` and ``+1.0`` (what
:func:`spec.svm_loss` expects).

The generators draw from ``np.random.default_rng(seed)``, so the same arguments give
the same arrays on every machine. Their recipe is scikit-learn's (``make_moons``,
``make_circles``), but their random numbers are not: only :func:`moons` gives the
exact points micrograd's demo trains on.

>>> X, y = make_moons(200, noise=0.1, seed=0)
>>> X.shape, sorted(set(y.tolist()))
((200, 2), [-1.0, 1.0])
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = ["MOONS_CSV", "make_circles", "make_moons", "moons", "toy_regression"]

Arrays = tuple[NDArray[np.float64], NDArray[np.float64]]

#: micrograd's demo data: ``make_moons(n_samples=100, noise=0.1)`` after ``np.random.seed(1337)``.
MOONS_CSV = Path(__file__).parent / "data" / "moons-1337.csv"
_MOONS_HEADER = ["x0", "x1", "y"]


def moons() -> Arrays:
    """The 100 points micrograd's demo trains on, read from :data:`MOONS_CSV`.

    The file starts with one ``#`` comment line, then the header ``x0,x1,y``;
    labels are ``-1`` and ``+1``.
    """
    lines = [line for line in MOONS_CSV.read_text(encoding="utf-8").splitlines() if line.strip()]
    header, *rows = [line for line in lines if not line.startswith("#")]
    if header.split(",") != _MOONS_HEADER:
        raise ValueError(f"{MOONS_CSV}: expected the header {','.join(_MOONS_HEADER)}, got {header!r}")
    data = np.array([[float(field) for field in row.split(",")] for row in rows], dtype=np.float64)
    if data.shape != (100, 3) or not np.isin(data[:, 2], (-1.0, 1.0)).all():
        raise ValueError(f"{MOONS_CSV}: expected 100 rows of x0,x1,y with y = ±1, got shape {data.shape}")
    return data[:, :2].copy(), data[:, 2].copy()


def make_moons(n: int = 100, noise: float = 0.1, seed: int = 0) -> Arrays:
    """Two interleaving half circles of ``n`` points in all, with Gaussian noise.

    The upper moon (centre ``(0, 0)``, label ``-1``) gets ``n // 2`` points, the
    lower one (centre ``(1, 0.5)``, label ``+1``) the rest, evenly spaced in angle;
    the points are shuffled, then ``noise`` is the standard deviation of the
    Gaussian noise added to each coordinate.
    """
    n = _count(n)
    noise = _non_negative(noise, "noise")
    rng = _rng(seed)
    n_upper = n // 2
    upper = np.linspace(0.0, np.pi, n_upper)
    lower = np.linspace(0.0, np.pi, n - n_upper)
    X = np.concatenate(
        [
            np.column_stack([np.cos(upper), np.sin(upper)]),
            np.column_stack([1.0 - np.cos(lower), 0.5 - np.sin(lower)]),
        ]
    )
    y = np.concatenate([np.full(n_upper, -1.0), np.full(n - n_upper, 1.0)])
    return _shuffle_and_blur(X, y, noise, rng)


def make_circles(n: int = 100, noise: float = 0.05, factor: float = 0.5, seed: int = 0) -> Arrays:
    """A circle of radius ``factor`` (label ``+1``) inside a unit circle (label ``-1``).

    The outer circle gets ``n // 2`` points, the inner one the rest, evenly spaced
    in angle; the points are shuffled, then ``noise`` is the standard deviation of
    the Gaussian noise added to each coordinate. ``factor`` must lie in ``[0, 1)``.
    """
    n = _count(n)
    noise = _non_negative(noise, "noise")
    factor = _non_negative(factor, "factor")
    if factor >= 1.0:
        raise ValueError(f"factor is the inner circle's radius and must be in [0, 1), got {factor!r}")
    rng = _rng(seed)
    n_outer = n // 2
    outer = np.linspace(0.0, 2.0 * np.pi, n_outer, endpoint=False)
    inner = np.linspace(0.0, 2.0 * np.pi, n - n_outer, endpoint=False)
    X = np.concatenate(
        [
            np.column_stack([np.cos(outer), np.sin(outer)]),
            factor * np.column_stack([np.cos(inner), np.sin(inner)]),
        ]
    )
    y = np.concatenate([np.full(n_outer, -1.0), np.full(n - n_outer, 1.0)])
    return _shuffle_and_blur(X, y, noise, rng)


def toy_regression(n: int = 20, seed: int = 0) -> Arrays:
    """``n`` points of ``y = x**2 + 1`` with ``x`` drawn uniformly from ``[-1, 1]``; ``X`` is ``(n, 1)``."""
    n = _count(n)
    x = _rng(seed).uniform(-1.0, 1.0, size=n)
    return x.reshape(n, 1), x**2 + 1.0


def _shuffle_and_blur(
    X: NDArray[np.float64], y: NDArray[np.float64], noise: float, rng: np.random.Generator
) -> Arrays:
    order = rng.permutation(len(y))
    X, y = X[order], y[order]
    if noise > 0.0:
        X = X + rng.normal(scale=noise, size=X.shape)
    return X, y


def _count(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 2:
        raise ValueError(f"n is the number of points and must be an integer >= 2, got {n!r}")
    return int(n)


def _non_negative(x: object, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, Real) or not math.isfinite(x) or x < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {x!r}")
    return float(x)


def _rng(seed: object) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return np.random.default_rng(int(seed))
