"""Execute notebooks/flows.ipynb in toy mode (a hundred 2-D steps, twenty tiny Glow steps) and check its output."""

from __future__ import annotations

import pytest

from tests.notebook_runner import run_toy_notebook


@pytest.mark.slow
def test_flows_notebook_runs_in_toy_mode(tmp_path, monkeypatch):
    outputs = run_toy_notebook("flows.ipynb", tmp_path, monkeypatch)
    assert not [o for o in outputs if o.get("output_type") == "error"]
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 4, (
        f"expected the density row, the 2-D samples, the Glow curve and the temperature grids, got {len(pngs)}"
    )
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "toy=True" in text and "KL(p||q)" in text and "bits/dim" in text
    assert "mass of q" in text
