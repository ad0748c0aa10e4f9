"""The public Value API: construction, attributes, operators, graph inspection."""

from __future__ import annotations

import operator

import numpy as np

from conformance._registry import checks_in
from spec import Backend, ValueProtocol

check = checks_in("api")


@check
def check_value_attributes(backend: Backend) -> None:
    v = backend.Value(3, label="v")
    assert isinstance(v, ValueProtocol), "Value does not satisfy spec.ValueProtocol"
    assert type(v.data) is float and v.data == 3.0, f"data should be the float 3.0, got {v.data!r}"
    assert type(v.grad) is float and v.grad == 0.0, f"a new Value's grad should be 0.0, got {v.grad!r}"
    assert v.label == "v" and v.op == "" and v.children == (), (v.label, v.op, v.children)
    v.data, v.grad, v.label = 1.5, -2.0, "renamed"
    assert (v.data, v.grad, v.label) == (1.5, -2.0, "renamed")
    assert repr(backend.Value(2.0)) == "Value(data=2.0, grad=0.0)", repr(backend.Value(2.0))
    w = backend.Value(2.0)
    (w * w).backward()
    w.data = 3.0  # as an optimizer's step does, after backward
    assert w.grad == 4.0, f"assigning a leaf's data must keep its grad (4.0), got {w.grad!r}"


@check
def check_op_strings_and_children(backend: Backend) -> None:
    a, b = backend.Value(2.0), backend.Value(3.0)
    expected = {
        "+": (a + b, (a, b)),
        "*": (a * b, (a, b)),
        "**2": (a**2, (a,)),
        "**-1": (a**-1, (a,)),
        "**": (a**b, (a, b)),
        "exp": (a.exp(), (a,)),
        "log": (a.log(), (a,)),
        "tanh": (a.tanh(), (a,)),
        "ReLU": (a.relu(), (a,)),
        "sigmoid": (a.sigmoid(), (a,)),
    }
    for op, (node, children) in expected.items():
        assert node.op == op, f"expected op {op!r}, got {node.op!r}"
        assert len(node.children) == len(children) and all(
            x is y for x, y in zip(node.children, children, strict=False)
        ), f"{op}: children should be the operands in argument order"


@check
def check_operators_with_numbers(backend: Backend) -> None:
    v = backend.Value(3.0)
    cases = {
        "v + 2": (v + 2, 5.0),
        "2 + v": (2 + v, 5.0),
        "v - 2": (v - 2, 1.0),
        "1 - v": (1 - v, -2.0),
        "v * 2": (v * 2, 6.0),
        "2 * v": (2 * v, 6.0),
        "v / 2": (v / 2, 1.5),
        "-v": (-v, -3.0),
        "v ** 2": (v**2, 9.0),
        "2 ** v": (2**v, 8.0),
    }
    for text, (result, expected) in cases.items():
        assert abs(result.data - expected) <= 1e-12, f"{text} = {result.data!r}, expected {expected}"
    assert abs((6 / v).data - 2.0) <= 1e-12, (6 / v).data


@check
def check_numpy_scalars_as_operands(backend: Backend) -> None:
    v = backend.Value(np.float64(1.5))
    assert type(v.data) is float, f"Value(np.float64) should store a Python float, got {type(v.data)}"
    for scalar in (np.int64(2), np.float64(2.0), np.float32(2.0), np.int32(2)):
        for op in (operator.add, operator.mul, operator.sub, operator.truediv):
            left, right = op(scalar, v), op(v, scalar)
            for result, text in (
                (left, f"{scalar!r} {op.__name__} v"),
                (right, f"v {op.__name__} {scalar!r}"),
            ):
                assert isinstance(result, backend.Value), f"{text} gave {type(result).__name__}, not a Value"
            assert left.data == op(2.0, 1.5) or abs(left.data - op(2.0, 1.5)) < 1e-12, (scalar, op)
            assert right.data == op(1.5, 2.0) or abs(right.data - op(1.5, 2.0)) < 1e-12, (scalar, op)
    assert (-np.int64(1) * v).data == -1.5


@check
def check_backward_on_a_leaf(backend: Backend) -> None:
    v = backend.Value(4.0)
    v.backward()
    assert v.grad == 1.0, f"backward() on a leaf should set its grad to 1.0, got {v.grad}"


@check
def check_values_are_hashable_by_identity(backend: Backend) -> None:
    a, b = backend.Value(1.0), backend.Value(1.0)
    assert len({a, b, a}) == 2, "Values must hash by identity (two equal-data Values are distinct nodes)"
