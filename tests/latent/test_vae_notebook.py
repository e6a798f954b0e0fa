"""Execute notebooks/vae.ipynb in toy mode (a few dozen steps) and check that it produced output."""

from __future__ import annotations

import pytest

from tests.notebook_runner import toy_notebook_summary


@pytest.mark.slow
def test_vae_notebook_runs_in_toy_mode(tmp_path, monkeypatch):
    pngs, text = toy_notebook_summary("vae.ipynb", tmp_path, monkeypatch)
    assert pngs >= 4, f"expected the loss curve, three image grids and the norm plot, got {pngs}"
    assert "toy=True" in text and "held-out ELBO" in text and "bits/dim" in text
