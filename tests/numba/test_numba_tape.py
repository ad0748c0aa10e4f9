"""The tape: growth, handles, compaction, and the error contract's "a failed op appends nothing"."""

from __future__ import annotations

import copy
import gc
import math
import pickle

import numpy as np
import pytest

from backends import python as reference
from backends.numba import Value
from backends.numba._tape import SWEEP_INTERVAL, Tape, current_tape
from spec import BackendMismatchError


def snapshot(tape: Tape) -> tuple[bytes, ...]:
    """Every column of the tape, as bytes (grad filled first, so it compares too)."""
    tape.fill_grad()
    return tuple(bytes(column) for column in (tape.data, tape.grad, tape.op, tape.a, tape.b, tape.const))


# --- growth ------------------------------------------------------------------------------
def test_columns_grow_geometrically_not_per_node() -> None:
    tape = current_tape()
    node = Value(0.5)
    step = Value(1e-9)
    moves = 0
    last = [column.buffer_info()[0] for column in (tape.data, tape.op, tape.a, tape.b, tape.const)]
    for _ in range(300_000):
        node = node + step
        now = [column.buffer_info()[0] for column in (tape.data, tape.op, tape.a, tape.b, tape.const)]
        moves += sum(x != y for x, y in zip(now, last, strict=True))
        last = now
    # array.array over-allocates by ~1/16: a few hundred moves at most, not one per node.
    assert moves < 1_000, moves


def test_new_nodes_read_grad_zero_before_any_backward() -> None:
    a = Value(1.0)
    b = a * 3.0
    assert (a.grad, b.grad) == (0.0, 0.0)
    b.grad = 2.5
    assert b.grad == 2.5 and type(b.grad) is float
    assert type(b.data) is float


# --- handles --------------------------------------------------------------------------------
def test_children_are_the_operands_themselves() -> None:
    a, b = Value(2.0, label="a"), Value(3.0)
    c = a * b + 1.0
    product, leaf = c.children
    assert product.children[0] is a and product.children[1] is b
    assert c.children[0] is product and c.children[1] is leaf  # a number's leaf, made once
    assert leaf.data == 1.0 and leaf.op == "" and product.children[0].label == "a"


def test_dropped_handles_are_swept_and_live_ones_kept(in_new_thread) -> None:  # type: ignore[no-untyped-def]
    def on_fresh_tape() -> None:
        tape = current_tape()
        keep = [Value(float(i)) for i in range(10)]
        for _ in range(4 * SWEEP_INTERVAL):
            Value(1.0) * 2.0
        assert len(tape.fresh) <= SWEEP_INTERVAL + 1
        # Each of the 3 * 4 sweeps (3 appends an iteration) may meet one operand still alive.
        sweeps = 3 * 4
        assert len(tape.survivors) <= 1 + len(keep) + sweeps, "a sweep keeps only the handles alive then"
        tape.compact()
        assert sorted(map(id, tape.survivors.values()))[:-1] != [], "the probe and the kept handles"
        survivors = [h for h in tape.survivors.values() if isinstance(h, Value)]
        assert sorted(map(id, survivors)) == sorted(map(id, keep)), "exactly the live handles survive"
        assert [v.data for v in keep] == [float(i) for i in range(10)]

    in_new_thread(on_fresh_tape)


def test_copies_and_pickles_are_new_leaves() -> None:
    a = Value(2.0, label="w")
    out = a * a
    out.backward()
    for twin in (copy.copy(out), copy.deepcopy(out), pickle.loads(pickle.dumps(out))):
        assert twin is not out and twin.op == "" and twin.children == ()
        assert (twin.data, twin.grad) == (4.0, 1.0)
    assert copy.deepcopy(a).label == "w"


# --- compaction ------------------------------------------------------------------------------
def build(v: type, x: float) -> tuple[object, list[object]]:
    a, b = v(x, label="a"), v(-1.5)
    h = (a * b + 2.0).tanh()
    out = h * a + (b**2).exp() / (a.sigmoid() + 1.0) - a.relu() ** 1.5 + (2.0**a).log()
    return out, [a, b, h]


def test_compaction_keeps_live_graphs_and_renumbers_handles() -> None:
    tape = current_tape()
    out, (a, b, h) = build(Value, 0.7)
    out.backward()
    before = (out.data, a.grad, b.grad, h.grad, h.data, out.op, h.op)
    for i in range(3_000):  # dead graphs above the live one
        build(Value, 0.01 * i)
    later, _ = build(Value, 0.3)
    n_before = len(tape)
    tape.compact()
    assert len(tape) < n_before // 10, "dead graphs should be reclaimed"
    assert (out.data, a.grad, b.grad, h.grad, h.data, out.op, h.op) == before
    assert a.label == "a" and h.children[0].children[0].children[0] is a
    out.backward()
    assert (a.grad, b.grad) == (2 * before[1], 2 * before[2])
    expected, (ra, rb, _) = build(reference.Value, 0.7)
    expected.backward()
    expected.backward()
    assert (out.data, a.grad, b.grad) == (expected.data, ra.grad, rb.grad)
    later.backward()  # above the dead graphs: renumbered too
    assert later.data == build(reference.Value, 0.3)[0].data


def test_compaction_keeps_exactly_the_nodes_live_handles_reach(in_new_thread) -> None:  # type: ignore[no-untyped-def]
    def on_fresh_tape() -> tuple[int, int]:
        tape = current_tape()
        out, _ = build(Value, 0.7)
        for i in range(100):
            build(Value, 0.01 * i)
        tape.compact()
        reached, stack = set(), [out]
        while stack:
            node = stack.pop()
            if node._i not in reached:
                reached.add(node._i)
                stack.extend(node.children)
        return len(tape), len(reached)

    length, reached = in_new_thread(on_fresh_tape)
    assert length == reached, f"after compaction the tape holds {length} nodes; live handles reach {reached}"


def test_compaction_runs_by_itself_and_keeps_interior_nodes_of_live_graphs() -> None:
    tape = current_tape()
    x = Value(0.25)
    chain = x
    for _ in range(50):
        chain = chain * 1.01 + 0.001
    runs = tape.compactions
    for _ in range(200_000):
        Value(1.0) + 1.0  # garbage, reclaimed as the tape fills
    assert tape.compactions > runs
    assert len(tape) < 200_000
    chain.backward()
    ref = reference.Value(0.25)
    ref_chain = ref
    for _ in range(50):
        ref_chain = ref_chain * 1.01 + 0.001
    ref_chain.backward()
    assert (chain.data, x.grad) == (ref_chain.data, ref.grad)


def test_the_tape_compacts_as_soon_as_it_reaches_compact_at() -> None:
    tape = current_tape()
    runs, beyond = tape.compactions, 0
    for _ in range(60_000):
        Value(1.0) + 1.0  # three nodes of garbage
        beyond = max(beyond, len(tape) - tape.compact_at)
    assert tape.compactions > runs
    assert beyond <= 3, f"the tape grew {beyond} nodes past compact_at before compacting"


def test_live_handle_keeps_node_its_dead_parents_and_labels() -> None:
    tape = current_tape()
    a = Value(3.0, label="kept")
    b = Value(4.0, label="dropped")
    s = (a * b).relu()
    del b
    gc.collect()
    tape.compact()
    (product,) = s.children
    assert product.children[1].label == "dropped" and product.children[0] is a
    s.backward()
    assert a.grad == 4.0 and product.children[1].grad == 3.0


# --- the error contract ----------------------------------------------------------------------------
# name -> (the operands, made first; the failing primitive on them)
FAILING_PRIMITIVES = {
    "add_number_overflow": (lambda: (Value(1.7e308),), lambda x: x + 1.7e308),
    "radd_number_overflow": (lambda: (Value(1.7e308),), lambda x: 1.7e308 + x),
    "add_values_overflow": (lambda: (Value(1.7e308), Value(1.7e308)), lambda x, y: x + y),
    "mul_number_overflow": (lambda: (Value(1e200),), lambda x: x * 1e200),
    "rmul_number_overflow": (lambda: (Value(1e200),), lambda x: 1e200 * x),
    "div_number_overflow": (lambda: (Value(1e300),), lambda x: x / 1e-300),
    "div_by_number_zero": (lambda: (Value(1.0),), lambda x: x / 0),
    "pow_const_overflow": (lambda: (Value(10.0),), lambda x: x**400),
    "pow_value_overflow": (lambda: (Value(10.0), Value(400.0)), lambda x, y: x**y),
    "rpow_overflow": (lambda: (Value(400.0),), lambda x: 10.0**x),
    "rpow_negative_base": (lambda: (Value(2.0),), lambda x: (-2.0) ** x),
    "rpow_zero_base": (lambda: (Value(2.0),), lambda x: 0**x),
    "pow_negative_base_value": (lambda: (Value(-2.0), Value(2.0)), lambda x, y: x**y),
    "exp_overflow": (lambda: (Value(1000.0),), lambda x: x.exp()),
    "log_negative": (lambda: (Value(-1.0),), lambda x: x.log()),
    "zero_to_negative_power": (lambda: (Value(0.0),), lambda x: x**-2),
    "negative_to_fractional_power": (lambda: (Value(-8.0),), lambda x: x ** (1 / 3)),
    "add_inf": (lambda: (Value(1.0),), lambda x: x + math.inf),
    "mul_none": (lambda: (Value(1.0),), lambda x: x * None),
    "pow_string": (lambda: (Value(1.0),), lambda x: x ** "2"),
    "foreign_backend": (lambda: (Value(1.0),), lambda x: x + reference.Value(1.0)),
    "foreign_backend_rpow": (lambda: (Value(1.0),), lambda x: x.__rpow__(reference.Value(1.0))),
    "value_from_nan": (lambda: (), lambda: Value(math.nan)),
    "value_from_string": (lambda: (), lambda: Value("1")),
}


@pytest.mark.parametrize("case", FAILING_PRIMITIVES, ids=list(FAILING_PRIMITIVES))
def test_a_failed_primitive_appends_nothing(case: str) -> None:
    make_operands, fail = FAILING_PRIMITIVES[case]
    operands = make_operands()
    tape = current_tape()
    before = snapshot(tape)
    with pytest.raises((ValueError, TypeError, ArithmeticError)):
        fail(*operands)
    assert snapshot(tape) == before, f"{case}: the failed primitive changed the tape"
    if operands:
        good = operands[0] * 1.0
        good.backward()
        assert operands[0].grad == 1.0


def test_combining_two_tapes_is_a_backend_mismatch() -> None:
    other = Tape()
    foreign = object.__new__(Value)
    foreign._t, foreign._i = other, 0
    other.data.append(1.0)
    for column in (other.op, other.a, other.b):
        column.append(0 if column is other.op else -1)
    other.const.append(0.0)
    a = Value(1.0)
    tape = current_tape()
    before = snapshot(tape)
    for bad in (lambda: a + foreign, lambda: a * foreign, lambda: a**foreign, lambda: a - foreign):
        with pytest.raises(BackendMismatchError):
            bad()
    assert snapshot(tape)[0] == before[0]


def test_kernels_see_the_arrays_without_copies() -> None:
    tape = current_tape()
    Value(1.0)
    data, grad, op, a, b, const = tape.arrays()
    assert data.ctypes.data == tape.data.buffer_info()[0]
    dtypes = [x.dtype for x in (data, grad, op, a, b, const)]
    assert dtypes == [np.float64, np.float64, np.int8, np.int64, np.int64, np.float64]
    assert len({len(x) for x in (data, grad, op, a, b, const)}) == 1
