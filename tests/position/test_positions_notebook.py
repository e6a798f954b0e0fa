"""Execute notebooks/positions.ipynb in toy mode (RoPE digits, NTK tables, decay, ReRoPE, attention maps)."""

from __future__ import annotations

import pytest

from tests.notebook_runner import toy_notebook_summary


@pytest.mark.slow
def test_positions_notebook_runs_in_toy_mode(tmp_path, monkeypatch):
    pngs, text = toy_notebook_summary("positions.ipynb", tmp_path, monkeypatch)
    assert pngs >= 5, (
        f"expected the digit panels, the frequency ratios, the decay curves, the ReRoPE position "
        f"matrices and the attention maps, got {pngs}"
    )
    assert "toy=True" in text and "beta = 10000^(2/d) = 1.154782" in text
    # PI, NTK-aware and NTK-fixed/mixed divide the lowest frequency by exactly k = 8.
    for name in ("linear", "ntk_aware", "ntk_fixed", "ntk_mixed"):
        assert f"{name:12s} 0.125000 = 1/8.0000" in text, name
    assert "ntk_old      0.129128" in text
    assert "relative property" in text and "mean |score|" in text
    assert "ReRoPE, w=16                 largest relative position seen: 16" in text
    assert text.count("future mass 0.0e+00") == 6 and "mean distance" in text
    assert "length_extrapolation" in text
