"""Deep and wide graphs: a million nodes backpropagate without recursion or quadratic steps."""

from __future__ import annotations

import time

from backends.numba import Value

MILLION = 1_000_000
#: Far above the linear kernels' cost (milliseconds), far below a quadratic one's (hours).
BACKWARD_SECONDS = 2.0


def test_a_million_node_chain(in_new_thread) -> None:  # type: ignore[no-untyped-def]
    def chain() -> None:
        x = Value(0.5)
        step = Value(1e-7)
        node = x
        for _ in range(MILLION - 2):
            node = node + step
        assert len(node._t) == MILLION
        start = time.perf_counter()
        node.backward()
        elapsed = time.perf_counter() - start
        assert x.grad == 1.0 and step.grad == float(MILLION - 2)
        assert abs(node.data - (0.5 + 1e-7 * (MILLION - 2))) < 1e-9
        assert elapsed < BACKWARD_SECONDS, f"backward over a 1M chain took {elapsed:.2f} s"
        node.backward()
        assert x.grad == 2.0, "leaves accumulate"

    in_new_thread(chain)


def test_a_million_term_sum(in_new_thread) -> None:  # type: ignore[no-untyped-def]
    def wide() -> None:
        leaves = [Value(float(i % 7)) for i in range(MILLION)]
        total = sum(leaves)
        start = time.perf_counter()
        total.backward()
        elapsed = time.perf_counter() - start
        assert total.data == float(sum(i % 7 for i in range(MILLION)))
        assert all(leaf.grad == 1.0 for leaf in leaves), "every term of a sum has gradient 1"
        assert elapsed < BACKWARD_SECONDS, f"backward over a 1M-term sum took {elapsed:.2f} s"
        total.zero_grad()
        assert leaves[0].grad == 0.0 and leaves[-1].grad == 0.0

    in_new_thread(wide)


def test_a_deep_chain_of_unary_ops_and_squares(in_new_thread) -> None:  # type: ignore[no-untyped-def]
    def chain() -> None:
        x = Value(0.3)
        node = x
        for _ in range(200_000):
            node = (node * node + 0.1).tanh()
        node.backward()
        assert 0.0 < node.data < 1.0 and abs(x.grad) < 1.0

    in_new_thread(chain)
