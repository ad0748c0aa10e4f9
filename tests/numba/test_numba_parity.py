"""The Numba backend against the Python backend (bit for bit) and against micrograd itself.

Both backends perform the same float64 operations in the same order (forward:
spec.ops' expressions; backward: reverse creation order, operands in argument
order), so every value and gradient must be *identical*, not merely close.
"""

from __future__ import annotations

from hypothesis import given, settings

import backends.numba as numba_backend
from backends import python as reference
from conformance.strategies import programs
from spec.programs import Program, run_program


def results(value_type: type, program: Program) -> tuple[float, dict[str, float], dict[str, float]]:
    """The output, the leaf grads after one backward, and after a second one."""
    output, leaves = run_program(program, value_type)
    output.backward()
    once = {name: leaf.grad for name, leaf in leaves.items()}
    output.backward()
    twice = {name: leaf.grad for name, leaf in leaves.items()}
    return output.data, once, twice


@settings(max_examples=300)
@given(program=programs(max_inputs=4, max_steps=25))
def test_random_programs_are_bit_identical(program: Program) -> None:
    assert results(numba_backend.Value, program) == results(reference.Value, program), program.to_json()


def test_handwritten_programs_are_bit_identical() -> None:
    cases = [
        {
            "inputs": {"a": -4.0, "b": 2.0},
            "steps": [["c", "mul", "a", "b"], ["d", "add", "c", 1.0], ["e", "tanh", "d"]],
        },
        {
            "inputs": {"x": 0.3, "y": 1.7},
            "steps": [
                ["p", "pow", "y", "x"],
                ["q", "pow", 2.0, "x"],
                ["r", "truediv", 1.0, "p"],
                ["s", "sub", "r", "q"],
                ["t", "sigmoid", "s"],
                ["u", "log", "y"],
                ["v", "mul", "t", "u"],
                ["w", "exp", "v"],
                ["z", "add", "w", "x"],
            ],
        },
        {
            "inputs": {"x": -0.5},
            "steps": [["a", "relu", "x"], ["b", "neg", "x"], ["c", "relu", "b"], ["d", "add", "a", "c"]],
        },
    ]
    for case in cases:
        case["output"] = case["steps"][-1][0]
        program = Program.from_json(case)
        assert results(numba_backend.Value, program) == results(reference.Value, program), case


def test_twenty_demo_steps_are_bit_identical(moons_data, demo_model, demo_step) -> None:  # type: ignore[no-untyped-def]
    X, y = moons_data
    trajectories = {}
    for backend in (numba_backend, reference):
        model = demo_model(backend)
        losses = [demo_step(backend, model, X, y, k).data for k in range(20)]
        trajectories[backend.__name__] = (losses, [p.data for p in model.parameters()])
    ours, theirs = trajectories[numba_backend.__name__], trajectories[reference.__name__]
    assert ours[0] == theirs[0], "loss trajectories differ"
    assert ours[1] == theirs[1], "parameters after 20 steps differ"
    assert ours[0][0] == 0.8958441028683222  # micrograd's demo: step 0 loss 0.8958441028683222
