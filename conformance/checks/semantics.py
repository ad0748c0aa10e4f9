"""backward() semantics, as spec.interface states them."""

from __future__ import annotations

from conformance._registry import checks_in
from conformance.checks.contract import need
from spec import Backend

check = checks_in("backward")


@check
def check_backward_twice_doubles_leaf_grads(backend: Backend) -> None:
    a, b = backend.Value(2.0), backend.Value(-3.0)
    h = a * b
    out = h + a
    out.backward()
    first = (a.grad, b.grad, h.grad, out.grad)
    out.backward()
    second = (a.grad, b.grad, h.grad, out.grad)
    assert first == (-2.0, 2.0, 1.0, 1.0), f"first backward gave (a, b, h, out) grads {first}"
    assert second == (-4.0, 4.0, 1.0, 1.0), (
        f"second backward gave {second}: leaves must accumulate (-4, 4), interior nodes stay fresh (1, 1)"
    )


@check
def check_root_grad_is_seeded_not_accumulated(backend: Backend) -> None:
    a = backend.Value(3.0)
    out = a * a
    out.grad = 7.0
    out.backward()
    assert out.grad == 1.0, f"backward() must set the root's grad to 1.0, found {out.grad}"
    assert a.grad == 6.0, f"d(a*a)/da at 3 is 6, got {a.grad}"


@check
def check_shared_interior_node_gets_fresh_gradient(backend: Backend) -> None:
    a, b = backend.Value(2.0), backend.Value(5.0)
    shared = a * b
    first, second = shared + 1.0, shared * 2.0
    first.backward()
    assert shared.grad == 1.0 and a.grad == 5.0, (shared.grad, a.grad)
    second.backward()
    assert shared.grad == 2.0, f"interior grads are recomputed per backward: expected 2.0, got {shared.grad}"
    assert a.grad == 5.0 + 10.0, f"leaf grads accumulate across graphs: expected 15.0, got {a.grad}"


@check
def check_nodes_outside_the_graph_are_untouched(backend: Backend) -> None:
    a, b, c = backend.Value(1.0), backend.Value(2.0), backend.Value(3.0)
    other = a + c
    other.grad = 5.0
    out = a * b
    out.backward()
    assert c.grad == 0.0, f"a leaf outside the graph got grad {c.grad}"
    assert other.grad == 5.0, f"a node outside the graph had its grad changed to {other.grad}"


@check
def check_zero_grad_resets_the_whole_graph(backend: Backend) -> None:
    a, b = backend.Value(2.0), backend.Value(3.0)
    h = a * b
    out = h.tanh()
    out.backward()
    out.zero_grad()
    grads = [a.grad, b.grad, h.grad, out.grad]
    assert grads == [0.0] * 4, f"zero_grad() left grads {grads}"
    out.backward()
    fresh = backend.Value(2.0) * backend.Value(3.0)
    fresh_out = fresh.tanh()
    fresh_out.backward()
    assert (a.grad, h.grad) == (fresh.children[0].grad, fresh.grad), "after zero_grad, backward is fresh"


@check(also=("precision",), ordered=True)
def check_accumulation_follows_reverse_creation_order(backend: Backend) -> None:
    # Three consumers push 1.0, 1e16 and -1e16 into x. The spec's order (the last
    # consumer created goes first) sums (-1e16 + 1e16) + 1.0 = 1.0; creation order
    # would give (1.0 + 1e16) - 1e16 = 0.0.
    x = backend.Value(1.0)
    first, second, third = x * 1.0, x * 1e16, x * -1e16
    out = first + second + third
    out.backward()
    expected = ((0.0 + -1e16) + 1e16) + 1.0
    assert expected != ((0.0 + 1.0) + 1e16) + -1e16
    assert x.grad == expected, f"x.grad = {x.grad!r}; reverse creation order gives {expected!r}"


@check
def check_deep_chain_has_no_recursion_limit(backend: Backend) -> None:
    x = backend.Value(0.5)
    node = x
    for _ in range(200_000):
        node = node + 1e-6
    node.backward()
    assert x.grad == 1.0, f"d/dx of a 200,000-step chain of additions is 1, got {x.grad}"


@check
def check_wide_sum(backend: Backend) -> None:
    leaves = [backend.Value(float(i % 7)) for i in range(100_000)]
    total = sum(leaves)
    total.backward()
    assert total.data == float(sum(i % 7 for i in range(100_000)))
    assert all(leaf.grad == 1.0 for leaf in leaves), "every term of a sum has gradient 1"


@check
def check_model_zero_grad(backend: Backend) -> None:
    model = backend.MLP(2, [3, 1], seed=0)
    model([1.0, -1.0]).backward()
    assert any(p.grad != 0.0 for p in model.parameters())
    model.zero_grad()
    assert all(p.grad == 0.0 for p in model.parameters()), "MLP.zero_grad() left non-zero grads"


@check
def check_backward_overflow_gives_infinity(backend: Backend) -> None:
    # Backward never raises: a partial that overflows is an IEEE infinity (spec.errors).
    v = backend.Value(1e-200)
    (1.0 / v).backward()
    assert v.grad == float("-inf"), f"d(1/v)/dv at 1e-200 overflows to -inf, got {v.grad!r}"


@check(also=("ops",))
def check_division_is_the_quotient(backend: Backend) -> None:
    """``a / b`` is one float64 division (spec.ops DIV), whether ``a`` or ``b`` is a number:
    1e-10 / 1e-310 is 1e300 although 1 / 1e-310 overflows, and 1 / 3 is rounded once."""
    need(backend, "op truediv")
    for x, y in [(1e-10, 1e-310), (1.0, 3.0), (-7.0, 0.1), (1e-300, 5e-324 * 3)]:
        spellings = {
            "Value / Value": backend.Value(x) / backend.Value(y),
            "Value / number": backend.Value(x) / y,
            "number / Value": x / backend.Value(y),
        }
        for spelled, out in spellings.items():
            assert out.data == x / y, (
                f"{spelled} at ({x!r}, {y!r}) is {out.data!r}, the quotient is {x / y!r}"
            )
