"""The Colab quickstart runs top to bottom on the CPU, so it cannot rot."""

from pathlib import Path

import pytest

# a Jupyter kernel running the whole quickstart (.ci/run runs it)
pytestmark = pytest.mark.slow

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).parents[1] / "experiments" / "colab_quickstart.ipynb"


def test_quickstart_notebook_executes(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", []))
    assert "no GPU" in outputs or "GPU available" in outputs
    assert "7,572,376.24" in outputs  # the lecture table
    assert "runs:" in outputs and "solve XOR" in outputs
    assert "final_loss_median" in outputs and "24 trainings, one compiled program" in outputs  # sweep_fn on your own fn
    images = [o for cell in nb.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 2
