"""gradspec's in-tree backends: ``backends.python`` and ``backends.numba``."""
