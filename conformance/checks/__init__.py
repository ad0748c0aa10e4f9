"""The conformance checks, one module per theme; importing registers them in order."""

from conformance.checks import (  # noqa: F401  (imported to register)
    api,
    differential,
    errors,
    golden,
    lowering,
    models,
    properties,
    semantics,
)
