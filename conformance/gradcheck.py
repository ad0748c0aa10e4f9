"""A gradient checker any backend can use: central finite differences.

>>> from backends.python import Value
>>> from spec.programs import Program
>>> program = Program.from_json({"inputs": {"a": 0.5}, "steps": [["b", "tanh", "a"]], "output": "b"})
>>> check_program_gradients(program, Value)
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spec.programs import Program, run_program

__all__ = [
    "FINITE_DIFFERENCE",
    "Tolerance",
    "assert_close",
    "assert_same_bits",
    "check_program_gradients",
    "finite_difference_gradients",
    "float_bits",
    "leaf_grads",
    "repro",
]


@dataclass(frozen=True)
class Tolerance:
    """``|actual - expected| <= atol + rtol * |expected|``."""

    rtol: float
    atol: float

    def accepts(self, actual: float, expected: float) -> bool:
        return abs(actual - expected) <= self.atol + self.rtol * abs(expected)


#: Central differences with step 1e-6 are accurate to ~1e-9 on smooth programs
#: of moderate size; these bounds leave room for curvature and cancellation.
FINITE_DIFFERENCE = Tolerance(rtol=1e-5, atol=1e-6)


def repro(program: Program) -> str:
    """A copy-paste line that rebuilds ``program``."""
    return f"Program.from_json({program.to_json()!r})"


def assert_close(
    actual: float, expected: float, tolerance: Tolerance, what: str, program: Program | None = None
) -> None:
    """Raise AssertionError naming both numbers (and a repro) unless they are close."""
    if tolerance.accepts(actual, expected):
        return
    message = (
        f"{what}: expected {expected!r}, got {actual!r} "
        f"(difference {actual - expected:.3g}; rtol={tolerance.rtol:g}, atol={tolerance.atol:g})"
    )
    if program is not None:
        message += f"\nrepro: {repro(program)}"
    raise AssertionError(message)


def float_bits(x: float) -> int:
    """The IEEE 754 bit pattern of ``x``: it tells -0.0 from 0.0, where ``==`` does not."""
    bits: int = struct.unpack("<q", struct.pack("<d", x))[0]
    return bits


def ulps_apart(a: float, b: float) -> float:
    """How many float64 steps lie from ``a`` to ``b``: 0 for the same bits, 1 from 0.0 to -0.0
    or to the next float; inf where one is a NaN and the other is not."""
    if math.isnan(a) or math.isnan(b):
        return 0.0 if math.isnan(a) and math.isnan(b) else math.inf

    def position(x: float) -> int:  # the float64s in order, -0.0 just below 0.0
        bits = float_bits(x)
        return bits if bits >= 0 else -(bits & 0x7FFF_FFFF_FFFF_FFFF) - 1

    return float(abs(position(a) - position(b)))


@dataclass(frozen=True, eq=False)
class Exact:
    """A float compared bit for bit (-0.0 is not 0.0; a NaN equals itself), shown as the float."""

    value: float

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Exact) and float_bits(self.value) == float_bits(other.value)

    def __hash__(self) -> int:
        return float_bits(self.value)

    def __repr__(self) -> str:
        return repr(self.value)


def float_difference(got: float, want: float) -> str:
    """``got`` against ``want``, as a failure message shows them: both numbers and their ulp distance."""
    return f"{got!r}, expected {want!r} ({ulps_apart(got, want):g} ulps apart)"


def bits_differ(got: Sequence[float], want: Sequence[float], what: str) -> str | None:
    """None where ``got`` and ``want`` hold the same float64s, sign of zero included; else how many
    differ, and the first: ``"2 of 353 grads differ; grad 6: x, expected y (1 ulps apart)"``."""
    differ = [i for i, (a, b) in enumerate(zip(got, want, strict=True)) if float_bits(a) != float_bits(b)]
    if not differ:
        return None
    i = differ[0]
    return f"{len(differ)} of {len(got)} {what}s differ; {what} {i}: {float_difference(got[i], want[i])}"


def assert_same_bits(actual: float, expected: float, what: str) -> None:
    """Raise AssertionError naming both numbers unless they are the same float64, sign of zero included."""
    if float_bits(actual) != float_bits(expected):
        raise AssertionError(
            f"{what}: got {float_difference(actual, expected)}; they must be the same float64, bit for bit"
        )


def finite_difference_gradients(
    f: Callable[[Mapping[str, float]], float], point: Mapping[str, float], step: float = 1e-6
) -> dict[str, float]:
    """d f / d x for every coordinate of ``point``, by central differences."""
    gradients = {}
    for name, x in point.items():
        h = step * max(1.0, abs(x))
        up = f({**point, name: x + h})
        down = f({**point, name: x - h})
        gradients[name] = (up - down) / (2.0 * h)
    return gradients


def check_program_gradients(
    program: Program,
    value_type: Callable[[float], Any],
    tolerance: Tolerance = FINITE_DIFFERENCE,
    step: float = 1e-6,
) -> None:
    """Assert the backend's gradients of ``program`` match central differences of its own forward."""

    def forward(point: Mapping[str, float]) -> float:
        shifted = Program(dict(point), program.steps, program.output)
        return float(run_program(shifted, value_type)[0].data)

    output, leaves = run_program(program, value_type)
    output.backward()
    numeric = finite_difference_gradients(forward, program.inputs, step)
    for name, leaf in leaves.items():
        assert_close(leaf.grad, numeric[name], tolerance, f"d {program.output} / d {name}", program)


def leaf_grads(leaves: Mapping[str, Any]) -> dict[str, float]:
    """``{name: leaf.grad}``."""
    return {name: float(leaf.grad) for name, leaf in leaves.items()}
