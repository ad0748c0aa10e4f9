"""Run gradspec's conformance suite against this backend: ``pytest`` in this folder.

The same checks also run by name: ``pytest --pyargs conformance --backend template``.
"""

from conformance import parametrize_with_checks

from gradspec_template import BACKEND


@parametrize_with_checks(BACKEND)
def test_conformance(check):
    check()
