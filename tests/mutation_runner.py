"""Prove the conformance suite has teeth: break the Python backend, watch the suite fail.

Each mutant is a one-place edit of ``backends/python/_value.py`` (a derivative
perturbed or dropped, accumulation replaced by assignment, a domain check
removed, ...). The runner copies the backend into a temporary package, applies
one edit, registers nothing, and runs ``pytest --pyargs conformance --backend
<mutant package>:BACKEND -x``. A mutant is *killed* when pytest reports failing
tests (exit code 1); exit 0 means it *survived*; anything else is an error in
the mutant itself and does not count as a kill.

    python tests/mutation_runner.py          # all mutants, two at a time
    python tests/mutation_runner.py relu_grad_at_zero_is_one   # just some
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKEND_DIR = ROOT / "backends" / "python"
PACKAGE = "gradspec_mutant"


@dataclass(frozen=True)
class Mutant:
    name: str
    old: str
    new: str


MUTANTS = [
    Mutant(
        "add_grad_drops_second_operand", "    a._grad += grad\n    b._grad += grad\n", "    a._grad += grad\n"
    ),
    Mutant(
        "add_grad_assigns",
        "    a._grad += grad\n    b._grad += grad\n",
        "    a._grad = grad\n    b._grad = grad\n",
    ),
    Mutant(
        "mul_grad_swapped",
        "a._grad += b._data * grad\n    b._grad += a._data * grad",
        "a._grad += a._data * grad\n    b._grad += b._data * grad",
    ),
    Mutant("mul_grad_drops_second_operand", "    b._grad += a._data * grad\n", ""),
    Mutant("mul_grad_assigns", "a._grad += b._data * grad", "a._grad = b._data * grad"),
    Mutant(
        "pow_grad_base_exponent_off_by_one",
        "a._grad += y * ieee_pow(x, y - 1.0) * grad",
        "a._grad += y * ieee_pow(x, y) * grad",
    ),
    Mutant(
        "pow_grad_exponent_drops_log",
        "b._grad += node._data * _log(x) * grad",
        "b._grad += node._data * grad",
    ),
    Mutant("pow_const_grad_off_by_one", "c * ieee_pow(a._data, c - 1.0)", "c * ieee_pow(a._data, c - 2.0)"),
    Mutant("pow_const_grad_at_zero_exponent", "(0.0 if c == 0.0 else", "(1.0 if c == 0.0 else"),
    Mutant(
        "exp_grad_uses_input", "node._a._grad += node._data * grad", "node._a._grad += node._a._data * grad"
    ),
    Mutant(
        "log_grad_squared", "a._grad += 1.0 / a._data * grad", "a._grad += 1.0 / (a._data * a._data) * grad"
    ),
    Mutant(
        "tanh_grad_drops_factor_four",
        "a._grad += 4.0 * e / ((1.0 + e) * (1.0 + e)) * grad",
        "a._grad += e / ((1.0 + e) * (1.0 + e)) * grad",
    ),
    Mutant(
        "relu_grad_at_zero_is_one",
        "(1.0 if node._data > 0.0 else 0.0)",
        "(1.0 if node._a._data >= 0.0 else 0.0)",
    ),
    Mutant("sigmoid_grad_ignores_sign", "e = _exp(-abs(a._data))", "e = _exp(-a._data)"),
    Mutant("sigmoid_negative_branch", "data = e / (1.0 + e)", "data = 1.0 / (1.0 + e)"),
    Mutant(
        "backward_keeps_stale_interior_grads",
        "        for node in interior:\n            node._grad = 0.0\n",
        "",
    ),
    Mutant(
        "backward_in_creation_order",
        "interior.sort(key=_creation_order, reverse=True)",
        "interior.sort(key=_creation_order)",
    ),
    Mutant(
        "backward_resets_leaves",
        "        self._grad = 1.0\n",
        "        for node in _graph(self):\n            node._grad = 0.0\n        self._grad = 1.0\n",
    ),
    Mutant(
        "zero_grad_skips_leaves",
        "        for node in _graph(self):\n            node._grad = 0.0\n",
        "        for node in _graph(self):\n            if node._backward is not None:\n                node._grad = 0.0\n",
    ),
    Mutant(
        "graph_walk_skips_second_operand",
        "if b is not None and b not in seen:",
        "if b is not None and b not in seen and False:",
    ),
    Mutant("log_domain_unchecked", "        check_domain(OpCode.LOG, (self._data,))\n", ""),
    Mutant("pow_const_domain_unchecked", "        check_domain(OpCode.POW_CONST, (self._data,), c)\n", ""),
    Mutant(
        "add_overflow_unchecked",
        "        if not -_INF < data < _INF:\n            raise overflow_error(OpCode.ADD, (self._data, other._data))\n",
        "",
    ),
    Mutant("exp_overflow_wrong_error", "raise overflow_error(OpCode.EXP, (self._data,)) from None", "raise"),
    Mutant(
        "nan_accepted_at_construction", "self._data = as_finite_float(data)", "self._data = as_float(data)"
    ),
]


#: The unmutated copy: it must pass, or no kill means anything.
CONTROL = Mutant("control", "", "")


def source_of(mutant: Mutant) -> str:
    """The mutated ``_value.py``; the edit must match exactly once."""
    original = (BACKEND_DIR / "_value.py").read_text()
    if mutant is CONTROL:
        return original
    count = original.count(mutant.old)
    if count != 1:
        raise ValueError(f"mutant {mutant.name}: its pattern matches {count} times, not once")
    return original.replace(mutant.old, mutant.new)


def build(mutant: Mutant, where: Path) -> Path:
    """A package ``gradspec_mutant`` under ``where``: the backend with one edit."""
    package = where / PACKAGE
    package.mkdir(parents=True)
    init = (BACKEND_DIR / "__init__.py").read_text()
    init = init.replace("backends.python", PACKAGE).replace('name="python"', f'name="mutant-{mutant.name}"')
    (package / "__init__.py").write_text(init)
    (package / "_value.py").write_text(source_of(mutant))
    return package


def run(mutant: Mutant) -> tuple[Mutant, str, float]:
    """``(mutant, "killed" | "SURVIVED" | "error: ...", seconds)``."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gradspec-mutant-") as tmp:
        build(mutant, Path(tmp))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([tmp, os.environ.get("PYTHONPATH", "")])}
        command = [
            sys.executable, "-m", "pytest", "--pyargs", "conformance", "--backend", f"{PACKAGE}:BACKEND",
            "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
        ]  # fmt: skip
        result = subprocess.run(command, env=env, cwd=tmp, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode == 1:
        first = next((line for line in result.stdout.splitlines() if line.startswith("FAILED")), "")
        return mutant, f"killed: by {first.partition('[')[2].rpartition(']')[0] or '?'}", seconds
    if result.returncode == 0:
        return mutant, "SURVIVED", seconds
    return (
        mutant,
        f"error (pytest exit {result.returncode}): {result.stdout[-400:]}{result.stderr[-400:]}",
        seconds,
    )


def main(names: list[str]) -> int:
    chosen = [m for m in MUTANTS if not names or m.name in names]
    unknown = set(names) - {m.name for m in MUTANTS}
    if unknown:
        print(f"unknown mutants: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    print("control run: the suite against an unmutated copy of backends/python ...", flush=True)
    _, outcome, seconds = run(CONTROL)
    if outcome != "SURVIVED":
        print(f"the unmutated copy must pass the suite, but: {outcome} ({seconds:.1f} s)", file=sys.stderr)
        return 2
    print(f"  passes ({seconds:.1f} s)")
    print(f"running the conformance suite against {len(chosen)} mutants of backends/python ...", flush=True)
    killed = 0
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for mutant, outcome, seconds in pool.map(run, chosen):
            killed += outcome.startswith("killed")
            verdict, _, detail = outcome.partition(": ")
            print(
                f"  {verdict:<9} {mutant.name:<36} {seconds:5.1f} s  {detail if verdict == 'killed' else ''}",
                flush=True,
            )
            if outcome.startswith("error"):
                print(f"      {outcome}", flush=True)
    print(f"mutants killed: {killed}/{len(chosen)}")
    return 0 if killed == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
