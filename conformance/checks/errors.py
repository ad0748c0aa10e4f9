"""The error contract (spec.errors): each bad input raises the documented type, and nothing changes."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from conformance._registry import checks_in, named_by_keys
from conformance.checks.contract import need_ops
from spec import (
    SGD,
    Adam,
    Backend,
    BackendMismatchError,
    CaptureError,
    DivisionByZeroError,
    DomainError,
    NonFiniteError,
    OperandTypeError,
    ResultOverflowError,
    ShapeError,
    ValueBase,
    binary_cross_entropy,
    compile_step,
    cross_entropy,
    l2_penalty,
    linear_decay,
    logsumexp,
    mse_loss,
    one_hot,
    softmax,
    svm_loss,
)

check = checks_in("errors")


class ForeignValue(ValueBase):
    """A Value of a backend that is not the one under test."""

    __slots__ = ("data",)
    backend_name = "foreign"

    def __init__(self, data: float) -> None:
        self.data = data


def _mlp(backend: Backend, *args: Any, **kwargs: Any) -> Any:
    return backend.MLP(*args, **kwargs)


def _step_with_grad(backend: Backend, grad: float) -> None:
    p = backend.Value(1.0)
    p.grad = grad
    SGD([p], lr=0.1).step()


def _logits(backend: Backend, *rows: list[float]) -> list[list[Any]]:
    return [[backend.Value(z) for z in row] for row in rows]


BadInput = Callable[[Backend], Any]

# id -> (the call that must fail, the exception type it must raise)
ERROR_CASES: dict[str, tuple[BadInput, type[Exception]]] = {
    # --- construction -------------------------------------------------------------
    "value_from_string": (lambda b: b.Value("3"), OperandTypeError),
    "value_from_list": (lambda b: b.Value([1.0]), OperandTypeError),
    "value_from_none": (lambda b: b.Value(None), OperandTypeError),
    "value_from_complex": (lambda b: b.Value(1j), OperandTypeError),
    "value_from_nan": (lambda b: b.Value(float("nan")), NonFiniteError),
    "value_from_inf": (lambda b: b.Value(float("-inf")), NonFiniteError),
    # an integer beyond float64 is not finite there; bool is not a number (nor is NumPy's bool_)
    "value_from_huge_int": (lambda b: b.Value(10**400), NonFiniteError),
    "value_from_huge_fraction": (lambda b: b.Value(Fraction(10**400, 3)), NonFiniteError),
    "value_from_bool": (lambda b: b.Value(True), OperandTypeError),
    "value_from_numpy_bool": (lambda b: b.Value(np.True_), OperandTypeError),
    # --- operands -----------------------------------------------------------------
    "add_string": (lambda b: b.Value(1.0) + "2", OperandTypeError),
    "mul_none": (lambda b: b.Value(1.0) * None, OperandTypeError),
    "radd_list": (lambda b: b.Value(1.0).__radd__([1]), OperandTypeError),
    "add_nan": (lambda b: b.Value(1.0) + float("nan"), NonFiniteError),
    "add_huge_int": (lambda b: b.Value(1.0) + 10**400, NonFiniteError),
    "radd_huge_int": (lambda b: 10**400 + b.Value(1.0), NonFiniteError),
    "mul_bool": (lambda b: b.Value(1.0) * True, OperandTypeError),
    "pow_huge_int_exponent": (lambda b: b.Value(2.0) ** 10**400, NonFiniteError),
    "rpow_huge_int_base": (lambda b: (10**400) ** b.Value(2.0), NonFiniteError),
    "pow_string_exponent": (lambda b: b.Value(2.0) ** "2", OperandTypeError),
    "foreign_add": (lambda b: b.Value(1.0) + ForeignValue(1.0), BackendMismatchError),
    "foreign_radd": (lambda b: b.Value(1.0).__radd__(ForeignValue(1.0)), BackendMismatchError),
    "foreign_mul": (lambda b: b.Value(1.0) * ForeignValue(1.0), BackendMismatchError),
    "foreign_sub": (lambda b: b.Value(1.0) - ForeignValue(1.0), BackendMismatchError),
    "foreign_div": (lambda b: b.Value(1.0) / ForeignValue(1.0), BackendMismatchError),
    "foreign_pow": (lambda b: b.Value(1.0) ** ForeignValue(1.0), BackendMismatchError),
    # --- domains --------------------------------------------------------------------
    "log_zero": (lambda b: b.Value(0.0).log(), DomainError),
    "log_negative": (lambda b: b.Value(-1.0).log(), DomainError),
    "div_by_number_zero": (lambda b: b.Value(1.0) / 0, DivisionByZeroError),
    "div_by_value_zero": (lambda b: b.Value(1.0) / b.Value(0.0), DivisionByZeroError),
    "rdiv_by_value_zero": (lambda b: 1.0 / b.Value(0.0), DivisionByZeroError),
    "zero_to_negative_power": (lambda b: b.Value(0.0) ** -2, DivisionByZeroError),
    "zero_to_fractional_power": (lambda b: b.Value(0.0) ** 0.5, DomainError),
    "negative_to_fractional_power": (lambda b: b.Value(-8.0) ** (1 / 3), DomainError),
    "negative_base_value_exponent": (lambda b: b.Value(-2.0) ** b.Value(2.0), DomainError),
    "negative_number_to_value_power": (lambda b: (-2.0) ** b.Value(2.0), DomainError),
    # --- overflow -------------------------------------------------------------------
    "exp_overflow": (lambda b: b.Value(1000.0).exp(), ResultOverflowError),
    "mul_overflow": (lambda b: b.Value(1e200) * 1e200, ResultOverflowError),
    "add_overflow": (lambda b: b.Value(1.7e308) + b.Value(1.7e308), ResultOverflowError),
    "pow_overflow": (lambda b: b.Value(10.0) ** 400, ResultOverflowError),
    "pow_value_overflow": (lambda b: b.Value(10.0) ** b.Value(400.0), ResultOverflowError),
    "div_overflow": (lambda b: b.Value(1e300) / 1e-300, ResultOverflowError),
    # the quotient overflows (no inf was given), with a number or a Value divisor alike
    "div_by_tiny_number": (lambda b: b.Value(1.0) / 5e-324, ResultOverflowError),
    "div_by_tiny_value": (lambda b: b.Value(1.0) / b.Value(5e-324), ResultOverflowError),
    "rdiv_by_tiny_value": (lambda b: 1.0 / b.Value(5e-324), ResultOverflowError),
    # --- models -----------------------------------------------------------------------
    "mlp_input_too_narrow": (lambda b: _mlp(b, 3, [2, 1], seed=0)([1.0, 2.0]), ShapeError),
    "mlp_input_too_wide": (lambda b: _mlp(b, 2, [2, 1], seed=0)([1.0, 2.0, 3.0]), ShapeError),
    "mlp_input_not_a_sequence": (lambda b: _mlp(b, 1, [1], seed=0)(1.0), ShapeError),
    "mlp_input_string_element": (lambda b: _mlp(b, 1, [1], seed=0)(["x"]), OperandTypeError),
    "mlp_input_huge_int": (lambda b: _mlp(b, 1, [1], seed=0)([10**400]), NonFiniteError),
    # echoed in short: repr() of a 5,000-digit integer itself raises
    "mlp_input_huge_int_not_a_sequence": (lambda b: _mlp(b, 1, [1], seed=0)(10**5000), ShapeError),
    "mlp_no_layers": (lambda b: _mlp(b, 2, []), ShapeError),
    "mlp_zero_inputs": (lambda b: _mlp(b, 0, [1]), ShapeError),
    "mlp_negative_layer": (lambda b: _mlp(b, 2, [4, -1]), ShapeError),
    "mlp_zero_layer": (lambda b: _mlp(b, 2, [0, 1]), ShapeError),
    "mlp_fractional_layer": (lambda b: _mlp(b, 2, [2.5, 1]), ShapeError),
    "mlp_unknown_activation": (lambda b: _mlp(b, 2, [1], activation="swish"), ValueError),
    "layer_zero_outputs": (lambda b: b.Layer(2, 0), ShapeError),
    "neuron_negative_inputs": (lambda b: b.Neuron(-1), ShapeError),
    # --- losses -------------------------------------------------------------------------
    "mse_length_mismatch": (lambda b: mse_loss([b.Value(1.0)], [1.0, 2.0]), ShapeError),
    "svm_length_mismatch": (lambda b: svm_loss([b.Value(1.0), b.Value(2.0)], [1.0]), ShapeError),
    "bce_length_mismatch": (lambda b: binary_cross_entropy([b.Value(0.5)], []), ShapeError),
    "mse_empty": (lambda b: mse_loss([], []), ShapeError),
    "mse_string_target": (lambda b: mse_loss([b.Value(1.0)], ["1"]), OperandTypeError),
    "mse_huge_int_target": (lambda b: mse_loss([b.Value(1.0)], [10**400]), NonFiniteError),
    "bce_probability_one": (lambda b: binary_cross_entropy([b.Value(1.0)], [1.0]), DomainError),
    "l2_no_parameters": (lambda b: l2_penalty([], 1e-4), ShapeError),
    "max_string": (lambda b: b.Value(1.0).max("2"), OperandTypeError),
    "max_nan": (lambda b: b.Value(1.0).max(float("nan")), NonFiniteError),
    "max_foreign": (lambda b: b.Value(1.0).max(ForeignValue(1.0)), BackendMismatchError),
    "logsumexp_empty": (lambda b: logsumexp([]), ShapeError),
    "logsumexp_of_numbers": (lambda b: logsumexp([1.0, 2.0]), OperandTypeError),
    "softmax_of_one_value": (lambda b: softmax(b.Value(1.0)), ShapeError),
    "cross_entropy_no_samples": (lambda b: cross_entropy([], []), ShapeError),
    "cross_entropy_ragged_logits": (
        lambda b: cross_entropy(_logits(b, [1.0, 2.0], [1.0]), [0, 0]),
        ShapeError,
    ),
    "cross_entropy_label_count": (lambda b: cross_entropy(_logits(b, [1.0, 2.0]), [0, 1]), ShapeError),
    "cross_entropy_label_too_big": (lambda b: cross_entropy(_logits(b, [1.0, 2.0]), [2]), ShapeError),
    "cross_entropy_negative_label": (lambda b: cross_entropy(_logits(b, [1.0, 2.0]), [-1]), ShapeError),
    "cross_entropy_float_label": (lambda b: cross_entropy(_logits(b, [1.0, 2.0]), [1.0]), OperandTypeError),
    "cross_entropy_bool_label": (lambda b: cross_entropy(_logits(b, [1.0, 2.0]), [True]), OperandTypeError),
    "cross_entropy_value_label": (
        lambda b: cross_entropy(_logits(b, [1.0, 2.0]), [b.Value(1.0)]),
        OperandTypeError,
    ),
    "cross_entropy_short_one_hot_row": (
        lambda b: cross_entropy(_logits(b, [1.0, 2.0, 3.0]), [[0.0, 1.0]]),
        ShapeError,
    ),
    "cross_entropy_scalar_logits": (lambda b: cross_entropy([b.Value(1.0)], [0]), ShapeError),
    "one_hot_label_out_of_range": (lambda b: one_hot([0, 3], 3), ShapeError),
    "one_hot_no_classes": (lambda b: one_hot([0], 0), ShapeError),
    # --- losses given something that is not a sequence: a generator has no length, a 0-d
    # array is one number; either is a ShapeError, whichever argument it is
    "mse_generator_predictions": (lambda b: mse_loss((b.Value(x) for x in [1.0]), [1.0]), ShapeError),
    "mse_generator_targets": (lambda b: mse_loss([b.Value(1.0)], (t for t in [1.0])), ShapeError),
    "mse_0d_array_targets": (lambda b: mse_loss([b.Value(1.0)], np.array(1.0)), ShapeError),
    "mse_set_targets": (lambda b: mse_loss([b.Value(1.0)], {1.0}), ShapeError),
    "mse_none_targets": (lambda b: mse_loss([b.Value(1.0)], None), ShapeError),
    "svm_generator_labels": (lambda b: svm_loss([b.Value(1.0)], (y for y in [1.0])), ShapeError),
    "svm_0d_array_labels": (lambda b: svm_loss([b.Value(1.0)], np.array(1.0)), ShapeError),
    "bce_generator_targets": (lambda b: binary_cross_entropy([b.Value(0.5)], (t for t in [1.0])), ShapeError),
    "bce_0d_array_probabilities": (
        lambda b: binary_cross_entropy(np.array(b.Value(0.5), dtype=object), [1.0]),
        ShapeError,
    ),
    "l2_none_parameters": (lambda b: l2_penalty(None, 1e-4), ShapeError),
    "l2_0d_array_parameters": (lambda b: l2_penalty(np.array(1.0), 1e-4), ShapeError),
    "logsumexp_generator": (lambda b: logsumexp(b.Value(z) for z in [1.0, 2.0]), ShapeError),
    "logsumexp_0d_array": (lambda b: logsumexp(np.array(b.Value(1.0), dtype=object)), ShapeError),
    "softmax_generator": (lambda b: softmax(b.Value(z) for z in [1.0, 2.0]), ShapeError),
    "softmax_0d_array": (lambda b: softmax(np.array(b.Value(1.0), dtype=object)), ShapeError),
    "cross_entropy_generator_labels": (
        lambda b: cross_entropy(_logits(b, [1.0, 2.0], [0.5, 0.1]), (i for i in [0, 1])),
        ShapeError,
    ),
    "cross_entropy_0d_array_labels": (
        lambda b: cross_entropy(_logits(b, [1.0, 2.0]), np.array(1)),
        ShapeError,
    ),
    "cross_entropy_none_labels": (lambda b: cross_entropy(_logits(b, [1.0, 2.0]), None), ShapeError),
    "cross_entropy_generator_logits": (
        lambda b: cross_entropy((row for row in _logits(b, [1.0, 2.0])), [0]),
        ShapeError,
    ),
    # one label that is a 0-d array is an entry that is not an integer
    "cross_entropy_0d_array_label": (
        lambda b: cross_entropy(_logits(b, [1.0, 2.0]), [np.array(1)]),
        OperandTypeError,
    ),
    "one_hot_none_labels": (lambda b: one_hot(None, 3), ShapeError),
    "one_hot_number_labels": (lambda b: one_hot(5, 3), ShapeError),
    "one_hot_generator_labels": (lambda b: one_hot((i for i in [0, 1]), 3), ShapeError),
    "one_hot_0d_array_labels": (lambda b: one_hot(np.array(1), 3), ShapeError),
    "one_hot_0d_array_label": (lambda b: one_hot([np.array(1)], 3), OperandTypeError),
    # k is a class count: at most 2**31 - 1, and rows that cannot be allocated are refused too
    "one_hot_huge_k": (lambda b: one_hot([0], 2**70), ShapeError),
    "one_hot_k_over_int32": (lambda b: one_hot([0], 2**31), ShapeError),
    "one_hot_string_k": (lambda b: one_hot([0], "3"), ShapeError),
    # 2**18 rows of 2**31 - 1 float64 are 4 PiB: beyond any address space, refused at once
    "one_hot_rows_too_large_to_allocate": (lambda b: one_hot([0] * 2**18, 2**31 - 1), ShapeError),
    # --- optimizer ------------------------------------------------------------------------
    "sgd_string_lr": (lambda b: SGD([b.Value(1.0)], lr="0.1"), OperandTypeError),
    "sgd_nan_lr": (lambda b: SGD([b.Value(1.0)], lr=float("nan")), NonFiniteError),
    "sgd_negative_lr": (lambda b: SGD([b.Value(1.0)], lr=-0.1), DomainError),
    "sgd_huge_int_lr": (lambda b: SGD([b.Value(1.0)], lr=10**400), NonFiniteError),
    "linear_decay_zero_steps": (lambda b: linear_decay(1.0, 0.1, 0), ValueError),
    "linear_decay_fractional_steps": (lambda b: linear_decay(1.0, 0.1, 2.5), ValueError),
    "sgd_nan_gradient": (lambda b: _step_with_grad(b, float("nan")), NonFiniteError),
    "sgd_infinite_gradient": (lambda b: _step_with_grad(b, float("inf")), ResultOverflowError),
    "sgd_schedule_returns_string": (
        lambda b: SGD([b.Value(1.0)], lr=lambda k: "fast").step(),
        OperandTypeError,
    ),
    "sgd_momentum_one": (lambda b: SGD([b.Value(1.0)], lr=0.1, momentum=1.0), DomainError),
    "sgd_momentum_string": (lambda b: SGD([b.Value(1.0)], lr=0.1, momentum="0.9"), OperandTypeError),
    "adam_one_beta": (lambda b: Adam([b.Value(1.0)], betas=(0.9,)), OperandTypeError),
    "adam_betas_none": (lambda b: Adam([b.Value(1.0)], betas=None), OperandTypeError),  # type: ignore[arg-type]
    "adam_beta_one": (lambda b: Adam([b.Value(1.0)], betas=(1.0, 0.999)), DomainError),
    "adam_zero_eps": (lambda b: Adam([b.Value(1.0)], eps=0.0), DomainError),
    "assigned_lr_none": (lambda b: setattr(SGD([b.Value(1.0)], lr=0.1), "lr", None), OperandTypeError),
    "assigned_steps_negative": (lambda b: setattr(SGD([b.Value(1.0)], lr=0.1), "steps", -1), DomainError),
    "assigned_steps_bool": (lambda b: setattr(SGD([b.Value(1.0)], lr=0.1), "steps", True), OperandTypeError),
    "velocity_of_bools": (lambda b: _step_with_velocity(b, [True]), OperandTypeError),
    "velocity_too_long": (lambda b: _step_with_velocity(b, [0.0, 0.0]), ShapeError),
    "velocity_nan": (lambda b: _step_with_velocity(b, [float("nan")]), NonFiniteError),
    # --- compile_step's arguments ------------------------------------------------------
    "compile_step_of_none": (lambda b: compile_step(None, _mse, [[1.0]], [1.0], SGD([], 0.1)), CaptureError),
    "compile_step_loss_fn_none": (lambda b: _compile_with(b, loss_fn=None), CaptureError),
    "compile_step_optimizer_none": (lambda b: _compile_with(b, optimizer=None), CaptureError),
}


def _mse(m: Any, x: Any, t: Any) -> Any:
    return mse_loss([m(row) for row in x], t)


def _compile_with(backend: Backend, **changed: Any) -> Any:
    model = backend.MLP(1, [1], seed=0)
    arguments = {"loss_fn": _mse, "optimizer": SGD(model.parameters(), 0.1), **changed}
    return compile_step(model, arguments["loss_fn"], [[1.0]], [1.0], arguments["optimizer"], backend=backend)


def _step_with_velocity(backend: Backend, velocity: list[Any]) -> None:
    optimizer = SGD([backend.Value(1.0)], lr=0.1, momentum=0.5)
    optimizer.velocity = velocity
    optimizer.step()


#: the primitive the cases of each name test (a backend of an older contract may lack it)
_OP_OF_CASES = {"div_": "truediv", "rdiv_": "truediv", "max_": "max"}


@check(params=named_by_keys(ERROR_CASES))
def check_error_contract(backend: Backend, case: str) -> None:
    need_ops(backend, [op for prefix, op in _OP_OF_CASES.items() if case.startswith(prefix)])
    bad_input, expected = ERROR_CASES[case]
    try:
        result = bad_input(backend)
    except expected as error:
        assert str(error), f"{case}: {type(error).__name__} has an empty message"
        return
    except Exception as error:
        raise AssertionError(
            f"{case}: expected {expected.__name__}, got {type(error).__name__}: {error}"
        ) from error
    raise AssertionError(f"{case}: expected {expected.__name__}, but it returned {result!r}")


# id -> (the call that must fail, words its message must contain)
NOT_A_SEQUENCE_MESSAGES: dict[str, tuple[BadInput, tuple[str, ...]]] = {
    "mse_generator": (
        lambda b: mse_loss([b.Value(1.0)], (t for t in [1.0])),
        ("mse_loss: targets must be a sequence", "generator, which has no length", "list(...)"),
    ),
    "svm_0d_array": (
        lambda b: svm_loss([b.Value(1.0)], np.array(1.0)),
        ("svm_loss: targets must be a sequence", "0-d ndarray"),
    ),
    "cross_entropy_generator": (
        lambda b: cross_entropy(_logits(b, [1.0, 2.0]), (i for i in [0])),
        ("cross_entropy: labels must be a sequence", "generator"),
    ),
    "cross_entropy_0d_array": (
        lambda b: cross_entropy(_logits(b, [1.0, 2.0]), np.array(1)),
        ("cross_entropy: labels must be a sequence", "0-d ndarray", "array(1)"),
    ),
    "softmax_generator": (
        lambda b: softmax(b.Value(z) for z in [1.0]),
        ("softmax: expected a non-empty sequence of Values", "generator"),
    ),
    "one_hot_none": (lambda b: one_hot(None, 3), ("one_hot: labels must be a sequence", "NoneType: None")),
    "one_hot_number": (lambda b: one_hot(5, 3), ("one_hot: labels must be a sequence", "int: 5")),
    "one_hot_huge_k": (
        lambda b: one_hot([0], 2**70),
        ("one_hot: k, the number of classes, must be an integer from 1 to 2,147,483,647", str(2**70)),
    ),
    "one_hot_rows_too_large": (
        lambda b: one_hot([0] * 2**18, 2**31 - 1),
        ("one_hot: 262,144 rows of 2,147,483,647 classes take", "more than could be allocated"),
    ),
}


@check(params=named_by_keys(NOT_A_SEQUENCE_MESSAGES))
def check_error_messages_say_what_was_given(backend: Backend, case: str) -> None:
    bad_input, words = NOT_A_SEQUENCE_MESSAGES[case]
    try:
        bad_input(backend)
    except ShapeError as error:
        missing = [w for w in words if w not in str(error)]
        assert not missing, f"{case}: the message {str(error)!r} lacks {missing}"
        return
    raise AssertionError(f"{case}: expected ShapeError")


@check
def check_failed_ops_change_nothing(backend: Backend) -> None:
    a, b = backend.Value(2.0), backend.Value(3.0)
    out = a * b + a
    for bad in (
        lambda: (a - 2.0).log(),
        lambda: a / 0,
        lambda: a * 1e308 * 1e308,
        lambda: a + "x",
        lambda: (a * b) ** 0.5 + (-a) ** 0.5,
    ):
        try:
            bad()
        except (ValueError, TypeError, ArithmeticError):
            pass
    out.backward()
    assert (a.grad, b.grad) == (4.0, 2.0), (
        f"after failed ops, gradients are {(a.grad, b.grad)}, expected (4.0, 2.0)"
    )
    assert (len(out.children), out.data) == (2, 8.0), (
        f"a failed op changed an existing node: a * b + a has {len(out.children)} children and data "
        f"{out.data!r}, expected 2 and 8.0"
    )
    later = a * b
    assert later.data == 6.0, f"a * b built after failed ops is {later.data!r}, expected 6.0"
    later.backward()
    assert b.grad == 2.0 + 2.0, (
        f"b.grad after a second backward() is {b.grad!r}, expected 4.0: leaves accumulate across "
        "backward() calls (2.0 from each graph; spec.interface)"
    )


@check
def check_failed_assignments_change_nothing(backend: Backend) -> None:
    v = backend.Value(1.25)
    for bad, error in ((float("nan"), NonFiniteError), ("2", OperandTypeError), (None, OperandTypeError)):
        try:
            v.data = bad
        except error:
            pass
        else:
            raise AssertionError(f"assigning {bad!r} to data should raise {error.__name__}")
        assert v.data == 1.25, f"a refused assignment changed data to {v.data!r}"
    try:
        v.grad = "0"
    except OperandTypeError:
        pass
    else:
        raise AssertionError("assigning a string to grad should raise OperandTypeError")
    assert v.grad == 0.0


@check
def check_failed_sgd_step_changes_nothing(backend: Backend) -> None:
    params = [backend.Value(1.0), backend.Value(1e308)]
    params[0].grad, params[1].grad = 1.0, -1e308
    optimizer = SGD(params, lr=10.0)
    try:
        optimizer.step()
    except ResultOverflowError:
        pass
    else:
        raise AssertionError("an SGD step that overflows a parameter should raise ResultOverflowError")
    assert [p.data for p in params] == [1.0, 1e308], "a failed SGD step changed parameters"
