"""The benchmark suite: ``python -m benchmarks.bench`` (or ``nox -s bench``; ``-- --quick`` in under a minute).

For each workload (micrograd's moons demo; the Go seed's toy; a larger MLP; a radial-basis-
function model on the moons, to show compiled replay is not MLP-specific) every system is
set up from the same initial parameters and trained side by side in one process, taking
turns of about 25 ms of steps (250 ms with ``--quick``), so all of them see the same machine state; an untimed
``gc.collect()`` between turns keeps one system's garbage from being collected in
another's step. The first step is a warm-up;
the others give the median, minimum and maximum time per step. A system that exceeds its
time budget stops early (micrograd, and the eager loops on the larger workload) and is
compared on the steps it ran. A system that cannot run a workload (micrograd's loop off
its moons demo, NumPy by hand off the MLP) says why. Every system is single-threaded
(PyTorch through ``torch.set_num_threads(1)``, BLAS and XLA through their environment
variables).

The digits workload is the digits demo's training (:mod:`benchmarks.digits`, its defaults):
gradspec numba (compiled) and PyTorch train from the same initial parameters on the same
batches in the same order with the same optimizer and schedule, taking turns an epoch at a
time. After each epoch (untimed) a NumPy forward pass over each system's parameters gives
its test accuracy; the table reports the time per step and the training time until the
first epoch at 95% test accuracy, the capture counted or not (an untimed warm-up capture
first has Numba compile or load its kernels). The two systems add in other orders; their
mean losses over the last epoch must agree within the same relative 1e-6.

A fast wrong answer is a failure, not a win: each system's loss at its last step is
compared with gradspec numba (compiled)'s loss at that step. gradspec's systems must agree
bit for bit; the others (a different order of float additions) within a relative 1e-6.

Probes (fresh processes, :mod:`benchmarks._probes`): compile_step's cost on a cold and a
cached Numba cache, and for every workload run, the numba compiled system's capture
(``compile_step``: seconds and peak memory growth), reported under the workload's table
and in its JSON entry as ``capture``.

Outputs: the table on the terminal, ``benchmarks/results/latest.json`` (with machine
information) and ``benchmarks/results/latest.png``.
"""

from __future__ import annotations

import os

# Single-threaded BLAS and XLA, set before NumPy or JAX are imported.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
# The numba step on two threads runs several parallel loops a step (Numba's OpenMP layer,
# libgomp), and its worker thread waits between them. Left to libgomp's default, it often fell
# asleep there: the large workload's step took about 1.0 ms instead of 0.6, from one process
# to the next. Spinning 3 M times before sleeping keeps it awake through a system's turn; the
# other systems run on one thread.
os.environ.setdefault("GOMP_SPINCOUNT", "3000000")

import argparse  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks import _micro, _probes, _report, digits  # noqa: E402
from benchmarks._systems import (  # noqa: E402
    DIGITS_SYSTEMS,
    SYSTEMS,
    DigitsTask,
    Runner,
    Unavailable,
    digits_task,
    make_digits_runner,
    make_runner,
)
from benchmarks._workloads import WORKLOADS, Workload, forward, workload  # noqa: E402

__all__ = ["main", "run_digits", "run_workload"]

#: every workload name ``--workloads`` takes: the full-batch ones, then the digits training
ALL_WORKLOADS = (*WORKLOADS, "digits")

RESULTS = Path(__file__).parent / "results"
REFERENCE = "numba-compiled"
#: relative difference of final losses allowed between systems that add in another order
AGREEMENT = 1e-6
#: how long a system runs before the next one takes its turn
TURN_SECONDS = 0.025
#: the same for ``--quick``: ten times fewer turns, so fewer untimed collections between them
QUICK_TURN_SECONDS = 0.25


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions: dict[str, str | None] = {}
    for module in ("numpy", "numba", "torch", "jax", "casadi", "micrograd"):
        try:
            versions[module] = str(
                getattr(importlib.import_module(module), "__version__", None) or metadata.version(module)
            )
        except (ImportError, metadata.PackageNotFoundError):
            versions[module] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def run_workload(
    w: Workload,
    systems: list[str],
    budget: float,
    min_steps: int = 3,
    log: Any = print,
    turn_seconds: float = TURN_SECONDS,
) -> dict[str, Any]:
    """Set every system up, train them side by side, and describe each one's run.

    The systems take turns: each runs steps for about ``turn_seconds`` (at least one),
    after an untimed ``gc.collect()``. A system stops at the workload's last step, or once
    its steps took ``budget`` seconds and it ran ``min_steps`` (the first is a warm-up).
    """
    runners: dict[str, Runner] = {}
    rows: dict[str, dict[str, Any]] = {}
    for name in systems:
        try:
            runners[name] = make_runner(name, w)
        except Unavailable as error:
            rows[name] = {"key": name, "system": name, "skipped": str(error)}
    losses: dict[str, list[float]] = {name: [] for name in runners}
    times: dict[str, list[float]] = {name: [] for name in runners}
    active = list(runners)
    while active:
        for name in list(active):
            gc.collect()  # untimed: no system pays for collecting another's garbage
            turn = time.perf_counter()
            while True:
                k = len(losses[name])
                start = time.perf_counter()
                losses[name].append(runners[name].step(k))
                times[name].append(time.perf_counter() - start)
                if k + 1 == w.steps or (sum(times[name]) > budget and k + 1 >= min_steps):
                    active.remove(name)
                    break
                if time.perf_counter() - turn > turn_seconds:
                    break
    # without the reference system, the one that ran longest: every other's last step is among its steps
    reference = losses.get(REFERENCE) or max(losses.values(), key=len, default=[])
    for name, runner in runners.items():
        timed = np.array(times[name][1:] or times[name]) * 1e3
        last = len(losses[name]) - 1
        loss = losses[name][last]
        rel = abs(loss - reference[last]) / abs(reference[last]) if reference else None
        gradspec = runner.system.startswith("gradspec")
        bit_identical = gradspec and losses[name] == reference[: last + 1]
        params = runner.parameters()
        accuracy = None
        if w.classification:
            accuracy = float(((forward(params, w, w.X) > 0) == (w.y > 0)).mean())
        rows[name] = {
            "key": name,
            "system": runner.system,
            "mode": runner.mode,
            "steps_run": last + 1,
            "ms_per_step": {
                "median": float(np.median(timed)),
                "min": float(timed.min()),
                "max": float(timed.max()),
            },
            "compile_s": runner.compile_seconds,
            "final_loss": loss,
            "accuracy": accuracy,
            "rel_diff": rel,
            "bit_identical": bit_identical,
            "agrees": bool(bit_identical if gradspec else rel is not None and rel <= AGREEMENT),
            "info": runner.info,
        }
        if runner.parts:
            rows[name]["parts_ms"] = {
                part: float(np.median(np.array(seconds[1:] or seconds) * 1e3))
                for part, seconds in runner.parts.items()
            }
        log(f"  {runner.system:<17} {runner.mode:<24} {np.median(timed):10.3f} ms/step, {last + 1} steps")
    ordered = [rows[name] for name in systems if name in rows]
    base = {r["key"]: r["ms_per_step"]["median"] for r in ordered if "ms_per_step" in r}
    for r in ordered:
        if "ms_per_step" in r:
            if "micrograd" in base:
                r["x_micrograd"] = base["micrograd"] / r["ms_per_step"]["median"]
            if "torch" in base:
                r["vs_torch"] = r["ms_per_step"]["median"] / base["torch"]
    nodes = rows.get(REFERENCE, {}).get("info", {}).get("traced_nodes")
    return {"title": w.title, "graph_nodes": nodes, "steps": w.steps, "results": ordered}


def run_digits(task: DigitsTask, systems: list[str], log: Any = print) -> dict[str, Any]:
    """Train every digits system on ``task``, an epoch each in turn, and describe each one's run."""
    config = task.config
    rows: dict[str, dict[str, Any]] = {}
    runners: dict[str, Runner] = {}
    for name in systems:
        try:
            runners[name] = make_digits_runner(name, task)
        except Unavailable as error:
            rows[name] = {"key": name, "system": name, "skipped": str(error)}
    losses: dict[str, list[float]] = {name: [] for name in runners}
    times: dict[str, list[float]] = {name: [] for name in runners}
    accuracies: dict[str, list[float]] = {name: [] for name in runners}
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    per_epoch = task.steps_per_epoch
    X_test, y_test = task.split.X_test, task.split.y_test
    for epoch in range(config.epochs):
        for name, runner in runners.items():
            gc.collect()  # untimed: no system pays for collecting another's garbage
            for k in range(epoch * per_epoch, (epoch + 1) * per_epoch):
                start = time.perf_counter()
                losses[name].append(runner.step(k))
                times[name].append(time.perf_counter() - start)
            seconds[name].append(sum(times[name]))
            logits = digits.numpy_logits(runner.parameters(), config.sizes, X_test)
            accuracies[name].append(float((logits.argmax(axis=1) == y_test).mean()))
    reference = "numba-compiled" if "numba-compiled" in runners else next(iter(runners), "")
    for name, runner in runners.items():
        timed = np.array(times[name][1:] or times[name]) * 1e3
        epoch_losses = [
            float(np.mean(losses[name][e * per_epoch : (e + 1) * per_epoch])) for e in range(config.epochs)
        ]
        reached = next(
            (s for a, s in zip(accuracies[name], seconds[name], strict=True) if a >= digits.TARGET_ACCURACY),
            None,
        )
        compile_s = runner.compile_seconds or 0.0
        final, ref = epoch_losses[-1], float(np.mean(losses[reference][-per_epoch:]))
        rows[name] = {
            "key": name,
            "system": runner.system,
            "mode": runner.mode,
            "steps_run": len(times[name]),
            "ms_per_step": {
                "median": float(np.median(timed)),
                "min": float(timed.min()),
                "max": float(timed.max()),
            },
            "compile_s": runner.compile_seconds,
            "train_s": seconds[name][-1] + compile_s,
            "seconds_to_95": reached,
            "seconds_to_95_with_compile": None if reached is None else reached + compile_s,
            "test_accuracy": accuracies[name][-1],
            "accuracies": accuracies[name],
            "epoch_losses": epoch_losses,
            "final_loss": final,
            "rel_diff": abs(final - ref) / abs(ref),
            "agrees": abs(final - ref) <= AGREEMENT * abs(ref),
            "first_step_loss_rel_diff": abs(losses[name][0] - losses[reference][0])
            / abs(losses[reference][0]),
            "info": runner.info,
        }
        to_95 = "not reached" if reached is None else f"{reached:.2f} s"
        log(
            f"  {runner.system:<17} {runner.mode:<24} {np.median(timed):10.3f} ms/step, "
            f"95% after {to_95} (+ {compile_s:.2f} s compile), test accuracy {accuracies[name][-1]:.1%}"
        )
    ordered = [rows[name] for name in systems if name in rows]
    torch_row = rows.get("torch", {})
    for r in ordered:
        if "ms_per_step" in r and "ms_per_step" in torch_row:
            r["vs_torch"] = r["ms_per_step"]["median"] / torch_row["ms_per_step"]["median"]
            if r["seconds_to_95"] is not None and torch_row.get("seconds_to_95"):
                r["to_95_vs_torch"] = r["seconds_to_95"] / torch_row["seconds_to_95"]
    widths = ",".join(str(n) for n in config.sizes[1:])
    title = (
        f"the digits demo: {len(task.split.y_train)} images, MLP(64,[{widths}]), cross-entropy, "
        f"{config.optimizer} {config.start_lr:g}->{config.start_lr / 10:g}, batch {config.batch_size}, "
        f"{config.epochs} epochs"
    )
    return {"title": title, "steps": len(task.batches), "config": asdict(config), "results": ordered}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with its measured value and whether it is met."""

    def row(workload_name: str, key: str) -> dict[str, Any]:
        found: dict[str, Any] = next(
            (r for r in results["workloads"].get(workload_name, {}).get("results", []) if r["key"] == key), {}
        )
        return found

    def median(workload_name: str, key: str) -> float | None:
        r = row(workload_name, key)
        return r["ms_per_step"]["median"] if "ms_per_step" in r else None

    out: list[dict[str, Any]] = []

    def add(name: str, value: float | None, target: str, ok: bool | None, fmt: str = "{:.3g}") -> None:
        out.append(
            {
                "name": name,
                "value": "n/a" if value is None else fmt.format(value),
                "target": target,
                "met": ok,
            }
        )

    mg, nc = median("moons", "micrograd"), median("moons", "numba-compiled")
    for key, what, goal in (
        ("python-loop", "micrograd's loop on gradspec python", 10),
        ("numba-loop", "micrograd's loop on gradspec numba", 100),
        ("python-eager", "python eager", 5),
        ("numba-eager", "numba eager", 5),
    ):
        m = median("moons", key)
        x = mg / m if mg and m else None
        add(
            f"moons: {what} vs micrograd",
            x,
            f">= {goal}x faster",
            None if x is None else x >= goal,
            "{:,.1f}x",
        )
    x = mg / nc if mg and nc else None
    add(
        "moons: numba compiled vs micrograd",
        x,
        ">= 3,000x faster",
        None if x is None else x >= 3000,
        "{:,.0f}x",
    )
    torch_ms, jax_ms = median("moons", "torch"), median("moons", "jax")
    r = nc / torch_ms if nc and torch_ms else None
    add("moons: numba compiled / PyTorch eager", r, "< 1.0", None if r is None else r < 1.0, "{:.2f}")
    r = nc / jax_ms if nc and jax_ms else None
    add("moons: numba compiled / JAX jit", r, "<= 2.0", None if r is None else r <= 2.0, "{:.2f}")
    hand_ms = median("moons", "numba-hand")
    r = nc / hand_ms if nc and hand_ms else None
    add(
        "moons: numba compiled / hand-fused Numba loops",
        r,
        "<= 1.5",
        None if r is None else r <= 1.5,
        "{:.2f}",
    )
    probe = results.get("probes", {}).get("compile", {})
    cold, cached = probe.get("cold", {}).get("compile_step_s"), probe.get("cached", {}).get("compile_step_s")
    add("compile_step, cold Numba cache", cold, "<= 5 s", None if cold is None else cold <= 5.0, "{:.2f} s")
    add("compile_step, cached", cached, "<= 1 s", None if cached is None else cached <= 1.0, "{:.2f} s")
    capture = results.get("probes", {}).get("capture", {}).get("large", {})
    seconds, peak = capture.get("capture_s"), capture.get("peak_mb")
    add("large: compile_step (one trace)", seconds, "reported", None, "{:.1f} s")
    add("large: compile_step peak memory", peak, "reported", None, "{:.0f} MB")
    large_ms, large_2t = median("large", "numba-compiled"), median("large", "numba-compiled-2t")
    for key, ms, system, goal in (
        ("torch", large_ms, "PyTorch eager", 0.5),
        ("jax", large_ms, "JAX jit", 0.8),
        ("jax", large_2t, "JAX jit, on two threads", 0.5),
    ):
        other = median("large", key)
        r = ms / other if ms and other else None
        add(f"large: numba compiled / {system}", r, f"<= {goal}", None if r is None else r <= goal, "{:.2f}")
    r = large_ms / large_2t if large_ms and large_2t else None
    add("large: numba compiled, two threads' speed-up over one", r, "reported", None, "{:.2f}x")
    large = row("large", "numba-compiled")
    if large:
        info = large["info"]
        nbytes = info.get("bytes", 0)
        add("large: replay program", nbytes / 2**20, "< 1 GB", nbytes < 2**30, "{:.0f} MB")
        rate = info["traced_nodes"] / (large["ms_per_step"]["median"] / 1e3)
        add(
            "large: traced graph nodes per second (compiled)",
            rate / 1e6,
            "reported",
            None,
            "{:.0f} M nodes/s",
        )
    for r in results.get("digits", {}).get("results", []):
        if r["key"] == "numba-compiled" and "ms_per_step" in r:
            to_95 = r["seconds_to_95_with_compile"]
            add(
                "digits: numba compiled, training time to 95% test accuracy (capture included)",
                to_95,
                "<= 60 s",
                None if to_95 is None else to_95 <= 60.0,
                "{:.2f} s",
            )
            add(
                "digits: numba compiled / PyTorch, ms per step", r.get("vs_torch"), "reported", None, "{:.1f}"
            )
            add(
                "digits: numba compiled / PyTorch, time to 95% (capture excluded)",
                r.get("to_95_vs_torch"),
                "reported",
                None,
                "{:.1f}",
            )
    groups = [*results["workloads"].values(), *([results["digits"]] if results.get("digits") else [])]
    everyone = [r for wl in groups for r in wl["results"] if "agrees" in r]
    disagree = [f"{r['system']} {r['mode']}" for r in everyone if not r["agrees"]]
    add(
        "every system reached the reference loss",
        len(everyone) - len(disagree),
        f"all {len(everyone)}" + (f"; not: {', '.join(disagree)}" if disagree else ""),
        not disagree,
        "{:d} agree",
    )
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="short budgets, smaller large and rbf workloads (< 1 minute)"
    )
    parser.add_argument("--workloads", default=",".join(ALL_WORKLOADS), help="comma-separated (default: all)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated (default: all)")
    parser.add_argument("--budget", type=float, help="seconds of steps per system and workload")
    parser.add_argument("--no-probes", action="store_true", help="skip the compile and memory probes")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where latest.json and latest.png go")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    budget = args.budget or (1.5 if args.quick else 30.0)
    systems = args.systems.split(",")
    results: dict[str, Any] = {
        "machine": machine_info(),
        "quick": args.quick,
        "budget_s": budget,
        "workloads": {},
    }
    for name in args.workloads.split(","):
        if name == "digits":
            task = digits_task()
            print(f"digits: the digits demo's training, {len(task.batches)} steps", flush=True)
            results["digits"] = run_digits(task, [s for s in systems if s in DIGITS_SYSTEMS])
            continue
        w = workload(name, quick=args.quick)
        print(f"{name}: {w.title}", flush=True)
        results["workloads"][name] = run_workload(
            w,
            systems,
            budget,
            min_steps=1 if args.quick else 3,
            turn_seconds=QUICK_TURN_SECONDS if args.quick else TURN_SECONDS,
        )
    if not args.no_probes:
        which = "cached (--quick skips the cold cache)" if args.quick else "cold and cached"
        print(f"probes: compile_step {which}, and each workload's capture", flush=True)
        results["probes"] = {
            "compile": _probes.compile_probe(cold=not args.quick),
            "capture": _probes.capture_probes(list(results["workloads"]), args.quick),
        }
        for name, wl in results["workloads"].items():
            wl["capture"] = results["probes"]["capture"][name]
        if not args.quick:
            print("probes: peak memory", flush=True)
            for name, wl in results["workloads"].items():
                for r in wl["results"]:
                    if "ms_per_step" in r:
                        r["peak_mb"] = _probes.memory_probe(name, r["key"], args.quick).get("peak_mb")
    print("microbenchmarks", flush=True)
    results["micro"] = micro(quick=args.quick)
    results["targets"] = targets(results)
    results["seconds"] = time.perf_counter() - started
    print(_report.table(results))
    _report.write_json(results, args.out / "latest.json")
    _report.chart(results, args.out / "latest.png")
    print(f"\nwrote {args.out / 'latest.json'} and {args.out / 'latest.png'} in {results['seconds']:.0f} s")
    return results


def micro(quick: bool) -> dict[str, Any]:
    """Construction rate and chain backward for gradspec's backends and micrograd."""
    out = {}
    for system, load in _micro.VALUE_TYPES.items():
        try:
            value_type = load()
        except ImportError:
            continue
        out[system] = {
            "construction": _micro.construction(value_type, 100_000 if quick else 400_000),
            "chain_backward": _micro.chain_backward(value_type, 100_000 if quick else 1_000_000),
        }
    return out


if __name__ == "__main__":
    main()
