"""pytest plugin: choose the backend under test, and report it and each category's results.

Installed through the ``pytest11`` entry point, so it is active wherever
gradspec is installed::

    pytest --pyargs conformance --backend numba
    GRADSPEC_BACKEND=numba pytest --pyargs conformance
    pytest --pyargs conformance --backend mine -m "not precision" --compare-with numba

``--backend`` (required) takes a registered name or an import path ``module:BACKEND``;
``--compare-with`` names the differential checks' reference (python by default). Each
check is marked with its categories (:data:`conformance.CATEGORIES`), so ``-m`` selects
by them, and the run ends with a table of results per category.
Hypothesis profiles: ``ci`` (the default: few, derandomized examples) and
``thorough`` (``--hypothesis-profile=thorough``) for long local runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from conformance._registry import BACKENDS_UNDER_TEST, CATEGORIES, REFERENCE
from spec import Backend, available_backends, load_backend

#: what the per-category table counts, in its column order
_OUTCOMES = ("passed", "declared", "skipped", "failed")
_RESULTS = pytest.StashKey[dict[str, dict[str, int]]]()
_CATEGORIES_OF = pytest.StashKey[dict[str, frozenset[str]]]()
#: the pytest run in progress (the report hook is given no config)
_RUNNING: dict[str, pytest.Config] = {}


@pytest.hookimpl(tryfirst=True)  # before Hypothesis' own plugin applies --hypothesis-profile
def pytest_configure(config: pytest.Config) -> None:
    for name, text in CATEGORIES.items():
        config.addinivalue_line("markers", f"{name}: gradspec conformance checks of {text}")
    config.addinivalue_line("markers", "gradspec_check(categories): a gradspec conformance check")
    REFERENCE["name"] = config.getoption("--compare-with")
    config.stash[_RESULTS] = {category: dict.fromkeys(_OUTCOMES, 0) for category in CATEGORIES}
    config.stash[_CATEGORIES_OF] = {}
    _RUNNING["config"] = config
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:  # the plugin loads in every pytest run; the checks say what is missing
        return
    settings.register_profile(
        "ci",
        max_examples=100,
        deadline=None,
        derandomize=True,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.register_profile(
        "thorough",
        max_examples=2000,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradspec")
    group.addoption(
        "--backend",
        default=os.environ.get("GRADSPEC_BACKEND"),
        help="gradspec backend to run the conformance suite against (required): a registered name "
        f"({', '.join(available_backends()) or 'none registered'}) or 'module:BACKEND' "
        "(default: $GRADSPEC_BACKEND)",
    )
    group.addoption(
        "--gradspec-report",
        metavar="PATH",
        help="also write the results per category to PATH, as JSON (nox -s engines builds its matrix from them)",
    )
    group.addoption(
        "--compare-with",
        default=os.environ.get("GRADSPEC_COMPARE_WITH", "python"),
        help="the backend the differential checks compare with (default: $GRADSPEC_COMPARE_WITH or 'python')",
    )


def backend_under_test(config: pytest.Config) -> Backend:
    """The backend named by ``--backend``, loaded once per session."""
    cached: Backend | None = getattr(config, "_gradspec_backend", None)
    if cached is None:
        name = config.getoption("--backend")
        if name is None:
            raise pytest.UsageError(
                "choose the backend under test: --backend NAME (registered: "
                f"{', '.join(available_backends()) or 'none'}) or --backend package.module:BACKEND, "
                "or set GRADSPEC_BACKEND"
            )
        try:
            cached = load_backend(name)
            if REFERENCE["name"] != cached.name:
                load_backend(REFERENCE["name"])
        except LookupError as error:
            raise pytest.UsageError(str(error)) from None
        config._gradspec_backend = cached  # type: ignore[attr-defined]
    return cached


def pytest_report_collectionfinish(config: pytest.Config, items: list[Any]) -> list[str]:
    """Name the backends whose checks were collected (``--backend``, or ``parametrize_with_checks``)."""
    return [
        f"gradspec backend under test: {backend.name} {backend.version} "
        f"(registered: {', '.join(available_backends()) or 'none'})"
        for backend in BACKENDS_UNDER_TEST.values()
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "conformance_check" not in metafunc.fixturenames:
        return
    from conformance import check_params

    backend = backend_under_test(metafunc.config)
    metafunc.parametrize("conformance_check", check_params(backend))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("gradspec_check")
        if marker is not None:
            config.stash[_CATEGORIES_OF][item.nodeid] = marker.kwargs["categories"]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count each check once, by the phase that decided it, under each of its categories."""
    config = _RUNNING.get("config")
    if config is None:
        return
    categories = config.stash[_CATEGORIES_OF].get(report.nodeid)
    if categories is None or not (report.when == "call" or (report.when == "setup" and not report.passed)):
        return
    if hasattr(report, "wasxfail"):
        outcome = "declared"  # an expected failure, or a flaky one that passed
    else:
        outcome = "passed" if report.passed else "skipped" if report.skipped else "failed"
    for category in categories:
        config.stash[_RESULTS][category][outcome] += 1


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Results per category: passed, declared (expected failures), skipped (with reasons), failed."""
    results = {c: counts for c, counts in config.stash[_RESULTS].items() if any(counts.values())}
    if not results:
        return
    names = ", ".join(f"{b.name} {b.version}" for b in BACKENDS_UNDER_TEST.values())
    terminalreporter.write_sep("=", f"gradspec conformance by category: {names}")
    terminalreporter.write_line(f"{'category':<14}" + "".join(f"{o:>10}" for o in _OUTCOMES))
    for category, counts in results.items():
        terminalreporter.write_line(f"{category:<14}" + "".join(f"{counts[o]:>10}" for o in _OUTCOMES))
    path = config.getoption("--gradspec-report")
    if path:
        backends = [{"name": b.name, "version": b.version} for b in BACKENDS_UNDER_TEST.values()]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps({"backends": backends, "categories": results}, indent=1) + "\n")
