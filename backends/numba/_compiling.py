"""A visible wait: one line on stderr while Numba compiles this backend's kernels.

Numba compiles a kernel the first time a process needs it and finds no machine code for it
in its cache (a fresh install, an edited backend source, another Numba): tens of seconds on
a small machine, which would otherwise pass in silence. :func:`announced` writes, on the
first compilation inside it, that Numba is compiling, and on leaving how many kernels and
how long: one line for the first ``compile_step``, one for the first call of an eager kernel
(:mod:`backends.numba._jit` compiles each kernel at its first call).
Loading cached kernels prints nothing. ``GRADSPEC_QUIET=1`` silences it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from numba.core import event

__all__ = ["announced"]


class _Compilations(event.Listener):
    """Counts Numba's compilations, and announces the first."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0
        self.started: float | None = None

    def on_start(self, _event: Any) -> None:
        self.count += 1
        if self.started is None:
            self.started = time.perf_counter()
            sys.stderr.write(
                f"gradspec: Numba is compiling {self.what}, once; later runs load them from its cache ..."
            )
            sys.stderr.flush()

    def on_end(self, _event: Any) -> None:
        pass


_announcing = threading.local()


@contextmanager
def announced(what: str) -> Iterator[None]:
    """Within: say on stderr when Numba starts compiling ``what``, and how long it took; inside
    another announcement (a kernel compiled on first use during ``compile_step``), nothing more."""
    if os.environ.get("GRADSPEC_QUIET") or getattr(_announcing, "active", False):
        yield
        return
    compilations = _Compilations(what)
    _announcing.active = True
    try:
        with event.install_listener("numba:compile", compilations):
            yield
    finally:
        _announcing.active = False
        if compilations.started is not None:
            seconds = time.perf_counter() - compilations.started
            sys.stderr.write(f" done: {compilations.count} compilations in {seconds:.1f} s\n")
            sys.stderr.flush()
