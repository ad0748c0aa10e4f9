"""pytest plugin: choose the backend under test and name it in the report.

Installed through the ``pytest11`` entry point, so it is active wherever
gradspec is installed::

    pytest --pyargs conformance --backend numba
    GRADSPEC_BACKEND=numba pytest --pyargs conformance

``--backend`` takes a registered name or an import path ``module:BACKEND``.
Hypothesis profiles: ``ci`` (the default: few, derandomized examples) and
``thorough`` (``--hypothesis-profile=thorough``) for long local runs.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from spec import Backend, available_backends, load_backend

_DEFAULT_BACKEND = "python"


@pytest.hookimpl(tryfirst=True)  # before Hypothesis' own plugin applies --hypothesis-profile
def pytest_configure(config: pytest.Config) -> None:
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
        default=os.environ.get("GRADSPEC_BACKEND", _DEFAULT_BACKEND),
        help="gradspec backend to run the conformance suite against: a registered name "
        f"({', '.join(available_backends()) or 'none registered'}) or 'module:BACKEND' "
        "(default: $GRADSPEC_BACKEND or 'python')",
    )


def backend_under_test(config: pytest.Config) -> Backend:
    """The backend named by ``--backend``, loaded once per session."""
    cached: Backend | None = getattr(config, "_gradspec_backend", None)
    if cached is None:
        cached = load_backend(config.getoption("--backend"))
        config._gradspec_backend = cached  # type: ignore[attr-defined]
    return cached


def pytest_report_collectionfinish(config: pytest.Config, items: list[Any]) -> list[str]:
    """Name the backends whose checks were collected (``--backend``, or ``parametrize_with_checks``)."""
    from conformance._registry import BACKENDS_UNDER_TEST

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
