"""Hypothesis properties over random programs (conformance.strategies)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from conformance._registry import checks_in
from conformance.gradcheck import Tolerance, assert_close, check_program_gradients, leaf_grads, repro
from conformance.strategies import programs, sample_floats
from spec import Backend
from spec.programs import Program, run_program

check = checks_in("ops")

#: Identities that hold mathematically but round differently in float64.
IDENTITY = Tolerance(rtol=1e-12, atol=1e-12)


def _gradients(backend: Backend, program: Program) -> tuple[float, dict[str, float]]:
    output, leaves = run_program(program, backend.Value)
    output.backward()
    return output.data, leaf_grads(leaves)


@check
def check_gradients_match_finite_differences(backend: Backend) -> None:
    @given(program=programs())
    def prop(program: Program) -> None:
        check_program_gradients(program, backend.Value)

    prop()


@check
def check_gradients_match_oracle(backend: Backend) -> None:
    from spec.fixtures import oracle_gradients

    @given(program=programs(max_inputs=2, max_steps=6))
    def prop(program: Program) -> None:
        value, grads = _gradients(backend, program)
        want_value, want_grads = oracle_gradients(program)
        assert_close(value, want_value, IDENTITY, "value vs oracle", program)
        for name, want in want_grads.items():
            assert_close(grads[name], want, IDENTITY, f"d out / d {name} vs oracle", program)

    prop()


@check(also=("precision",), ordered=True)
def check_building_twice_is_bit_identical(backend: Backend) -> None:
    @given(program=programs())
    def prop(program: Program) -> None:
        first, second = _gradients(backend, program), _gradients(backend, program)
        assert first == second, (
            f"same program, different results: {first} vs {second}\nrepro: {repro(program)}"
        )

    prop()


@check(also=("backward",), ordered=True)
def check_second_backward_doubles_every_leaf_grad(backend: Backend) -> None:
    @given(program=programs())
    def prop(program: Program) -> None:
        output, leaves = run_program(program, backend.Value)
        output.backward()
        once = leaf_grads(leaves)
        output.backward()
        # Equal up to rounding: a leaf with several contributions adds them to a
        # non-zero start the second time, so the float sums may differ in the last bit.
        for name, grad in leaf_grads(leaves).items():
            assert_close(grad, 2 * once[name], IDENTITY, f"d out / d {name} after two backward()", program)

    prop()


@check(also=("backward",), ordered=True)
def check_zero_grad_then_backward_is_fresh(backend: Backend) -> None:
    @given(program=programs())
    def prop(program: Program) -> None:
        output, leaves = run_program(program, backend.Value)
        output.backward()
        fresh = leaf_grads(leaves)
        output.backward()
        output.zero_grad()
        output.backward()
        assert leaf_grads(leaves) == fresh, f"repro: {repro(program)}"

    prop()


@check(also=("precision",))
def check_add_and_mul_commute_exactly(backend: Backend) -> None:
    @given(x=sample_floats(-1e3, 1e3), y=sample_floats(-1e3, 1e3))
    def prop(x: float, y: float) -> None:
        for op in ("__add__", "__mul__"):
            a, b = backend.Value(x), backend.Value(y)
            left = getattr(a, op)(b)
            left.backward()
            c, d = backend.Value(x), backend.Value(y)
            right = getattr(d, op)(c)
            right.backward()
            assert (left.data, a.grad, b.grad) == (right.data, c.grad, d.grad), (op, x, y)

    prop()


@check(also=("precision",))
def check_self_subtraction_is_zero(backend: Backend) -> None:
    @given(x=sample_floats(-1e6, 1e6))
    def prop(x: float) -> None:
        a = backend.Value(x)
        out = a - a
        out.backward()
        assert out.data == 0.0 and a.grad == 0.0, (x, out.data, a.grad)

    prop()


@check
def check_exp_inverts_log(backend: Backend) -> None:
    @given(x=sample_floats(1e-3, 1e3))
    def prop(x: float) -> None:
        a = backend.Value(x)
        out = a.log().exp()
        out.backward()
        assert_close(out.data, x, IDENTITY, f"exp(log({x!r}))")
        assert_close(a.grad, 1.0, IDENTITY, f"d exp(log(x)) / dx at {x!r}")

    prop()


@check
def check_tanh_is_a_scaled_sigmoid(backend: Backend) -> None:
    @given(x=sample_floats(-5.0, 5.0))
    def prop(x: float) -> None:
        a, b = backend.Value(x), backend.Value(x)
        t = a.tanh()
        s = 2 * (2 * b).sigmoid() - 1
        t.backward()
        s.backward()
        assert_close(t.data, s.data, IDENTITY, f"tanh({x!r}) vs 2*sigmoid(2x)-1")
        assert_close(a.grad, b.grad, Tolerance(1e-9, 1e-12), f"their derivatives at {x!r}")

    prop()


@check
def check_sum_of_copies(backend: Backend) -> None:
    @given(x=sample_floats(-10.0, 10.0), n=st.integers(1, 50))
    def prop(x: float, n: int) -> None:
        a = backend.Value(x)
        out = sum([a] * n)
        out.backward()
        assert a.grad == float(n), f"d(a + ... + a)/da with {n} copies is {n}, got {a.grad}"

    prop()


@check
def check_gradients_are_linear(backend: Backend) -> None:
    @given(program=programs(), c=sample_floats(-4.0, 4.0).filter(lambda c: abs(c) > 1e-3))
    def prop(program: Program, c: float) -> None:
        _, base = _gradients(backend, program)
        output, leaves = run_program(program, backend.Value)
        (output * c).backward()
        for name, grad in leaf_grads(leaves).items():
            assert_close(grad, c * base[name], IDENTITY, f"d (c*out) / d {name} with c={c!r}", program)

    prop()


@check
def check_power_rules(backend: Backend) -> None:
    @given(x=sample_floats(0.1, 10.0), n=st.integers(-4, 4))
    def prop(x: float, n: int) -> None:
        a = backend.Value(x)
        out = a**n
        out.backward()
        assert_close(out.data, x**n, IDENTITY, f"{x!r} ** {n}")
        assert_close(a.grad, n * x ** (n - 1) if n else 0.0, IDENTITY, f"d x**{n}/dx at {x!r}")
        b = backend.Value(x)
        quotient = 1 / b
        quotient.backward()
        assert_close(b.grad, -1 / (x * x), IDENTITY, f"d (1/x)/dx at {x!r}")
        assert math.isfinite(b.grad)

    prop()
