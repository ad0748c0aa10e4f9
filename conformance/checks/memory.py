"""Graphs a program keeps survive whatever the backend does to reclaim the ones it drops.

A backend that manages memory itself (the Numba tape compacts its arrays and renumbers the
nodes that live handles need) must leave every kept graph exactly as it was: the same
data, grads, ops and operands, handle for handle, through many rounds of reclaiming.
"""

from __future__ import annotations

import threading
from typing import Any

from conformance._registry import checks_in
from conformance.gradcheck import Exact
from spec import Backend

check = checks_in("memory", ordered=True)

#: nodes of garbage made and dropped per round; enough for a tape to compact in most rounds
GARBAGE_PER_ROUND = 70_000
ROUNDS = 5


def _describe(root: Any) -> list[tuple[str, int, int, tuple[int, ...]]]:
    """Every node of ``root``'s graph, depth first: op, data and grad bits, and which nodes are its operands."""
    order: dict[int, int] = {}
    nodes = []
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in order:
            continue
        order[id(node)] = len(nodes)
        nodes.append(node)
        stack.extend(reversed(node.children))
    return [(n.op, Exact(n.data), Exact(n.grad), tuple(order[id(c)] for c in n.children)) for n in nodes]


def _kept_graph_survives(backend: Backend) -> None:
    first = backend.Value(0.75, label="first")  # the oldest node: a tape renumbers it 0
    model = backend.MLP(2, [4, 1], seed=9)
    x = [backend.Value(0.5), backend.Value(-1.5)]
    out = (model(x) * first + first * model(x).tanh()) ** 2
    middle = out.children[0]  # an interior node the program holds on to
    out.backward()
    before, middle_before = _describe(out), _describe(middle)
    for k in range(ROUNDS):
        garbage = backend.Value(float(k))
        for _ in range(GARBAGE_PER_ROUND // 2):
            garbage = garbage * 1.0 + 0.0
        del garbage
        assert _describe(out) == before, f"after {k + 1} rounds of garbage the kept graph changed"
        assert _describe(middle) == middle_before, f"after {k + 1} rounds an interior handle changed"
    out.zero_grad()
    out.backward()
    assert _describe(out) == before, "backward over the kept graph, after the garbage, gives other grads"
    again = out.children[0].children[1] + first * 2.0  # and it still combines with new nodes
    assert again.children[0] is out.children[0].children[1] and again.data == again.children[0].data + 1.5


@check
def check_kept_graphs_survive_heavy_garbage(backend: Backend) -> None:
    # In a new thread: a backend with a tape per thread starts an empty one, so `first` is its node 0.
    failure: list[BaseException] = []

    def run() -> None:
        try:
            _kept_graph_survives(backend)
        except BaseException as error:  # handed to the calling thread
            failure.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
