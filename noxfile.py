"""Developer sessions: `nox -s tests` (everything CI runs), lint, fixtures, mutants, demo, bench."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint"]

BACKENDS = ["python", "numba"]
SUITES = [*BACKENDS, "project"]
PYPROJECT = nox.project.load_toml("pyproject.toml")
#: prints the passes the numba replay can switch off (its PIPELINE's), read in the session's venv
_PRINT_SWITCHES = "from backends.numba._replay import SWITCHES; print(*SWITCHES)"


def install(session: nox.Session, *groups: str, extras: str = "[numba]") -> None:
    """The project (editable, so entry points point at this checkout) and dependency groups.

    A reused venv (``reuse_venv=True``, or ``nox -r``) skips the install while pyproject.toml
    and the requested groups are what it was installed with: the call then starts in a second.
    """
    requirements = [r for group in groups for r in nox.project.dependency_groups(PYPROJECT, group)]
    wanted = json.dumps(
        [extras, requirements, hashlib.sha256(Path("pyproject.toml").read_bytes()).hexdigest()]
    )
    stamp = Path(session.virtualenv.location) / ".gradspec-installed"
    if stamp.is_file() and stamp.read_text() == wanted:
        session.log("requirements unchanged since this venv was installed: not reinstalling")
        return
    session.install("-e", f".{extras}", *requirements)
    stamp.write_text(wanted)


def numba_env(session: nox.Session) -> None:
    # Numba's cache is per session: it cannot see edits in other modules, and a
    # boundscheck build must never be reused by a timed run.
    session.env["NUMBA_CACHE_DIR"] = str(Path(session.virtualenv.location) / "numba-cache")


def warm_up(session: nox.Session) -> None:
    """Compile the Numba backend's kernels into the session's cache first, a line per phase, so
    that nothing after it (a test's time, the demo's train_seconds) pays for compiling."""
    session.run("python", "-m", "backends.numba", "warmup")


def ensure_graphviz(session: nox.Session) -> None:
    """Graphviz's `dot` renders draw_dot pictures (tests/test_viz.py); install the system package
    where we may, saying so first."""
    if shutil.which("dot"):
        return
    if shutil.which("apt-get") and os.geteuid() == 0:
        session.log("Graphviz `dot` is missing: installing the Debian package graphviz (apt-get, as root)")
        session.run("apt-get", "update", "-qq", external=True, silent=True)
        session.run("apt-get", "install", "-y", "-qq", "graphviz", external=True, silent=True)
    else:
        session.warn(
            "Graphviz `dot` is missing: install it (apt-get install graphviz / brew install graphviz)"
        )


@nox.session
@nox.parametrize("suite", SUITES, ids=SUITES)
def tests(session: nox.Session, suite: str) -> None:
    """Conformance suite against one backend (plus its own tests), or the project's own tests."""
    install(session, "test", "demo")
    numba_env(session)
    if suite == "project":
        ensure_graphviz(session)
        warm_up(session)
        ignored = [f"--ignore=tests/{backend}" for backend in BACKENDS]
        session.run("pytest", "tests", *ignored, *session.posargs)
        return
    session.env["NUMBA_BOUNDSCHECK"] = "1"
    if suite == "numba":
        warm_up(session)
    # the differential checks compare with python; python's own, with numba
    reference = ["--compare-with", "numba"] if suite == "python" else []
    session.run("pytest", "--pyargs", "conformance", "--backend", suite, *reference, *session.posargs)
    if suite == "numba":  # the compiled checks again with each pass the replay can switch off, off
        switches = session.run("python", "-c", _PRINT_SWITCHES, silent=True)
        for switched_off in str(switches).split():
            session.run(
                "pytest", "--pyargs", "conformance", "--backend", suite, "-k", "compiled or capture",
                "-q", *session.posargs, env={"GRADSPEC_REPLAY_OFF": switched_off},
            )  # fmt: skip
    if Path(f"tests/{suite}").is_dir():
        session.run("pytest", f"tests/{suite}", "--backend", suite, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint + format check) everywhere, mypy --strict on spec/ and backends/."""
    install(session, "lint", "test", "demo")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "spec", "backends")


@nox.session
def fixtures(session: nox.Session) -> None:
    """Check the golden fixtures against the oracle (`-- --write` regenerates them)."""
    install(session, "fixtures", extras="")
    session.run("python", "-m", "spec.fixtures", *(session.posargs or ["--check"]))


@nox.session
def mutants(session: nox.Session) -> None:
    """Break every engine path one mutant at a time (tests/mutants.py); the suite must catch each."""
    install(session, "test")
    numba_env(session)
    session.run("python", "tests/mutation_runner.py", *session.posargs)


@nox.session(default=False, reuse_venv=True)
def demo(session: nox.Session) -> None:
    """Train micrograd's moons demo (options: `nox -s demo -- --help`; `-- --dataset digits` for ten
    classes); pictures go to out/demo or out/digits."""
    install(session, "demo")
    numba_env(session)
    # the moons demo's default python backend compiles nothing; digits defaults to numba
    if any("numba" in arg or "digits" in arg for arg in session.posargs):
        warm_up(session)
    session.run("python", "-m", "benchmarks.demo", *session.posargs)


#: engine -> what its adapter (examples/engines/<engine>_adapter.py) needs installed
ENGINES = {"micrograd": "micrograd==0.1.0", "torch": "torch==2.13.0", "autograd": "autograd==1.9.1"}


@nox.session(default=False, venv_backend="virtualenv")
@nox.parametrize("engine", list(ENGINES), ids=list(ENGINES))
def engines(session: nox.Session, engine: str) -> None:
    """The conformance suite against micrograd, PyTorch and autograd (examples/engines), each in a
    venv of its own, then their matrix (out/engines/matrix.md)."""
    # pip, not uv, for the CPU build of torch (see bench); no Numba: the light conformance install
    install(session, extras="[conformance]")
    session.install(ENGINES[engine])
    out = Path("out/engines")
    session.env["PYTHONPATH"] = str(Path("examples/engines").resolve())
    session.run(
        "pytest", "--pyargs", "conformance", "--backend", f"{engine}_adapter:BACKEND", "-q",
        f"--gradspec-report={out / engine}.json", *session.posargs,
    )  # fmt: skip
    reports = sorted(str(p) for p in out.glob("*.json"))
    with (out / "matrix.md").open("w") as matrix:
        session.run("python", "examples/engines/matrix.py", *reports, stdout=matrix)
    session.log((out / "matrix.md").read_text())


@nox.session(default=False, venv_backend="virtualenv")
def bench(session: nox.Session) -> None:
    """Benchmarks against micrograd, PyTorch, NumPy, CasADi (and JAX if installed); `-- --quick` < 1 min."""
    # pip, not uv: pip takes the CPU build of torch==2.13.0 where one is configured (find-links),
    # where uv would fetch the multi-GB CUDA build.
    install(session, "bench", extras="[numba,bench]")
    numba_env(session)
    session.run("python", "-m", "benchmarks.bench", *session.posargs)
