"""gradspec's conformance suite: one set of checks that every backend must pass.

Run it against a registered backend::

    pytest --pyargs conformance --backend numba

or from an out-of-tree backend's own tests::

    from conformance import parametrize_with_checks
    from mybackend import BACKEND

    @parametrize_with_checks(BACKEND)
    def test_conformance(check):
        check()

Each check is a plain function ``check_<property>(backend)`` (see
:mod:`conformance.checks`) with one or more :data:`CATEGORIES`, which
``pytest -m`` selects by (``-m "not precision"``). A backend lists the checks it
is known to fail in ``Backend.expected_failures``: by id, by pattern or by
category, each with its reason (see :class:`spec.ExpectedFailure`).
"""

import pytest

# A failing check shows the values it compared, wherever it is collected from (pytest
# rewrites the asserts of test files only, unless told).
pytest.register_assert_rewrite(
    "conformance.checks", "conformance.gradcheck", "conformance.loss_programs", "conformance._training"
)

from conformance._registry import CATEGORIES, check_params, iter_checks, parametrize_with_checks  # noqa: E402
from conformance.gradcheck import (  # noqa: E402
    FINITE_DIFFERENCE,
    Tolerance,
    assert_close,
    check_program_gradients,
    finite_difference_gradients,
)

__all__ = [
    "CATEGORIES",
    "FINITE_DIFFERENCE",
    "Tolerance",
    "assert_close",
    "check_params",
    "check_program_gradients",
    "finite_difference_gradients",
    "iter_checks",
    "parametrize_with_checks",
]
