"""Pass order check (backends.numba._replay._order_check) on a hand-made program."""

from __future__ import annotations

import numpy as np

from backends.numba._replay._order_check import backward_order_is_eager
from backends.numba._replay._program import GROUP_COLUMNS, LANE, SUM
from backends.numba._replay._program import NEEDS as NEEDS_COLUMN

# Slots: 0 = p (a parameter), 1 = ONE, nodes 2 = p, 3 = p (one-term sums), root 4 = 2 + 3.
GROUPS = np.array([[SUM, 2, 4, 1, 0, 2, 1, 1, 0], [SUM, 4, 5, 2, 2, 2, 1, 1, 0]], np.int64)
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
        [[SUM, 2, 3, 1, 0, 2, 1, 1, 0], [SUM, 3, 4, 1, 1, 2, 1, 1, 0], [SUM, 4, 5, 2, 2, 2, 1, 1, 0]],
        np.int64,
    )
    terms = np.array([[0, 1], [2, 1], [2, 1], [3, 1]], np.uint32)
    pushers = np.array([10, 11, 12, 12], np.int64)
    assert backward_order_is_eager(groups, terms, pushers, EACH, NEEDS, 4)
    reversed_groups = groups[[1, 0, 2]]
    assert not backward_order_is_eager(reversed_groups, terms, pushers, EACH, NEEDS, 4)


# Lane units of two samples. Slots: 0 = p, 1 = ONE; A (2, 3) = p in each sample; B (4, 5) = A of
# its own sample; root 6 = B0 + B1. Eager creation order: A0 10, B0 11, A1 12, B1 13, root 14.
LANE_GROUPS = np.array(
    [[SUM, 2, 4, 1, 0, 2, 1, 2, 1], [SUM, 4, 6, 1, 1, 2, 1, 2, 1], [SUM, 6, 7, 2, 2, 2, 1, 1, 0]], np.int64
)
LANE_TERMS = np.array([[0, 1], [2 | LANE, 1], [4, 1], [5, 1]], np.uint32)
LANE_PUSHERS = np.array([10, 12, 11, 13, 14, 14], np.int64)  # term 0 in samples 0 and 1, term 1 likewise
LANE_PUSHER_AT = np.array([0, 2, 4, 5], np.int64)
LANE_NEEDS = np.array([True, False, True, True, True, True, True])


def test_lane_units_push_per_sample_slots_then_shared_ones_in_eager_order() -> None:
    assert backward_order_is_eager(LANE_GROUPS, LANE_TERMS, LANE_PUSHERS, LANE_PUSHER_AT, LANE_NEEDS, 6)
    # with sample 1's A made first (10), eager adds sample 0's push into p first: the shared
    # pass adds the last sample's first, so this order fails
    pushers = LANE_PUSHERS.copy()
    pushers[:2] = [12, 10]
    assert not backward_order_is_eager(LANE_GROUPS, LANE_TERMS, pushers, LANE_PUSHER_AT, LANE_NEEDS, 6)


def test_a_lane_unit_reading_one_samples_slot_of_its_own_segment_fails() -> None:
    # Every B reads A0: on blocks of samples (threads), sample 1's block may run before A0 exists.
    # p is frozen, so A needs no grad and backward's order alone would not notice.
    groups, needs = LANE_GROUPS.copy(), LANE_NEEDS.copy()
    groups[0, NEEDS_COLUMN] = 0
    needs[[0, 2, 3]] = False
    assert backward_order_is_eager(groups, LANE_TERMS, LANE_PUSHERS, LANE_PUSHER_AT, needs, 6)
    terms = LANE_TERMS.copy()
    terms[1, 0] = 2
    assert not backward_order_is_eager(groups, terms, LANE_PUSHERS, LANE_PUSHER_AT, needs, 6)
