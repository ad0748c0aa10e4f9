"""The contract's version, and what each version asks of a backend (its changelog).

A backend declares the version it targets (``Backend.spec_version``). A backend written for
an older version still builds and runs every conformance check it can: each requirement a
newer version added that it does not meet fails once, by name, in ``check_contract``, saying
which version added it, and the checks that need it are skipped with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from spec.ops import OPS, OpCode

if TYPE_CHECKING:
    from spec.backend import Backend

__all__ = [
    "CHANGES",
    "SPEC_VERSION",
    "Change",
    "change_named",
    "met",
    "op_change",
    "unmet",
]

#: the version of the contract this spec defines
SPEC_VERSION = 3


@dataclass(frozen=True)
class Change:
    """One change of the contract a backend must follow: what, since which version."""

    version: int
    date: str
    #: the requirement's name in ``check_contract[...]`` and in skip reasons
    name: str
    what: str
    #: the op a backend must now lower, where the change is a new primitive
    op: OpCode | None = None


CHANGES: tuple[Change, ...] = (
    Change(
        1,
        "2026-11-26",
        "the first contract",
        "Value (data, grad, label, op, children, backward, zero_grad) with the primitives add, mul, "
        "pow, pow_const, exp, log, tanh, relu and sigmoid as its own methods; the composites "
        "(-, /, reflected operators) from spec.ValueBase, a / b as a * b ** -1; Neuron, Layer "
        "and MLP from spec.nn; Backend(name, version, Value, Neuron, Layer, MLP, lowerings)",
    ),
    Change(
        2,
        "2026-11-27",
        "Value._apply",
        "Value._apply(code, other, constant) builds the node of any primitive of spec.OPS; "
        "spec.ValueBase spells every op through it (a backend overrides a spelling only for speed)",
    ),
    Change(
        2,
        "2026-11-27",
        "op max",
        "the max primitive: y if y > x else x; a tie splits the gradient",
        OpCode.MAX,
    ),
    Change(
        2,
        "2026-11-27",
        "op truediv",
        "division is a primitive: x / y rounded once, where it was the composite a * b ** -1",
        OpCode.DIV,
    ),
    Change(
        3,
        "2026-12-07",
        "NumPy functions refused",
        "a Value leaves __array_ufunc__ to spec.ValueBase, which refuses NumPy functions of Values "
        "(np.exp(v): OperandTypeError, CaptureError while tracing); backends used to set it to None",
    ),
    Change(
        3,
        "2026-12-07",
        "Backend.spec_version",
        "a backend declares the contract version it targets (Backend.build(..., spec_version=N)); "
        "the conformance suite names each later requirement it does not meet",
    ),
)


def met(backend: Backend, change: Change) -> bool:
    """Whether ``backend`` meets ``change`` (the first contract's entry: always)."""
    from spec.value import ValueBase

    if change.op is not None:
        return change.op in backend.lowerings
    if change.name == "Value._apply":
        return backend.Value._apply is not ValueBase._apply
    if change.name == "NumPy functions refused":
        return getattr(backend.Value, "__array_ufunc__", None) is ValueBase.__array_ufunc__
    if change.name == "Backend.spec_version":
        return backend.spec_version is not None
    return change.version == 1


def change_named(name: str) -> Change:
    """The change called ``name`` (``"op max"``, ``"Value._apply"``, ...)."""
    found = [change for change in CHANGES if change.name == name]
    if not found:
        raise LookupError(f"no contract change named {name!r}: {', '.join(c.name for c in CHANGES)}")
    return found[0]


def op_change(code: OpCode) -> Change | None:
    """The change that added primitive ``code`` (None for the first contract's)."""
    return next((change for change in CHANGES if change.op == code), None)


def unmet(backend: Backend, change: Change) -> str | None:
    """Why ``backend`` does not meet ``change``, in one line, or None where it does."""
    if met(backend, change):
        return None
    target = (
        f"targets version {backend.spec_version}"
        if backend.spec_version is not None
        else "declares no spec_version (Backend.build(..., spec_version=N))"
    )
    return (
        f"{change.name}: added in contract version {change.version} ({change.date}): {change.what}; "
        f"backend {backend.name!r} {target}, and does not meet it"
    )


if any(change.op is not None and change.op not in OPS for change in CHANGES):
    raise ImportError("spec.contract: a change names an op that spec.ops has no row for")
