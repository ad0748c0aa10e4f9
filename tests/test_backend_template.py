"""examples/backend-template installs as a real out-of-tree backend, matches the python
backend, and passes the conformance suite both ways an author would run it.

The environment is built with the README's commands ("Add a backend"), in a fresh virtual
environment that sees nothing of this one: ``pip install -e "<repo>[conformance]"``, then
``pip install -e "<template>[test]"``. uv runs them where it is installed (about 6 s with
its cache warm), pip otherwise (about a minute: it downloads NumPy, sympy, ...; Numba is the
numba extra's, which an adapter never needs).
These tests take about 40 s in all; deselect them with ``-k "not template"``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "examples" / "backend-template"

# Run inside the template's environment: the same expressions on both backends,
# as (value, gradients) pairs, and the error each bad input raises.
_COMPARE = r"""
import json, math
from spec import load_backend

def expressions(V):
    a, b = V(-4.0), V(2.0)
    c = a + b; d = a * b + b**3; c += c + 1; c += 1 + c + (-a)
    d += d * 2 + (b + a).relu(); d += 3 * d + (b - a).relu(); e = c - d; f = e**2
    g = f / 2.0; g += 10.0 / f
    yield "micrograd_more_ops", g, [a, b]
    x = V(0.7); y = V(1.3)
    yield "unary", (x.exp() + y.log() + x.tanh() * y.sigmoid() - (-x).relu()) ** 2.5, [x, y]
    p, q = V(1.7), V(-0.4)
    yield "pow_value", p ** q + 2.0 ** q + p ** 0.0, [p, q]

def run(name):
    backend = load_backend(name)
    out = {}
    for label, root, leaves in expressions(backend.Value):
        root.backward()
        out[label] = [root.data, [leaf.grad for leaf in leaves]]
    model = backend.MLP(3, [4, 4, 1], activation="tanh", seed=7)
    loss = (model([0.5, -1.0, 2.0]) - 1.0) ** 2
    loss.backward()
    out["mlp"] = [loss.data, [p.grad for p in model.parameters()]]
    errors = []
    for bad in (lambda V: V(-1.0).log(), lambda V: V(0.0) ** -1.0, lambda V: V(800.0).exp(),
                lambda V: V(float("nan")), lambda V: V(1.0) / 0):
        try:
            bad(backend.Value)
            errors.append(None)
        except Exception as error:
            errors.append(type(error).__name__)
    out["errors"] = errors
    return out

print(json.dumps({"template": run("template"), "python": run("python")}))
"""


def _run(command: list[str | Path], cwd: Path, what: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(
            f"{what} failed ({result.returncode}):\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}", False
        )
    return result


@pytest.fixture(scope="module")
def template_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a fresh venv where gradspec and the template are installed as the README says."""
    root = tmp_path_factory.mktemp("template-venv")
    uv = shutil.which("uv")
    if uv:
        _run([uv, "venv", "--quiet", "--python", sys.executable, root / "venv"], root, "creating a venv")
    else:
        venv.create(root / "venv", with_pip=True)
    python = root / "venv" / ("Scripts" if os.name == "nt" else "bin") / "python"
    install: list[str | Path] = (
        [uv, "pip", "install", "--python", python] if uv else [python, "-m", "pip", "install"]
    )
    _run([*install, "--quiet", "-e", f"{REPO}[conformance]"], root, "installing gradspec[conformance]")
    # Install from a copy: setuptools builds in the source folder (build/, *.egg-info).
    source = shutil.copytree(TEMPLATE, root / "source", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    _run([*install, "--quiet", "-e", f"{source}[test]"], root, "installing the backend template")
    return python


def test_template_is_registered_and_matches_the_python_backend(template_python: Path, tmp_path: Path) -> None:
    result = _run([template_python, "-c", _COMPARE], tmp_path, "the comparison script")
    outputs = json.loads(result.stdout)
    for key, expected in outputs["python"].items():
        assert outputs["template"][key] == expected, (
            f"{key}: template {outputs['template'][key]} != python {expected}"
        )
    assert outputs["python"]["errors"] == [
        "DomainError",
        "DivisionByZeroError",
        "ResultOverflowError",
        "NonFiniteError",
        "DivisionByZeroError",
    ]


def test_template_passes_conformance_by_name(template_python: Path, tmp_path: Path) -> None:
    command = [template_python, "-m", "pytest", "--pyargs", "conformance", "--backend", "template"]
    result = _run(
        [*command, "-q", "-p", "no:cacheprovider"], tmp_path, "pytest --pyargs conformance --backend template"
    )
    assert " passed" in result.stdout


def test_template_own_tests_pass(template_python: Path, tmp_path: Path) -> None:
    command = [template_python, "-m", "pytest", TEMPLATE / "tests", "-q", "-p", "no:cacheprovider"]
    result = _run(command, tmp_path, "the template's own tests (@parametrize_with_checks)")
    assert " passed" in result.stdout


def test_the_conformance_extra_brings_no_numba(template_python: Path, tmp_path: Path) -> None:
    probe = (
        "import importlib.util; assert importlib.util.find_spec('numba') is None, 'numba is installed'\n"
        "try:\n    import backends.numba\nexcept ImportError as error:\n    print(error)"
    )
    result = _run([template_python, "-c", probe], tmp_path, "importing backends.numba without Numba")
    assert 'pip install "gradspec[numba]"' in result.stdout, result.stdout


def test_the_suite_names_what_it_misses(template_python: Path, tmp_path: Path) -> None:
    """Without the conformance extra's tools, the suite says so in one line before it collects."""
    hide = "import sys; sys.modules['mpmath'] = None; import pytest; "
    run = "sys.exit(pytest.main(['--pyargs', 'conformance', '--backend', 'template', '-q', '-p', 'no:cacheprovider']))"
    result = subprocess.run([template_python, "-c", hide + run], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0
    assert 'missing here: mpmath. Install them with: pip install "gradspec[conformance]"' in (
        result.stdout + result.stderr
    ), result.stdout[-3000:] + result.stderr[-3000:]
