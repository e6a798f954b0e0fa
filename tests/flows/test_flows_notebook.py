"""Execute notebooks/flows.ipynb in toy mode (a hundred 2-D steps, twenty tiny Glow steps) and check its output."""

from __future__ import annotations

import pytest

from tests.notebook_runner import toy_notebook_summary


@pytest.mark.slow
def test_flows_notebook_runs_in_toy_mode(tmp_path, monkeypatch):
    pngs, text = toy_notebook_summary("flows.ipynb", tmp_path, monkeypatch)
    assert pngs >= 4, (
        f"expected the density row, the 2-D samples, the Glow curve and the temperature grids, got {pngs}"
    )
    assert "toy=True" in text and "KL(p||q)" in text and "bits/dim" in text
    assert "mass of q" in text
