"""The Numba backend: nodes in flat arrays, backward as a compiled kernel.

Each thread appends its nodes to a tape, a structure of arrays (value, grad,
op code, parent numbers, constant) in creation order; a Value is a handle on
one node. ``backward()`` is an ``@njit(cache=True)`` kernel that sweeps the
tape once in reverse. A layer's or an MLP's call appends all its nodes in one kernel call
(:mod:`backends.numba._fused`). Dead nodes are reclaimed by compaction, so an eager
training loop runs in bounded memory (see :mod:`backends.numba._tape`).

>>> from backends.numba import Value
>>> a = Value(2.0); b = a * a + a
>>> b.backward(); a.grad
5.0

Training steps compile (``spec.compile_step``): the step's graph is captured once and
replayed by Numba kernels (see :mod:`backends.numba._replay`, imported on first use).
"""

import importlib.util
from typing import Any

if importlib.util.find_spec("numba") is None:
    raise ImportError(
        "the Numba backend needs Numba, which gradspec installs only with its numba extra: "
        'pip install "gradspec[numba]"'
    )

from backends.numba._compiling import announced
from backends.numba._fused import fused_outputs  # no kernel compiles at import: each at its first call
from backends.numba._lowering import LOWERINGS
from backends.numba._value import Value
from spec import SPEC_VERSION, Backend, common
from spec.common import *  # noqa: F403  (the losses and optimizers every backend re-exports)


def compile_step(model: Any, loss_fn: Any, inputs: Any, targets: Any, optimizer: Any, **options: Any) -> Any:
    """Capture one training step and replay it with Numba kernels (``spec.compile_step``)."""
    with announced("the compiled step's kernels"):
        from backends.numba import _replay  # compiles the replay kernels on first use

        return _replay.compile_step(model, loss_fn, inputs, targets, optimizer, **options)


BACKEND = Backend.build(
    "numba",
    Value,
    LOWERINGS,
    capabilities=frozenset({"compile_step", "fused_call"}),
    compile_step=compile_step,
    fused_call=fused_outputs,
    spec_version=SPEC_VERSION,
)
Neuron, Layer, MLP = BACKEND.Neuron, BACKEND.Layer, BACKEND.MLP

__all__ = ["BACKEND", "MLP", "Layer", "Neuron", "Value", "compile_step", *common.__all__]
