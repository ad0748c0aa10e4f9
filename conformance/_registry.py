"""The list of conformance checks and how they become pytest parameters."""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest

from spec import Backend

ParamSource = Callable[[], Iterable[tuple[str, Any]]]

#: what the checks need besides pytest: Hypothesis, and the oracle's sympy and mpmath
SUITE_REQUIREMENTS = ("hypothesis", "sympy", "mpmath")


@dataclass(frozen=True)
class _Check:
    name: str
    function: Callable[..., None]
    params: ParamSource | None


_CHECKS: list[_Check] = []
#: every backend whose checks were made into pytest parameters in this process, by name
BACKENDS_UNDER_TEST: dict[str, Backend] = {}


def check(function: Callable[..., None] | None = None, *, params: ParamSource | None = None) -> Any:
    """Register ``function(backend[, param])`` as a conformance check.

    With ``params``, the check runs once per ``(id, param)`` pair it yields and
    its ids read ``check_name[id]``.
    """

    def register(fn: Callable[..., None]) -> Callable[..., None]:
        _CHECKS.append(_Check(fn.__name__, fn, params))
        return fn

    return register if function is None else register(function)


def named_by_keys(cases: Mapping[str, Any]) -> ParamSource:
    """A ``params`` source that runs a check once per key of ``cases``, passing and naming it by the key."""
    return lambda: [(name, name) for name in cases]


def iter_checks(backend: Backend) -> Iterator[tuple[str, Callable[[], None]]]:
    """Every check, bound to ``backend``, as ``(check id, zero-argument callable)``."""
    missing = [name for name in SUITE_REQUIREMENTS if importlib.util.find_spec(name) is None]
    if missing:
        raise pytest.UsageError(
            f"gradspec's conformance suite needs {', '.join(SUITE_REQUIREMENTS)}; missing here: "
            f'{", ".join(missing)}. Install them with: pip install "gradspec[conformance]"'
        )
    importlib.import_module("conformance.checks")  # registers the checks, in order
    for spec in _CHECKS:
        if spec.params is None:
            yield spec.name, partial(spec.function, backend)
        else:
            for param_id, param in spec.params():
                yield f"{spec.name}[{param_id}]", partial(spec.function, backend, param)


def check_params(backend: Backend) -> list[Any]:
    """The checks as ``pytest.param`` objects, expected failures marked ``xfail(strict=True)``.

    An expected failure that names no check (a misspelt id) is reported with a warning.
    """
    params = []
    for check_id, bound in iter_checks(backend):
        reason = backend.expected_failures.get(check_id)
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        params.append(pytest.param(bound, id=check_id, marks=marks))
    known = {param.id for param in params}
    for check_id in sorted(set(backend.expected_failures) - known):
        warnings.warn(
            f"backend {backend.name!r} lists an expected failure {check_id!r} that matches no "
            "conformance check (`pytest --pyargs conformance --collect-only -q` lists their ids)",
            stacklevel=2,
        )
    BACKENDS_UNDER_TEST[backend.name] = backend
    return params


def parametrize_with_checks(backend: Backend) -> Any:
    """Decorate ``test(check)`` to run every conformance check against ``backend``.

    Example, in an out-of-tree backend's test suite::

        from conformance import parametrize_with_checks
        from mybackend import BACKEND

        @parametrize_with_checks(BACKEND)
        def test_conformance(check):
            check()
    """
    return pytest.mark.parametrize("check", check_params(backend))
