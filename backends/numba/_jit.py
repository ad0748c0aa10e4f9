"""The one way this backend compiles a kernel, and a cache that never serves stale kernels.

Every ``@njit`` here shares the options of :func:`jit`. Its on-disk cache is keyed by
*all* of this backend's source files (its subpackages' too) and by the op table (``spec/ops.py``): a kernel calls
functions of other modules (the tape and replay kernels call the op lowering of
:mod:`backends.numba._lowering`) and Numba freezes the op codes it reads into its machine
code, while Numba's own cache key is only the kernel's file. So an edit to the lowering,
or a renumbered op, recompiles every kernel rather than run the old ones.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numba
from numba.core import caching

import spec.ops

__all__ = ["jit", "jit_inline", "jit_lazy", "jit_threaded"]

_HERE = Path(__file__).resolve().parent
_SOURCES = hashlib.sha256(
    b"".join(path.read_bytes() for path in [*sorted(_HERE.rglob("*.py")), Path(spec.ops.__file__)])
).hexdigest()


class _BackendCacheLocator(caching._CacheLocator):  # type: ignore[misc]
    """Numba's cache locator for this backend's files, stamped with every one of them."""

    def __init__(self, py_func: Any, py_file: str) -> None:
        self._py_file = py_file  # Numba's "cannot cache" warning reads it
        self._lineno = py_func.__code__.co_firstlineno
        base = numba.config.CACHE_DIR or str(_HERE / "__pycache__")
        self._cache_path = os.path.join(base, self.get_suitable_cache_subpath(py_file))

    def get_cache_path(self) -> str:
        return self._cache_path

    def get_source_stamp(self) -> str:
        return _SOURCES

    def get_disambiguator(self) -> str:
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func: Any, py_file: str) -> _BackendCacheLocator | None:
        if not Path(py_file).resolve().is_relative_to(_HERE):
            return None
        locator = cls(py_func, py_file)
        try:
            locator.ensure_cache_path()
        except OSError:
            return None
        return locator


_LOCATORS: list[Any] = (getattr(caching, "CacheImpl", None) or caching._CacheImpl)._locator_classes
if _BackendCacheLocator not in _LOCATORS:
    _LOCATORS.insert(0, _BackendCacheLocator)


def jit(signature: str) -> Any:
    """Compile eagerly for ``signature``: cached on disk, IEEE float semantics, GIL released.

    ``error_model="numpy"``: a division by zero gives inf/nan instead of raising,
    as the spec asks of backward passes (gradients are plain IEEE floats).
    """
    return numba.njit(signature, cache=True, error_model="numpy", nogil=True)


def jit_lazy(function: Any) -> Any:
    """:func:`jit`'s options, compiled (or loaded from the cache) at its first call, for the
    types of that call: for a kernel only some runs need, called with one set of types."""
    return numba.njit(cache=True, error_model="numpy", nogil=True)(function)


def jit_threaded(signature: str) -> Any:
    """:func:`jit`, and its ``prange`` loops run on Numba's threads (``parallel=True``)."""
    return numba.njit(signature, cache=True, error_model="numpy", nogil=True, parallel=True)


def jit_inline(function: Any) -> Any:
    """:func:`jit`'s options, compiled into each caller for the types it passes (a function
    among them, so that the call inside the loop is direct and the loop vectorises)."""
    return numba.njit(error_model="numpy", inline="always")(function)
