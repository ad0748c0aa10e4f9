"""spec.viz: graph pictures from the public Value attributes, for every backend."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from benchmarks.training import try_load_backends
from spec import Backend, load_backend
from spec.viz import draw_dot, render_graph

pytest.importorskip("graphviz", reason="draw_dot needs the graphviz Python package")
BACKENDS, _ = try_load_backends()
PYTHON = load_backend("python")
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None, reason="the Graphviz 'dot' program is not installed"
)


def _neuron(backend: Backend):  # type: ignore[no-untyped-def]
    """micrograd's notebook neuron: o = tanh(x1*w1 + x2*w2 + b), after backward()."""
    V = backend.Value
    x1, x2, w1, w2 = V(2.0, label="x1"), V(0.0, label="x2"), V(-3.0, label="w1"), V(1.0, label="w2")
    n = x1 * w1 + x2 * w2 + V(6.8813735870195432, label="b")
    o = n.tanh()
    o.label = "o"
    o.backward()
    return o


@pytest.mark.parametrize(
    "backend", [PYTHON, *(b for n, b in BACKENDS.items() if n != "python")], ids=lambda b: b.name
)
def test_one_record_per_value_and_one_node_per_op(backend: Backend) -> None:
    source = draw_dot(_neuron(backend)).source
    records = [line for line in source.splitlines() if "shape=record" in line]
    ops = [line for line in source.splitlines() if "shape=ellipse" in line]
    assert len(records) == 10 and len(ops) == 5  # 5 leaves and 5 results, one op node per result
    assert "{ x1 | data 2.0000 | grad -1.5000 }" in source
    assert "{ o | data 0.7071 | grad 1.0000 }" in source
    assert sorted(line.split("label=")[1].split()[0] for line in ops) == ['"*"', '"*"', '"+"', '"+"', "tanh"]
    assert source.count("->") == 5 + 9  # op -> result, and one edge per operand


def test_shared_operands_are_drawn_once_with_one_edge_per_use() -> None:
    a = PYTHON.Value(3.0, label="a")
    source = draw_dot(a * a).source
    assert source.count("shape=record") == 2
    assert source.count(f"{id(a)} ->") == 2


def test_record_syntax_in_labels_is_escaped() -> None:
    source = draw_dot(PYTHON.Value(1.0, label="{a|b}<c>")).source
    assert r"\{a\|b\}\<c\>" in source


def test_options_reach_graphviz() -> None:
    dot = draw_dot(PYTHON.Value(1.0), rankdir="TB", format="png")
    assert dot.format == "png" and "rankdir=TB" in dot.source


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rankdir": "up"}, "rankdir must be one of"),
        ({"max_nodes": 0}, "max_nodes must be a positive integer"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        draw_dot(PYTHON.Value(1.0), **options)  # type: ignore[arg-type]


def test_a_huge_graph_raises_quickly_and_says_how_to_draw_it() -> None:
    x = PYTHON.Value(1.0)
    for _ in range(50_000):  # deeper than any recursion limit
        x = x + 1.0
    with pytest.raises(
        ValueError, match=r"this graph has 100001 Values, more than max_nodes=500.*max_nodes=100001"
    ):
        draw_dot(x)


def test_a_missing_graphviz_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "graphviz", None)
    with pytest.raises(ImportError, match="pip install graphviz"):
        draw_dot(PYTHON.Value(1.0))


def test_a_missing_dot_program_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match=r"apt-get install graphviz.*brew install graphviz.*conda install"):
        render_graph(PYTHON.Value(1.0), tmp_path / "graph.svg")


@needs_dot
@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_render_graph_writes_the_format_of_the_suffix(suffix: str, tmp_path: Path) -> None:
    path = render_graph(_neuron(PYTHON), tmp_path / f"neuron{suffix}")
    assert path == tmp_path / f"neuron{suffix}"
    head = path.read_bytes()[:1000]
    assert (b"<svg" in head) if suffix == ".svg" else head.startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"neuron{suffix}"], "the .gv source was left behind"


def test_render_graph_needs_a_suffix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no suffix"):
        render_graph(PYTHON.Value(1.0), tmp_path / "graph")
