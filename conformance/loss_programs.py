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

*Near-template* programs (:func:`near_template_cases`, :func:`near_template_layers`) reach
the decisions a compiler takes once for many units: which samples share one template,
which units run side by side, which push into parameters. A random program's steps differ,
for some samples or in a copy beside them in every sample, in exactly one thing; or one
unit of a layer-shaped program does. A decision judged by the first unit alone, or by
ops but not constants, then computes another number, which the comparison with the eager
loop shows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import count
from typing import Any

from hypothesis import strategies as st

from conformance.gradcheck import Exact, float_bits, float_difference
from conformance.strategies import binary_ops, sample_floats, unary_ops
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
    "layer_program",
    "loss_programs",
    "near_template_cases",
    "near_template_layers",
    "places",
    "state_of",
    "with_sibling",
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
    #: the samples (by index) that run ``other_steps`` instead: a near-template program
    others: tuple[int, ...] = ()
    other_steps: tuple[Step, ...] = ()

    def model(self, backend: Backend) -> ProgramModel:
        return ProgramModel(backend, self.parameters, self.n_inputs)

    def sample(self, params: Sequence[Any], row: Sequence[Any], target: Any, s: int = 0) -> Any:
        """The output of sample ``s``."""
        env: dict[str, Any] = {f"p{i}": p for i, p in enumerate(params)}
        env.update((f"x{j}", x) for j, x in enumerate(row))
        env["t"] = target
        steps = self.other_steps if s in self.others else self.steps
        for dest, op, args in steps:
            operands = [env[a] if isinstance(a, str) else a for a in args]
            env[dest] = BINARY_OPS[op](*operands) if op in BINARY_OPS else UNARY_OPS[op](*operands)
        return env[steps[-1][0]]

    def loss_fn(self, model: Any, inputs: Sequence[Sequence[Any]], targets: Sequence[Any]) -> Any:
        """``loss_fn(model, inputs, targets)`` for spec.compile_step and the eager loop alike."""
        params = model.parameters()
        outs = [
            self.sample(params, row, t, s) for s, (row, t) in enumerate(zip(inputs, targets, strict=True))
        ]
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
            emit(draw(st.sampled_from(unary_ops()), label=f"{i}.op"), name(f"{i}.arg"))
        elif kind == "binary":
            op = draw(st.sampled_from(binary_ops()), label=f"{i}.op")
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
    return _case(draw, program, draw(st.integers(1, 9), label="samples"))


def _case(draw: st.DrawFn, program: LossProgram, n: int) -> CompiledCase:
    """``program`` with a random optimizer, an example batch and three fresh batches of ``n`` samples."""

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


# --- near-template programs ------------------------------------------------------------------------
#: batch sizes that leave partial blocks of the 4- and 8-wide loops a kernel may run samples in
NEAR_TEMPLATE_SAMPLES = (5, 6, 7, 9, 11, 13)
#: which samples differ: one of them (the first, the middle one, the fourth, the last), or every
#: other; or none, every sample computing the program and its near copy side by side ("sibling")
PLACES = ("first", "middle", "fourth", "last", "alternate", "sibling")
#: the one thing in which the other samples' steps differ
DIFFERENCES = ("constant", "operand_order", "parameter", "touches_a_parameter", "extra_op")


def places(where: str, n: int) -> tuple[int, ...]:
    """The indices of the samples that differ, for a batch of ``n``."""
    return {
        "first": (0,),
        "middle": (n // 2,),
        "fourth": (3,),
        "last": (n - 1,),
        "alternate": tuple(range(1, n, 2)),
        "sibling": (),
    }[where]


def with_sibling(steps: tuple[Step, ...], other: tuple[Step, ...]) -> tuple[Step, ...]:
    """``steps``, then ``other`` with its nodes renamed, then the sum of their outputs: two units
    of one sample that differ in one thing, for a compiler to group (or not) side by side."""
    made = {dest for dest, _, _ in other}
    renamed = tuple(
        (f"s_{dest}", op, tuple(f"s_{a}" if a in made else a for a in args)) for dest, op, args in other
    )
    return (*steps, *renamed, ("sibling_sum", "add", (steps[-1][0], renamed[-1][0])))


@st.composite
def near_template_cases(draw: st.DrawFn) -> CompiledCase:
    """A random program whose chosen samples differ from the rest in exactly one thing, or
    whose every sample computes the program and a copy that differs in one thing.

    What a compiler's template, grouping and plan decisions get wrong when they judge many
    units by the first one: the other steps differ in one constant or exponent, the order of
    one op's operands, which parameter one op reads, whether one op reads a parameter at
    all, or one extra op at the end.
    """
    program = draw(loss_programs(), label="program")
    other = _one_difference(draw, program, draw(st.sampled_from(DIFFERENCES), label="difference"))
    n = draw(st.sampled_from(NEAR_TEMPLATE_SAMPLES), label="samples")
    where = draw(st.sampled_from(PLACES), label="place")
    if where == "sibling":
        return _case(draw, replace(program, steps=with_sibling(program.steps, other)), n)
    return _case(draw, replace(program, others=places(where, n), other_steps=other), n)


#: how one unit of a layer-shaped program differs from the others (:func:`layer_program`)
UNIT_DIFFERENCES = ("operand_order", "constant", "no_parameters", "extra_op")


def layer_program(units: int, terms: int, difference: str | None = None, unit: int = 0) -> LossProgram:
    """A sample's program shaped like two layers, one unit of the second different.

    ``h_j = tanh(p_j * x0)`` for ``j < terms``: per-sample values all units read; unit ``k``
    is ``tanh(w_k0 * h_0 + w_k1 * h_1 + ...)`` with weights of its own; the output is the
    units' sum. Unit ``unit`` differs in one thing: it reads ``h_0`` and ``h_1`` the other way
    round (``operand_order``), one weight is the constant 0.5 (``constant``), it reads no
    parameter (``h_j * h_j``, ``no_parameters``), or its sum goes through one more op
    (``extra_op``). These are the units a compiler runs side by side, four at a time.
    """
    steps: list[Step] = []
    for j in range(terms):
        steps += [(f"z{j}", "mul", (f"p{j}", "x0")), (f"h{j}", "tanh", (f"z{j}",))]
    outputs = []
    for k in range(units):
        differs = k == unit and difference
        order = list(range(terms))
        if differs == "operand_order":
            order[0], order[1] = order[1], order[0]
        total = ""
        for position, j in enumerate(order):
            weight: Arg = f"p{terms + k * terms + position}"
            if differs == "constant" and position == terms // 2:
                weight = 0.5
            elif differs == "no_parameters":
                weight = f"h{j}"
            product = f"u{k}m{position}"
            steps.append((product, "mul", (weight, f"h{j}")))
            if total:
                steps.append((f"u{k}s{position}", "add", (total, product)))
                product = f"u{k}s{position}"
            total = product
        if differs == "extra_op":
            steps.append((f"u{k}e", "mul", (total, 2.0)))
            total = f"u{k}e"
        steps.append((f"a{k}", "tanh", (total,)))
        outputs.append(f"a{k}")
    for k, output in enumerate(outputs[1:]):
        steps.append((f"o{k}", "add", (f"o{k - 1}" if k else outputs[0], output)))
    parameters = tuple(0.1 * ((i * 7) % 11 - 5) + 0.05 for i in range(terms + units * terms))
    return LossProgram(1, parameters, tuple(steps), "mse")


@st.composite
def near_template_layers(draw: st.DrawFn) -> CompiledCase:
    """A :func:`layer_program` of four or five units of four or five terms, one unit (the first,
    second, fourth or last) different, on a batch that leaves partial blocks."""
    units, terms = draw(st.integers(4, 5), label="units"), draw(st.integers(4, 5), label="terms")
    unit = draw(st.sampled_from([0, 1, 3, units - 1]), label="unit")
    difference = draw(st.sampled_from(UNIT_DIFFERENCES), label="difference")
    program = layer_program(units, terms, difference, unit)
    return _case(draw, program, draw(st.sampled_from(NEAR_TEMPLATE_SAMPLES), label="samples"))


def _one_difference(draw: st.DrawFn, program: LossProgram, kind: str) -> tuple[Step, ...]:
    """``program``'s steps with one ``kind`` of change; an extra op where no other change fits."""
    steps = list(program.steps)
    params = [f"p{i}" for i in range(len(program.parameters))]
    inputs = [f"x{j}" for j in range(program.n_inputs)] + ["t"]
    # (step, argument) positions where the change applies, and what may replace the argument
    spots: list[tuple[int, int, list[Arg]]] = []
    for i, (_, op, args) in enumerate(steps):
        for k, arg in enumerate(args):
            if kind == "constant" and not isinstance(arg, str):
                pool = (EXPONENTS if k else BASES) if op == "pow" else SPECIAL
                spots.append((i, k, [c for c in pool if c != arg]))
            elif kind == "parameter" and arg in params:
                spots.append((i, k, [p for p in params if p != arg]))
            elif kind == "touches_a_parameter" and isinstance(arg, str) and arg in params + inputs:
                spots.append((i, k, inputs if arg in params else params))
        if kind == "operand_order" and len(args) == 2 and args[0] != args[1]:
            spots.append((i, -1, []))
    spots = [spot for spot in spots if spot[1] < 0 or spot[2]]
    if not spots:
        last = steps[-1][0]
        return (*steps, ("extra", draw(st.sampled_from(unary_ops()), label="extra op"), (last,)))
    i, k, pool = draw(st.sampled_from(spots), label="spot")
    dest, op, args = steps[i]
    if k < 0:
        steps[i] = (dest, op, args[::-1])
    else:
        changed = list(args)
        changed[k] = draw(st.sampled_from(pool), label="replacement")
        steps[i] = (dest, op, tuple(changed))
    return tuple(steps)


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
    """Everything a step may change, floats compared bit for bit: parameters, grads, optimizer state, steps."""
    state: dict[str, Any] = {
        "parameter data": [Exact(p.data) for p in model.parameters()],
        "parameter grads": [Exact(p.grad) for p in model.parameters()],
        "optimizer.steps": optimizer.steps,
    }
    for name in ("velocity", "m", "v"):
        if hasattr(optimizer, name):
            state[f"optimizer.{name}"] = [Exact(x) for x in getattr(optimizer, name)]
    return state


def assert_same_state(got: dict[str, Any], want: dict[str, Any], what: str) -> None:
    """Two :func:`state_of` results are equal; else name the first entry that differs."""
    for key, value in want.items():
        if got[key] == value:
            continue
        if not isinstance(value, list) or len(got[key]) != len(value):
            raise AssertionError(f"{what}: {key} is {got[key]!r}, expected {value!r}")
        i, a, b = next((i, a, b) for i, (a, b) in enumerate(zip(got[key], value, strict=True)) if a != b)
        shown = (
            float_difference(a.value, b.value)
            if isinstance(a, Exact) and isinstance(b, Exact)
            else f"{a!r}, expected {b!r}"
        )
        raise AssertionError(f"{what}: {key} differ, first at index {i}: {shown}")


def assert_same_outcome(got: Outcome, want: Outcome, what: str) -> None:
    """The same loss, bit for bit, or the same error type and message."""
    if isinstance(want, GradspecError) or isinstance(got, GradspecError):
        same = type(got) is type(want) and str(got) == str(want)
        assert same, f"{what}: the eager loop gives {want!r}, the compiled step {got!r}"
    else:
        assert float_bits(got) == float_bits(want), (
            f"{what}: loss {float_difference(got, want)} (the eager loop's)"
        )


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
