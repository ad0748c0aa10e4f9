"""Fused calls: ``Layer.outputs`` and ``MLP.outputs`` build exactly the generic graph.

A backend may build a whole layer or MLP application in one call (``"fused_call"`` in its
capabilities; :mod:`spec.nn`, "Fused calls"). The definition is the generic code, one
scalar op at a time, so each check builds the same application twice, through the
module's call and through :func:`generic_outputs` (spec.nn's own neuron calls), and
compares the graphs node for node: the same op, the same float64 bits, the same
operands in the same order (a model's parameters and input Values the very objects), the
same sharing; then gradients, bit for bit, from a random combination of the outputs, so
a different creation order (the order backward accumulates in) shows too. Errors must
match in type and message. A backend without a fused path passes trivially: its module
calls *are* the generic code.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import spec.nn
from conformance._registry import checks_in, named_by_keys
from conformance.gradcheck import bits_differ
from conformance.graphs import assert_same_graph
from spec import ACTIVATIONS, Backend

check = checks_in("capabilities", requires=("fused_call",), ordered=True)

#: How an input row is given: every kind the generic code accepts.
INPUT_KINDS = ("values", "floats", "mixed", "numpy", "ints")


def generic_outputs(backend: Backend, module: Any, x: Sequence[Any]) -> list[Any]:
    """``module.outputs(x)`` by the generic code alone: the backend's fused lowering switched
    off, so every layer runs spec.nn's code (or what the module's classes override) neuron by
    neuron."""
    with _generic_calls(backend):
        return list(type(module).outputs(module, x))


def assert_same_gradients(
    backend: Backend, fused: Sequence[Any], generic: Sequence[Any], leaves: Sequence[Any], rng: random.Random
) -> None:
    """Backward from the same random combination of each output list: identical leaf grads."""
    weights = [rng.uniform(-2, 2) for _ in fused]
    grads = []
    for outputs in (fused, generic):
        for leaf in leaves:
            leaf.grad = 0.0
        root = sum((w * out for w, out in zip(weights, outputs, strict=True)), backend.Value(0.0))
        root.backward()
        grads.append([leaf.grad for leaf in leaves])
    differ = bits_differ(grads[0], grads[1], "leaf grad")
    assert differ is None, (
        f"backward through the fused graph accumulates in another order than the generic one: {differ}"
    )


def _row(backend: Backend, kind: str, values: list[float]) -> list[Any]:
    if kind == "values":
        return [backend.Value(v) for v in values]
    if kind == "floats":
        return values
    if kind == "mixed":
        return [backend.Value(v) if i % 2 else v for i, v in enumerate(values)]
    if kind == "numpy":
        return list(np.array(values))
    return [round(v) for v in values]


@st.composite
def _models(draw: st.DrawFn) -> dict[str, Any]:
    nin = draw(st.integers(1, 4))
    sizes = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    return {
        "nin": nin,
        "sizes": sizes,
        "activation": draw(st.sampled_from(ACTIVATIONS)),
        "output_activation": draw(st.sampled_from(ACTIVATIONS)),
        "seed": draw(st.integers(0, 2**16)),
        "kind": draw(st.sampled_from(INPUT_KINDS)),
        "whole": draw(st.booleans()),  # the MLP, or its first layer alone
    }


def _build(backend: Backend, case: dict[str, Any]) -> tuple[Any, list[Any], random.Random]:
    model = backend.MLP(
        case["nin"],
        case["sizes"],
        activation=case["activation"],
        output_activation=case["output_activation"],
        seed=case["seed"],
    )
    rng = random.Random(case["seed"])
    for p in model.parameters():  # non-zero biases, and weights of every sign and size
        p.data = rng.uniform(-3, 3)
    values = [rng.uniform(-2, 2) for _ in range(case["nin"])]
    return model if case["whole"] else model.layers[0], _row(backend, case["kind"], values), rng


def _call(module: Any, x: list[Any]) -> list[Any]:
    out = module(x)
    return out if isinstance(out, list) else [out]


def _compare(
    backend: Backend,
    module: Any,
    x: list[Any],
    rng: random.Random,
    call: Callable[..., list[Any]] | None = None,
) -> None:
    """Build ``module`` on ``x`` by ``call`` (``module.outputs``) and by the generic code; compare."""
    fused = (call or type(module).outputs)(module, x)
    generic = generic_outputs(backend, module, x)
    shared = [v for v in [*module.parameters(), *x] if isinstance(v, backend.Value)]
    assert_same_graph(fused, generic, shared)
    assert_same_gradients(backend, fused, generic, shared, rng)


@check
def check_fused_calls_build_the_generic_graph(backend: Backend) -> None:
    @given(case=_models())
    def prop(case: dict[str, Any]) -> None:
        module, x, rng = _build(backend, case)
        _compare(backend, module, x, rng)
        _compare(backend, module, x, rng, call=_call)  # __call__ too

    prop()


#: edits of a model between two calls: a fused path must see each, as the generic code does
EDITS: dict[str, Callable[[Backend, Any], None]] = {
    "weight_replaced": lambda b, m: m.layers[0].neurons[0].w.__setitem__(0, b.Value(-1.5)),
    "bias_replaced": lambda b, m: setattr(m.layers[-1].neurons[0], "b", b.Value(0.25)),
    "activation_changed": lambda b, m: setattr(m.layers[0].neurons[1], "activation", "tanh"),
    "neuron_added": lambda b, m: m.layers[-1].neurons.append(
        b.Neuron(3, activation="sigmoid", rng=random.Random(1))
    ),
    "layer_added": lambda b, m: m.layers.append(b.Layer(2, 2, activation="relu", rng=random.Random(2))),
    "weights_swapped": lambda b, m: m.layers[1].neurons[0].w.reverse(),
    "weight_made_a_number": lambda b, m: m.layers[1].neurons[1].w.__setitem__(2, 0.5),
    "data_changed": lambda b, m: setattr(m.layers[0].neurons[2].w[1], "data", 7.0),
    "garbage_collected": lambda b, m: _make_garbage(b),
    "neuron_call_overridden": lambda b, m: _override_call(m.layers[0].neurons[1]),
    "layer_made_unhashable": lambda b, m: _unhashable(m.layers[0]),
    "bias_made_a_number": lambda b, m: setattr(m.layers[0].neurons[0], "b", 0.5),
    "weights_list_reassigned": lambda b, m: setattr(
        m.layers[1].neurons[0], "w", m.layers[1].neurons[0].w[::-1]
    ),
    "neuron_made_linear": lambda b, m: setattr(m.layers[0].neurons[2], "activation", "linear"),
    "layer_class_changed": lambda b, m: _doubling_class(m.layers[0]),
}


def _doubling_class(layer: Any) -> None:
    layer.__class__ = type("Doubling", (type(layer),), {"generic_outputs": _doubled_outputs})


def _unhashable(layer: Any) -> None:
    # A class that defines __eq__ and no __hash__ cannot be a dict key: a fused path must not need one.
    layer.__class__ = type("Compared", (type(layer),), {"__eq__": lambda self, other: self is other})


def _override_call(neuron: Any) -> None:
    base = type(neuron)
    neuron.__class__ = type("Doubled", (base,), {"__call__": lambda self, x: base.__call__(self, x) * 2.0})


def _make_garbage(backend: Backend) -> None:
    # More nodes than a tape-based backend keeps before it reclaims dead ones (and renumbers).
    v = backend.Value(0.5)
    for _ in range(70_000):
        v = v * 1.0
    del v


@check(params=named_by_keys(EDITS))
def check_fused_calls_follow_model_edits(backend: Backend, edit: str) -> None:
    model = backend.MLP(2, [3, 2], activation="relu", output_activation="linear", seed=5)
    rng = random.Random(9)
    for p in model.parameters():
        p.data = rng.uniform(-2, 2)
    x = [backend.Value(0.75), backend.Value(-1.25)]
    _compare(backend, model, x, rng)
    EDITS[edit](backend, model)
    _compare(backend, model, x, rng)
    for layer in model.layers:
        _compare(backend, layer, [backend.Value(rng.uniform(-1, 1)) for _ in layer.neurons[0].w], rng)


def _scaled_neuron_call(neuron: Any, x: Any) -> Any:
    return _NEURON_CALL(neuron, x) * 0.5


def _doubled_outputs(layer: Any, x: Any) -> list[Any]:
    return [neuron(x) * 2.0 for neuron in layer.neurons]


def _doubled_mlp_outputs(mlp: Any, x: Any) -> list[Any]:
    return [out * 2.0 for out in _MLP_GENERIC(mlp, x)]


_NEURON_CALL, _MLP_GENERIC = spec.nn.Neuron.__call__, spec.nn.MLP.generic_outputs

#: a class attribute replaced after a first call (owner, name, new value): the fused path must
#: follow the generic code through the patch, or decline
PATCHES: dict[str, tuple[Callable[[Backend], type], str, Callable[[Backend], Any]]] = {
    "value_relu": (lambda b: b.Value, "relu", lambda b: lambda self: self.tanh()),
    "neuron_call": (lambda b: b.Neuron, "__call__", lambda b: _scaled_neuron_call),
    "spec_neuron_call": (lambda b: spec.nn.Neuron, "__call__", lambda b: _scaled_neuron_call),
    "layer_generic_outputs": (lambda b: b.Layer, "generic_outputs", lambda b: _doubled_outputs),
    "spec_layer_generic_outputs": (lambda b: spec.nn.Layer, "generic_outputs", lambda b: _doubled_outputs),
    "spec_layer_outputs": (lambda b: spec.nn.Layer, "outputs", lambda b: _doubled_outputs),
    "spec_mlp_generic_outputs": (lambda b: spec.nn.MLP, "generic_outputs", lambda b: _doubled_mlp_outputs),
}


@check(params=named_by_keys(PATCHES))
def check_fused_calls_follow_class_patches(backend: Backend, patch: str) -> None:
    owner_of, name, value_of = PATCHES[patch]
    model = backend.MLP(2, [3, 2], activation="relu", output_activation="sigmoid", seed=5)
    rng = random.Random(9)
    x = [backend.Value(0.75), backend.Value(-1.25)]
    for module in (model, model.layers[0]):
        module.outputs(x)  # a first call: a fused path plans it
    owner = owner_of(backend)
    saved = owner.__dict__.get(name, _MISSING)
    setattr(owner, name, value_of(backend))
    try:
        for module in (model, model.layers[0]):
            fused = module.outputs(x)
            generic = generic_outputs(backend, module, x)
            shared = [v for v in [*module.parameters(), *x] if isinstance(v, backend.Value)]
            assert_same_graph(fused, generic, shared)
            assert_same_gradients(backend, fused, generic, shared, rng)
    finally:
        _restore(owner, name, saved)


@contextmanager
def _generic_calls(backend: Backend) -> Iterator[None]:
    """The backend's modules with no fused lowering: their calls are spec.nn's generic code."""
    saved = [(cls, cls.__dict__.get("fused_outputs", _MISSING)) for cls in (backend.Layer, backend.MLP)]
    for cls, _ in saved:
        cls.fused_outputs = None
    try:
        yield
    finally:
        for cls, fused in saved:
            _restore(cls, "fused_outputs", fused)


_MISSING = object()


def _restore(owner: type, name: str, saved: Any) -> None:
    """Put back a class attribute as ``owner.__dict__.get(name, _MISSING)`` found it."""
    if saved is _MISSING:
        delattr(owner, name)
    else:
        setattr(owner, name, saved)


#: calls the generic code refuses: the fused path must raise the same error, word for word
FAILURES: dict[str, Callable[[Backend], tuple[Any, list[Any]]]] = {
    "product_overflows": lambda b: (_scaled(b, 1e200), [b.Value(1e200), b.Value(1.0)]),
    "sum_overflows": lambda b: (_scaled(b, 1.5e308, 0.0), [b.Value(1.0), b.Value(1.0)]),
    "number_product_overflows": lambda b: (_scaled(b, 1e200), [1.0, 1e200]),
    "later_layer_overflows": lambda b: (_scaled(b, 1e150, layers=(0, 1)), [b.Value(1e150), b.Value(1e150)]),
    "linear_output_sum_overflows": lambda b: (_overflowing_output(b), [b.Value(1.0), b.Value(1.0)]),
    "nan_input": lambda b: (b.MLP(2, [2, 1], seed=1), [b.Value(1.0), float("nan")]),
    "bool_input": lambda b: (b.MLP(2, [2, 1], seed=1), [True, b.Value(1.0)]),
    "string_input": lambda b: (b.MLP(2, [2, 1], seed=1), ["1.0", 2.0]),
    "too_long": lambda b: (b.MLP(2, [2, 1], seed=1).layers[0], [1.0, 2.0, 3.0]),
    "too_short": lambda b: (b.MLP(2, [2, 1], seed=1).layers[0], [1.0]),
    "bad_chain": lambda b: (_bad_chain(b), [1.0, 2.0]),
    # edits after a first call, where the plan made then no longer holds
    "bias_of_another_thread": lambda b: _after_a_call(b, _bias_of_another_thread),
    "weights_longer_than_nin": lambda b: _after_a_call(b, lambda n: n.w.append(type(n.b)(0.5))),
    "weights_shorter_than_nin": lambda b: _after_a_call(b, lambda n: n.w.pop()),
}


def _after_a_call(backend: Backend, edit: Callable[[Any], None]) -> tuple[Any, list[Any]]:
    """An MLP(2, [2, 1]) called once, then its first neuron edited."""
    model = backend.MLP(2, [2, 1], seed=1)
    x = [backend.Value(0.5), backend.Value(-1.5)]
    model.outputs(x)
    edit(model.layers[0].neurons[0])
    return model, x


def _bias_of_another_thread(neuron: Any) -> None:
    made: list[Any] = []
    worker = threading.Thread(target=lambda: made.append(type(neuron.b)(0.25)))
    worker.start()
    worker.join()
    neuron.b = made[0]


def _scaled(backend: Backend, weight: float, bias: float = 0.0, layers: Sequence[int] = (0,)) -> Any:
    """An MLP(2, [2, 1]) whose ``layers`` have every weight ``weight``, every bias ``bias``."""
    model = backend.MLP(2, [2, 1], seed=3)
    for layer in layers:
        for neuron in model.layers[layer].neurons:
            for w in neuron.w:
                w.data = weight
            neuron.b.data = bias
    return model


def _overflowing_output(backend: Backend) -> Any:
    """An MLP whose products are finite but whose linear output's sum is not: nothing after it checks."""
    model = _scaled(backend, 1.0, 1.0)  # hidden outputs relu(1 + 1 + 1) = 3
    (output,) = model.layers[1].neurons
    for w in output.w:
        w.data = 5e307  # products 1.5e308
    output.b.data = 5e307
    return model


def _bad_chain(backend: Backend) -> Any:
    model = backend.MLP(2, [2, 1], seed=1)
    model.layers[0].neurons.pop()  # the next layer still takes 2 inputs
    return model


@check(params=named_by_keys(FAILURES))
def check_fused_calls_raise_the_generic_errors(backend: Backend, failure: str) -> None:
    errors = []
    for build in (lambda m, x: m.outputs(x), partial(generic_outputs, backend)):
        module, x = FAILURES[failure](backend)
        try:
            build(module, x)
        except Exception as error:  # the very error is what is compared
            errors.append((type(error), str(error)))
        else:
            errors.append(None)
    fused, generic = errors
    # a Value of another thread is another tape's node where there are tapes, a Value elsewhere
    assert generic is not None or failure == "bias_of_another_thread", (
        f"{failure}: the generic code was expected to raise"
    )
    assert fused == generic, f"{failure}: the fused call raised {fused}; the generic code raises {generic}"
    v = backend.Value(1.5)
    (v * v).backward()  # after a failed call the engine still works
    assert v.grad == 3.0, f"{failure}: after the failed call, d(v*v)/dv at 1.5 is {v.grad}, not 3.0"
