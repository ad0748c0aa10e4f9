"""Golden fixtures: values and gradients computed by an independent oracle (spec.fixtures)."""

from __future__ import annotations

from conformance._registry import check
from conformance._training import model_loss, train
from conformance.gradcheck import Tolerance, assert_close
from spec import Backend
from spec.fixtures import ExpressionCase, MLPCase, expression_cases, mlp_cases
from spec.programs import run_program

#: float64 evaluation vs the oracle's exact value rounded once: rounding error
#: grows with graph depth, never to anywhere near this.
GOLDEN = Tolerance(rtol=1e-9, atol=1e-15)


def _expression_params() -> list[tuple[str, ExpressionCase]]:
    return [(case.name, case) for case in expression_cases()]


def _mlp_params() -> list[tuple[str, MLPCase]]:
    return [(case.name, case) for case in mlp_cases()]


@check(params=_expression_params)
def check_golden_expression(backend: Backend, case: ExpressionCase) -> None:
    output, leaves = run_program(case.program, backend.Value)
    assert_close(output.data, case.value, GOLDEN, f"{case.name}: value", case.program)
    output.backward()
    for name, expected in case.grads.items():
        assert_close(leaves[name].grad, expected, GOLDEN, f"{case.name}: d out / d {name}", case.program)


@check(params=_mlp_params)
def check_golden_mlp(backend: Backend, case: MLPCase) -> None:
    expected = case.expected
    model = backend.MLP(
        case.nin,
        case.nouts,
        activation=case.activation,
        output_activation=case.output_activation,
        seed=case.seed,
    )
    for i, (x, want) in enumerate(zip(case.inputs, expected.outputs, strict=True)):
        assert_close(model(x).data, want, GOLDEN, f"{case.name}: output {i} at initialisation")
    total = model_loss(model, case.inputs, case.targets, case.loss, case.alpha)
    assert_close(total.data, expected.loss, GOLDEN, f"{case.name}: initial loss")
    total.backward()
    for i, (p, want) in enumerate(zip(model.parameters(), expected.grads, strict=True)):
        assert_close(p.grad, want, GOLDEN, f"{case.name}: gradient of parameter {i}")

    fresh = backend.MLP(
        case.nin,
        case.nouts,
        activation=case.activation,
        output_activation=case.output_activation,
        seed=case.seed,
    )
    run = train(
        fresh, case.inputs, case.targets, loss=case.loss, lr=case.lr, steps=case.steps, alpha=case.alpha
    )
    for k, (loss, want) in enumerate(zip(run.losses, expected.losses, strict=True)):
        assert_close(loss, want, GOLDEN, f"{case.name}: loss before SGD step {k}")
    for i, (p, want) in enumerate(zip(run.parameters, expected.params_after, strict=True)):
        assert_close(p, want, GOLDEN, f"{case.name}: parameter {i} after {case.steps} steps")
