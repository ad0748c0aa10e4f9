"""Pass fusion (backends.numba._replay._fusion) on hand-made graphs: which nodes fold, and the terms."""

from __future__ import annotations

import numpy as np
from replay_graphs import Graph, neuron

from backends.numba._replay._fusion import absorbed_nodes, fuse, product_modes
from backends.numba._replay._program import DOT, DOT_PLAIN, NO_NODE, SUM
from backends.numba._replay._requires_grad import consumers_and_needs


def fused(
    g: Graph, root: int, parameters: list[int]
) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray]:
    op, a, b, const = g.arrays()
    count, needs = consumers_and_needs(op, a, b, g.flags(parameters), root)
    absorbed = absorbed_nodes(op, a, b, count, root)
    return absorbed, fuse(op, a, b, const, absorbed), needs


def test_a_neuron_is_one_dot_node_with_the_bias_first_and_eager_pushers() -> None:
    g = Graph()
    bias, w0, x0, w1, x1 = (g.leaf() for _ in range(5))
    root = neuron(g, [w0, w1], [x0, x1], bias)  # m0 = 5, s0 = 6, m1 = 7, root = 8
    absorbed, (tops, kind, n_terms, first, ta, tc, pusher, _), _ = fused(g, root, [bias, w0, w1])
    assert np.flatnonzero(absorbed).tolist() == [5, 6, 7]
    assert tops.tolist() == [root] and kind.tolist() == [DOT_PLAIN] and n_terms.tolist() == [3]
    assert first.tolist() == [0]
    assert ta.tolist() == [bias, w0, w1] and tc.tolist() == [NO_NODE, x0, x1]
    # the bias is pushed by the first ADD, each product by its own MUL
    assert pusher.tolist() == [6, 5, 7]


def test_products_only_make_a_dot_and_plain_terms_a_sum() -> None:
    g = Graph()
    w0, x0, w1, x1 = (g.leaf() for _ in range(4))
    dot = g.add(g.mul(w0, x0), g.mul(w1, x1))
    t0, t1, t2 = g.leaf(), g.leaf(), g.leaf()
    first_add = g.add(t0, t1)
    total = g.add(first_add, t2)
    root = g.mul(dot, total)
    _, (tops, kind, n_terms, _, ta, tc, pusher, _), _ = fused(g, root, [w0, w1])
    assert tops.tolist() == [dot, total, root]
    assert kind.tolist() == [DOT, SUM, DOT] and n_terms.tolist() == [2, 3, 1]
    assert ta.tolist()[2:5] == [t0, t1, t2] and tc.tolist()[2:5] == [NO_NODE] * 3
    assert pusher.tolist()[2:5] == [first_add, first_add, total]
    assert (ta[5], tc[5]) == (dot, total)  # a lone product is a one-term DOT


def test_a_shared_product_or_partial_sum_stays_a_node_of_its_own() -> None:
    g = Graph()
    w, x = g.leaf(), g.leaf()
    product = g.mul(w, x)
    partial = g.add(product, x)
    root = g.add(g.add(partial, product), partial)  # both read twice
    absorbed, (tops, *_), _ = fused(g, root, [w])
    assert not absorbed[product] and not absorbed[partial]
    assert product in tops.tolist() and partial in tops.tolist()


def test_a_sum_on_the_right_is_a_term_not_a_chain() -> None:
    # t0 + (t1 + t2): folding the right sum into the chain would change the order of the additions
    g = Graph()
    t0, t1, t2 = g.leaf(), g.leaf(), g.leaf()
    right = g.add(t1, t2)
    root = g.add(t0, right)
    absorbed, (tops, kind, n_terms, *_), _ = fused(g, root, [t0, t1, t2])
    assert not absorbed[right] and tops.tolist() == [right, root] and n_terms.tolist() == [2, 2]
    assert kind.tolist() == [SUM, SUM]


def test_product_modes_say_which_factors_need_a_grad() -> None:
    g = Graph()
    w0, x0, w1, x1 = (g.leaf() for _ in range(4))
    first_only = g.add(g.mul(w0, x0), g.mul(w1, x1))
    both = g.add(g.mul(w0, w1), g.mul(w1, w0))
    mixed = g.add(g.mul(w0, x0), g.mul(w1, w0))
    root = g.mul(g.mul(first_only, both), mixed)  # a product absorbs neither factor
    _, (tops, kind, n_terms, first, ta, tc, _, _), needs = fused(g, root, [w0, w1])
    modes = product_modes(kind, n_terms, first, ta, tc, needs)
    mode_of = dict(zip(tops.tolist(), modes.tolist(), strict=True))
    assert (mode_of[first_only], mode_of[both], mode_of[mixed]) == (0, 1, 2)
