"""Numba's cache as the backend uses it: the locator, the visible wait, the warm-up command."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numba
import pytest

from backends.numba import _compiling, _jit

ROOT = Path(__file__).resolve().parents[2]


def test_an_uncacheable_kernel_of_the_backend_warns_instead_of_crashing() -> None:
    # A kernel that calls a ctypes function cannot be cached (its address is a dynamic global);
    # Numba says so in a warning that names the kernel's file, read off the backend's locator.
    cos = ctypes.CDLL(ctypes.util.find_library("m")).cos
    cos.restype, cos.argtypes = ctypes.c_double, [ctypes.c_double]
    namespace = {"numba": numba, "cos": cos}
    source = "@numba.njit(cache=True)\ndef calls_ctypes(x):\n    return cos(x)\n"
    exec(compile(source, str(_jit._HERE / "_kernels.py"), "exec"), namespace)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert namespace["calls_ctypes"](0.0) == 1.0
    assert any("Cannot cache compiled function" in str(w.message) for w in caught), caught


def test_a_compilation_is_announced_with_its_count_and_time(capsys: pytest.CaptureFixture[str]) -> None:
    with _compiling.announced("a test kernel"):
        numba.njit(lambda x: x + 1.5)(1.0)  # not cached: compiles in every process
    err = capsys.readouterr().err
    assert (
        err.startswith("gradspec: Numba is compiling a test kernel, once;") and " compilations in " in err
    ), err
    assert err.count("\n") == 1, err


def test_the_announcement_is_silenced_by_gradspec_quiet(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRADSPEC_QUIET", "1")
    with _compiling.announced("a test kernel"):
        numba.njit(lambda x: x + 2.5)(1.0)
    assert capsys.readouterr().err == ""


def test_warmup_compiles_everything_and_a_warm_import_says_nothing() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    warm = subprocess.run(
        [sys.executable, "-m", "backends.numba", "warmup"], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert (
        warm.returncode == 0 and "every kernel of the Numba backend is compiled and cached" in warm.stdout
    ), warm
    again = subprocess.run(
        [sys.executable, "-c", "import backends.numba"], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert again.returncode == 0 and again.stderr == "", again.stderr
