"""Neuron / Layer / MLP: construction, determinism, initialisation, calling conventions."""

from __future__ import annotations

import random

import numpy as np

from conformance._registry import checks_in
from spec import Backend, initial_parameters

check = checks_in("models")


@check
def check_seeded_initialisation_is_the_spec_draw(backend: Backend) -> None:
    model = backend.MLP(3, [4, 4, 1], seed=42)
    params = [p.data for p in model.parameters()]
    assert params == initial_parameters(3, [4, 4, 1], seed=42), (
        "MLP(..., seed=42) must draw exactly spec.nn.initial_parameters(3, [4, 4, 1], 42)"
    )
    again = [p.data for p in backend.MLP(3, [4, 4, 1], seed=42).parameters()]
    assert again == params, "the same seed must give bit-identical parameters"
    other = [p.data for p in backend.MLP(3, [4, 4, 1], seed=43).parameters()]
    assert other != params, "a different seed should give different parameters"


@check
def check_scaled_initialisation_is_the_spec_draw(backend: Backend) -> None:
    params = [p.data for p in backend.MLP(16, [8, 3], seed=7, init="scaled").parameters()]
    assert params == initial_parameters(16, [8, 3], seed=7, init="scaled"), (
        'MLP(..., init="scaled") must draw exactly spec.nn.initial_parameters(..., init="scaled")'
    )
    uniform = initial_parameters(16, [8, 3], seed=7)
    # the same draws, each weight divided by sqrt(fan-in)
    assert params[:16] == [w / 4.0 for w in uniform[:16]] and params[-4:] == [
        w / 8**0.5 for w in uniform[-4:-1]
    ] + [0.0]


@check
def check_unseeded_initialisation_draws_like_micrograd(backend: Backend) -> None:
    state = random.getstate()
    try:
        random.seed(1337)
        params = [p.data for p in backend.MLP(2, [16, 16, 1]).parameters()]
    finally:
        random.setstate(state)
    # micrograd: weights random.uniform(-1, 1) in parameter order, biases 0.
    assert params == initial_parameters(2, [16, 16, 1], seed=1337)


@check
def check_parameter_order_and_count(backend: Backend) -> None:
    model = backend.MLP(2, [3, 1], seed=0)
    params = model.parameters()
    assert len(params) == (2 + 1) * 3 + (3 + 1) * 1
    expected = [p for layer in model.layers for n in layer.neurons for p in n.w + [n.b]]
    assert all(p is q for p, q in zip(params, expected, strict=True)), (
        "parameters() must list layer by layer, neuron by neuron, weights then bias"
    )
    assert all(
        p.data == 0.0 for p in params if any(p is n.b for layer in model.layers for n in layer.neurons)
    )


@check
def check_default_activations_match_micrograd(backend: Backend) -> None:
    model = backend.MLP(2, [4, 4, 1], seed=1)
    hidden = [n.nonlin for layer in model.layers[:-1] for n in layer.neurons]
    assert all(hidden) and not model.layers[-1].neurons[0].nonlin, "ReLU hidden layers, linear output"
    rng = random.Random(8)
    for layer in model.layers:  # biases other than micrograd's initial 0 show where they are added
        for neuron in layer.neurons:
            neuron.b.data = rng.uniform(-1, 1)
    for x in ([0.3, -0.7], [1.25, 0.5], [-2.0, 1.5]):
        act = model([backend.Value(v) for v in x])
        # micrograd's network by hand: sum((wi*xi ...), b) adds the bias first; relu, then linear.
        values = x
        for layer in model.layers:
            outs = []
            for neuron in layer.neurons:
                total = neuron.b.data
                for w, v in zip(neuron.w, values, strict=True):
                    total = total + w.data * v
                outs.append((0.0 if total < 0.0 else total) if neuron.nonlin else total)
            values = outs
        assert act.data == values[0], (
            f"MLP({x}) = {act.data!r}; micrograd's order of operations gives {values[0]!r}"
        )


@check
def check_call_conventions(backend: Backend) -> None:
    model = backend.MLP(2, [3, 2], seed=5)
    from_floats = model([0.5, -1.5])
    assert isinstance(from_floats, list) and len(from_floats) == 2, "two outputs: a list of two Values"
    from_values = model([backend.Value(0.5), backend.Value(-1.5)])
    from_numpy = model(np.array([0.5, -1.5]))
    assert [v.data for v in from_floats] == [v.data for v in from_values] == [v.data for v in from_numpy]
    single = backend.MLP(2, [1], seed=5)([1.0, 2.0])
    assert isinstance(single, backend.Value), "one output: a Value, not a list"


@check
def check_activation_choice(backend: Backend) -> None:
    for activation in ("tanh", "sigmoid", "relu", "linear"):
        model = backend.MLP(1, [1, 1], activation=activation, output_activation="tanh", seed=3)
        out = model([0.25])
        assert -1.0 < out.data < 1.0, f"a tanh output lies in (-1, 1), got {out.data}"
        first = model.layers[0].neurons[0]
        assert first.activation == activation, (first.activation, activation)
