"""``python -m backends.numba warmup``: compile every kernel of the Numba backend into Numba's cache.

A fresh install (or an edited backend source) compiles the kernels at first use, about a
minute of CPU on a small machine. This pays it up front, printing a line per phase: the
eager kernels at import, then the compiled step's, on one thread and on two. The cache is
``$NUMBA_CACHE_DIR`` where set, else ``__pycache__`` beside the sources.
"""

from __future__ import annotations

import argparse
import sys


def warmup() -> None:
    """Import the backend, and capture and run one small compiled step on one and two threads."""
    import numba

    from backends.numba import MLP, compile_step, svm_loss
    from spec import SGD

    def loss_fn(model: MLP, x: list[list[float]], y: list[float]) -> object:
        return svm_loss([model(row) for row in x], y)

    inputs = [[0.5, -1.0], [1.5, 0.25], [-0.75, 2.0], [0.0, -0.5], [1.0, 1.0]]
    targets = [1.0, -1.0, 1.0, -1.0, 1.0]
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        model = MLP(2, [4, 4, 1], seed=0)
        step = compile_step(model, loss_fn, inputs, targets, SGD(model.parameters(), 0.1), threads=threads)
        step(inputs, targets)
    where = numba.config.CACHE_DIR or "__pycache__ beside the backend's sources"
    print(f"gradspec: every kernel of the Numba backend is compiled and cached ({where})")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m backends.numba", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["warmup"], help="warmup: compile every kernel into Numba's cache")
    parser.parse_args(argv)
    warmup()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
