"""Measurements that need a fresh process: compile cost (cold and cached Numba cache) and peak memory.

Each probe runs ``python -m benchmarks._probes KIND ...`` and reads one JSON line back.

- ``compile``: import the Numba backend, then ``compile_step`` on the moons demo (import of
  the replay kernels, the trace, the passes) and the first step, each timed, and the CPU
  seconds (user + sys, interpreter start-up included) to the import and to the first step,
  and Numba's compilation count. Run twice with one empty ``NUMBA_CACHE_DIR``: the first
  run compiles every kernel (*cold*), the second loads them from the cache (*cached*).
- ``jax_first_jit``: CPU seconds of a fresh process to JAX's first jitted moons step, the
  cold probe's reference (an error where JAX is not installed).
- ``memory WORKLOAD SYSTEM``: the resident set's peak over setting the system up (capture
  included) and three steps, above the resident set after the imports. The peak is reset
  through ``/proc/self/clear_refs`` (Linux); elsewhere it is the peak since start.
- ``capture WORKLOAD``: ``compile_step`` of the workload's model (an MLP or not) on the Numba
  backend alone, with its kernels already compiled: seconds, and the resident set's peak
  above that before it.
- ``captures WORKLOAD...``: ``capture`` for each workload (the benchmark's: every workload it
  trains), one process importing the Numba backend once and forking a fresh child for each
  capture, so no capture reuses memory another freed and the imports are paid once. The
  child's warm-up (a capture on four rows) touches what the capture needs before the
  baseline is taken. Without ``os.fork``, one process per workload.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["capture_probe", "capture_probes", "compile_probe", "memory_probe"]

_ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks._probes", *args],
        capture_output=True,
        text=True,
        cwd=_ROOT,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["failed"])[-1]}
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def compile_probe(cold: bool = True) -> dict[str, Any]:
    """``{"cold": {...}, "cached": {...}}``, seconds for import, compile_step and the first step.

    ``cold=False`` skips the cold run (Numba compiling every kernel: the longest probe) and
    measures with the cache this process uses.
    """
    if not cold:
        return {"cached": _run(["compile"])}
    with tempfile.TemporaryDirectory(prefix="gradspec-numba-cache-") as cache:
        env = {"NUMBA_CACHE_DIR": cache, "GRADSPEC_QUIET": "1"}
        cold_run, cached_run = _run(["compile"], env), _run(["compile"], env)
    return {"cold": cold_run, "cached": cached_run, "jax": _run(["jax_first_jit"])}


def memory_probe(workload: str, system: str, quick: bool) -> dict[str, Any]:
    """``{"peak_mb": ..., "baseline_mb": ...}`` for one system on one workload."""
    return _run(["memory", workload, system, "quick" if quick else "full"])


def capture_probe(workload: str, quick: bool) -> dict[str, Any]:
    """``{"capture_s": ..., "peak_mb": ...}``: compile_step of one workload on the Numba backend."""
    return _run(["capture", workload, "quick" if quick else "full"])


def capture_probes(workloads: list[str], quick: bool) -> dict[str, dict[str, Any]]:
    """:func:`capture_probe` of each workload, by name (``captures`` in the module docstring)."""
    if not hasattr(os, "fork"):
        return {name: capture_probe(name, quick) for name in workloads}
    found = _run(["captures", "quick" if quick else "full", *workloads])
    return {
        name: found.get(name, found if "error" in found else {"error": "no result"}) for name in workloads
    }


# --- the child side ----------------------------------------------------------------------------
def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def _cpu_s() -> float:
    """CPU seconds (user + sys) this process has used since it started, interpreter start-up included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child_compile() -> dict[str, Any]:
    start = time.perf_counter()
    from numba.core import event

    compilations = event.RecordingListener()
    with event.install_listener("numba:compile", compilations):
        import backends.numba as numba_backend
        from benchmarks._workloads import workload
        from spec import SGD, compile_step

        imported, import_cpu = time.perf_counter(), _cpu_s()
        w = workload("moons")
        model = numba_backend.MLP(2, [16, 16, 1], seed=w.seed)
        optimizer = SGD(model.parameters(), w.lr)
        before = time.perf_counter()
        step = compile_step(model, w.loss_fn, w.X, w.y, optimizer)
        compiled = time.perf_counter()
        step(w.X, w.y)
        first, first_cpu = time.perf_counter(), _cpu_s()
    return {
        "import_backend_s": imported - start,
        "compile_step_s": compiled - before,
        "first_step_s": first - compiled,
        # the measure: CPU seconds of the whole process (start-up included), which a
        # busy machine does not inflate as it does wall time
        "import_cpu_s": import_cpu,
        "to_first_step_cpu_s": first_cpu,
        "compilations": sum(1 for _, ev in compilations.buffer if ev.is_start),
    }


def _child_jax_first_jit() -> dict[str, Any]:
    """JAX's first jit of the moons step (benchmarks._systems' "jax"), as the cold probe's reference."""
    from benchmarks._systems import Unavailable, make_runner
    from benchmarks._workloads import workload

    try:
        runner = make_runner("jax", workload("moons"))
        runner.step(0)  # jit compiles at the first call
    except Unavailable as error:
        return {"error": str(error)}
    return {"to_first_step_cpu_s": _cpu_s()}


def _child_memory(workload_name: str, system: str, mode: str) -> dict[str, Any]:
    from benchmarks._systems import Unavailable, make_runner
    from benchmarks._workloads import workload

    w = workload(workload_name, quick=mode == "quick")
    for module in ("torch", "jax", "casadi", "micrograd", "backends.numba", "backends.python"):
        try:
            __import__(module)
        except ImportError:
            pass
    baseline = _status_mb("VmRSS")
    exact = _reset_peak()
    try:
        runner = make_runner(system, w)
    except Unavailable as error:
        return {"error": str(error)}
    for k in range(3):
        runner.step(k)
    peak = _status_mb("VmHWM")
    return {"peak_mb": peak - baseline, "baseline_mb": baseline, "peak_reset": exact}


def _child_capture(workload_name: str, mode: str) -> dict[str, Any]:
    import backends.numba as numba_backend
    from benchmarks._workloads import workload
    from spec import SGD, compile_step

    w = workload(workload_name, quick=mode == "quick")
    warm = w.build(numba_backend)  # compiles (or loads) every kernel this model's capture needs first
    compile_step(warm, w.loss_fn, w.X[:4], w.y[:4], SGD(warm.parameters(), 0.1))
    model = w.build(numba_backend)
    optimizer = SGD(model.parameters(), w.lr)
    baseline = _status_mb("VmRSS")
    exact = _reset_peak()
    start = time.perf_counter()
    compile_step(model, w.loss_fn, w.X, w.y, optimizer)
    seconds = time.perf_counter() - start
    return {"capture_s": seconds, "peak_mb": _status_mb("VmHWM") - baseline, "peak_reset": exact}


def _child_captures(mode: str, *workload_names: str) -> dict[str, Any]:
    import backends.numba  # noqa: F401  (imported once, before the forks)
    import benchmarks._workloads  # noqa: F401

    found: dict[str, Any] = {}
    for name in workload_names:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the fresh child: one capture, its JSON down the pipe
            os.close(read)
            try:
                result = _child_capture(name, mode)
            except Exception as error:
                result = {"error": f"{type(error).__name__}: {error}"}
            with os.fdopen(write, "w") as pipe:
                pipe.write(json.dumps(result))
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            text = pipe.read()
        os.waitpid(pid, 0)
        found[name] = json.loads(text) if text else {"error": "the capture's process died"}
    return found


def main(argv: list[str]) -> None:
    kind, *rest = argv
    children = {
        "compile": _child_compile,
        "jax_first_jit": _child_jax_first_jit,
        "memory": _child_memory,
        "capture": _child_capture,
        "captures": _child_captures,
    }
    print(json.dumps(children[kind](*rest)))


if __name__ == "__main__":
    main(sys.argv[1:])
