"""Loss programs: random training steps, and the eager loop every compiled step must equal.

A :class:`LossProgram` is one sample's program (:mod:`spec.programs`' steps) over the names
``p0, p1, ...`` (the parameters), ``x0, x1, ...`` (the sample's inputs) and ``t`` (its
target), and a rule that combines the samples' outputs into the loss: a mean, a sum,
pairwise ranking terms, or one of :mod:`spec.losses`. A :class:`CompiledCase` adds the
optimizer, an example batch to capture with and fresh batches to train on.

:func:`assert_compiled_equals_eager` runs a case twice from the same parameters: with
``spec.compile_step`` and with the eager loop written out here (placeholders, ``loss_fn``,
``zero_grad``, ``backward``, ``step``). After every call the loss, every parameter's data
and grad, the optimizer's state and its step count must be the same float64s, bit for
bit; where the eager loop raises, the compiled step must raise the same error, word for
word, and change nothing.

The strategies reach what a compiler gets wrong: every primitive with Values and numbers
in every operand position, exponents that are parameters (POW) and numbers (POW_CONST),
inputs exactly on domain boundaries (0.0, -0.0) and relu at its kink, arithmetic on the
targets, neuron-like chains of products whose factors need gradients in different ways,
and batches of up to nine samples, so that every position of a 4-wide kernel loop holds
a sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any

from hypothesis import strategies as st

from conformance.gradcheck import float_bits
from conformance.strategies import sample_floats
from spec import (
    SGD,
    Adam,
    Backend,
    CaptureError,
    GradspecError,
    Optimizer,
    binary_cross_entropy,
    compile_step,
    l2_penalty,
    mse_loss,
    svm_loss,
)
from spec.programs import BINARY_OPS, UNARY_OPS

__all__ = [
    "CompiledCase",
    "LossProgram",
    "OptimizerChoice",
    "ProgramModel",
    "assert_compiled_equals_eager",
    "assert_same_outcome",
    "assert_same_state",
    "assert_trains_like_eager",
    "compiled_cases",
    "eager_step",
    "loss_programs",
    "state_of",
]

Arg = str | float
Step = tuple[str, str, tuple[Arg, ...]]
Batch = tuple[list[list[float]], list[float]]

COMBINES = ("mean", "sum", "pairwise", "mse", "svm", "bce")


class ProgramModel:
    """A model that is just its parameters, for loss programs."""

    def __init__(self, backend: Backend, values: Sequence[float], nin: int) -> None:
        self.params = [backend.Value(v) for v in values]
        self.nin = nin

    def parameters(self) -> list[Any]:
        return list(self.params)


@dataclass(frozen=True)
class LossProgram:
    """One sample's program over ``p*``, ``x*`` and ``t``, and how samples combine (module docstring)."""

    n_inputs: int
    parameters: tuple[float, ...]
    steps: tuple[Step, ...]
    combine: str

    def model(self, backend: Backend) -> ProgramModel:
        return ProgramModel(backend, self.parameters, self.n_inputs)

    def sample(self, params: Sequence[Any], row: Sequence[Any], target: Any) -> Any:
        """The program's output for one sample."""
        env: dict[str, Any] = {f"p{i}": p for i, p in enumerate(params)}
        env.update((f"x{j}", x) for j, x in enumerate(row))
        env["t"] = target
        for dest, op, args in self.steps:
            operands = [env[a] if isinstance(a, str) else a for a in args]
            env[dest] = BINARY_OPS[op](*operands) if op in BINARY_OPS else UNARY_OPS[op](*operands)
        return env[self.steps[-1][0]]

    def loss_fn(self, model: Any, inputs: Sequence[Sequence[Any]], targets: Sequence[Any]) -> Any:
        """``loss_fn(model, inputs, targets)`` for spec.compile_step and the eager loop alike."""
        params = model.parameters()
        outs = [self.sample(params, row, t) for row, t in zip(inputs, targets, strict=True)]
        if self.combine == "sum":
            return sum(outs)
        if self.combine == "pairwise" and len(outs) > 1:
            pairs = zip(outs, outs[1:], targets, targets[1:], strict=False)
            return sum((s_i - s_j + (t_j - t_i)) ** 2 for s_i, s_j, t_i, t_j in pairs)
        if self.combine == "mse":
            return mse_loss(outs, targets)
        if self.combine == "svm":
            return svm_loss(outs, targets) + l2_penalty(params, 1e-3)
        if self.combine == "bce":
            return binary_cross_entropy([o.sigmoid() for o in outs], targets)
        return sum(outs) * (1.0 / len(outs))


@dataclass(frozen=True)
class OptimizerChoice:
    """``SGD``, ``SGD`` with momentum or ``Adam``, with a learning rate."""

    kind: str
    lr: float

    def build(self, params: list[Any]) -> Optimizer:
        if self.kind == "adam":
            return Adam(params, lr=self.lr)
        return SGD(params, self.lr, momentum=0.9 if self.kind == "momentum" else 0.0)


@dataclass(frozen=True)
class CompiledCase:
    """A program, its optimizer, the batch to capture with and the batches to train on."""

    program: LossProgram
    optimizer: OptimizerChoice
    example: Batch
    batches: tuple[Batch, ...]


# --- strategies --------------------------------------------------------------------------------
#: Numbers on and around the points where ops change behaviour: zeros of both signs, ±1.
SPECIAL = (0.0, -0.0, 1.0, -1.0, 0.5, 2.0, -2.0)
EXPONENTS = (2.0, 3.0, -1.0, 0.5, 1.5, 0.0, 1.0, -2.0)
BASES = (0.5, 2.0, 3.0)


def data_floats() -> st.SearchStrategy[float]:
    """Inputs, targets, parameters and constants: the special points, or any float in [-3, 3]."""
    return st.one_of(st.sampled_from(SPECIAL), sample_floats(-3.0, 3.0))


@st.composite
def loss_programs(draw: st.DrawFn, max_steps: int = 8) -> LossProgram:
    """A random :class:`LossProgram` (module docstring)."""
    n_inputs = draw(st.integers(1, 3), label="n_inputs")
    n_params = draw(st.integers(1, 4), label="n_params")
    parameters = tuple(draw(data_floats(), label=f"p{i}") for i in range(n_params))
    names = [f"p{i}" for i in range(n_params)] + [f"x{j}" for j in range(n_inputs)] + ["t"]
    steps: list[Step] = []
    fresh = (f"v{i}" for i in count())

    def emit(op: str, *args: Arg) -> str:
        dest = next(fresh)
        steps.append((dest, op, args))
        names.append(dest)
        return dest

    def name(label: str) -> str:
        return draw(st.sampled_from(names), label=label)

    for i in range(draw(st.integers(1, max_steps), label="n_steps")):
        kind = draw(
            st.sampled_from(["unary", "binary", "binary", "chain", "log", "power"]), label=f"{i}.kind"
        )
        if kind == "unary":
            emit(draw(st.sampled_from(sorted(UNARY_OPS)), label=f"{i}.op"), name(f"{i}.arg"))
        elif kind == "binary":
            op = draw(st.sampled_from(sorted(BINARY_OPS)), label=f"{i}.op")
            side = draw(st.sampled_from(["both", "number right", "number left"]), label=f"{i}.side")
            if side == "both":
                emit(op, name(f"{i}.left"), name(f"{i}.right"))
            elif side == "number right":
                pool = EXPONENTS if op == "pow" else SPECIAL
                emit(op, name(f"{i}.left"), draw(st.sampled_from(pool), label=f"{i}.number"))
            else:
                pool = BASES if op == "pow" else SPECIAL
                emit(op, draw(st.sampled_from(pool), label=f"{i}.number"), name(f"{i}.right"))
        elif kind == "chain":  # a neuron's b + w0*x0 + ..., a sum of products, or a plain sum
            terms = draw(st.integers(2, 4), label=f"{i}.terms")
            shape = draw(st.sampled_from(["plain first", "products", "sum"]), label=f"{i}.shape")
            total = (
                name(f"{i}.first") if shape != "products" else emit("mul", name(f"{i}.a0"), name(f"{i}.b0"))
            )
            for k in range(1, terms):
                term = (
                    name(f"{i}.t{k}") if shape == "sum" else emit("mul", name(f"{i}.a{k}"), name(f"{i}.b{k}"))
                )
                total = emit("add", total, term)
        elif kind == "log":  # mostly of a positive number, sometimes of anything (a DomainError)
            arg = name(f"{i}.arg")
            if draw(st.booleans(), label=f"{i}.positive"):
                arg = emit("sigmoid", arg)
            emit("log", arg)
        else:  # a positive base to a Value exponent: a trained exponent when it is a parameter
            base = emit(draw(st.sampled_from(["sigmoid", "exp"]), label=f"{i}.positive"), name(f"{i}.base"))
            emit("pow", base, name(f"{i}.exponent"))
    combine = draw(st.sampled_from(COMBINES), label="combine")
    return LossProgram(n_inputs, parameters, tuple(steps), combine)


@st.composite
def compiled_cases(draw: st.DrawFn) -> CompiledCase:
    """A random program with an optimizer, an example batch and three fresh batches."""
    program = draw(loss_programs(), label="program")
    n = draw(st.integers(1, 9), label="samples")

    def batch(label: str) -> Batch:
        inputs = [
            [draw(data_floats(), label=f"{label}.x") for _ in range(program.n_inputs)] for _ in range(n)
        ]
        return inputs, [draw(data_floats(), label=f"{label}.t") for _ in range(n)]

    kind = draw(st.sampled_from(["sgd", "momentum", "adam"]), label="optimizer")
    lr = draw(st.sampled_from([0.05, 0.3, 0.05, 1e308]), label="lr")  # 1e308: updates that overflow
    return CompiledCase(
        program, OptimizerChoice(kind, lr), batch("example"), tuple(batch(f"b{k}") for k in range(3))
    )


# --- the comparison ------------------------------------------------------------------------------
Outcome = float | GradspecError


def eager_step(backend: Backend, model: Any, optimizer: Optimizer, loss_fn: Any, batch: Batch) -> Outcome:
    """One step of the eager loop on Value placeholders; a failed step changes nothing."""
    inputs, targets = batch
    rows = [[backend.Value(x) for x in row] for row in inputs]
    labels = [backend.Value(t) for t in targets]
    params = model.parameters()
    grads = [p.grad for p in params]
    try:
        loss = loss_fn(model, rows, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    except GradspecError as error:
        for p, grad in zip(params, grads, strict=True):
            p.grad = grad
        return error
    return float(loss.data)


def state_of(model: Any, optimizer: Optimizer) -> dict[str, Any]:
    """Everything a step may change, as bit patterns: parameters, grads, optimizer state, steps."""
    state: dict[str, Any] = {
        "parameter data": [float_bits(p.data) for p in model.parameters()],
        "parameter grads": [float_bits(p.grad) for p in model.parameters()],
        "optimizer.steps": optimizer.steps,
    }
    for name in ("velocity", "m", "v"):
        if hasattr(optimizer, name):
            state[f"optimizer.{name}"] = [float_bits(x) for x in getattr(optimizer, name)]
    return state


def assert_same_state(got: dict[str, Any], want: dict[str, Any], what: str) -> None:
    """Two :func:`state_of` results are equal; else name the first entry that differs."""
    for key, value in want.items():
        if got[key] != value:
            where = next((i for i, (a, b) in enumerate(zip(got[key], value, strict=True)) if a != b), None)
            raise AssertionError(f"{what}: {key} differ (first at index {where}): {got[key]} vs {value}")


def assert_same_outcome(got: Outcome, want: Outcome, what: str) -> None:
    """The same loss, bit for bit, or the same error type and message."""
    if isinstance(want, GradspecError) or isinstance(got, GradspecError):
        same = type(got) is type(want) and str(got) == str(want)
        assert same, f"{what}: the eager loop gives {want!r}, the compiled step {got!r}"
    else:
        assert float_bits(got) == float_bits(want), f"{what}: loss {got!r}, the eager loop's {want!r}"


def assert_trains_like_eager(
    backend: Backend,
    make_model: Callable[[], Any],
    loss_fn: Any,
    choice: OptimizerChoice,
    example: Batch,
    batches: Sequence[Batch],
    what: str,
) -> None:
    """Train two fresh models, with compile_step and with the eager loop; the same numbers or errors."""
    eager, compiled = make_model(), make_model()
    eager_optimizer, optimizer = choice.build(eager.parameters()), choice.build(compiled.parameters())
    before = state_of(compiled, optimizer)
    try:
        step = compile_step(
            compiled, loss_fn, *example, optimizer, backend=backend, allow_unused_parameters=True
        )
    except CaptureError as error:
        raise AssertionError(
            f"capture refused a loss that reads no traced number: {error}\n{what}"
        ) from error
    except GradspecError as error:  # the example batch fails: the eager loop fails there the same way
        assert_same_outcome(
            error, eager_step(backend, eager, eager_optimizer, loss_fn, example), f"capture\n{what}"
        )
        assert_same_state(state_of(compiled, optimizer), before, f"a failed capture changed\n{what}")
        return
    for k, batch in enumerate(batches):
        want = eager_step(backend, eager, eager_optimizer, loss_fn, batch)
        before = state_of(compiled, optimizer)
        try:
            got: Outcome = step(*batch)
        except GradspecError as error:
            got = error
        assert_same_outcome(got, want, f"step {k}\n{what}")
        if isinstance(got, GradspecError):
            assert_same_state(state_of(compiled, optimizer), before, f"the failed step {k} changed\n{what}")
        assert_same_state(
            state_of(compiled, optimizer), state_of(eager, eager_optimizer), f"after step {k}\n{what}"
        )


def assert_compiled_equals_eager(backend: Backend, case: CompiledCase) -> None:
    """:func:`assert_trains_like_eager` for a :class:`CompiledCase`."""
    program = case.program
    assert_trains_like_eager(
        backend,
        lambda: program.model(backend),
        program.loss_fn,
        case.optimizer,
        case.example,
        case.batches,
        repr(case),
    )
