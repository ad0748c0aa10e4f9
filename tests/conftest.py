"""Shared fixtures for the project's own tests."""

from __future__ import annotations

import importlib

import pytest

from spec import available_backends


@pytest.fixture(params=available_backends())
def backend_module(request: pytest.FixtureRequest):
    """Each registered in-tree backend's package (``backends.python``, ``backends.numba``)."""
    return importlib.import_module(f"backends.{request.param}")
