"""The one way this backend compiles a kernel, and a cache that never serves stale kernels.

Every ``@njit`` here shares the options of :func:`jit`. A kernel compiles (or loads from
Numba's cache) at its first call, so a process pays only for the kernels it runs.

Numba keys its on-disk cache by the kernel's own file, but a kernel's machine code also
holds the kernels it calls from other modules (the replay's kernels call the op lowering of
:mod:`backends.numba._lowering`) and the constants it reads from them (Numba freezes the op
codes of ``spec/ops.py`` into it). So a kernel's stamp here covers its module and every
first-party module that module imports, directly or through others (:func:`source_stamp`):
an edit recompiles the kernels that can see it, and no others.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
import types
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

import numba
from numba.core import caching
from numba.core.compiler_lock import global_compiler_lock
from numba.core.dispatcher import Dispatcher
from numba.core.registry import CPUDispatcher

from backends.numba._compiling import announced

__all__ = ["KERNELS", "Kernel", "jit", "jit_inline", "jit_threaded", "source_stamp", "variant"]

_P = ParamSpec("_P")
_R = TypeVar("_R")
_R_co = TypeVar("_R_co", covariant=True)

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent.parent
#: the packages whose modules a stamp follows: this backend's and the spec its kernels read
_FIRST_PARTY = ("backends.numba", "spec")


def _module_file(root: Path, module: str) -> Path | None:
    path = root.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _import_statements(source: bytes) -> tuple[tuple[str | None, tuple[str, ...]], ...]:
    """Each import statement of a module's ``source``: the ``from`` module (None for a plain
    ``import``) and the names it imports; parsed once per text, as every stamp reads the
    modules it shares with the others."""
    statements: list[tuple[str | None, tuple[str, ...]]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            statements.append((None, tuple(alias.name for alias in node.names)))
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            statements.append((node.module, tuple(alias.name for alias in node.names)))
    return tuple(statements)


def _imported_modules(root: Path, path: Path, packages: tuple[str, ...]) -> set[Path]:
    """The files of the modules of ``packages`` that ``path`` imports by name. A package's
    ``__init__`` counts only when imported as such (``from backends.numba import _kernels``
    names the module ``_kernels``): no kernel reads what a package's ``__init__`` imports."""
    found: set[Path] = set()
    for module, imported in _import_statements(path.read_bytes()):
        if module is None:
            names = list(imported)
        else:
            names = [
                f"{module}.{name}" if _module_file(root, f"{module}.{name}") else module for name in imported
            ]
        for name in names:
            if any(name == package or name.startswith(package + ".") for package in packages):
                module_file = _module_file(root, name)
                if module_file is not None:
                    found.add(module_file.resolve())
    return found


def source_stamp(path: Path, root: Path = _ROOT, packages: tuple[str, ...] = _FIRST_PARTY) -> str:
    """A hash of the module at ``path`` and of every module of ``packages`` it imports, directly
    or through another (under ``root``): what a kernel defined in ``path`` can have compiled in."""
    seen: set[Path] = set()
    pending = [path.resolve()]
    while pending:
        module = pending.pop()
        if module not in seen:
            seen.add(module)
            pending.extend(_imported_modules(root, module, packages) - seen)
    digest = hashlib.sha256()
    for module in sorted(seen):
        digest.update(str(module.relative_to(root)).encode() + b"\0" + module.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.cache
def _stamp_of(py_file: str) -> str:
    return source_stamp(Path(py_file))


if TYPE_CHECKING:

    class _CacheLocator(caching._CacheLocator):
        # the types of the untyped methods of Numba's that this backend's locator calls
        def ensure_cache_path(self) -> None: ...
        @classmethod
        def get_suitable_cache_subpath(cls, py_file: str) -> str: ...

else:
    _CacheLocator = caching._CacheLocator


class _BackendCacheLocator(_CacheLocator):
    """Numba's cache locator for this backend's files, stamped by :func:`source_stamp`."""

    def __init__(self, py_func: Any, py_file: str) -> None:
        self._py_file = py_file  # Numba's "cannot cache" warning reads it
        self._lineno = py_func.__code__.co_firstlineno
        base = numba.config.CACHE_DIR or str(_HERE / "__pycache__")
        self._cache_path = os.path.join(base, self.get_suitable_cache_subpath(py_file))

    def get_cache_path(self) -> str:
        return self._cache_path

    def get_source_stamp(self) -> str:
        return _stamp_of(self._py_file)

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


#: Numba's cache implementation: CacheImpl, which older Numbas name _CacheImpl
_CACHE_IMPL: Any = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
_LOCATORS: list[Any] = _CACHE_IMPL._locator_classes
if _BackendCacheLocator not in _LOCATORS:
    _LOCATORS.insert(0, _BackendCacheLocator)


if TYPE_CHECKING:

    class _CPUDispatcher(CPUDispatcher):
        # what Numba's type stubs leave out of its dispatcher
        def _compile_for_args(self, *args: Any, **kws: Any) -> Any: ...

else:
    _CPUDispatcher = CPUDispatcher


class _FirstUse(_CPUDispatcher):
    """A dispatcher of one declared signature, compiled (or loaded from the cache) when first
    called, from Python or from a kernel being compiled, rather than when its module is
    imported: a process pays only for the kernels it runs. Then it compiles nothing more, as
    an eager ``@njit(signature)`` does, so a call with other types converts or fails rather than
    compile a second specialisation."""

    _declared: str | None = None

    def load(self) -> Callable[..., Any]:
        """Compile the declared signature, or load it from the cache, unless done already."""
        with global_compiler_lock:  # two threads' first calls: one compiles, the other waits
            if self._declared is not None:
                with announced(self.py_func.__qualname__ + " and the kernels it calls"):
                    self.compile(self._declared)
                self._declared = None
                self.disable_compile()
        return self.get_overload(self.signatures[0])

    def get_call_template(self, args: Any, kws: Any) -> Any:
        self.load()
        return super().get_call_template(args, kws)

    def _compile_for_args(self, *args: Any, **kws: Any) -> Any:
        if self._declared is None:
            return super()._compile_for_args(*args, **kws)
        return self.load()  # its wrapper converts the call's arguments


class Kernel(Protocol[_P, _R_co]):
    """What :func:`jit` and :func:`jit_threaded` make of a Python function of parameters ``_P``
    returning ``_R_co``: a Numba dispatcher (a :class:`_FirstUse`), called as the function is."""

    @property
    def py_func(self) -> Callable[_P, _R_co]: ...

    def __call__(self, *args: Any, **kwargs: Any) -> _R_co:
        """Numba converts the arguments to the declared signature's types, or refuses them."""
        ...

    def load(self) -> Callable[..., Any]: ...


#: every kernel of :func:`jit` and :func:`jit_threaded` made so far, in the order made
KERNELS: list[_FirstUse] = []


def _on_first_use(signature: str, **options: Any) -> Callable[[Callable[_P, _R]], Kernel[_P, _R]]:
    def decorate(function: Callable[_P, _R]) -> Kernel[_P, _R]:
        dispatcher = _FirstUse(
            function, targetoptions={"nopython": True, "error_model": "numpy", "nogil": True, **options}
        )
        dispatcher._declared = signature
        dispatcher.enable_caching()
        KERNELS.append(dispatcher)
        return dispatcher

    return decorate


def jit(signature: str) -> Callable[[Callable[_P, _R]], Kernel[_P, _R]]:
    """Compile for ``signature`` at the first call: cached on disk, IEEE float semantics, GIL released.

    ``error_model="numpy"``: a division by zero gives inf/nan instead of raising,
    as the spec asks of backward passes (gradients are plain IEEE floats).
    """
    return _on_first_use(signature)


def jit_threaded(signature: str) -> Callable[[Callable[_P, _R]], Kernel[_P, _R]]:
    """:func:`jit`, and its ``prange`` loops run on Numba's threads (``parallel=True``)."""
    return _on_first_use(signature, parallel=True)


def jit_inline(function: Callable[_P, _R]) -> Dispatcher[Callable[_P, _R]]:
    """:func:`jit`'s options, compiled into each caller for the types it passes (a function
    among them, so that the call inside the loop is direct and the loop vectorises)."""
    return numba.njit(error_model="numpy", inline="always")(function)


def variant(function: Any, name: str, **names: Any) -> Any:
    """A copy of ``function``'s Python source under another ``name`` that reads ``names`` in
    place of its module's globals: a second kernel from one source. Numba prunes a branch on
    a global constant before typing, so what a ``False`` switches off is never compiled.
    The name keeps the two apart in the cache."""
    copy = types.FunctionType(
        function.__code__,
        {**function.__globals__, **names},
        name,
        function.__defaults__,
        function.__closure__,
    )
    copy.__qualname__, copy.__module__, copy.__doc__ = name, function.__module__, function.__doc__
    return copy
