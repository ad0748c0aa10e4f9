"""Golden fixtures: values and gradients computed by an independent oracle (spec.fixtures)."""

from __future__ import annotations

from typing import Any

from conformance._registry import checks_in
from conformance._training import model_loss, train
from conformance.checks.contract import need_ops
from conformance.gradcheck import Tolerance, assert_close
from conformance.graphs import assert_same_graph
from spec import Backend, cross_entropy, logsumexp, one_hot, softmax
from spec.fixtures import CompositeCase, ExpressionCase, MLPCase, composite_cases, expression_cases, mlp_cases
from spec.programs import run_program

check = checks_in("ops")

#: float64 evaluation vs the oracle's exact value rounded once: rounding error
#: grows with graph depth, never to anywhere near this.
GOLDEN = Tolerance(rtol=1e-9, atol=1e-15)


def _expression_params() -> list[tuple[str, ExpressionCase]]:
    return [(case.name, case) for case in expression_cases()]


def _mlp_params() -> list[tuple[str, MLPCase]]:
    return [(case.name, case) for case in mlp_cases()]


def _composite_params() -> list[tuple[str, CompositeCase]]:
    return [(case.name, case) for case in composite_cases()]


@check(params=_expression_params)
def check_golden_expression(backend: Backend, case: ExpressionCase) -> None:
    need_ops(backend, [op for _, op, _ in case.program.steps])
    output, leaves = run_program(case.program, backend.Value)
    assert_close(output.data, case.value, GOLDEN, f"{case.name}: value", case.program)
    output.backward()
    for name, expected in case.grads.items():
        assert_close(leaves[name].grad, expected, GOLDEN, f"{case.name}: d out / d {name}", case.program)


@check(params=_mlp_params, also=("models",))
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


def _composite_outputs(case: CompositeCase, logits: list[list[Any]], labels: Any) -> list[Any]:
    if case.function == "logsumexp":
        return [logsumexp(logits[0])]
    if case.function == "softmax":
        return softmax(logits[0])
    return [cross_entropy(logits, labels)]


@check(params=_composite_params)
def check_golden_composite(backend: Backend, case: CompositeCase) -> None:
    need_ops(backend, ["max", "truediv"])  # logsumexp's largest term; softmax's quotients
    """logsumexp, softmax and cross_entropy against the oracle's textbook formulas; integer
    labels and one-hot rows give the same cross-entropy."""
    label_forms: list[Any] = [None]
    if case.labels is not None:
        label_forms = [list(case.labels), one_hot(case.labels, len(case.logits[0])).tolist()]
    for labels in label_forms:
        spelled = "" if labels is None else f" (labels {labels})"
        for i, (want_value, want_grads) in enumerate(zip(case.values, case.grads, strict=True)):
            logits = [[backend.Value(z) for z in row] for row in case.logits]  # a fresh graph per output
            out = _composite_outputs(case, logits, labels)[i]
            assert_close(out.data, want_value, GOLDEN, f"{case.name}{spelled}: output {i}")
            out.backward()
            got = [z.grad for row in logits for z in row]
            for j, (g, want) in enumerate(zip(got, want_grads, strict=True)):
                assert_close(g, want, GOLDEN, f"{case.name}{spelled}: d output {i} / d logit {j}")


# --- the composites' graphs, as their docstrings spell them ---------------------------------------
def _documented_logsumexp(z: list[Any]) -> tuple[Any, list[Any], Any]:
    """``m + log(e_0 + e_1 + ...)``, ``e_i = exp(z_i + (-m))``, ``m = z_0.max(z_1).max(z_2)...``,
    the sum left to right; also the ``e_i`` and their sum."""
    largest = z[0]
    for zi in z[1:]:
        largest = largest.max(zi)
    shift = -largest
    exps = [(zi + shift).exp() for zi in z]
    total = exps[0]
    for e in exps[1:]:
        total = total + e
    return largest + total.log(), exps, total


def _documented_outputs(case: CompositeCase, logits: list[list[Any]], labels: Any) -> list[Any]:
    if case.function == "logsumexp":
        return [_documented_logsumexp(logits[0])[0]]
    if case.function == "softmax":
        _, exps, total = _documented_logsumexp(logits[0])
        return [e / total for e in exps]
    terms = []
    for z, label in zip(logits, labels, strict=True):
        if isinstance(label, int):
            picked = z[label]
        else:  # a row of target probabilities: z . t, left to right
            products = [zj * tj for zj, tj in zip(z, label, strict=True)]
            picked = products[0]
            for product in products[1:]:
                picked = picked + product
        terms.append(_documented_logsumexp(z)[0] - picked)
    return [sum(terms) * (1.0 / len(terms))]


@check(params=_composite_params)
def check_composites_build_their_documented_graphs(backend: Backend, case: CompositeCase) -> None:
    """logsumexp, softmax and cross_entropy make exactly the primitive ops their docstrings
    spell, in that order: the same nodes, the same float64 bits, the sums in the same order."""
    need_ops(backend, ["max", "truediv"])
    label_forms: list[Any] = [None]
    if case.labels is not None:
        label_forms = [list(case.labels), one_hot(case.labels, len(case.logits[0])).tolist()]
    for labels in label_forms:
        logits = [[backend.Value(z) for z in row] for row in case.logits]
        built = _composite_outputs(case, logits, labels)
        documented = _documented_outputs(case, logits, labels)
        assert_same_graph(built, documented, [z for row in logits for z in row])
