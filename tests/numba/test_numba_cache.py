"""Numba's cache as the backend uses it: kernels compiled at first use, the locator and its
stamps, the visible wait, the warm-up command."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numba
import pytest
from numba.core import compiler, ir
from numba.core.analysis import dead_branch_prune

from backends.numba import MLP, _compiling, _jit, _lowering, compile_step, svm_loss
from backends.numba._replay import _kernels as _replay_kernels
from spec import SGD
from spec.ops import OpCode

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


def _write_package(root: Path, modules: dict[str, str]) -> None:
    for name, source in modules.items():
        path = root.joinpath(*name.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)


def test_a_stamp_covers_its_module_and_the_modules_it_imports_through_others(tmp_path: Path) -> None:
    _write_package(
        tmp_path,
        {
            "pkg.__init__": "from pkg import c\n",
            "pkg.a": "x = 1\n",
            "pkg.b": "from pkg.a import x\n",
            "pkg.c": "import numpy\n",
            "pkg.d": "from pkg import b\n",
            "pkg.e": "import pkg.d\n",
            "pkg.sub.__init__": "",
            "pkg.sub.f": "from pkg.c import numpy\n",
        },
    )
    files = {name: tmp_path / "pkg" / f"{name}.py" for name in ["__init__", "a", "b", "c", "d", "e", "sub/f"]}

    def stamps() -> dict[str, str]:
        return {name: _jit.source_stamp(path, tmp_path, ("pkg",)) for name, path in files.items()}

    before = stamps()
    files["a"].write_text("x = 2\n")
    after = stamps()
    assert {name for name in files if before[name] != after[name]} == {"a", "b", "d", "e"}
    files["c"].write_text("import math\n")
    again = stamps()
    assert {name for name in files if after[name] != again[name]} == {"__init__", "c", "sub/f"}


_COMPILED_MODULES = """
import collections, json
from numba.core import event
compiled = collections.Counter()
class Count(event.Listener):
    def on_start(self, ev):
        compiled[ev.data["dispatcher"].py_func.__module__] += 1
    def on_end(self, ev):
        pass
with event.install_listener("numba:compile", Count()):
    from backends.numba import _lowering
    from backends.numba._replay import _plan, _schedule
    for kernel in (_plan._plan_folds, _schedule.heights, _lowering.lanes_forward):
        kernel.load()
print(json.dumps({m: n for m, n in compiled.items() if m.startswith("backends.")}))
"""


def test_an_edit_recompiles_exactly_the_kernels_whose_modules_import_it(tmp_path: Path) -> None:
    for package in ("backends", "spec"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "NUMBA_CACHE_DIR": str(tmp_path / "cache"),
        "GRADSPEC_QUIET": "1",
    }

    def compiled_modules() -> set[str]:
        run = subprocess.run(
            [sys.executable, "-c", _COMPILED_MODULES], capture_output=True, text=True, env=env, cwd=tmp_path
        )
        assert run.returncode == 0, run.stderr
        return set(json.loads(run.stdout.splitlines()[-1]))

    plan, schedule, lowering = (
        "backends.numba._replay._plan",
        "backends.numba._replay._schedule",
        "backends.numba._lowering",
    )
    assert {plan, schedule, lowering} <= compiled_modules()
    assert compiled_modules() == set()
    for edited, recompiled in [
        ("backends/numba/_replay/_plan.py", {plan}),
        ("backends/numba/_replay/_program.py", {plan}),  # _plan imports _program; _schedule does not
        ("spec/ops.py", {plan, lowering}),
        ("backends/numba/_jit.py", {plan, schedule, lowering}),
    ]:
        with open(tmp_path / edited, "a") as source:
            source.write("\n# edited\n")
        assert compiled_modules() == recompiled, edited


def test_a_kernel_compiles_its_declared_signature_and_no_other() -> None:
    add = int(OpCode.ADD)
    assert _lowering.forward(add, 1.0, 2.0, 0.0) == 3.0
    assert _lowering.forward(add, 1, 2, 0) == 3.0  # Python ints convert to the declared float64
    assert len(_lowering.forward.signatures) == 1


def _kernels_typed_after_pruning(function: Any) -> set[str]:
    """The globals ``function`` still reads once Numba has pruned its branches on constants,
    as it does before typing: the kernels it calls, which compile with it."""
    func_ir = compiler.run_frontend(function)
    dead_branch_prune(func_ir, called_args=[None] * func_ir.arg_count)
    return {
        statement.value.name
        for block in func_ir.blocks.values()
        for statement in block.body
        if isinstance(statement, ir.Assign) and isinstance(statement.value, ir.Global)
    }


@pytest.mark.parametrize(
    "kernel", [_replay_kernels.forward, _replay_kernels.backward], ids=lambda k: k.__name__
)
def test_a_one_thread_step_never_types_a_threaded_kernel(kernel: Any) -> None:
    threaded = {k.py_func.__name__ for k in _jit.KERNELS if k.targetoptions.get("parallel")}
    assert not _kernels_typed_after_pruning(kernel.py_func) & threaded
    in_variant = _jit.variant(kernel.py_func, "in_variant", THREADED=True)
    assert _kernels_typed_after_pruning(in_variant) & threaded  # what the one-thread kernel leaves out


def test_a_step_on_two_threads_runs_the_threaded_kernels() -> None:
    x, y = [[0.5, -1.0], [1.5, 0.25]], [1.0, -1.0]
    model = MLP(2, [4, 1], seed=0)
    step = compile_step(
        model, lambda m, x, y: svm_loss([m(r) for r in x], y), x, y, SGD(model.parameters(), 0.1), threads=2
    )
    step(x, y)
    assert step._run is _replay_kernels.run_threaded() and step._run is not _replay_kernels.run
