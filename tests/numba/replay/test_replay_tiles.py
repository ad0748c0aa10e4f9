"""The register-tiled multiply-accumulate against the plain loop, in pure Python floats."""

from __future__ import annotations

import numpy as np
import pytest

from backends.numba._replay._tiles import multiply_accumulate


def plain_loop(c, c_rows, a, a_rows, b, b_rows, b_step, lanes, steps):  # type: ignore[no-untyped-def]
    """The loop of the module's docstring, one Python float operation at a time."""
    for r in range(len(c_rows)):
        for lane in range(lanes):
            sum_ = float(c[c_rows[r] + lane])
            for k in range(steps):
                sum_ = sum_ + float(a[a_rows[k] + lane]) * float(b[b_rows[r] + k * b_step])
            c[c_rows[r] + lane] = sum_


def bits(values: np.ndarray) -> list[int]:
    return values.view(np.int64).tolist()


# rows: whole tiles and a remainder; lanes: 32-lane tiles, 8-lane tiles, single lanes
@pytest.mark.parametrize(
    ("rows", "lanes", "steps"), [(4, 32, 5), (9, 45, 7), (1, 3, 1), (6, 64, 0), (5, 100, 3), (3, 8, 11)]
)
@pytest.mark.parametrize("b_step", [1, -1, 0])
def test_multiply_accumulate_is_the_plain_loop_bit_for_bit(
    rows: int, lanes: int, steps: int, b_step: int
) -> None:
    rng = np.random.default_rng(rows * 1000 + lanes * 10 + steps)
    # One array for c, a and b, as the lane kernels pass ``val`` or ``grad`` for all three:
    # c's rows, then a's rows in shuffled order, then b's entries.
    scale = 10.0 ** rng.integers(-8, 8, size=rows * lanes + steps * lanes + rows * (steps + 1))
    values = rng.standard_normal(scale.size) * scale
    c_rows = np.arange(rows, dtype=np.int64)[::-1].copy() * lanes
    a_rows = rows * lanes + rng.permutation(steps).astype(np.int64) * lanes
    b_base = rows * lanes + steps * lanes
    b_rows = b_base + np.arange(rows, dtype=np.int64) * (steps + 1) + (steps if b_step < 0 else 0)
    expected = values.copy()
    plain_loop(expected, c_rows, values.copy(), a_rows, values.copy(), b_rows, b_step, lanes, steps)
    multiply_accumulate(values, c_rows, values, a_rows, values, b_rows, b_step, lanes, steps)
    assert bits(values) == bits(expected)


def test_multiply_accumulate_rounds_after_every_product_and_addition() -> None:
    # A fused multiply-add, or one sum of two products, would round differently here.
    # (1 + 2**-30) * (1 - 2**-30) is 1 - 2**-60, rounded to 1.0: -1.0 + 1.0 is 0.0, where a
    # fused multiply-add gives -2**-60.
    c = np.array([-1.0])
    multiply_accumulate(
        c,
        np.array([0]),
        np.array([1.0 + 2.0**-30]),
        np.array([0]),
        np.array([1.0 - 2.0**-30]),
        np.array([0]),
        1,
        1,
        1,
    )
    assert c[0] == 0.0
    # Left to right: (1e16 + 1) + 1 rounds to 1e16 twice; 1e16 + (1 + 1) would be 1e16 + 2.
    big = np.array([1e16])
    multiply_accumulate(
        big, np.array([0]), np.array([1.0, 1.0]), np.array([0, 1]), np.array([1.0]), np.array([0]), 0, 1, 2
    )
    assert big[0] == (1e16 + 1.0) + 1.0
