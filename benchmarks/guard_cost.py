"""What a compiled step's guard costs (spec.guards), measured on the moons step.

``python -m benchmarks.guard_cost`` times the moons compiled step on the Numba backend
(micrograd's demo: MLP(2, [16, 16, 1]), 100 samples, SVM loss, L2, SGD with a schedule)
with its guard, and with the guard's check replaced by one that always holds (a step
without guards), side by side in one process and in alternating rounds, so that a shared
machine's drift falls on both alike. It prints the median microseconds of each and their
ratio. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any
from unittest import mock

__all__ = ["main"]


def _rounds(
    modes: dict[str, Callable[[], AbstractContextManager[Any]]],
    run: Callable[[], None],
    rounds: int,
    calls: int,
) -> dict[str, float]:
    """Median microseconds a call of ``run`` under each mode, the modes taking turns each round."""
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(rounds):
        for mode, context in modes.items():
            with context():
                start = time.perf_counter()
                for _ in range(calls):
                    run()
                times[mode].append((time.perf_counter() - start) / calls * 1e6)
    return {mode: statistics.median(values) for mode, values in times.items()}


def _report(what: str, medians: dict[str, float]) -> None:
    (base, base_us), (other, other_us) = medians.items()
    print(f"{what}: {base} {base_us:.2f} us, {other} {other_us:.2f} us, ratio {base_us / other_us:.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args(argv)

    from backends import numba as backend
    from benchmarks.datasets import moons
    from spec import SGD, compile_step, l2_penalty, linear_decay, svm_loss
    from spec.guards import Guard

    X, y = moons()

    def loss_fn(model: Any, inputs: Any, targets: Any) -> Any:
        return svm_loss([model(x) for x in inputs], targets) + l2_penalty(model.parameters(), 1e-4)

    model = backend.MLP(2, [16, 16, 1], seed=1337)
    optimizer = SGD(model.parameters(), lr=linear_decay(1.0, 0.1, 10**9))
    step = compile_step(model, loss_fn, X, y, optimizer)
    step(X, y)  # warm: kernels loaded, state made
    unguarded = lambda: mock.patch.object(Guard, "changed", lambda self: None)
    medians = _rounds(
        {"guarded": nullcontext, "unguarded": unguarded}, lambda: step(X, y), args.rounds, args.calls
    )
    _report("moons compiled step", medians)


if __name__ == "__main__":
    main()
