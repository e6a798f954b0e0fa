"""kexue.fm 9105: logit-side relative PE cannot map n identical tokens to [1..n]; the fixes can.

The probe model is one attention layer on ``n`` identical token embeddings with a learnable
Toeplitz relative bias on the logits, followed by a position-wise readout. "Can the readout fit
[1..n]?" is decided exactly: the readout is a wide random-feature layer whose output weights are
solved by least squares, so the residual is ~0 as soon as the attention outputs differ between
positions, and stays at the full variance of the targets when they are all equal.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.attention import (
    add_boundary_tokens,
    attention_from_logits,
    attention_logits,
    denominator_free_attention,
    l2_normalized_attention,
    probe_targets,
    toeplitz,
    toeplitz_gated_attention,
)
from tests.attention.arrays import normals

N, DM, M = 8, 4, 7  # probe length, width, largest relative distance in the tables
FIXES = (
    "absolute_pe",
    "toeplitz_c",
    "no_denominator_exp",
    "no_denominator_relu2",
    "l2",
    "l2_swish",
    "boundary_tokens",
)


def _params(seed):
    names = ("token", "wq", "wk", "wv", "bias_table", "c_table", "pe", "cls", "sep")
    shapes = (
        (DM,),
        (DM, DM),
        (DM, DM),
        (DM, DM),
        (1, 2 * M + 1),
        (1, 2 * M + 1),
        (N, DM),
        (DM,),
        (DM,),
    )
    return dict(zip(names, normals(seed, *shapes), strict=True))


@jax.jit
def _probe_outputs(p):
    """Attention outputs ``[N, DM]`` of every variant on the all-identical input."""
    x = jnp.broadcast_to(p["token"], (1, N, DM))
    inputs = {
        "relative_pe": x,
        "absolute_pe": x + p["pe"][None],
        "boundary_tokens": add_boundary_tokens(x, p["cls"], p["sep"]),
    }
    outs = {}
    for name in ("relative_pe", *FIXES):
        xi = inputs.get(name, x)
        t = xi.shape[1]
        q, k, v = ((xi @ p[w])[:, :, None, :] for w in ("wq", "wk", "wv"))
        logits = (
            attention_logits(q, k) + toeplitz(p["bias_table"], t)[None]
        )  # relative PE, logit side
        if name == "toeplitz_c":
            o = toeplitz_gated_attention(logits, v, toeplitz(p["c_table"], t))
        elif name == "no_denominator_exp":
            o = denominator_free_attention(logits, v)
        elif name == "no_denominator_relu2":
            # Capability needs one good parameter setting: W_q = 0 and a positive relative table.
            # (With random parameters all scores can be negative, and relu² of them is 0 everywhere.)
            positive = toeplitz(jnp.abs(p["bias_table"]) + 0.5, t)[None]
            o = denominator_free_attention(positive, v, activation="relu2")
        elif name.startswith("l2"):
            o = l2_normalized_attention(
                logits, v, activation="swish" if name == "l2_swish" else "exp"
            )
        else:
            o = attention_from_logits(logits, v)
        if name == "boundary_tokens":
            o = o[:, 1:-1]
        outs[name] = o[0, :, 0, :]
    return outs


def _probe_residual(features, seed):
    """Least-squares residual of fitting [1..N] from random tanh features of each position's output.

    Normalised by the variance of the targets: 1 means nothing beyond the mean is fitted.
    """
    rng = np.random.default_rng(seed)
    f = np.asarray(features, np.float64)
    f = (f - f.mean(0)) / (f.std(0).max() + 1e-30)  # the readout sees differences at unit scale
    w = rng.normal(size=(DM, 64))
    phi = np.concatenate([np.tanh(f @ w + rng.normal(size=64)), np.ones((N, 1))], axis=1)
    y = np.asarray(probe_targets(N), np.float64)
    beta, *_ = np.linalg.lstsq(phi, y, rcond=None)
    return np.sum((phi @ beta - y) ** 2) / np.sum((y - y.mean()) ** 2)


@given(seed=st.integers(0, 2**31 - 1))
def test_relative_pe_only_gives_identical_rows_and_cannot_fit_the_probe(seed):
    out = np.asarray(_probe_outputs(_params(seed))["relative_pe"])
    # rows of softmax sum to one and all values are equal: every position outputs the same vector
    np.testing.assert_allclose(out, np.broadcast_to(out[0], out.shape), rtol=1e-5, atol=1e-6)
    spread = out - out.mean(0)
    assert np.abs(spread).max() <= 1e-5 * max(np.abs(out).max(), 1.0)


@given(seed=st.integers(0, 2**31 - 1))
def test_absolute_pe_and_each_fix_can_fit_the_probe(seed):
    outs = _probe_outputs(_params(seed))
    for name in FIXES:
        residual = _probe_residual(outs[name], seed)
        assert residual < 1e-3, f"{name}: probe residual {residual:.3g}"


def test_probe_residual_is_full_variance_for_identical_rows():
    # The oracle's other side: identical features fit nothing beyond the mean.
    assert _probe_residual(np.ones((N, DM)), 0) == pytest.approx(1.0, abs=1e-9)


@jax.jit
def _normalisations(logits, v):
    return (
        l2_normalized_attention(logits, v),
        denominator_free_attention(logits, v),
        attention_from_logits(logits, v),
        l2_normalized_attention(logits + 50.0, v),
    )


@given(seed=st.integers(0, 2**31 - 1))
def test_l2_rows_have_unit_norm_and_dropping_the_denominator_rescales_softmax(seed):
    (logits,) = normals(seed, (2, 1, 5, 5))
    eye = jnp.broadcast_to(jnp.eye(5)[None, :, None, :], (2, 5, 1, 5))  # v = I: output = weights
    l2, free, soft, shifted = (np.asarray(a)[:, :, 0] for a in _normalisations(logits, eye))
    np.testing.assert_allclose(np.linalg.norm(l2, axis=-1), 1.0, rtol=1e-5)
    e = np.exp(np.asarray(logits, np.float64)[:, 0])
    np.testing.assert_allclose(l2, e / np.linalg.norm(e, axis=-1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(free, e, rtol=1e-5)
    np.testing.assert_allclose(free, soft * e.sum(-1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(
        shifted, l2, rtol=1e-5, atol=1e-7
    )  # stable: e^{b+50} would overflow sums


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 5), causal=st.booleans())
def test_relu2_without_denominator_ignores_padded_keys(seed, n, causal):
    """GAU's 1/n counts the keys the padding mask keeps: padding a sequence changes nothing."""
    logits, v = normals(seed, (1, 2, 6, 6), (1, 6, 2, 3))
    keep = jnp.broadcast_to(jnp.arange(6) < n, (1, 1, 6, 6))
    padded = denominator_free_attention(logits, v, mask=keep, is_causal=causal, activation="relu2")
    alone = denominator_free_attention(
        logits[:, :, :n, :n], v[:, :n], is_causal=causal, activation="relu2"
    )
    np.testing.assert_allclose(padded[:, :n], alone, rtol=1e-5, atol=1e-6)


@given(
    tq=st.sampled_from([1, 4, 6]), tk=st.sampled_from([1, 5]), m=st.sampled_from([0, 2])
)  # few shapes
def test_toeplitz_depends_on_clipped_distance_only(tq, tk, m):
    table = np.arange(2 * m + 1, dtype=np.float32)[None] * 10.0
    c = np.asarray(toeplitz(jnp.asarray(table), tq, tk))[0]
    for i in range(tq):
        for j in range(tk):
            assert c[i, j] == table[0, np.clip(i - j, -m, m) + m]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: toeplitz(jnp.zeros((1, 4)), 3), "table: expected an odd number"),
        (
            lambda: l2_normalized_attention(
                jnp.zeros((1, 1, 3, 3)), jnp.zeros((1, 3, 1, 2)), activation="relu"
            ),
            "activation",
        ),
        (
            lambda: denominator_free_attention(jnp.zeros((1, 1, 3, 3)), jnp.zeros((1, 4, 1, 2))),
            "'tk'",
        ),
        (
            lambda: toeplitz_gated_attention(
                jnp.zeros((1, 1, 3, 3)), jnp.zeros((1, 3, 1, 2)), jnp.zeros((1, 3, 4))
            ),
            "c: expected a shape broadcastable",
        ),
        (lambda: add_boundary_tokens(jnp.zeros((1, 3, 2)), jnp.zeros(3), jnp.zeros(2)), "cls"),
        (lambda: probe_targets(0), "n"),
    ],
)
def test_invalid_arguments_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
