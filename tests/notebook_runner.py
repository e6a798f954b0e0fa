"""Execute a notebook of notebooks/ in toy mode and return its code-cell outputs (shared by tests)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tests.launched_process import launched_xla_flags

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run_toy_notebook(name: str, tmp_path: Path, monkeypatch) -> list[dict]:
    """Run ``notebooks/<name>`` with ``KEXUE_NOTEBOOK_TOY=1``; raise on any failing cell."""
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
    monkeypatch.setenv("XLA_FLAGS", launched_xla_flags())
    monkeypatch.setenv("KEXUE_NOTEBOOK_TOY", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # keep the inline backend: figures become outputs

    path = NOTEBOOKS / name
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, kernel_name="kexue-jax-test", timeout=240, resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()  # raises CellExecutionError on any failing cell
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]


def toy_notebook_summary(name: str, tmp_path: Path, monkeypatch) -> tuple[int, str]:
    """Run ``notebooks/<name>`` in toy mode, check it printed no error, return (figures, printed text)."""
    outputs = run_toy_notebook(name, tmp_path, monkeypatch)
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, errors
    figures = sum("image/png" in o.get("data", {}) for o in outputs)
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    return figures, text
