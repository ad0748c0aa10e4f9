"""The contract's versions: each requirement a version after the first added, met or named.

One check per change of :data:`spec.contract.CHANGES`, so a backend written for an older
contract fails each thing it lacks once, by name and version, and runs every other check:
the checks that need what it lacks are skipped, naming the requirement (:func:`need`).
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from conformance._registry import checks_in
from spec import OPS, Backend, OpCode
from spec.contract import CHANGES, Change, change_named, met, op_change, unmet

check = checks_in("api")
_CODES = {row.name: code for code, row in OPS.items()}


def need(backend: Backend, *names: str) -> None:
    """Skip the calling check unless ``backend`` meets each named change, saying which it lacks."""
    for name in names:
        change = change_named(name)
        if not met(backend, change):
            pytest.skip(
                f"needs {name} (contract version {change.version}), which {backend.name} does not "
                f"meet: see check_contract[{name}]"
            )


def _change_of(op: OpCode | str) -> Change | None:
    """The change that added op ``op`` (a code, or a name of the table or of a composite: None)."""
    code = _CODES.get(op) if isinstance(op, str) else op
    return None if code is None else op_change(code)


def need_ops(backend: Backend, ops: Iterable[OpCode | str]) -> None:
    """:func:`need` of the change that added each of ``ops``."""
    for op in ops:
        change = _change_of(op)
        if change is not None:
            need(backend, change.name)


def lowered(backend: Backend, ops: Iterable[str]) -> list[str]:
    """Those of ``ops`` (names) that ``backend`` has: all of them, for a backend of this contract."""
    return [op for op in ops if (change := _change_of(op)) is None or met(backend, change)]


@check(params=lambda: [(change.name, change) for change in CHANGES if change.version > 1])
def check_contract(backend: Backend, change: Change) -> None:
    reason = unmet(backend, change)
    assert reason is None, reason
