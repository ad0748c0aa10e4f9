"""benchmarks.datasets: micrograd's moons file and the seeded generators."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.datasets import make_circles, make_moons, moons, toy_regression


def test_moons_are_micrograds_100_points() -> None:
    X, y = moons()
    assert X.shape == (100, 2) and y.shape == (100,)
    assert X.dtype == y.dtype == np.float64
    assert set(y.tolist()) == {-1.0, 1.0}
    # The first row of micrograd's make_moons(100, noise=0.1) after np.random.seed(1337).
    assert X[0].tolist() == [1.1221146075409685, 0.08147717341718697] and y[0] == -1.0


@pytest.mark.parametrize("make", [make_moons, make_circles], ids=["moons", "circles"])
def test_generators_are_seeded_and_balanced(make) -> None:  # type: ignore[no-untyped-def]
    X, y = make(101, seed=3)
    again_X, again_y = make(101, seed=3)
    other_X, _ = make(101, seed=4)
    assert X.shape == (101, 2) and y.shape == (101,)
    assert np.array_equal(X, again_X) and np.array_equal(y, again_y)
    assert not np.array_equal(X, other_X)
    assert (y == -1.0).sum() == 50 and (y == 1.0).sum() == 51


def test_noise_free_shapes() -> None:
    X, y = make_circles(40, noise=0.0, factor=0.3, seed=0)
    radius = np.hypot(X[:, 0], X[:, 1])
    assert np.allclose(radius[y == -1.0], 1.0) and np.allclose(radius[y == 1.0], 0.3)
    X, y = make_moons(40, noise=0.0, seed=0)
    upper = X[y == -1.0]
    assert np.allclose(np.hypot(upper[:, 0], upper[:, 1]), 1.0) and (upper[:, 1] >= -1e-12).all()


def test_toy_regression_is_x_squared_plus_one() -> None:
    X, y = toy_regression(25, seed=1)
    assert X.shape == (25, 1) and y.shape == (25,)
    assert np.array_equal(y, X[:, 0] ** 2 + 1.0)
    assert (np.abs(X) <= 1.0).all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: make_moons(1), "n is the number of points"),
        (lambda: make_moons(True), "n is the number of points"),
        (lambda: make_moons(10.0), "n is the number of points"),  # type: ignore[arg-type]
        (lambda: make_moons(10, noise=-0.1), "noise must be"),
        (lambda: make_moons(10, noise=float("nan")), "noise must be"),
        (lambda: make_circles(10, factor=1.0), "factor is the inner circle's radius"),
        (lambda: make_circles(10, factor=-0.5), "factor must be"),
        (lambda: toy_regression(10, seed=-1), "seed must be an integer >= 0"),
        (lambda: toy_regression(10, seed="1"), "seed must be an integer >= 0"),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_are_refused_clearly(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        call()
