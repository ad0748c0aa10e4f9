"""gradspec's conformance suite (work in progress)."""
