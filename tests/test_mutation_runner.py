"""The mutants stay meaningful: each edit still applies to the current source, once."""

import pytest
from mutants import MUTANTS
from mutation_runner import AREAS, ROOT, SUITES, source_of


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_applies_exactly_once(mutant):
    mutated = source_of(mutant)
    assert mutated != (ROOT / mutant.path).read_text()
    compile(mutated, mutant.name, "exec")


def test_no_two_mutants_make_the_same_source():
    made = {}
    for mutant in MUTANTS:
        twin = made.setdefault((mutant.path, source_of(mutant)), mutant.name)
        assert twin == mutant.name, f"{mutant.name} makes the same source as {twin}"


def test_every_area_has_mutants_and_suites():
    names = [m.name for m in MUTANTS]
    assert len(names) == len(set(names)) >= 60
    assert {m.area for m in MUTANTS} == set(AREAS)
    assert all(suite in SUITES for groups in AREAS.values() for group in groups for suite in group)
