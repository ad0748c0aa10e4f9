"""Pass requires-grad (backends.numba._replay._requires_grad) on hand-made graphs."""

from __future__ import annotations

from replay_graphs import Graph

from backends.numba._replay._requires_grad import consumers_and_needs


def test_a_node_needs_a_grad_when_a_parameter_is_below_and_the_loss_above() -> None:
    g = Graph()
    w, x, c = g.leaf(), g.leaf(), g.leaf()
    product = g.mul(w, x)  # parameter below, used: needs
    scaled = g.mul(x, c)  # no parameter below
    unused = g.mul(w, c)  # parameter below, but the loss never reads it
    root = g.add(product, scaled)
    op, a, b, _ = g.arrays()
    count, needs = consumers_and_needs(op, a, b, g.flags([w]), root)
    assert needs.tolist() == [True, False, False, True, False, False, True]
    assert not needs[unused] and not needs[scaled]
    # w: the product and the unused node; x: two products; c: two; the root: none.
    assert count.tolist() == [2, 2, 2, 1, 1, 0, 0]


def test_consumer_counts_stop_at_two() -> None:
    g = Graph()
    w = g.leaf()
    total = g.add(w, w)
    total = g.add(total, w)
    root = g.add(total, w)
    op, a, b, _ = g.arrays()
    count, needs = consumers_and_needs(op, a, b, g.flags([w]), root)
    assert count[w] == 2 and count[root] == 0 and needs.all()


def test_the_second_operand_brings_the_need_too() -> None:
    g = Graph()
    x, w = g.leaf(), g.leaf()
    root = g.mul(x, w)
    op, a, b, _ = g.arrays()
    _, needs = consumers_and_needs(op, a, b, g.flags([w]), root)
    assert needs.tolist() == [False, True, True]
