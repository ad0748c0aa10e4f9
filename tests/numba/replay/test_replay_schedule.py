"""Pass schedule (backends.numba._replay._schedule): heights, and groups of equal keys."""

from __future__ import annotations

import numpy as np

from backends.numba._replay._program import DOT, NO_NODE, SUM
from backends.numba._replay._schedule import heights, schedule


def test_heights_count_the_longest_path_to_the_loss() -> None:
    # fused nodes (tops 2, 3, 4, 5): 2 = x*x, 3 = 2*x, 4 = 2*3 and the loss 5 = 3 + 4
    tops = np.array([2, 3, 4, 5], np.int64)
    n_terms = np.array([1, 1, 1, 2], np.int64)
    first = np.array([0, 1, 2, 3], np.int64)
    ta = np.array([0, 2, 2, 3, 4], np.int32)
    tc = np.array([0, 0, 3, NO_NODE, NO_NODE], np.int32)
    assert heights(tops, n_terms, first, ta, tc, 6).tolist() == [3, 2, 1, 0]


def test_grouping_puts_the_deepest_first_and_keeps_creation_order_within_a_group() -> None:
    kind = np.array([DOT, DOT, SUM, DOT, SUM], np.int64)
    n_terms = np.array([3, 3, 2, 3, 2], np.int64)
    zeros = np.zeros(5, np.int64)
    height = np.array([1, 2, 1, 2, 0], np.int64)
    order, starts = schedule(kind, n_terms, zeros, zeros, height)
    assert order.tolist() == [1, 3, 2, 0, 4] and starts.tolist() == [0, 2, 3, 4]


def test_without_heights_the_order_is_creation_order_in_runs_of_equal_keys() -> None:
    kind = np.array([DOT, DOT, SUM, DOT], np.int64)
    n_terms = np.array([3, 3, 2, 3], np.int64)
    needs = np.array([1, 0, 1, 1], np.int64)
    order, starts = schedule(kind, n_terms, np.zeros(4, np.int64), needs, None)
    assert order.tolist() == [0, 1, 2, 3] and starts.tolist() == [0, 1, 2, 3]
