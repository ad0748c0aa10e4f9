"""The list of conformance checks and how they become pytest parameters."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest

from spec import Backend, ExpectedFailure

ParamSource = Callable[[], Iterable[tuple[str, Any]]]

#: what the checks need besides pytest: Hypothesis, and the oracle's sympy and mpmath
SUITE_REQUIREMENTS = ("hypothesis", "sympy", "mpmath")


#: what a check tests: every check has one category or more (``pytest -m "not precision"``
#: selects by them; a backend may expect a whole category to fail)
CATEGORIES: dict[str, str] = {
    "api": "the Value interface: attributes, op strings, operators with numbers, hashing",
    "ops": "each op's forward rule and derivative convention (spec.ops), golden values",
    "errors": "the error contract: documented exceptions, and a failed call changes nothing",
    "backward": "backward semantics: accumulation, repeated backward, zero_grad, deep and wide graphs",
    "determinism": "one graph backpropagates to the same bits every time",
    "precision": "float64 bit for bit: the table's formulas, eager against compiled, across builds",
    "models": "Neuron, Layer and MLP: initialisation, parameter order, call conventions",
    "compiled": "compile_step: capture, replay and its guards, against the eager loop",
    "memory": "graphs survive heavy garbage collection",
    "capabilities": "optional capabilities a backend declares (fused calls)",
}


@dataclass(frozen=True)
class _Check:
    name: str
    function: Callable[..., None]
    params: ParamSource | None
    categories: frozenset[str]
    #: capabilities (``Backend.capabilities``) the check needs; skipped, saying so, without them
    requires: frozenset[str]
    #: whether it compares bits that depend on the order of backward's sums: skipped, saying
    #: so, on a backend whose backward is not deterministic
    ordered: bool


_CHECKS: list[_Check] = []
#: every backend whose checks were made into pytest parameters in this process, by name
BACKENDS_UNDER_TEST: dict[str, Backend] = {}
#: the backend the differential checks compare with (``--compare-with``)
REFERENCE: dict[str, str] = {"name": "python"}


def checks_in(*categories: str, requires: Iterable[str] = (), ordered: bool = False) -> Any:
    """The ``@check`` decorator of a module whose checks test ``categories``.

    ``@check`` registers ``function(backend[, param])``; ``@check(params=…)`` runs it once per
    ``(id, param)`` pair the source yields, with ids ``check_name[id]``; ``also=``, ``requires=``
    and ``ordered=`` add categories and change the module's defaults for one check.
    """

    def check(
        function: Callable[..., None] | None = None,
        *,
        params: ParamSource | None = None,
        also: Iterable[str] = (),
        requires: Iterable[str] = requires,
        ordered: bool = ordered,
    ) -> Any:
        def register(fn: Callable[..., None]) -> Callable[..., None]:
            tags = frozenset((*categories, *also))
            if not tags <= set(CATEGORIES):
                raise ValueError(
                    f"{fn.__name__}: no conformance category {sorted(tags - set(CATEGORIES))}; "
                    f"the categories: {', '.join(CATEGORIES)}"
                )
            _CHECKS.append(_Check(fn.__name__, fn, params, tags, frozenset(requires), ordered))
            return fn

        return register if function is None else register(function)

    return check


def named_by_keys(cases: Mapping[str, Any]) -> ParamSource:
    """A ``params`` source that runs a check once per key of ``cases``, passing and naming it by the key."""
    return lambda: [(name, name) for name in cases]


def _registered() -> list[_Check]:
    missing = [name for name in SUITE_REQUIREMENTS if importlib.util.find_spec(name) is None]
    if missing:
        raise pytest.UsageError(
            f"gradspec's conformance suite needs {', '.join(SUITE_REQUIREMENTS)}; missing here: "
            f'{", ".join(missing)}. Install them with: pip install "gradspec[conformance]"'
        )
    importlib.import_module("conformance.checks")  # registers the checks, in order
    return _CHECKS


def _instances(backend: Backend) -> Iterator[tuple[str, _Check, tuple[Any, ...]]]:
    for spec in _registered():
        if spec.params is None:
            yield spec.name, spec, ()
        else:
            for param_id, param in spec.params():
                yield f"{spec.name}[{param_id}]", spec, (param,)


def _run(spec: _Check, check_id: str, backend: Backend, *args: Any) -> None:
    """Run one check; an exception other than a failed assert is reported with the check's id."""
    if spec.ordered:
        from conformance.checks.determinism import nondeterminism

        found = nondeterminism(backend)
        if found:
            pytest.skip(f"backward is not deterministic (check_backward_is_deterministic): {found}")
    from conformance.strategies import drawing_ops_of

    try:
        with drawing_ops_of(backend):
            spec.function(backend, *args)
    except AssertionError:
        raise
    except Exception as error:
        raise AssertionError(f"{check_id}: {type(error).__name__} escaped the check: {error}") from error


def iter_checks(backend: Backend) -> Iterator[tuple[str, Callable[[], None]]]:
    """Every check, bound to ``backend``, as ``(check id, zero-argument callable)``."""
    for check_id, spec, args in _instances(backend):
        yield check_id, partial(_run, spec, check_id, backend, *args)


def _expected(backend: Backend, ids: dict[str, frozenset[str]]) -> dict[str, ExpectedFailure]:
    """Each check id that ``backend.expected_failures`` declares, with its declaration.

    A key is a check id, a pattern of ids (``*`` any text, ``?`` one character; brackets stand
    for themselves, as in ids), or ``category:NAME``; an exact id wins over
    a pattern or category, and among those the first listed. A key that matches nothing is
    reported with a warning, and the ids or categories it may have meant.
    """
    declared = {key: ExpectedFailure.of(value) for key, value in backend.expected_failures.items()}
    found: dict[str, ExpectedFailure] = {}
    for key, expectation in declared.items():
        if key.startswith("category:"):
            matched = [i for i, tags in ids.items() if key.removeprefix("category:") in tags]
        else:
            pattern = re.compile(re.escape(key).replace(r"\*", ".*").replace(r"\?", "."))
            matched = [i for i in ids if pattern.fullmatch(i)]
        for check_id in matched:
            if check_id == key or check_id not in found:
                found[check_id] = expectation
        if not matched:
            choices = [f"category:{c}" for c in CATEGORIES] if key.startswith("category:") else list(ids)
            close = difflib.get_close_matches(key, choices, n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            warnings.warn(
                f"backend {backend.name!r} lists an expected failure {key!r} that matches no "
                f"conformance check{hint} (`pytest --pyargs conformance --collect-only -q` lists "
                f"their ids; categories: {', '.join(CATEGORIES)})",
                stacklevel=3,
            )
    return found


def check_params(backend: Backend) -> list[Any]:
    """The checks as ``pytest.param`` objects, marked with their categories; declared failures
    marked ``xfail`` (strict unless declared ``ExpectedFailure(reason, strict=False)``); checks
    of capabilities the backend does not declare marked ``skip``."""
    instances = list(_instances(backend))
    expected = _expected(backend, {check_id: spec.categories for check_id, spec, _ in instances})
    params = []
    for check_id, spec, args in instances:
        marks = [getattr(pytest.mark, category) for category in sorted(spec.categories)]
        marks.append(pytest.mark.gradspec_check(categories=spec.categories))
        missing = sorted(spec.requires - backend.capabilities)
        if missing:
            marks.append(pytest.mark.skip(reason=f"{backend.name} does not declare {', '.join(missing)}"))
        elif check_id in expected:
            marks.append(
                pytest.mark.xfail(reason=expected[check_id].reason, strict=expected[check_id].strict)
            )
        params.append(pytest.param(partial(_run, spec, check_id, backend, *args), id=check_id, marks=marks))
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
