"""Pictures of computation graphs, for every backend's Values.

:func:`draw_dot` reads only the public attributes of the interface (``op``,
``children``, ``label``, ``data``, ``grad``), so it draws any backend's graph the
way micrograd's notebooks do: one record box per Value with its label, data and
grad, one small node per operation, and edges operand -> op -> result.

It needs the ``graphviz`` Python package (``pip install graphviz``), imported only
when called, and rendering needs the Graphviz ``dot`` program. In Jupyter the
returned :class:`graphviz.Digraph` shows inline; elsewhere use :func:`render_graph`::

    from spec.viz import draw_dot, render_graph
    draw_dot(loss)                       # in a notebook: the picture
    render_graph(loss, "loss.svg")       # a file; the suffix picks the format
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import graphviz  # type: ignore[import-untyped,import-not-found,unused-ignore]

__all__ = ["draw_dot", "render_graph"]

RANKDIRS = ("LR", "TB", "RL", "BT")
_INSTALL_DOT = (
    "install Graphviz: 'apt-get install graphviz' (Debian/Ubuntu), 'brew install graphviz' (macOS), "
    "'conda install -c conda-forge graphviz', or see https://graphviz.org/download/"
)
# Characters with a meaning inside a Graphviz record label.
_RECORD_ESCAPES = str.maketrans({c: "\\" + c for c in '\\{}|<>"'} | {"\n": "\\n"})


def draw_dot(root: Any, rankdir: str = "LR", format: str = "svg", max_nodes: int = 500) -> graphviz.Digraph:
    """A Graphviz picture of the graph that computes ``root``.

    ``rankdir`` is the direction of the arrows (``"LR"``: left to right, or ``"TB"``,
    ``"RL"``, ``"BT"``); ``format`` is the output format used by ``.render()`` and
    ``.pipe()``. A graph with more than ``max_nodes`` Values raises :class:`ValueError`
    rather than making Graphviz lay out a picture nobody can read.

    Example::

        a = Value(2.0, label="a"); b = (a * a).tanh(); b.backward()
        draw_dot(b)
    """
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
        raise ValueError(f"max_nodes must be a positive integer, got {max_nodes!r}")
    nodes = _graph_nodes(root)
    if len(nodes) > max_nodes:
        raise ValueError(
            f"this graph has {len(nodes)} Values, more than max_nodes={max_nodes}: a picture that large "
            f"is slow to lay out and hard to read. Draw a smaller expression, or pass "
            f"max_nodes={len(nodes)} (or more) to draw it anyway"
        )
    graphviz = _import_graphviz()
    dot = graphviz.Digraph(format=format, graph_attr={"rankdir": rankdir})
    for node in nodes:
        name = str(id(node))
        dot.node(name, label=_record(node), shape="record")
        if node.children:
            op_name = f"{name}op"
            dot.node(op_name, label=str(node.op), shape="ellipse", fontsize="11", height="0.3")
            dot.edge(op_name, name)
            for child in node.children:
                dot.edge(str(id(child)), op_name)
    return dot


def render_graph(root: Any, path: str | os.PathLike[str], **options: Any) -> Path:
    """Draw ``root``'s graph (see :func:`draw_dot` for ``options``) into ``path``; returns the path.

    The format is the suffix of ``path`` (``.svg``, ``.png``, ``.pdf``, ...). Raises
    :class:`RuntimeError` saying how to install Graphviz if the ``dot`` program is missing.
    """
    path = Path(path)
    if not path.suffix:
        raise ValueError(f"{path} has no suffix; name the format, e.g. graph.svg or graph.png")
    if shutil.which("dot") is None:
        raise RuntimeError(
            f"rendering a graph needs the Graphviz 'dot' program, which is not on PATH: {_INSTALL_DOT}"
        )
    dot = draw_dot(root, **{**options, "format": path.suffix[1:]})
    return Path(dot.render(outfile=path, cleanup=True))


def _graph_nodes(root: Any) -> list[Any]:
    """Every Value reachable from ``root``, root first, without recursion."""
    seen = {id(root)}
    nodes = [root]
    stack = [root]
    while stack:
        for child in stack.pop().children:
            if id(child) not in seen:
                seen.add(id(child))
                nodes.append(child)
                stack.append(child)
    return nodes


def _record(node: Any) -> str:
    label = str(node.label).translate(_RECORD_ESCAPES)
    return f"{{ {label} | data {_number(node.data)} | grad {_number(node.grad)} }}"


def _number(x: float) -> str:
    # micrograd's %.4f, except where it would print a long string of digits.
    return f"{x:.4f}" if abs(x) < 1e6 else f"{x:.4e}"


def _import_graphviz() -> Any:
    try:
        import graphviz
    except ImportError:
        raise ImportError(
            "draw_dot needs the graphviz Python package: 'pip install graphviz' "
            f"(and to render pictures, the Graphviz programs: {_INSTALL_DOT})"
        ) from None
    return graphviz
