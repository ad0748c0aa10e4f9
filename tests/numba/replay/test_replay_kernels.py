"""Kernels (backends.numba._replay._kernels): lane segments on blocks of samples and on threads,
and distinct groups' sums side by side, bit-identical to the eager loop and to one thread."""

from __future__ import annotations

import dataclasses
import functools
import operator
import random
from typing import Any

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backends.numba as numba_backend
from backends.numba._replay._layout import distinct_shared_pushes
from backends.numba._replay._plan import ALIKE, _four_units_read_alike, _four_units_run
from backends.numba._replay._program import DISTINCT, DOT, DOT_PLAIN, HI, KIND, LANE, LO, SUM, TERM, WIDTH, N
from conformance.checks.compiled_programs import LAYER_EXAMPLES, NEAR_TEMPLATE_EXAMPLES
from conformance.loss_programs import (
    CompiledCase,
    assert_compiled_equals_eager,
    near_template_cases,
    near_template_layers,
)
from spec import SGD, OpCode, ResultOverflowError, l2_penalty, svm_loss

STEPS = 3


def mlp_loss(model: Any, inputs: Any, targets: Any) -> Any:
    scores = [model(x) for x in inputs]
    return svm_loss(scores, targets) + l2_penalty(model.parameters(), 1e-4)


class SharedWeight:
    """Four neurons ``tanh(w * x_j + b_j)`` of one weight ``w``."""

    nin = 4

    def __init__(self) -> None:
        self.w = numba_backend.Value(0.5)
        self.b = [numba_backend.Value(0.1 * j - 0.2) for j in range(4)]

    def parameters(self) -> list[Any]:
        return [self.w, *self.b]


def shared_weight_loss(model: Any, inputs: Any, targets: Any) -> Any:
    # Neuron by neuron over all samples: eager backward adds w's grad neuron by neuron too, so
    # the neurons are lane units (of one group) that all push into w: not a distinct group.
    neurons = [[(model.w * x[j] + model.b[j]).tanh() for x in inputs] for j in range(4)]
    outputs = [sum(neuron[s] for neuron in neurons) for s in range(len(inputs))]
    return sum((o - t) ** 2 for o, t in zip(outputs, targets, strict=True))


def state(model: Any) -> list[tuple[float, float]]:
    return [(p.data, p.grad) for p in model.parameters()]


def eager_steps(model: Any, loss_fn: Any, X: np.ndarray, y: np.ndarray) -> list[float]:
    sgd = SGD(model.parameters(), 0.05)
    losses = []
    for _ in range(STEPS):
        loss = loss_fn(model, X.tolist(), y.tolist())
        sgd.zero_grad()
        loss.backward()
        sgd.step()
        losses.append(loss.data)
    return losses


def steps_like_eager(
    make_model: Any, loss_fn: Any, X: np.ndarray, y: np.ndarray, **options: Any
) -> list[Any]:
    """Compiled steps of fresh ``make_model()`` on 1 and 2 threads (as many as Numba has), each
    checked against the eager loop: losses, parameters and grads bit for bit. ``options``:
    the replay's pass switches."""
    eager = make_model()
    expected = eager_steps(eager, loss_fn, X, y)
    steps = []
    for threads in range(1, min(2, numba.config.NUMBA_NUM_THREADS) + 1):
        model = make_model()
        step = numba_backend.compile_step(
            model, loss_fn, X, y, SGD(model.parameters(), 0.05), threads=threads, **options
        )
        losses = [step(X, y) for _ in range(STEPS)]
        assert losses == expected and state(model) == state(eager), f"threads={threads}"
        steps.append(step)
    return steps


def mlp(sizes: list[int]) -> Any:
    random.seed(7)
    return numba_backend.MLP(sizes[0], sizes[1:])


@pytest.mark.parametrize(
    ("n", "hidden"),
    [
        # micrograd's demo: first layers of three terms run four neurons at once; the second
        # layer pushes into the first's outputs eight neurons and two outputs at a time
        (100, [16, 16]),
        (1100, [6]),  # three blocks of samples; six neurons: four at once, then two alone
        # nine neurons of nine weights: runs summed four neurons at a time and one alone, the
        # first layer's sums across its nine neurons, pushes of eight neurons into an odd number
        # of outputs (the last alone); 102 samples: passes of 4 and 8 leave some
        (102, [9, 9]),
        # twelve neurons of twelve weights: their runs summed four neurons at a time; 51 samples:
        # three left after the passes of four, summed last one first
        (51, [12, 12]),
    ],
)
def test_threads_and_blocks_of_samples_are_bit_identical_to_eager(n: int, hidden: list[int]) -> None:
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has one thread here")
    rng = np.random.default_rng(n)
    X, y = rng.normal(size=(n, 2)), rng.choice([-1.0, 1.0], n)
    steps = steps_like_eager(lambda: mlp([2, *hidden, 1]), mlp_loss, X, y)
    assert [(step.info["template"], step.info["threads"]) for step in steps] == [(True, 1), (True, 2)]


def test_neurons_sharing_a_weight_add_it_up_in_eager_order_on_any_thread_count() -> None:
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(40, 4)), rng.normal(size=40)
    for step in steps_like_eager(SharedWeight, shared_weight_loss, X, y):
        groups = step.program.groups
        assert step.info["template"] and not groups[groups[:, WIDTH] > 1, DISTINCT].all(), step.info


class Crowd:
    """``count`` neurons ``tanh(w_j * x_j + b_j)``; ``same`` makes ``w_j`` one weight and ``x_j`` one
    input, ``twice`` makes each neuron read a per-sample node twice: ``w_j * h + v_j * h``."""

    nin = 8

    def __init__(self, count: int, same: bool = False, twice: bool = False) -> None:
        self.same, self.twice = same, twice
        self.w = [numba_backend.Value(0.3 + (0.0 if same else 0.01 * j)) for j in range(count)]
        # magnitudes far apart: a sum of their pushes in another order rounds differently
        self.v = [numba_backend.Value((-3.0) ** (1 - j)) for j in range(count)]
        self.b = [numba_backend.Value(0.1 * j - 0.2) for j in range(count)]
        self.g = numba_backend.Value(0.7)

    def parameters(self) -> list[Any]:
        if self.twice:
            return [*self.w, *self.v, *self.b, self.g]
        return [*self.w[: 1 if self.same else None], *self.b]

    def neuron(self, j: int, x: list[Any], h: Any) -> Any:
        if self.twice:
            return (self.w[j] * h + self.v[j] * h + self.b[j]).tanh()
        return (self.w[0 if self.same else j] * x[0 if self.same else j % len(x)] + self.b[j]).tanh()


def crowd_loss(model: Crowd, inputs: Any, targets: Any) -> Any:
    # a per-sample node that needs a grad
    hidden = [(model.g * x[0]).tanh() if model.twice else None for x in inputs]
    neurons = [
        [model.neuron(j, x, h) for x, h in zip(inputs, hidden, strict=True)] for j in range(len(model.b))
    ]
    outputs = [sum(neuron[s] for neuron in neurons) for s in range(len(inputs))]
    return sum((o - t) ** 2 for o, t in zip(outputs, targets, strict=True))


@pytest.mark.parametrize(
    ("crowd", "terms", "distinct"),
    [
        # every neuron pushes into one weight times one input: alike, but not distinct
        (lambda: Crowd(9, same=True), 2, False),
        # each neuron into its own weight, times its own input: distinct, but not alike
        (lambda: Crowd(9), 2, True),
        # each neuron pushes into the per-sample node twice: not aligned four at a time
        (lambda: Crowd(5, twice=True), 3, True),
    ],
    ids=["one-weight-one-input", "own-weight-own-input", "one-node-twice"],
)
def test_groups_the_side_by_side_kernels_must_not_take_are_bit_identical(
    crowd: Any, terms: int, distinct: bool
) -> None:
    rng = np.random.default_rng(11)
    X, y = rng.normal(size=(37, 8)), rng.normal(size=37)
    for step in steps_like_eager(crowd, crowd_loss, X, y):
        groups = step.program.groups
        neurons = groups[(groups[:, WIDTH] > 1) & (groups[:, N] == terms)]
        assert step.info["template"] and neurons[:, DISTINCT].tolist() == [distinct], neurons


class Alike:
    """``count`` neurons of the inputs ``x_0..x_4``, each with its own weights, shaped by ``kind``:
    ``"first"`` ``w_j . x + b_j`` (the inputs first, the bias after), ``"tail"`` ``b_j + w_j . x + v_j * x_(j % 2)``
    (a term where four neurons differ after them), ``"mixed"`` ``w_j . x + b_j`` but neuron 4's
    third product ``h_(-1) * x_2`` (two per-sample factors), ``"chain"`` ``v_j * h_(j-1) + w_j . x``,
    ``h_j`` neuron ``j`` (each neuron reads the one before), ``h_(-1) = tanh(g * x_5)``."""

    nin = 6

    def __init__(self, count: int, kind: str) -> None:
        self.kind = kind
        self.w = [
            [numba_backend.Value(0.1 * ((j + 2 * k) % 7) - 0.3) for k in range(5)] for j in range(count)
        ]
        self.v = [numba_backend.Value(0.5 + 0.05 * j) for j in range(count)]
        self.b = [numba_backend.Value(0.2 - 0.05 * j) for j in range(count)]
        self.g = numba_backend.Value(0.9)

    def parameters(self) -> list[Any]:
        tail = {
            "first": self.b,
            "tail": [*self.b, *self.v],
            "mixed": [*self.b, self.g],
            "chain": [*self.v, self.g],
        }[self.kind]
        return [w for row in self.w for w in row] + tail

    def outputs(self, x: list[Any]) -> list[Any]:
        hidden, before = [], (self.g * x[5]).tanh() if self.kind in ("mixed", "chain") else None
        for j, row in enumerate(self.w):
            products = [w * xk for w, xk in zip(row, x[:5], strict=True)]
            if self.kind == "mixed" and j == 4:
                products[2] = before * x[2]  # the factor that needs a grad first, as in w * x
            if self.kind in ("first", "mixed"):
                terms = [*products, self.b[j]]
            elif self.kind == "tail":
                terms = [self.b[j], *products, self.v[j] * x[j % 2]]
            else:
                terms = [self.v[j] * before, *products]
            before = functools.reduce(operator.add, terms)  # left to right: one fused node
            hidden.append(before)
        return hidden


def alike_loss(model: Alike, inputs: Any, targets: Any) -> Any:
    outputs = [sum(model.outputs(x)) for x in inputs]
    return sum((o - t) ** 2 for o, t in zip(outputs, targets, strict=True))


def alike_runs(step: Any) -> list[tuple[int, int, int]]:
    """``(start, end, n)`` of every four units of a lane group of sums (``_four_units_run``)."""
    program, runs = step.program, []
    for kind, lo, hi, n, t, width in program.groups[:, [KIND, LO, HI, N, TERM, WIDTH]]:
        if width > 1 and kind in (DOT, DOT_PLAIN, SUM):
            for u in range(0, (hi - lo) // width - 3):
                runs.append((*_four_units_run(program.terms, t + u * n, n, lo + u * width, width), n))
    return runs


@pytest.mark.parametrize("kind", ["first", "tail", "mixed"])
def test_four_neurons_folding_the_inputs_they_share_at_once_are_bit_identical(kind: str) -> None:
    rng = np.random.default_rng(13)
    X, y = rng.normal(size=(45, 6)), rng.normal(size=45)
    for step in steps_like_eager(lambda: Alike(11, kind), alike_loss, X, y):
        folded = [(start, end, n) for start, end, n in alike_runs(step) if end - start >= ALIKE]
        # "first" and "mixed": from the first term on, "tail": from after the bias; all end
        # before the last term; in "mixed", four neurons that take in neuron 4 stop before its third
        assert folded and all((start == 0) == (kind != "tail") for start, _, _ in folded), folded
        assert all(end < n for _, end, n in folded), folded
        assert kind != "mixed" or (0, 2, 6) in alike_runs(step), alike_runs(step)


def test_neurons_reading_a_neuron_of_their_own_group_fold_one_by_one() -> None:
    # Without grouping by height, the chain's neurons are one group in creation order: four of
    # them read x alike, but the second reads the first, which must be complete before.
    rng = np.random.default_rng(17)
    X, y = rng.normal(size=(45, 6)), rng.normal(size=45)
    for step in steps_like_eager(lambda: Alike(7, "chain"), alike_loss, X, y, schedule=False):
        program = step.program
        assert step.info["template"] and alike_runs(step) and all(e == s for s, e, _ in alike_runs(step))
        chain = program.groups[(program.groups[:, WIDTH] > 1) & (program.groups[:, N] == 6)]
        assert len(chain) == 1 and chain[0, HI] - chain[0, LO] >= 4 * chain[0, WIDTH], chain
        t, n = chain[0, TERM], chain[0, N]
        assert sum(_four_units_read_alike(program.terms, t, n, j) for j in range(n)) >= ALIKE


class Scaled:
    """``relu(h) + h / d``, ``h = tanh(g * x_0)``: lane ops whose operands need grads, per sample
    or shared, and a per-sample node two of them push into."""

    nin = 1

    def __init__(self) -> None:
        self.g, self.d = numba_backend.Value(0.8), numba_backend.Value(1.3)

    def parameters(self) -> list[Any]:
        return [self.g, self.d]


def scaled_loss(model: Scaled, inputs: Any, targets: Any) -> Any:
    hidden = [(model.g * x[0]).tanh() for x in inputs]
    outputs = [h.relu() + h / model.d for h in hidden]
    return sum((o - t) ** 2 for o, t in zip(outputs, targets, strict=True))


def test_lane_ops_pushing_into_per_sample_and_shared_slots_are_bit_identical() -> None:
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(21, 1)), rng.normal(size=21)
    for step in steps_like_eager(Scaled, scaled_loss, X, y):
        groups = step.program.groups
        assert ((groups[:, KIND] == OpCode.DIV) & (groups[:, WIDTH] > 1)).any(), groups


def test_a_failing_sample_on_a_thread_refuses_the_step_and_changes_nothing() -> None:
    X, y = np.ones((64, 2)), np.ones(64)
    model = mlp([2, 4, 1])
    for p in model.parameters():
        p.data = 2.0
    step = numba_backend.compile_step(model, mlp_loss, X, y, SGD(model.parameters(), 0.05), threads=2)
    before = state(model)
    X[50, 0] = 1e308  # 2 * 1e308 overflows, in the second block's samples only
    with pytest.raises(ResultOverflowError):
        step(X, y)
    assert state(model) == before


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="Numba's thread pool has one thread")
def test_a_threaded_step_gives_the_caller_its_thread_count_back() -> None:
    X, y = np.ones((16, 2)), np.ones(16)
    model = mlp([2, 4, 1])
    step = numba_backend.compile_step(model, mlp_loss, X, y, SGD(model.parameters(), 0.05), threads=2)
    outer = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        step(X, y)
        assert numba.get_num_threads() == 1, "the step left its own thread count behind"
    finally:
        numba.set_num_threads(outer)


@pytest.mark.parametrize("threads", [0, -1, 2.0, True, 10**6])
def test_a_thread_count_that_is_not_a_whole_number_in_range_is_refused(threads: Any) -> None:
    model = mlp([2, 4, 1])
    with pytest.raises(ValueError, match="threads must be a whole number"):
        numba_backend.compile_step(
            model, mlp_loss, [[0.0, 1.0]], [1.0], SGD(model.parameters(), 0.1), threads=threads
        )


def test_distinct_groups_are_lane_groups_whose_shared_slots_each_hear_from_one_place() -> None:
    # Slots: 0, 1 parameters, 2 ONE, 3.. per-sample inputs; two units of width 2 per group.
    columns = [SUM, 8, 12, 1, 0, 2, 1, 2, 0]
    groups = np.array([columns, [SUM, 12, 16, 1, 2, 2, 1, 2, 0], [SUM, 16, 17, 1, 4, 2, 1, 1, 0]], np.int64)
    terms = np.array([[0, 3 | LANE], [1, 5 | LANE], [0, 3 | LANE], [0, 5 | LANE], [0, 1], [0, 0]], np.uint32)
    needs = np.zeros(17, np.bool_)
    needs[[0, 1]] = True
    # group 0's units push into 0 and 1; group 1's both into 0; group 2 is not a lane group
    assert distinct_shared_pushes(groups, terms, needs).tolist() == [1, 0, 0]
    needs[0] = False  # a slot that needs no grad hears nothing
    assert distinct_shared_pushes(groups, terms, needs).tolist() == [1, 1, 0]


#: the Numba backend, its compiled steps on two threads
TWO_THREADS = dataclasses.replace(
    numba_backend.BACKEND, compile_step=functools.partial(numba_backend.compile_step, threads=2)
)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="Numba's thread pool has one thread")
@pytest.mark.parametrize(
    "case", NEAR_TEMPLATE_EXAMPLES + LAYER_EXAMPLES, ids=lambda case: f"{len(case.example[0])}-samples"
)
def test_near_template_programs_on_two_threads_equal_the_eager_loop(case: CompiledCase) -> None:
    assert_compiled_equals_eager(TWO_THREADS, case)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="Numba's thread pool has one thread")
@settings(max_examples=40, deadline=None)
@given(case=st.one_of(near_template_cases(), near_template_layers()))
def test_random_near_template_programs_on_two_threads_equal_the_eager_loop(case: CompiledCase) -> None:
    assert_compiled_equals_eager(TWO_THREADS, case)
