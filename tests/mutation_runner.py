"""Prove the suite has teeth: break each engine path in one place, watch the suite fail.

Each mutant is a one-place edit of one file of an engine path (a derivative perturbed, a
check dropped, an order changed, state not read back). The runner copies the project's
packages into a temporary directory, applies one edit, and runs there the suites that
guard the mutant's area (``SUITES``; the same pytest commands ``nox -s tests`` runs), in
order, stopping at the first failure. A mutant is *killed* when a suite reports failing
tests (pytest exit code 1); exit 0 from every suite means it *survived*; anything else is
an error in the mutant itself and does not count as a kill. An area may ask for more than
one kill: a mutant of the op lowering the Numba backend shares between its eager path and
its compiled path must be caught by the checks of each. An unmutated copy runs every
suite first and must pass, or no kill means anything.

    python tests/mutation_runner.py                     # every mutant, two at a time
    python tests/mutation_runner.py --area numba-replay # one area
    python tests/mutation_runner.py relu_grad_at_zero_is_one pow_grad_exponent_drops_log
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mutants import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[1]
#: What a copy of the project holds: the packages, the tests and pytest's configuration.
COPIED = ("spec", "backends", "conformance", "benchmarks", "tests", "pyproject.toml", "noxfile.py")
PYTEST = ["-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
_COMPILED = "compiled or every_path"

#: suite -> its pytest arguments
SUITES: dict[str, list[str]] = {
    "conformance[python]": ["--pyargs", "conformance", "--backend", "python", "--compare-with", "numba"],
    "conformance[numba]": ["--pyargs", "conformance", "--backend", "numba"],
    # the checks of the eager path alone, and those of the compiled path
    "conformance[numba] eager": ["--pyargs", "conformance", "--backend", "numba", "-k", f"not ({_COMPILED})"],
    "conformance[numba] compiled": ["--pyargs", "conformance", "--backend", "numba", "-k", _COMPILED],
    "tests/numba": ["tests/numba", "--backend", "numba"],
    "tests/spec": [
        "tests/test_compile.py",
        "tests/test_guards.py",
        "tests/test_state.py",
        "tests/test_tracing.py",
        "tests/test_micrograd_compat.py",
        "tests/test_spec.py",
    ],
}
_NUMBA = (("conformance[numba]", "tests/numba"),)
_SPEC = (("conformance[numba]", "conformance[python]", "tests/spec", "tests/numba"),)
#: area -> what must kill its mutants: every group, each by one of its suites (tried in order)
AREAS: dict[str, tuple[tuple[str, ...], ...]] = {
    "python": (("conformance[python]",),),
    # shared by the eager Value, the tape's backward and the replay: each path's checks must catch it
    "numba-lowering": (("conformance[numba] eager",), ("conformance[numba] compiled",)),
    "numba-kernels": _NUMBA,
    "numba-tape": _NUMBA,
    "numba-value": _NUMBA,
    "numba-replay": _NUMBA,
    "numba-template": _NUMBA,
    "numba-fused": _NUMBA,
    "spec-compile": _SPEC,
    "spec-optim": _SPEC,
    "spec-nn": _SPEC,
    "guards": _SPEC,
    "numba-cache": (("tests/numba",),),
}


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant | None
    verdict: str  # "killed", "SURVIVED" or "error"
    detail: str
    seconds: float


def source_of(mutant: Mutant) -> str:
    """The mutated file; the edit must match exactly once."""
    original = (ROOT / mutant.path).read_text()
    count = original.count(mutant.old)
    if count != 1:
        raise ValueError(
            f"mutant {mutant.name}: its pattern matches {count} times in {mutant.path}, not once"
        )
    return original.replace(mutant.old, mutant.new)


def _copy_project(where: Path) -> None:
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, where / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, where / name)


def run(mutant: Mutant | None, groups: tuple[tuple[str, ...], ...]) -> Outcome:
    """Run each group of suites against a copy with ``mutant`` applied (``None``: the unmutated control)."""
    started = time.perf_counter()
    kills = []
    with tempfile.TemporaryDirectory(prefix="gradspec-mutant-") as tmp:
        where = Path(tmp)
        _copy_project(where)
        if mutant is not None:
            (where / mutant.path).write_text(source_of(mutant))
        # A fresh Numba cache: a mutated kernel must never be served to another copy. Bounds
        # checked, as `nox -s tests` runs the conformance suite: a mutant that indexes past an
        # array fails with IndexError instead of crashing the interpreter (which is no kill).
        paths = os.pathsep.join([tmp, os.environ.get("PYTHONPATH", "")])
        env = {
            **os.environ,
            "PYTHONPATH": paths,
            "NUMBA_CACHE_DIR": str(where / "numba-cache"),
            "NUMBA_BOUNDSCHECK": "1",
        }
        for group in groups:
            for suite in group:
                command = [sys.executable, *PYTEST, *SUITES[suite]]
                result = subprocess.run(command, env=env, cwd=tmp, capture_output=True, text=True)
                if result.returncode == 1:
                    failed = next(
                        (line for line in result.stdout.splitlines() if line.startswith("FAILED")), ""
                    )
                    kills.append(f"{suite}: {failed.removeprefix('FAILED ')[:100]}")
                    break
                if result.returncode != 0:
                    detail = f"{suite}: pytest exit {result.returncode}: {result.stdout[-600:]}{result.stderr[-600:]}"
                    return Outcome(mutant, "error", detail, time.perf_counter() - started)
            else:
                return Outcome(
                    mutant, "SURVIVED", f"not by {', '.join(group)}", time.perf_counter() - started
                )
    return Outcome(mutant, "killed", "; ".join(kills), time.perf_counter() - started)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--area", choices=sorted(AREAS), action="append", help="only this area's mutants")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    unknown = set(args.names) - {m.name for m in MUTANTS}
    if unknown:
        print(f"unknown mutants: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    chosen = [
        m
        for m in MUTANTS
        if (not args.names or m.name in args.names) and (not args.area or m.area in args.area)
    ]
    if args.list:
        for m in chosen:
            print(f"{m.area:<14} {m.name:<44} {m.path}")
        return 0
    suites = tuple(dict.fromkeys(suite for m in chosen for group in AREAS[m.area] for suite in group))
    print(f"control run: {', '.join(suites)} against an unmutated copy ...", flush=True)
    control = run(None, (suites,))
    if control.verdict != "SURVIVED":
        print(
            f"the unmutated copy must pass every suite: {control.detail} ({control.seconds:.0f} s)",
            file=sys.stderr,
        )
        return 2
    print(f"  passes ({control.seconds:.0f} s)")
    print(f"running the suites against {len(chosen)} mutants ...", flush=True)
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for outcome, m in zip(pool.map(lambda m: run(m, AREAS[m.area]), chosen), chosen, strict=True):
            outcomes.append(outcome)
            print(
                f"  {outcome.verdict:<9} {m.area:<14} {m.name:<44} {outcome.seconds:5.0f} s  {outcome.detail}",
                flush=True,
            )
    killed = Counter(m.area for m, o in zip(chosen, outcomes, strict=True) if o.verdict == "killed")
    total = Counter(m.area for m in chosen)
    print("\nkills per area:")
    for area in AREAS:
        if total[area]:
            print(f"  {area:<14} {killed[area]:>3}/{total[area]}")
    print(f"mutants killed: {sum(killed.values())}/{len(outcomes)}")
    return 0 if sum(killed.values()) == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
