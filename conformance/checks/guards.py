"""Guards: a compiled step notices what changes between calls, and what ``loss_fn`` hides.

Each scenario trains three twins from the same parameters on the same batches, and makes
the same change to each between calls: the plain eager loop written out here, the portable
``spec.compile.EagerStep``, and the backend's own ``compile_step``. After every call the
compiled step must give what ``EagerStep`` gives, bit for bit (loss, parameters, grads,
optimizer state), or raise the same documented error having changed nothing; and
``EagerStep`` must give what the eager loop gives while it computes a loss. A change to the
model, to ``optimizer.params`` or to a class makes the step capture anew
(``step.info["recaptures"]``); where a scenario allows it (a Value computed before capture),
a replay may refuse with ``CaptureError`` instead.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import spec.nn
from conformance._registry import checks_in, named_by_keys
from conformance.gradcheck import Exact, float_bits, float_difference
from conformance.loss_programs import assert_same_state, eager_step
from spec import (
    SGD,
    Adam,
    Backend,
    CaptureError,
    DomainError,
    GradspecError,
    OperandTypeError,
    ShapeError,
    compile_step,
    mse_loss,
)
from spec.compile import EagerStep

check = checks_in("compiled", ordered=True)

Edit = Callable[[Backend, Any, Any], None]
Loss = Callable[[Any, Any, Any], Any]
N, NIN = 5, 2


def _mse(m: Any, x: Any, t: Any) -> Any:
    return mse_loss([m(row) for row in x], t)


@dataclass(frozen=True)
class Scenario:
    """Changes made between calls (``edits[k]`` before call ``k + 1``), alike on every twin."""

    edits: list[Edit]
    optimizer: Callable[[list[Any]], Any] = lambda p: SGD(p, 0.05, momentum=0.5)
    #: ``(model, loss_fn)`` for a twin; by default an MLP and the mean squared error
    build: Callable[[Backend], tuple[Any, Loss]] = lambda b: (b.MLP(NIN, [3, 3, 1], seed=11), _mse)
    #: class attributes set for the scenario's length (owner, name, value), undone after
    patches: list[tuple[Callable[[Backend], type], str, Callable[[Backend], Any]]] = field(
        default_factory=list
    )
    #: whether a replay may refuse the loss with CaptureError where EagerStep computes it
    may_refuse: bool = False
    #: the batches, the first also the example; by default random ones
    data: list[Any] | None = None
    #: the error EagerStep raises first (at construction, an edit or a call); None: it raises none
    raises: type[Exception] | None = None


def _batches(count: int, seed: int = 1) -> list[tuple[list[list[float]], list[float]]]:
    rng = random.Random(seed)
    return [
        (
            [[rng.uniform(-1.5, 1.5) for _ in range(NIN)] for _ in range(N)],
            [rng.uniform(-1, 1) for _ in range(N)],
        )
        for _ in range(count)
    ]


def _neuron(model: Any, layer: int = 0, neuron: int = 1) -> Any:
    return model.layers[layer].neurons[neuron]


def _resync(edit: Edit) -> Edit:
    """``edit``, then the optimizer told of the model's parameters as they are now."""

    def edited(backend: Backend, model: Any, optimizer: Any) -> None:
        edit(backend, model, optimizer)
        optimizer.params = model.parameters()

    return edited


def _set(name: str, value: Any) -> Edit:
    return lambda backend, model, optimizer: setattr(optimizer, name, value)


def _new_weight(backend: Backend, model: Any, optimizer: Any) -> None:
    _neuron(model).w[0] = backend.Value(0.375)


def _new_layer(backend: Backend, model: Any, optimizer: Any) -> None:
    model.layers[1] = backend.Layer(3, 3, activation="tanh", rng=random.Random(3))


def _scaled_neuron_call(neuron: Any, x: Any) -> Any:
    return _ORIGINAL_NEURON_CALL(neuron, x) * 0.5


_ORIGINAL_NEURON_CALL = spec.nn.Neuron.__call__


def _doubled_outputs(layer: Any, x: Any) -> list[Any]:
    return [neuron(x) * 2.0 for neuron in layer.neurons]


def _cached_product(backend: Backend) -> tuple[Any, Loss]:
    model = backend.MLP(NIN, [3, 3, 1], seed=11)
    p = model.parameters()
    cached = p[0] * p[1]  # computed from parameters before capture, and kept
    return model, lambda m, x, t: _mse(m, x, t) + cached * 0.125


def _outside_leaf(backend: Backend) -> tuple[Any, Loss]:
    model = backend.MLP(NIN, [3, 3, 1], seed=11)
    scale = backend.Value(0.5)  # a Value made before capture, not a parameter
    return model, lambda m, x, t: _mse(m, x, t) * scale


def _caught_log(m: Any, x: Any, t: Any) -> Any:
    """Each output times log of the sample's first input where it is defined, the output where not."""
    terms = []
    for row in x:
        out = m(row)
        try:
            terms.append(out * row[0].log())
        except DomainError:
            terms.append(out)
    return mse_loss(terms, t)


def _positive_then_not(count: int) -> list[Any]:
    """Batches whose first inputs are all positive but in the third batch."""
    return [
        ([[abs(a) + 0.1 if k != 2 else -abs(a), b] for a, b in x], t)
        for k, (x, t) in enumerate(_batches(count))
    ]


def _read_in_a_helper_thread(m: Any, x: Any, t: Any) -> Any:
    outs = [m(row) for row in x]
    with ThreadPoolExecutor(1) as pool:
        scale = pool.submit(lambda: outs[0].data).result()
    return mse_loss(outs, t) * scale


def _read_in_a_helper_thread_caught(m: Any, x: Any, t: Any) -> Any:
    outs = [m(row) for row in x]
    with ThreadPoolExecutor(1) as pool:
        try:
            scale = pool.submit(lambda: outs[0].data).result()
        except CaptureError:
            scale = 1.0
    return mse_loss(outs, t) * scale


class _PlainModel:
    """A model that is no spec Module: any object with ``parameters()``."""

    def __init__(self, backend: Backend) -> None:
        rng = random.Random(4)
        self.params = [backend.Value(rng.uniform(-1, 1)) for _ in range(NIN + 1)]

    def parameters(self) -> list[Any]:
        return list(self.params)


def _plain_model(backend: Backend) -> tuple[Any, Loss]:
    def loss(m: Any, x: Any, t: Any) -> Any:
        w = m.parameters()
        return mse_loss([sum((wi * xi for wi, xi in zip(w, row, strict=False)), w[-1]) for row in x], t)

    return _PlainModel(backend), loss


def _builds(loss: Loss) -> Callable[[Backend], tuple[Any, Loss]]:
    return lambda backend: (backend.MLP(NIN, [3, 3, 1], seed=11), loss)


def _no_edits(count: int) -> list[Edit]:
    return [lambda backend, model, optimizer: None] * count


SCENARIOS: dict[str, Scenario] = {
    # the model, edited in place
    "activation_changed": Scenario([lambda b, m, o: setattr(_neuron(m), "activation", "tanh")] * 2),
    "weight_replaced_and_optimizer_told": Scenario([_resync(_new_weight), *_no_edits(1)]),
    "weight_replaced_behind_the_optimizer": Scenario([_new_weight], raises=CaptureError),
    "layer_replaced_and_optimizer_told": Scenario([_resync(_new_layer), *_no_edits(1)]),
    "layers_reassigned_unchanged": Scenario([lambda b, m, o: setattr(m, "layers", list(m.layers))]),
    "neurons_reordered_and_optimizer_told": Scenario(
        [_resync(lambda b, m, o: m.layers[0].neurons.reverse()), *_no_edits(1)]
    ),
    "layer_emptied": Scenario([_resync(lambda b, m, o: m.layers[1].neurons.clear())], raises=ShapeError),
    "layers_list_emptied": Scenario([lambda b, m, o: m.layers.clear()], raises=CaptureError),
    "nin_changed": Scenario([lambda b, m, o: setattr(_neuron(m, 1), "nin", 2)], raises=ShapeError),
    "weights_as_a_numpy_array": Scenario(
        [lambda b, m, o: setattr(_neuron(m), "w", np.array(_neuron(m).w, dtype=object)), *_no_edits(1)]
    ),
    # optimizer.params
    "optimizer_params_reordered": Scenario([lambda b, m, o: o.params.reverse()], raises=CaptureError),
    "optimizer_params_assigned_reordered": Scenario(
        [lambda b, m, o: setattr(o, "params", o.params[::-1])], raises=CaptureError
    ),
    "optimizer_params_truncated": Scenario(
        [lambda b, m, o: o.params.pop()], lambda p: SGD(p, 0.05), raises=CaptureError
    ),
    # optimizer settings and state: assigned between calls, checked alike on every path
    "lr_float32": Scenario([_set("lr", np.float32(0.1)), _set("momentum", np.float32(0.25))]),
    "lr_string": Scenario([_set("lr", "0.5")], raises=OperandTypeError),
    "lr_none": Scenario([_set("lr", None)], raises=OperandTypeError),
    "lr_schedule_raises": Scenario([_set("lr", lambda k: 1 / 0)], raises=ZeroDivisionError),
    "lr_schedule_negative": Scenario([_set("lr", lambda k: 0.1 - 0.2 * k)], raises=DomainError),
    "velocity_of_strings": Scenario(
        [lambda b, m, o: setattr(o, "velocity", ["1"] * len(o.params))], raises=OperandTypeError
    ),
    "velocity_too_short": Scenario(
        [lambda b, m, o: setattr(o, "velocity", o.velocity[:-1])], raises=ShapeError
    ),
    "steps_negative": Scenario([_set("steps", -1)], lambda p: Adam(p, 0.05), raises=DomainError),
    "beta1_one": Scenario([_set("beta1", 1.0)], lambda p: Adam(p, 0.05), raises=DomainError),
    "beta2_float32": Scenario([_set("beta2", np.float32(0.99)), *_no_edits(1)], lambda p: Adam(p, 0.05)),
    "adam_v_negative": Scenario(
        [lambda b, m, o: o.v.__setitem__(0, -1.0)], lambda p: Adam(p, 0.05), raises=DomainError
    ),
    # classes patched after the first call, undone after the scenario
    "value_relu_patched": Scenario(
        _no_edits(2), patches=[(lambda b: b.Value, "relu", lambda b: lambda self: self.tanh())]
    ),
    "neuron_call_patched": Scenario(
        _no_edits(2), patches=[(lambda b: spec.nn.Neuron, "__call__", lambda b: _scaled_neuron_call)]
    ),
    "layer_generic_outputs_patched": Scenario(
        _no_edits(2), patches=[(lambda b: b.Layer, "generic_outputs", lambda b: _doubled_outputs)]
    ),
    # what loss_fn hides
    "value_computed_before_capture": Scenario(_no_edits(2), build=_cached_product, may_refuse=True),
    "leaf_made_before_capture": Scenario(_no_edits(2), build=_outside_leaf, may_refuse=True),
    "failure_caught_by_loss_fn": Scenario(
        _no_edits(3), build=_builds(_caught_log), data=_positive_then_not(5), raises=CaptureError
    ),
    "failure_caught_at_capture": Scenario(
        _no_edits(1), build=_builds(_caught_log), data=_positive_then_not(5)[2:], raises=CaptureError
    ),
    "number_read_in_a_helper_thread": Scenario(
        _no_edits(1), build=_builds(_read_in_a_helper_thread), raises=CaptureError
    ),
    "refusal_caught_in_a_helper_thread": Scenario(
        _no_edits(1), build=_builds(_read_in_a_helper_thread_caught), raises=CaptureError
    ),
    # a model that is not a spec Module: its parameters are checked at every call
    "plain_object_model_edited_behind_the_optimizer": Scenario(
        [lambda b, m, o: m.params.__setitem__(0, b.Value(0.5))], build=_plain_model, raises=CaptureError
    ),
    "plain_object_model_edited": Scenario(
        [_resync(lambda b, m, o: m.params.__setitem__(0, b.Value(0.5))), *_no_edits(1)], build=_plain_model
    ),
}


class _Twin:
    """One of the three runs: ``kind`` is "eager loop", "EagerStep" or "compiled"."""

    def __init__(self, backend: Backend, scenario: Scenario, kind: str, example: Any) -> None:
        self.backend, self.kind = backend, kind
        self.model, self.loss_fn = scenario.build(backend)
        self.optimizer = scenario.optimizer(self.model.parameters())
        self.step: Any = None
        if kind == "EagerStep":
            self.step = EagerStep(self.model, self.loss_fn, *example, self.optimizer)
        elif kind == "compiled":
            self.step = compile_step(self.model, self.loss_fn, *example, self.optimizer, backend=backend)

    def call(self, batch: Any) -> Exception | float:
        try:
            if self.step is None:
                return eager_step(self.backend, self.model, self.optimizer, self.loss_fn, batch)
            return float(self.step(*batch))
        except Exception as error:  # a schedule's own error passes through: compared like the others
            return error

    def edit(self, edit: Edit) -> Exception | None:
        try:
            edit(self.backend, self.model, self.optimizer)
        except Exception as error:
            return error
        return None

    def state(self) -> dict[str, Any]:
        """Parameters, grads, step count and state lists, floats compared bit for bit, anything else by repr."""

        def shown(values: Any) -> list[Any]:
            return [Exact(x) if isinstance(x, float) else repr(x) for x in values]

        model, optimizer = self.model, self.optimizer
        state = {
            "parameter data": shown(p.data for p in model.parameters()),
            "parameter grads": shown(p.grad for p in model.parameters()),
            "optimizer.steps": optimizer.steps,
        }
        for name in ("velocity", "m", "v"):
            if hasattr(optimizer, name):
                state[f"optimizer.{name}"] = shown(getattr(optimizer, name))
        return state


def _assert_same(got: Exception | float | None, want: Exception | float | None, what: str) -> None:
    """The same float, bit for bit, or the same exception type and message (or both None)."""
    if isinstance(got, float) and isinstance(want, float):
        assert float_bits(got) == float_bits(want), f"{what}: {float_difference(got, want)} (EagerStep's)"
    else:
        same = type(got) is type(want) and str(got) == str(want)
        assert same, f"{what}: {got!r}, where EagerStep gives {want!r}"


@contextmanager
def _patched(backend: Backend, patches: list[Any]) -> Iterator[Callable[[], None]]:
    """A function that applies the patches; whatever it applied is undone on leaving."""
    undo: list[tuple[type, str, Any]] = []

    def apply() -> None:
        for owner_of, name, value_of in patches:
            owner = owner_of(backend)
            undo.append((owner, name, owner.__dict__.get(name)))
            setattr(owner, name, value_of(backend))

    try:
        yield apply
    finally:
        for owner, name, old in reversed(undo):
            if old is None:
                delattr(owner, name)
            else:
                setattr(owner, name, old)


def _twins(backend: Backend, scenario: Scenario, example: Any) -> list[_Twin] | None:
    """The three twins; None where the compiled step refuses as EagerStep does, or (if allowed)
    refuses a loss EagerStep takes."""
    try:
        want = [_Twin(backend, scenario, kind, example) for kind in ("eager loop", "EagerStep")]
    except GradspecError as error:  # EagerStep refuses: so must the compiled step, alike
        _assert_raises(scenario, error, "at construction")
        try:
            _Twin(backend, scenario, "compiled", example)
        except GradspecError as refused:
            _assert_same(refused, error, "compile_step where EagerStep refuses")
            return None
        raise AssertionError(f"EagerStep refuses with {error!r}, compile_step does not") from error
    try:
        return [*want, _Twin(backend, scenario, "compiled", example)]
    except CaptureError:
        if scenario.may_refuse:
            return None
        raise


def _assert_raises(scenario: Scenario, error: Exception, where: str) -> None:
    """The first error EagerStep raised in the scenario is the one it names."""
    assert scenario.raises is not None and type(error) is scenario.raises, (
        f"EagerStep raised {error!r} {where}; the scenario expects "
        f"{scenario.raises.__name__ if scenario.raises else 'no error'}"
    )


@check(params=named_by_keys(SCENARIOS))
def check_compiled_step_guards(backend: Backend, name: str) -> None:
    scenario = SCENARIOS[name]
    batches = scenario.data or _batches(len(scenario.edits) + 2)
    twins = _twins(backend, scenario, batches[0])
    if twins is None:
        return
    loop, eager, compiled = twins
    loop_agrees = True  # until EagerStep refuses what the plain loop goes on with
    raised = False
    with _patched(backend, scenario.patches) as patch:
        for k, batch in enumerate(batches):
            if k == 1:
                patch()
            edits = [
                twin.edit(scenario.edits[k - 1]) if 0 < k <= len(scenario.edits) else None for twin in twins
            ]
            _assert_same(edits[2], edits[1], f"{name}: the change before call {k}, compiled twin")
            outcomes = [twin.call(batch) for twin in twins]
            if isinstance(outcomes[2], CaptureError) and scenario.may_refuse:
                return
            _assert_same(outcomes[2], outcomes[1], f"{name}: call {k}, the compiled step")
            assert_same_state(
                compiled.state(), eager.state(), f"{name}: after call {k}, compiled vs EagerStep"
            )
            for what, got in ((f"at the change before call {k}", edits[1]), (f"at call {k}", outcomes[1])):
                if not raised and isinstance(got, Exception):
                    _assert_raises(scenario, got, what)
                    raised = True
            loop_agrees = loop_agrees and isinstance(outcomes[1], float) and edits[1] is None
            if loop_agrees:
                _assert_same(outcomes[0], outcomes[1], f"{name}: call {k}, the plain eager loop")
                assert_same_state(
                    eager.state(), loop.state(), f"{name}: after call {k}, EagerStep vs eager loop"
                )
    assert raised or scenario.raises is None, f"{name}: EagerStep never raised {scenario.raises}"
