"""The example notebook runs end to end (on the CPU path here), and is committed without outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "quickstart.ipynb"


def test_the_committed_notebook_has_no_outputs():
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


@pytest.mark.slow
def test_the_quickstart_notebook_runs(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error

    def text(cell):
        return "".join(
            output.get("text", "") + "".join(str(v) for k, v in output.get("data", {}).items() if k == "text/plain")
            for output in cell.outputs
        )

    everything = "\n".join(text(cell) for cell in notebook.cells if cell.cell_type == "code")
    assert "same predictions: True" in everything
    if "scikit-learn is not installed" not in everything:
        assert "same labels: True" in everything
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # clusters, inertia, elbow
    html = [o["data"]["text/html"] for c in notebook.cells if c.cell_type == "code" for o in c.outputs
            if "text/html" in o.get("data", {})]
    assert any("KMeans" in h and "fitted" in h for h in html)  # the estimator's own view
