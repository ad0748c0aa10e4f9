"""Engine microbenchmarks: building graphs (ops per second) and backward over a long chain.

- *construction*: ``x = x * a + b`` repeated: two nodes per line, no backward.
- *chain backward*: ``node = node + step`` repeated to a chain of ``n`` nodes, then one
  ``backward()`` (only backward is timed).

Run on gradspec's backends and on micrograd, whose recursive topological sort cannot
walk a chain deeper than Python's recursion limit.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

__all__ = ["VALUE_TYPES", "chain_backward", "construction"]


def _micrograd_value() -> type:
    from micrograd.engine import Value  # type: ignore[import-untyped]

    return Value  # type: ignore[no-any-return]


def _backend_value(name: str) -> Callable[[], type]:
    def load() -> type:
        from spec import load_backend

        return load_backend(name).Value

    return load


#: system -> a function returning its Value class
VALUE_TYPES: dict[str, Callable[[], type]] = {
    "micrograd": _micrograd_value,
    "gradspec python": _backend_value("python"),
    "gradspec numba": _backend_value("numba"),
}


def construction(value_type: type, nodes: int) -> dict[str, Any]:
    """Build ``nodes`` nodes of ``x = x * a + b``; ops per second."""
    x, a, b = value_type(0.5), value_type(1.0000001), value_type(1e-7)
    start = time.perf_counter()
    for _ in range(nodes // 2):
        x = x * a + b
    seconds = time.perf_counter() - start
    del x
    gc.collect()
    return {"nodes": nodes, "seconds": seconds, "ops_per_s": nodes / seconds}


def chain_backward(value_type: type, nodes: int) -> dict[str, Any]:
    """Backward over a chain of ``nodes`` additions; seconds and nodes per second."""
    x, step = value_type(0.5), value_type(1e-7)
    node = x
    for _ in range(nodes - 2):
        node = node + step
    start = time.perf_counter()
    try:
        node.backward()
    except RecursionError:
        return {"nodes": nodes, "error": "RecursionError: its topological sort recurses once per node"}
    finally:
        seconds = time.perf_counter() - start
        del node
        gc.collect()
    return {"nodes": nodes, "seconds": seconds, "nodes_per_s": nodes / seconds, "grad_ok": x.grad == 1.0}
