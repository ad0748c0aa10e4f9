"""Compiled steps on random loss programs: the same numbers as the eager loop, or the same errors.

Every engine path a compiled step may take (the eager fallback, replay, each pass of a
backend's compiler) must compute exactly what the eager loop computes. These checks train
random :mod:`conformance.loss_programs` both ways and compare every float64 bit for bit,
and place forward failures at every position of a batch, so that a kernel that checks
several nodes at once is caught skipping one.
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from conformance._registry import checks_in, named_by_keys
from conformance.loss_programs import (
    CompiledCase,
    LossProgram,
    OptimizerChoice,
    assert_compiled_equals_eager,
    compiled_cases,
    layer_program,
    near_template_cases,
    near_template_layers,
    places,
    with_sibling,
)
from spec import Backend

check = checks_in("compiled", ordered=True)

SGD_SMALL = OptimizerChoice("sgd", 0.01)

# Programs that a random draw reaches only rarely, tried first on every backend.
# Three chains of two products at one height, each parameter in one chain only (so that grouping
# by height keeps the eager order): first factors need grads, both do, and mixed.
DOT_MODES = LossProgram(
    2,
    (0.75, -1.25, 0.5, 1.5, -0.25, 2.0),
    (
        ("v0", "mul", ("p0", "x0")),
        ("v1", "mul", ("p1", "x1")),
        ("v2", "add", ("v0", "v1")),
        ("v3", "mul", ("p2", "p3")),
        ("v4", "mul", ("p3", "p2")),
        ("v5", "add", ("v3", "v4")),
        ("v6", "mul", ("x0", "p4")),
        ("v7", "mul", ("p5", "x1")),
        ("v8", "add", ("v6", "v7")),
        ("v9", "mul", ("v2", "v5")),
        ("v10", "add", ("v9", "v8")),
    ),
    "mse",  # (out - t) ** 2: every sample's graph the same shape, as grouping needs
)
TRAINED_EXPONENT = LossProgram(  # POW with a parameter exponent, and rpow
    1,
    (0.5, 1.5),
    (
        ("v0", "sigmoid", ("x0",)),
        ("v1", "pow", ("v0", "p0")),
        ("v2", "pow", (2.0, "p1")),
        ("v3", "mul", ("v1", "v2")),
    ),
    "mse",
)
RELU_AT_ZERO = LossProgram(
    1, (1.5, -0.5), (("v0", "mul", ("p0", "x0")), ("v1", "relu", ("v0",)), ("v2", "add", ("v1", "p1"))), "sum"
)
TARGET_ARITHMETIC = LossProgram(  # 2 * t, 1 - t and t ** 2 in the graph, not guessed from numbers
    1,
    (0.3,),
    (
        ("v0", "mul", ("p0", "x0")),
        ("v1", "mul", (2.0, "t")),
        ("v2", "sub", (1.0, "t")),
        ("v3", "sub", ("v0", "v1")),
        ("v4", "mul", ("v3", "v2")),
        ("v5", "pow", ("t", 2.0)),
        ("v6", "add", ("v4", "v5")),
    ),
    "pairwise",
)
ZEROS = ([[0.0], [-0.0], [1.0], [0.0], [-0.0]], [1.0, -1.0, 0.0, -1.4464994982422, 2.0])
EXAMPLES = [
    CompiledCase(
        DOT_MODES,
        OptimizerChoice("momentum", 0.05),
        ([[0.5, -1.0]] * 6, [1.0] * 6),
        tuple(([[0.1 * k + j, 1.0 - j] for j in range(6)], [-1.0, 1.0] * 3) for k in range(3)),
    ),
    CompiledCase(TRAINED_EXPONENT, OptimizerChoice("adam", 0.05), ZEROS, (ZEROS, ZEROS, ZEROS)),
    CompiledCase(RELU_AT_ZERO, SGD_SMALL, ZEROS, (ZEROS, ([[2.0]] * 5, ZEROS[1]), ZEROS)),
    CompiledCase(TARGET_ARITHMETIC, OptimizerChoice("sgd", 0.05), ZEROS, (ZEROS, ZEROS, ZEROS)),
]


def _each_equals_eager(
    backend: Backend, cases: st.SearchStrategy[CompiledCase], first: list[CompiledCase]
) -> None:
    """Every case Hypothesis draws from ``cases``, the ``first`` ones before them, compiled
    against the eager loop (:func:`assert_compiled_equals_eager`)."""

    @given(case=cases)
    def prop(case: CompiledCase) -> None:
        assert_compiled_equals_eager(backend, case)

    for case in first:
        prop = example(case=case)(prop)
    prop()


@check
def check_compiled_random_programs_equal_the_eager_loop(backend: Backend) -> None:
    _each_equals_eager(backend, compiled_cases(), EXAMPLES)


# --- near-template programs: samples that differ from their neighbours in one thing ------------------
SQUARE = (("v0", "mul", ("p0", "x0")), ("v1", "sub", ("v0", "t")), ("v2", "pow", ("v1", 2.0)))
PUSHES = (  # x0*h + x1*h, where other samples have x0*h + p1*h: one unit pushes into a parameter
    ("h", "mul", ("p0", "x0")),
    ("h2", "tanh", ("h",)),
    ("a", "mul", ("x0", "h2")),
    ("b", "mul", ("x1", "h2")),
    ("v", "add", ("a", "b")),
)
DIFFERENCE = (("v0", "mul", ("p0", "x0")), ("v1", "sub", ("v0", "x1")), ("v2", "mul", ("v1", "p1")))


def _near(steps: tuple[Any, ...], other: tuple[Any, ...], where: str, n: int, n_inputs: int) -> CompiledCase:
    parameters = (0.75, -1.25)
    if where == "sibling":
        program = LossProgram(n_inputs, parameters, with_sibling(steps, other), "mean")
    else:
        program = LossProgram(n_inputs, parameters, steps, "mean", places(where, n), other)
    batches = tuple(
        ([[0.25 * (s + k) - 1.0 + 0.5 * j for j in range(n_inputs)] for s in range(n)], [0.5] * n)
        for k in range(4)
    )
    return CompiledCase(program, OptimizerChoice("sgd", 0.05), batches[0], batches[1:])


NEAR_TEMPLATE_EXAMPLES = [
    # (p - t) ** 2 for even samples, (p - t) ** 4 for odd ones: not one template with sample 0's exponent
    _near(SQUARE, (*SQUARE[:2], ("v2", "pow", ("v1", 4.0))), "alternate", 7, 1),
    _near(PUSHES, (*PUSHES[:3], ("b", "mul", ("p1", "h2")), PUSHES[4]), "alternate", 9, 2),
    _near(PUSHES, (*PUSHES[:3], ("b", "mul", ("p1", "h2")), PUSHES[4]), "middle", 9, 2),
    # a group of two units side by side, the first pushing into no parameter, the second into p1
    _near(PUSHES, (*PUSHES[:3], ("b", "mul", ("p1", "h2")), PUSHES[4]), "sibling", 9, 2),
    _near(SQUARE, (*SQUARE[:2], ("v2", "pow", ("v1", 4.0))), "sibling", 5, 1),
    # the fourth sample reads its inputs the other way round
    _near(DIFFERENCE, (DIFFERENCE[0], ("v1", "sub", ("x1", "v0")), DIFFERENCE[2]), "fourth", 6, 2),
    _near(DIFFERENCE, (*DIFFERENCE, ("extra", "tanh", ("v2",))), "last", 11, 2),
]


@check
def check_compiled_near_template_programs_equal_the_eager_loop(backend: Backend) -> None:
    _each_equals_eager(backend, near_template_cases(), NEAR_TEMPLATE_EXAMPLES)


def _layer_case(difference: str, unit: int, units: int = 4, n: int = 9) -> CompiledCase:
    program = layer_program(units, 4, difference, unit)
    batches = tuple(([[0.3 * s - 1.0 + 0.1 * k] for s in range(n)], [0.5] * n) for k in range(4))
    return CompiledCase(program, OptimizerChoice("sgd", 0.05), batches[0], batches[1:])


#: a layer's units, one of them different: where the units run four at a time it is the fourth;
#: where a group's pushes into parameters are decided, the first pushes into none
LAYER_EXAMPLES = [
    _layer_case("operand_order", 3),
    _layer_case("no_parameters", 0, units=5),
    _layer_case("no_parameters", 0),
    _layer_case("constant", 3),
]


@check
def check_compiled_near_template_layers_equal_the_eager_loop(backend: Backend) -> None:
    _each_equals_eager(backend, near_template_layers(), LAYER_EXAMPLES)


# --- a failure at every position of a batch ---------------------------------------------------------
LANES = 8
SAFE_INPUT = 0.5

#: name -> (one sample's steps, the parameters, an input that makes the marked op fail). Each
#: output goes through tanh, which would hide an overflow or a NaN a kernel let through.
FAILURES: dict[str, tuple[tuple[tuple[str, str, tuple[str | float, ...]], ...], tuple[float, ...], float]] = {
    "log_at_zero": ((("v0", "mul", ("p0", "x0")), ("v1", "log", ("v0",))), (1.5,), 0.0),
    "log_of_negative": ((("v0", "mul", ("p0", "x0")), ("v1", "log", ("v0",))), (1.5,), -1.0),
    "reciprocal_of_zero": ((("v0", "mul", ("p0", "x0")), ("v1", "pow", ("v0", -1.0))), (1.5,), 0.0),
    "division_by_zero": ((("v0", "truediv", ("p0", "x0")),), (1.5,), 0.0),
    "sqrt_at_zero": ((("v0", "mul", ("p0", "x0")), ("v1", "pow", ("v0", 0.5))), (1.5,), 0.0),
    "sqrt_of_negative": ((("v0", "mul", ("p0", "x0")), ("v1", "pow", ("v0", 0.5))), (1.5,), -1.0),
    "pow_base_at_zero": ((("v0", "mul", ("p0", "x0")), ("v1", "pow", ("v0", "p1"))), (1.5, 2.0), 0.0),
    "exp_overflow": ((("v0", "mul", ("p0", "x0")), ("v1", "exp", ("v0",))), (1.5,), 1000.0),
    "mul_overflow": ((("v0", "mul", ("p0", "x0")), ("v1", "mul", ("v0", "x0"))), (1.5,), 1e200),
    "dot_overflow": (
        (("v0", "mul", ("p0", "x0")), ("v1", "mul", ("p1", "x0")), ("v2", "add", ("v0", "v1"))),
        (1.0, 1.0),
        1e308,
    ),
    "sum_overflow": ((("v0", "add", ("x0", "x0")), ("v1", "add", ("v0", "p0"))), (1.5,), 1e308),
    "pow_const_overflow": ((("v0", "mul", ("p0", "x0")), ("v1", "pow", ("v0", 3.0))), (1.5,), 1e200),
    "pow_overflow": ((("v0", "pow", ("x0", "p0")),), (2.0,), 1e200),
}


def _failure_case(name: str) -> CompiledCase:
    steps, parameters, failing = FAILURES[name]
    last = steps[-1][0]
    program = LossProgram(1, parameters, (*steps, ("out", "tanh", (last,))), "mean")
    safe = ([[SAFE_INPUT]] * LANES, [0.5] * LANES)
    batches = []
    for lane in range(LANES):
        inputs = [[SAFE_INPUT] for _ in range(LANES)]
        inputs[lane] = [failing]
        batches += [(inputs, safe[1]), safe]
    return CompiledCase(program, SGD_SMALL, safe, tuple(batches))


@check(params=named_by_keys(FAILURES))
def check_compiled_forward_failures_at_every_lane(backend: Backend, name: str) -> None:
    assert_compiled_equals_eager(backend, _failure_case(name))
