"""Execute notebooks/flows.ipynb in toy mode (a hundred 2-D steps, twenty tiny Glow steps) and check its output."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "flows.ipynb"


@pytest.mark.slow
def test_flows_notebook_runs_in_toy_mode(tmp_path, monkeypatch):
    # A private kernelspec that runs *this* interpreter, so the test does not depend on which
    # "python3" kernel (if any) is installed; JUPYTER_PATH is searched first.
    spec_dir = tmp_path / "kernels" / "kexue-jax-test"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "kexue-jax test",
            "language": "python",
        })
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("KEXUE_NOTEBOOK_TOY", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # keep the inline backend: figures become outputs

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, kernel_name="kexue-jax-test", timeout=240, resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()  # raises CellExecutionError on any failing cell

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 4, (
        f"expected the density row, the 2-D samples, the Glow curve and the temperature grids, got {len(pngs)}"
    )
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "toy=True" in text and "KL(p||q)" in text and "bits/dim" in text
    assert "mass of q" in text
