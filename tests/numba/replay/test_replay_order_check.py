"""Pass order check (backends.numba._replay._order_check) on a hand-made program."""

from __future__ import annotations

import numpy as np

from backends.numba._replay._order_check import backward_order_is_eager
from backends.numba._replay._program import GROUP_COLUMNS, SUM

# Slots: 0 = p (a parameter), 1 = ONE, nodes 2 = p, 3 = p (one-term sums), root 4 = 2 + 3.
GROUPS = np.array([[SUM, 2, 4, 1, 0, 2, 1, 1], [SUM, 4, 5, 2, 2, 2, 1, 1]], np.int64)
EACH = np.arange(4, dtype=np.int64)  # one pusher per term: no lane units
TERMS = np.array([[0, 1], [0, 1], [2, 1], [3, 1]], np.uint32)
NEEDS = np.array([True, False, True, True, True])


def test_contributions_in_reverse_creation_order_pass() -> None:
    assert GROUPS.shape[1] == GROUP_COLUMNS
    # p gets node 3's push (created at 11), then node 2's (10): eager order
    assert backward_order_is_eager(GROUPS, TERMS, np.array([10, 11, 12, 12], np.int64), EACH, NEEDS, 4)


def test_contributions_out_of_order_fail() -> None:
    assert not backward_order_is_eager(GROUPS, TERMS, np.array([11, 10, 12, 12], np.int64), EACH, NEEDS, 4)


def test_a_node_reading_a_later_slot_fails() -> None:
    terms = TERMS.copy()
    terms[0, 0] = 3  # node 2 reads node 3, which forward writes after it
    assert not backward_order_is_eager(GROUPS, terms, np.array([10, 11, 12, 12], np.int64), EACH, NEEDS, 4)


def test_a_push_into_a_node_that_already_pushed_fails() -> None:
    # Node 3 reads node 2 but sits in the same group after it: backward visits node 3 first
    # (fine), yet if node 2's own push came first, node 2 would have pushed before receiving.
    groups = np.array(
        [[SUM, 2, 3, 1, 0, 2, 1, 1], [SUM, 3, 4, 1, 1, 2, 1, 1], [SUM, 4, 5, 2, 2, 2, 1, 1]], np.int64
    )
    terms = np.array([[0, 1], [2, 1], [2, 1], [3, 1]], np.uint32)
    pushers = np.array([10, 11, 12, 12], np.int64)
    assert backward_order_is_eager(groups, terms, pushers, EACH, NEEDS, 4)
    reversed_groups = groups[[1, 0, 2]]
    assert not backward_order_is_eager(reversed_groups, terms, pushers, EACH, NEEDS, 4)
