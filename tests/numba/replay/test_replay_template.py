"""Pass template (backends.numba._replay._template): samples, matching, and lane units end to end."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
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


# --- the match decision against its definition, on random near-alike samples --------------------
# A sample is a list of fused nodes ``(kind, fconst, needs, terms)``; a term is two references,
# each ``("shared", i)`` (a parameter, or node 3, a fused node of parameters only), ``("constant",
# value)`` (a constant leaf of the sample's own), ``("column", c)``, ``("rank", r)`` (the sample's
# own r-th node), ``("other", r)`` (another sample's r-th node) or ``("none",)``.
SHARED_NODES = 4
NIN = 3
CONSTANTS = [-1.0, 2.0, 0.0, -0.0]


@st.composite
def _template(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    nodes = []
    for k in range(draw(st.integers(1, 4))):
        refs = [("shared", i) for i in range(SHARED_NODES)] + [("column", c) for c in range(NIN)]
        refs += [("constant", v) for v in CONSTANTS] + [("rank", r) for r in range(k)]
        ref = st.sampled_from(refs)
        own = st.sampled_from([("rank", r) for r in range(k)]) if k else ref
        # a node reads an earlier one of its sample half the time, as graphs chain their nodes
        terms = [
            (draw(st.one_of(own, ref)), draw(st.one_of(ref, st.just(("none",)))))
            for _ in range(draw(st.integers(1, 2)))
        ]
        nodes.append(
            (draw(st.sampled_from([101, 102])), draw(st.sampled_from([0.0, 1.0])), draw(st.booleans()), terms)
        )
    return nodes


#: what one sample's changed reference may become, by the kind of reference
_ALTERNATIVES = {
    "shared": [("shared", i) for i in range(SHARED_NODES)],
    "column": [("column", c) for c in range(NIN)],
    "constant": [("constant", v) for v in CONSTANTS],
}


@st.composite
def _near_alike(draw: st.DrawFn) -> list[list[tuple[Any, ...]]]:
    """n copies of one template, then perhaps one place of one sample (first, middle or last)
    changed: its kind, constant, need of a grad, a term's operand order, one reference (another
    parameter, column, constant, own node, or another sample's node), one term more, a node more
    or less."""
    template = draw(_template())
    n = draw(st.integers(2, 5))
    samples = [[(kind, c, needs, list(terms)) for kind, c, needs, terms in template] for _ in range(n)]
    if not draw(st.booleans()):
        return samples
    nodes = samples[draw(st.sampled_from([0, n // 2, n - 1]))]
    change = draw(
        st.sampled_from(
            [
                "kind",
                "fconst",
                "needs",
                "swap",
                "shared",
                "column",
                "constant",
                "rank",
                "other",
                "term",
                "extra",
                "drop",
            ]
        )
    )
    if change == "extra":
        nodes.append((101, 0.0, True, [(("shared", 1), ("column", 1))]))
        return samples
    if change == "drop":
        nodes.pop()
        return samples
    k = draw(st.integers(0, len(nodes) - 1))
    kind, c, needs, terms = nodes[k]
    if change == "kind":
        kind = 203 - kind
    elif change == "fconst":
        c = 1.0 - c
    elif change == "needs":
        needs = not needs
    elif change == "swap":
        j = draw(st.integers(0, len(terms) - 1))
        terms[j] = terms[j][::-1]
    elif change == "term":
        terms = [*terms, (("shared", 0), ("column", 0))]
    else:  # one reference of that kind (an own node's, for "other") becomes another
        wanted = "rank" if change == "other" else change
        places = [(j, side) for j, pair in enumerate(terms) for side in (0, 1) if pair[side][0] == wanted]
        if places:
            j, side = draw(st.sampled_from(places))
            old = terms[j][side]
            if change == "other":
                new = ("other", old[1])
            elif change == "rank":  # another of its own earlier nodes, where it has one
                new = ("rank", draw(st.sampled_from([r for r in range(k) if r != old[1]] or [old[1]])))
            else:
                new = draw(st.sampled_from(_ALTERNATIVES[change]))
            terms[j] = (new, terms[j][1]) if side == 0 else (terms[j][0], new)
    nodes[k] = (kind, c, needs, terms)
    return samples


def _encode(samples: list[list[tuple[Any, ...]]], interleave: bool) -> tuple[Any, ...]:
    """``match_samples``' arguments for the samples, plus each fused node's sample and index in it."""
    n = len(samples)
    data: list[float] = [0.0] * SHARED_NODES  # nodes 0-2 parameters, 3 the shared fused node
    sample = [SHARED] * SHARED_NODES
    column = [-1] * SHARED_NODES
    is_constant = [False] * SHARED_NODES
    needs = [True] * SHARED_NODES

    def leaf(s: int, c: int, value: float) -> int:
        data.append(value)
        sample.append(s)
        column.append(c)
        is_constant.append(c < 0)
        needs.append(False)
        return len(data) - 1

    inputs = [[leaf(s, c, 0.0) for c in range(NIN)] for s in range(n)]
    order = [(s, k) for s in range(n) for k in range(len(samples[s]))]
    if interleave:
        order.sort(key=lambda sk: (sk[1], sk[0]))
    top_of: dict[tuple[int, int], int] = {}
    next_top = len(data) + sum(2 * len(t) for nodes in samples for *_, t in nodes)  # after the constants
    for f, (s, k) in enumerate(order):
        top_of[s, k] = next_top + f
    tops, kind, n_terms, first, ta, tc, fconst = [3], [101], [1], [0], [0], [1], [0.0]  # node 3 = w0 * w1
    for s, k in order:
        node_kind, c, _, terms = samples[s][k]
        tops.append(top_of[s, k])
        kind.append(node_kind)
        fconst.append(c)
        n_terms.append(len(terms))
        first.append(len(ta))
        for pair in terms:
            for ref, out in zip(pair, (ta, tc), strict=True):
                if ref[0] == "shared":
                    out.append(ref[1])
                elif ref[0] == "constant":
                    out.append(leaf(SHARED, -1, ref[1]))
                elif ref[0] == "column":
                    out.append(inputs[s][ref[1]])
                elif ref[0] == "rank":
                    out.append(top_of[s, ref[1]])
                elif ref[0] == "other":
                    out.append(top_of[(s + 1) % n, ref[1]])
                else:
                    out.append(-1)
    m = next_top + len(order)
    data += [0.0] * (m - len(data))
    sample += [SHARED] * (next_top - len(sample)) + [s for s, _ in order]
    column += [-1] * (m - len(column))
    is_constant += [False] * (m - len(is_constant))
    needs += [False] * (next_top - len(needs)) + [samples[s][k][2] for s, k in order]
    arrays = (
        np.array(tops, np.int64),
        np.array(kind, np.int64),
        np.array(n_terms, np.int64),
        np.array(first, np.int64),
        np.array(ta, np.int32),
        np.array(tc, np.int32),
        np.array(fconst),
        np.array(sample, np.int32),
        np.array(column, np.int32),
        np.array(needs),
        np.array(is_constant),
        np.array(data).view(np.int64),
        n,
    )
    return arrays, [(-1, -1)] + order


def _copies(samples: list[list[tuple[Any, ...]]]) -> bool:
    """Definition: every sample's nodes are sample 0's, one for one, constants by their bits, and
    none reads another sample's node."""

    def described(nodes: list[tuple[Any, ...]]) -> list[Any]:
        def reference(ref: tuple[Any, ...]) -> Any:
            return ("constant", np.float64(ref[1]).view(np.int64)) if ref[0] == "constant" else ref

        return [
            (kind, c, needs, [tuple(map(reference, pair)) for pair in terms])
            for kind, c, needs, terms in nodes
        ]

    reads_another = any(
        ref[0] == "other" for nodes in samples for *_, terms in nodes for pair in terms for ref in pair
    )
    return not reads_another and all(described(nodes) == described(samples[0]) for nodes in samples)


@settings(max_examples=1000)  # a thousand cases take a second
@given(samples=_near_alike(), interleave=st.booleans())
def test_samples_match_exactly_when_they_are_copies_of_sample_0(
    samples: list[list[tuple[Any, ...]]], interleave: bool
) -> None:
    arrays, owner = _encode(samples, interleave)
    rank, T = match_samples(*arrays)
    if not _copies(samples):
        assert T == 0
        return
    assert T == len(samples[0])
    assert rank.tolist() == [k for _, k in owner]
