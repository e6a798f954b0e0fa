"""Execute notebooks/vae.ipynb in toy mode (a few dozen steps) and check that it produced output."""

from __future__ import annotations

import pytest

from tests.notebook_runner import run_toy_notebook


@pytest.mark.slow
def test_vae_notebook_runs_in_toy_mode(tmp_path, monkeypatch):
    outputs = run_toy_notebook("vae.ipynb", tmp_path, monkeypatch)
    assert not [o for o in outputs if o.get("output_type") == "error"]
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 4, f"expected the loss curve, three image grids and the norm plot, got {len(pngs)}"
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "toy=True" in text and "held-out ELBO" in text and "bits/dim" in text
