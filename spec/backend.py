"""Backend descriptions and the registry that finds them.

A backend is a package that exposes a :class:`Backend` object and registers it
under the entry-point group ``gradspec.backends``::

    [project.entry-points."gradspec.backends"]
    mybackend = "mybackend:BACKEND"

:func:`load_backend` accepts a registered name (``"python"``) or, for
unregistered code such as test-only variants, an import path
(``"package.module:BACKEND"``).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from spec.contract import SPEC_VERSION
from spec.nn import bind_nn
from spec.ops import OPS, OpCode
from spec.value import ValueBase

__all__ = ["ENTRY_POINT_GROUP", "Backend", "ExpectedFailure", "available_backends", "load_backend"]

ENTRY_POINT_GROUP = "gradspec.backends"


@dataclass(frozen=True)
class ExpectedFailure:
    """A conformance check a backend is known to fail, and why (the convention it differs in).

    Strict by default: a declared check that passes fails the run, so a declaration cannot
    outlive its reason. ``strict=False`` is for a check that fails only sometimes (flaky).
    """

    reason: str
    strict: bool = True

    @classmethod
    def of(cls, declared: str | ExpectedFailure) -> ExpectedFailure:
        """A declaration as ``Backend.expected_failures`` holds it: a reason alone is strict."""
        return declared if isinstance(declared, ExpectedFailure) else cls(declared)


@dataclass(frozen=True)
class Backend:
    """What a backend provides, for the registry and the conformance suite."""

    name: str
    version: str
    Value: type[ValueBase]
    Neuron: type
    Layer: type
    MLP: type
    #: the backend's lowering of each op of :data:`spec.ops.OPS`, keyed by op code: its own
    #: definition of the op, what its ``Value._apply`` computes the op with (functions, kernels,
    #: or the row itself for a table interpreter). Every op needs one (refused here by name);
    #: the conformance suite checks each, through the public API, against the table's rules on
    #: every path the backend has: the eager op, its backward, and ``compile_step``.
    lowerings: Mapping[OpCode, Any]
    #: optional capabilities: ``"compile_step"``, ``"fused_call"``
    capabilities: frozenset[str] = frozenset()
    #: ``compile_step(model, loss_fn, inputs, targets, optimizer, **options)``: this backend's
    #: capture-and-replay (see :mod:`spec.compile`); ``None`` where the backend has none
    compile_step: Callable[..., Any] | None = None
    #: ``fused_call(module, x)``: this backend's fused lowering of a Layer's or an MLP's
    #: ``outputs`` (a :data:`spec.nn.ModuleLowering`, listed as ``"fused_call"`` in
    #: capabilities); ``None``: models are built by the generic code alone
    fused_call: Callable[..., Any] | None = None
    #: checks this backend is known to fail: a check id, a pattern of ids (``*`` and ``?``:
    #: ``"check_op_lowering[t*]"``, ``"check_compiled_*"``) or ``"category:NAME"``
    #: (:data:`conformance.CATEGORIES`), each with its reason or an :class:`ExpectedFailure`
    expected_failures: Mapping[str, str | ExpectedFailure] = field(default_factory=dict)
    #: the contract version this backend targets (:data:`spec.contract.SPEC_VERSION` and its
    #: changelog); ``None``: not declared, as by every backend written before version 2
    spec_version: int | None = None

    @classmethod
    def build(
        cls, name: str, value_type: type[ValueBase], lowerings: Mapping[OpCode, Any], **options: Any
    ) -> Backend:
        """A backend for ``value_type``, with Neuron/Layer/MLP bound to it by :func:`spec.nn.bind_nn`."""
        from spec import __version__  # spec/__init__ imports this module first

        neuron, layer, mlp = bind_nn(value_type, options.get("fused_call"))
        options.setdefault("version", __version__)
        return cls(
            name=name, Value=value_type, Neuron=neuron, Layer=layer, MLP=mlp, lowerings=lowerings, **options
        )

    def __post_init__(self) -> None:
        # A backend that targets this contract must lower every op, or is refused by name; one
        # written for an older contract builds, and the conformance suite names what it lacks.
        missing = [OPS[code].name for code in OPS if code not in self.lowerings]
        if missing and self.spec_version is not None and self.spec_version >= SPEC_VERSION:
            raise NotImplementedError(
                f"backend {self.name!r} has no lowering for op(s): {', '.join(missing)}"
            )
        for capability in ("compile_step", "fused_call"):
            if (capability in self.capabilities) != (getattr(self, capability) is not None):
                raise ValueError(
                    f"backend {self.name!r}: list {capability!r} in capabilities exactly when "
                    f"{capability} is given"
                )


def available_backends() -> list[str]:
    """Names of the backends registered under ``gradspec.backends``, sorted."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def load_backend(name: str) -> Backend:
    """The :class:`Backend` registered as ``name``, or at import path ``"module:attribute"``."""
    if ":" in name:
        module_name, _, attribute = name.partition(":")
        backend = getattr(importlib.import_module(module_name), attribute)
    else:
        matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not matches:
            known = available_backends()
            close = difflib.get_close_matches(name, known, n=1)
            raise LookupError(
                f"no gradspec backend named {name!r} is installed"
                + (f"; did you mean {close[0]!r}?" if close else "")
                + f" (registered: {', '.join(known) or 'none'}); "
                "install it, or pass an import path like 'package.module:BACKEND'"
            )
        backend = matches[0].load()
    if not isinstance(backend, Backend):
        raise TypeError(f"{name!r} is a {type(backend).__name__}, not a spec.Backend")
    return backend
