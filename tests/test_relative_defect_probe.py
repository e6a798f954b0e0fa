"""The 9105 probe experiment (``experiments/relative_defect_probe``) in its smoke setting.

The smoke run trains every variant for a few steps; the facts checked here hold at any step:
with position only in the softmax logits, every position of every length has the same hidden
state (Su, kexue.fm 9105), so such a model is a constant predictor and cannot beat the best
constant; each fix and absolute positions make the positions differ.
"""

from __future__ import annotations

import fcntl
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.relative_defect_probe import probe

FIXES = ("absolute_pe", "toeplitz_gate", "no_denominator", "l2", "boundary_tokens")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    # One smoke run per session, not one per pytest-xdist worker: the workers' temporary
    # directories share a parent that belongs to this session, and the lock makes a second worker
    # wait for the first one's JSON (as pytest-xdist's documentation suggests for such fixtures).
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    out = root / "relative_defect_probe_smoke.json"
    with open(root / "relative_defect_probe_smoke.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not out.exists():
            probe.main(["--smoke", "--out", str(out)])
    return json.loads(out.read_text())


def test_json_has_every_variant_with_finite_metrics(smoke):
    assert set(smoke["variants"]) == set(probe.VARIANTS)
    assert set(probe.DEFECTIVE) | set(FIXES) == set(probe.VARIANTS)
    assert smoke["config"]["steps"] == probe.SMOKE.steps
    for name, r in smoke["variants"].items():
        for key in (
            "train_mse",
            "heldout_mse",
            "long_mse",
            "position_spread",
            "position_spread_min",
        ):
            assert np.isfinite(r[key]), f"{name}: {key} = {r[key]}"
        lengths = probe.SMOKE.train_lengths + probe.SMOKE.heldout_lengths + probe.SMOKE.long_lengths
        assert sorted(map(int, r["mse_per_length"])) == sorted(lengths)
        assert r["defective_per_article"] == (name in probe.DEFECTIVE)


@pytest.mark.parametrize("name", probe.DEFECTIVE)
def test_defective_variants_give_every_position_the_same_output(name, smoke):
    r = smoke["variants"][name]
    # relative std across positions of the last hidden states: float32 rounding only (~1e-7)
    assert r["position_spread"] <= 1e-5, r["position_spread"]
    # one output for every position and length: no better than the best constant, on every set
    for split in ("train", "heldout", "long"):
        assert r[f"{split}_mse"] >= smoke["constant_mse"][split] * (1 - 1e-5), split


@pytest.mark.parametrize("name", FIXES)
def test_fixes_and_absolute_pe_make_positions_differ(name, smoke):
    # 1e-4 is ~1000x the rounding level of the defective variants; every sequence must differ
    assert smoke["variants"][name]["position_spread_min"] > 1e-4, smoke["variants"][name]


@pytest.mark.parametrize("variant", ["no_denominator", "boundary_tokens"])
def test_padding_changes_nothing_on_the_valid_positions(variant):
    # These two variants have padding-specific code (relu²/n with the true n; SEP placed at
    # position n + 1 by its relative position): padded rows must equal the unpadded sequence.
    config = probe.SMOKE
    params = probe.init_params(config, key=jax.random.key(1))
    n, t = 5, 9
    fwd = jax.jit(
        probe.forward,
        static_argnums=2,
        static_argnames=("variant", "config"),
        compiler_options=probe.compiler_options(config),
    )
    exact, _ = fwd(params, jnp.array([n]), n, variant=variant, config=config)
    padded, _ = fwd(params, jnp.array([n, t]), t, variant=variant, config=config)
    np.testing.assert_allclose(padded[0, :n], exact[0], rtol=1e-5, atol=1e-6)


def test_constant_floor_and_spread_match_direct_computation():
    lengths = (3, 5)
    ys = [np.arange(1, n + 1) / n for n in lengths]
    cs = np.linspace(0.0, 1.0, 10001)[:, None]
    brute = np.min(np.mean([np.mean((cs - y) ** 2, axis=1) for y in ys], axis=0))
    assert probe.constant_mse(lengths) == pytest.approx(brute, rel=1e-6)
    hidden = jnp.ones((2, 4, 3)).at[1, 0].set(2.0).at[0, 3].set(9.0)  # row 0: position 3 is padding
    spread = np.asarray(jax.jit(probe.position_spread)(hidden, jnp.array([3, 2])))
    h1 = np.array([[2.0] * 3, [1.0] * 3])
    expected = np.sqrt(np.sum((h1 - h1.mean(0)) ** 2) / np.sum(h1**2))
    np.testing.assert_allclose(spread, [0.0, expected], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: probe.ProbeConfig(train_lengths=()), "train_lengths"),
        (lambda: probe.ProbeConfig(d_model=30, num_heads=4), "d_model"),
        (lambda: probe.ProbeConfig(steps=0), "steps"),
        (lambda: probe.train_variant("alibi", probe.SMOKE, {}), "variant"),
    ],
)
def test_invalid_arguments_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
