"""The example notebook is stored clean and runs top to bottom on ml-latest-small."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "hyperparameter_effects.ipynb"


def test_notebook_is_stored_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has no code"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None


def test_notebook_runs(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    monkeypatch.setenv("EMBSPACE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # the kernel is this interpreter (the venv's), whatever kernels are installed
    km = KernelManager(kernel_name="python3")
    km.kernel_cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    client = NotebookClient(
        nb,
        km=km,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = {i: cell.outputs for i, cell in enumerate(nb.cells) if cell.cell_type == "code"}
    errors = [o for outs in outputs.values() for o in outs if o.get("output_type") == "error"]
    assert not errors
    text = "\n".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
        for outs in outputs.values()
        for o in outs
    )
    # the workflow's landmarks appear in the outputs
    assert "100,836" in text  # the summary of ml-latest-small
    assert "They Live (1988)" in text
    assert "noise" in text or "neighbors" in text
    images = [o for outs in outputs.values() for o in outs if "image/png" in o.get("data", {})]
    assert images, "the plot cell showed no figure"
    summary = [c for c in nb.cells if c.cell_type == "code" and "summarize" in c.source]
    assert summary and any("SVD" in o.get("text", "") for o in summary[0].outputs)
