"""The suite itself: ``pytest --pyargs conformance --backend NAME`` runs this file."""


def test_conformance(conformance_check):  # type: ignore[no-untyped-def]
    conformance_check()
