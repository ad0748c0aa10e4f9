"""``python -m backends.numba warmup``: compile every kernel of the Numba backend into Numba's cache.

A fresh install (or an edited backend source) compiles each kernel at its first use: about
half a minute of CPU on a small machine for the first compiled step. This pays it all up
front, the kernels of a step on several threads too, printing a line while it compiles. The cache is
``$NUMBA_CACHE_DIR`` where set, else ``__pycache__`` beside the sources.
"""

from __future__ import annotations

import argparse
import sys


def warmup() -> None:
    """Import the backend and its replay, and compile (or load) every kernel they define,
    the threaded step's too."""
    import numba

    from backends.numba import _compiling, _jit

    with _compiling.announced("every kernel"):
        from backends.numba._replay import _kernels

        _kernels.run_threaded()
        for kernel in _jit.KERNELS:
            kernel.load()
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
