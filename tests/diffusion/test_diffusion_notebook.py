"""Execute notebooks/diffusion.ipynb in toy mode (T = 100, a hundred training steps, small sample sets) and check its output."""

from __future__ import annotations

import pytest

from tests.notebook_runner import toy_notebook_summary


@pytest.mark.slow
def test_diffusion_notebook_runs_in_toy_mode(tmp_path, monkeypatch):
    pngs, text = toy_notebook_summary("diffusion.ipynb", tmp_path, monkeypatch)
    assert pngs >= 7, (
        "expected the demolition row, the training curve, the building row, the trajectories, the "
        f"samples per sampler, the DDIM latents and the guidance grid, got {pngs}"
    )
    assert "toy=True" in text and "given the null label" in text
    assert "sliced W2(reverse x_t, forward x_t)" in text
    # every sampler of the table is scored against true samples and the true-vs-true floor
    for name in ("DDIM eta=0, 10 steps", "DDIM eta=0, 100 steps", "DDPM, 20 steps", "DDPM, 100 steps",
                 "true vs true (floor)"):
        assert name in text, name
    assert text.count("DDIM encode -> decode") >= 3  # 20 and 100 (= T) steps, and the summary
    for name in ("true component", "classifier-free, w = 8", "exact classifier, gamma = 9"):
        assert name in text, name
    assert "ODE NLL" in text and "KL estimate" in text
