"""Determinism: one graph, built again with the same numbers, backpropagates to the same bits.

Checked first among the bit-for-bit checks, because every check that compares bits against
the eager loop or another build depends on it: an engine that visits the graph in a
different order each time (micrograd's topological sort walks a set of Python objects,
whose order follows their ids) adds each parameter's gradient terms in another order, so
its bits change from run to run. Such a backend fails here once, saying so; the checks
registered ``ordered=True`` are then skipped with this reason instead of failing at random.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from conformance._registry import checks_in
from conformance.gradcheck import bits_differ
from spec import Backend

check = checks_in("determinism")

#: builds compared; an unordered walk differs between most pairs of builds
BUILDS = 4
_FOUND: dict[int, str | None] = {}


def _gradients(backend: Backend, seed: int) -> list[float]:
    """Leaf grads of a 3-16-16-1 tanh network's squared error over eight samples, by hand."""
    rng = random.Random(seed)
    sizes = [3, 16, 16, 1]
    layers = [
        [
            [backend.Value(rng.uniform(-1, 1) * 10.0 ** rng.randint(-3, 3)) for _ in range(nin + 1)]
            for _ in range(nout)
        ]
        for nin, nout in itertools.pairwise(sizes)
    ]
    total: Any = backend.Value(0.0)
    for _ in range(8):
        x: list[Any] = [rng.uniform(-2, 2) for _ in range(sizes[0])]
        for k, layer in enumerate(layers):
            sums = []
            for weights in layer:
                acc = weights[-1]
                for w, xi in zip(weights, x, strict=False):
                    acc = acc + w * xi
                sums.append(acc.tanh() if k < len(layers) - 1 else acc)
            x = sums
        total = total + (x[0] - rng.uniform(-1, 1)) ** 2
    total.backward()
    return [w.grad for layer in layers for weights in layer for w in weights]


def nondeterminism(backend: Backend) -> str | None:
    """Where two builds of one graph backpropagate to different bits (once per backend), or None."""
    key = id(backend)
    if key not in _FOUND:
        first = _gradients(backend, 5)
        _FOUND[key] = None
        for _ in range(BUILDS - 1):
            differ = bits_differ(_gradients(backend, 5), first, "parameter grad")
            if differ:
                _FOUND[key] = f"one graph built twice: {differ}"
                break
    return _FOUND[key]


@check
def check_backward_is_deterministic(backend: Backend) -> None:
    found = nondeterminism(backend)
    assert found is None, f"backward is not deterministic: {found}"
