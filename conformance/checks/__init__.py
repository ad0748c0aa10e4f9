"""The conformance checks, one module per theme; importing registers them in this order.

The order is the order they run in: cheap, basic checks first, so that a broken
backend fails fast and on the most telling check (``pytest -x``).
"""
# isort: skip_file

from conformance.checks import api  # noqa: F401  (imported to register its checks)
from conformance.checks import contract  # noqa: F401
from conformance.checks import determinism  # noqa: F401
from conformance.checks import lowering  # noqa: F401
from conformance.checks import errors  # noqa: F401
from conformance.checks import golden  # noqa: F401
from conformance.checks import semantics  # noqa: F401
from conformance.checks import memory  # noqa: F401
from conformance.checks import properties  # noqa: F401
from conformance.checks import models  # noqa: F401
from conformance.checks import fused  # noqa: F401
from conformance.checks import compiled  # noqa: F401
from conformance.checks import capture  # noqa: F401
from conformance.checks import guards  # noqa: F401
from conformance.checks import compiled_programs  # noqa: F401
from conformance.checks import differential  # noqa: F401
