"""Pass template (backends.numba._replay._template): samples, matching, and lane units end to end."""

from __future__ import annotations

from typing import Any

import numpy as np
from replay_graphs import Graph

import backends.numba as numba_backend
from backends.numba._replay._template import MULTI, SHARED, match_samples, node_samples
from spec import SGD


def test_a_node_has_one_sample_none_or_several() -> None:
    g = Graph()
    w, x0, x1 = g.leaf(), g.leaf(), g.leaf()
    shared = g.mul(w, w)
    first = g.mul(shared, x0)
    second = g.relu(g.mul(shared, x1))
    root = g.add(first, second)
    op, a, b, _ = g.arrays()
    sample = np.array([SHARED, 0, 1] + [SHARED] * (len(op) - 3), np.int32)  # the leaves'
    node_samples(op, a, b, sample)
    assert (sample[shared], sample[first], sample[second], sample[root]) == (SHARED, 0, 1, MULTI)


def two_samples(second_constant: float = -1.0, second_column: int = 0) -> tuple[Any, ...]:
    """Two samples of ``relu(w * x_s * c_s)``: fused nodes (one-term DOTs and a RELU) by hand."""
    # traced nodes: 0 w, 1 x0, 2 x1, 3 c0 (-1.0), 4 c1; tops: 5 = w*x0, 6 = 5*c0, 7 = w*x1, 8 = 7*c1
    tops = np.array([5, 6, 7, 8], np.int64)
    kind = np.full(4, 102, np.int64)
    n_terms = np.ones(4, np.int64)
    first = np.arange(4, dtype=np.int64)
    ta = np.array([0, 5, 0, 7], np.int32)
    tc = np.array([1, 3, 2, 4], np.int32)
    sample = np.array([SHARED, 0, 1, SHARED, SHARED, 0, 0, 1, 1], np.int32)
    column = np.array([-1, 0, second_column, -1, -1, -1, -1, -1, -1], np.int32)
    needs = np.array([True, False, False, False, False, True, True, True, True])
    is_constant = np.array([False, False, False, True, True, False, False, False, False])
    data = np.zeros(9)
    data[3:5] = -1.0, second_constant
    bits = data.view(np.int64)
    return tops, kind, n_terms, first, ta, tc, np.zeros(4), sample, column, needs, is_constant, bits, 2


def test_matching_samples_give_ranks() -> None:
    rank, T = match_samples(*two_samples())
    assert T == 2 and rank.tolist() == [0, 1, 0, 1]


def test_a_constant_of_other_bits_or_another_input_column_breaks_the_match() -> None:
    assert match_samples(*two_samples(second_constant=-2.0))[1] == 0
    assert match_samples(*two_samples(second_constant=-0.0 * -1.0 * -1.0))[1] == 0  # -0.0 is not -1.0
    assert match_samples(*two_samples(second_column=1))[1] == 0


class Line:
    """``w * x + b`` on one input."""

    nin = 1

    def __init__(self) -> None:
        self.w, self.b = numba_backend.Value(0.75), numba_backend.Value(-0.25)

    def parameters(self) -> list[Any]:
        return [self.w, self.b]


def eager_and_compiled(loss_fn: Any, X: list[list[float]], y: list[float], steps: int = 4) -> tuple[Any, ...]:
    eager, compiled = Line(), Line()
    eager_sgd, compiled_sgd = SGD(eager.parameters(), 0.01), SGD(compiled.parameters(), 0.01)
    expected = []
    for _ in range(steps):
        loss = loss_fn(eager, X, y)
        eager_sgd.zero_grad()
        loss.backward()
        eager_sgd.step()
        expected.append(loss.data)
    step = numba_backend.compile_step(compiled, loss_fn, X, y, compiled_sgd)
    losses = [step(X, y) for _ in range(steps)]
    state = [(p.data, p.grad) for p in compiled.parameters()]
    return step.info, losses, expected, state, [(p.data, p.grad) for p in eager.parameters()]


X = [[0.5], [1e-3], [3.0], [-2.0], [1e8]]
Y = [1.0, -1.0, 0.25, 2.0, 1e-8]


def test_per_sample_losses_run_as_lane_units_bit_identical_to_eager() -> None:
    def loss_fn(m: Any, x: Any, t: Any) -> Any:
        return sum(((m.w * row[0] + m.b - target) ** 2).tanh() for row, target in zip(x, t, strict=True))

    info, losses, expected, state, eager_state = eager_and_compiled(loss_fn, X, Y)
    assert info["template"] and info["lane_units"] > 0, info
    assert losses == expected and state == eager_state


def test_a_parameter_twice_in_one_node_is_summed_in_eager_order_or_not_in_lanes() -> None:
    # w's grad gets x and x * 1e16 from every sample: the lanes would add one term's pushes for
    # all samples before the other's, not sample by sample as eager does; the order check refuses.
    def loss_fn(m: Any, x: Any, t: Any) -> Any:
        return sum(m.w * row[0] + m.w * (row[0] * 1e16) + m.b for row in x)

    info, losses, expected, state, eager_state = eager_and_compiled(loss_fn, X, Y)
    assert not info["template"], info
    assert losses == expected and state == eager_state


def test_samples_of_different_shapes_fall_back_to_nodes_of_their_own() -> None:
    def loss_fn(m: Any, x: Any, t: Any) -> Any:
        first = (m.w * x[0][0]).relu()  # sample 0 alone takes a relu
        return first + sum(m.w * row[0] + m.b for row in x[1:])

    info, losses, expected, state, eager_state = eager_and_compiled(loss_fn, X, Y)
    assert not info["template"], info
    assert losses == expected and state == eager_state


class TwoDots:
    """Two dot products over nine per-sample features each: of the inputs, and of their relus."""

    nin = 9

    def __init__(self, interleaved: bool) -> None:
        rng = np.random.default_rng(3)
        self.a = [numba_backend.Value(float(v)) for v in rng.normal(size=9)]
        self.b = [numba_backend.Value(float(v)) for v in rng.normal(size=9)]
        self.interleaved = interleaved

    def parameters(self) -> list[Any]:
        if self.interleaved:  # a0, b0, a1, b1, ...: no run of consecutive weights
            return [p for pair in zip(self.a, self.b, strict=True) for p in pair]
        return [*self.a, *self.b]


def two_dots_loss(m: Any, x: Any, t: Any) -> Any:
    total = None
    for row, target in zip(x, t, strict=True):
        relus = [v.relu() if isinstance(v, numba_backend.Value) else max(v, 0.0) for v in row]
        dot_a = m.a[0] * row[0]
        dot_b = m.b[0] * relus[0]
        for j in range(1, 9):
            dot_a = dot_a + m.a[j] * row[j]
            dot_b = dot_b + m.b[j] * relus[j]
        term = (dot_a * dot_b - target).tanh()  # both dots one height below the product: one group
        total = term if total is None else total + term
    return total


def test_runs_of_weights_read_their_own_factors_in_eager_order() -> None:
    # Both dots of a sample sit in one group of lane units: the second must not reuse the
    # first's transposed factors, and interleaved weights must not be taken for a run.
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(6, 9)) * 3.0, rng.normal(size=6)
    for interleaved in (False, True):
        eager, compiled = TwoDots(interleaved), TwoDots(interleaved)
        eager_sgd, compiled_sgd = SGD(eager.parameters(), 0.01), SGD(compiled.parameters(), 0.01)
        step = numba_backend.compile_step(compiled, two_dots_loss, X, y, compiled_sgd)
        assert step.info["template"], step.info
        for _ in range(3):
            loss = two_dots_loss(eager, X.tolist(), y.tolist())
            eager_sgd.zero_grad()
            loss.backward()
            eager_sgd.step()
            assert step(X, y) == loss.data
        assert [(p.data, p.grad) for p in compiled.parameters()] == [
            (p.data, p.grad) for p in eager.parameters()
        ]


def test_a_sample_the_loss_ignores_keeps_its_nodes_apart() -> None:
    # Every sample's nodes are computed (they could fail), but sample 0's feed no loss: they need
    # no grad where the others' do, so they are no copies of them.
    def loss_fn(m: Any, x: Any, t: Any) -> Any:
        outputs = [(m.w * row[0] + m.b).tanh() for row in x]
        return sum(outputs[1:], m.b * 0.0)

    info, losses, expected, state, eager_state = eager_and_compiled(loss_fn, X, Y)
    assert not info["template"], info
    assert losses == expected and state == eager_state


def test_a_shared_node_each_sample_makes_for_itself_is_that_samples_copy() -> None:
    # ``-m.w`` is made inside every sample's term: each copy keeps its own grad and pushes it to
    # w in turn, as in the eager loop; the copies join the samples' lane units.
    def loss_fn(m: Any, x: Any, t: Any) -> Any:
        return sum(((-m.w) * row[0] + m.b).exp() for row in x)

    info, losses, expected, state, eager_state = eager_and_compiled(
        loss_fn, [[0.5], [1e-3], [3.0]], [0.0] * 3
    )
    assert info["template"], info
    assert losses == expected and state == eager_state
