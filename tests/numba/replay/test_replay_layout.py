"""Layout (backends.numba._replay._layout): leaf slots in their documented order, terms as slot pairs."""

from __future__ import annotations

import numpy as np
from replay_graphs import Graph

from backends.numba._replay._layout import LANE, leaf_slots, unit_terms
from backends.numba._replay._program import NO_NODE, Units
from spec.capture import CapturedGraph, TracedGraph


def captured_graph() -> tuple[CapturedGraph, dict[str, int]]:
    # Leaves made in an order unlike the slots': constant, target 1, input (1, 0), the parameter, ...
    g = Graph()
    node = {}
    for name in ["c", "t1", "x10", "w", "x00", "t0", "unused_w_slot_keeper"]:
        node[name] = g.leaf()
    root = g.mul(
        g.mul(g.mul(node["w"], node["x00"]), g.mul(node["x10"], node["c"])), g.mul(node["t0"], node["t1"])
    )
    op, a, b, const = g.arrays()
    graph = TracedGraph(
        op,
        a,
        b,
        const,
        np.arange(len(op), dtype=np.float64),
        root,
        np.empty(0, np.int64),
        np.empty(0, np.int64),
    )
    captured = CapturedGraph(
        graph,
        parameters=np.array([-1, node["w"]], np.int64),  # parameter 0 is unused
        inputs=np.array([[node["x00"]], [node["x10"]]], np.int64),
        targets=np.array([node["t0"], node["t1"]], np.int64),
        shape=(2, 1),
        target_shape=(2,),
    )
    return captured, node


def test_leaves_take_parameter_input_target_then_constant_slots() -> None:
    captured, node = captured_graph()
    slot_of, one = leaf_slots(captured)
    slots = {name: int(slot_of[i]) for name, i in node.items()}
    # P = 2 (slot 0 stays for the unused parameter), inputs 2..3, targets 4..5, constants from 6, ONE last
    assert slots == {"w": 1, "x00": 2, "x10": 3, "t0": 4, "t1": 5, "c": 6, "unused_w_slot_keeper": 7}
    assert one == 8
    assert (slot_of[len(node) :] == -1).all(), "interior nodes get their slots from the schedule"


def test_terms_become_slot_pairs_in_schedule_order_with_one_for_no_node() -> None:
    ta = np.array([0, 1, 2], np.int32)
    tc = np.array([NO_NODE, 0, 1], np.int32)
    pusher = np.array([7, 8, 9], np.int32)
    first = np.array([0, 1], np.int64)
    n_terms = np.array([1, 2], np.int64)
    slots = np.array([5, 6, 4], np.int64)
    units = Units.single(2)
    terms, pushers, pusher_at = unit_terms(
        ta, tc, pusher, first, n_terms, *units, np.array([1, 0]), slots, np.zeros(3, np.bool_), 99
    )
    assert terms.tolist() == [[6, 5], [4, 6], [5, 99]] and pushers.tolist() == [8, 9, 7]
    assert pusher_at.tolist() == [0, 1, 2]


def test_a_lane_unit_has_sample_zeros_places_and_every_samples_pushers() -> None:
    # fused nodes 0 and 1: the same product w * x_s for samples 0 and 1 (traced nodes 0 = w, 1, 2 = x_s)
    ta = np.array([0, 0], np.int32)
    tc = np.array([1, 2], np.int32)
    pusher = np.array([3, 4], np.int32)
    first = np.array([0, 1], np.int64)
    n_terms = np.array([1, 1], np.int64)
    units = Units(np.array([0]), np.array([2]), np.array([0]), np.array([0, 1]))
    slots = np.array([0, 1, 2], np.int64)
    per_sample = np.array([False, True, True])  # sample 0's input x_0 (and x_1, which no term of it reads)
    terms, pushers, pusher_at = unit_terms(
        ta, tc, pusher, first, n_terms, *units, np.array([0]), slots, per_sample, 9
    )
    assert terms.tolist() == [[0, 1 | LANE]] and pushers.tolist() == [3, 4] and pusher_at.tolist() == [0]
