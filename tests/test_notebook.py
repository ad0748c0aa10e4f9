"""examples/demo.ipynb is committed without outputs and runs top to bottom in a python3 kernel.

Needs nbclient, nbformat and ipykernel (whose ``python3`` kernel runs on this
interpreter), the graphviz Python package and the Graphviz ``dot`` program. The
notebook reads GRADSPEC_DEMO_STEPS and GRADSPEC_DEMO_GRID so that it runs in seconds.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("graphviz")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "demo.ipynb"


def test_the_committed_notebook_has_no_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code cells"
    for index, cell in enumerate(code):
        assert cell.outputs == [] and cell.execution_count is None, f"code cell {index} keeps its outputs"


@pytest.mark.skipif(shutil.which("dot") is None, reason="the Graphviz 'dot' program is not installed")
def test_the_notebook_runs_top_to_bottom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADSPEC_DEMO_STEPS", "3")
    monkeypatch.setenv("GRADSPEC_DEMO_GRID", "15")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, if any cell fails
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    kinds = [kind for output in outputs for kind in output.get("data", {})]
    assert kinds.count("image/svg+xml") == 2, "draw_dot before and after backward()"
    assert kinds.count("image/png") >= 2, "loss curves and decision boundary"
    text = "".join(output.get("text", "") for output in outputs)
    assert "python: final loss" in text and "python: identical losses to python: True" in text
