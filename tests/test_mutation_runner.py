"""The mutants stay meaningful: each edit still applies to the current backend source."""

import pytest
from mutation_runner import MUTANTS, source_of


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_applies_exactly_once(mutant):
    mutated = source_of(mutant)
    assert mutated != source_of.__globals__["BACKEND_DIR"].joinpath("_value.py").read_text()
    compile(mutated, mutant.name, "exec")


def test_mutant_names_are_unique():
    names = [m.name for m in MUTANTS]
    assert len(names) == len(set(names)) >= 15
