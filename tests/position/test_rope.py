"""apply_rope against an explicit 2x2 rotation per pair, pairing conventions, dtypes and errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.position import apply_rope, linear_inv_freq, rope_inv_freq
from tests.position.arrays import normal

D = 8
seeds = st.integers(0, 2**31 - 1)
# one compile per shape instead of one per primitive and shape (eager)
_rope = jax.jit(apply_rope, static_argnames="pairing")


def _rotate_numpy(x, positions, inv_freq, pairing):
    """Pair i of token t rotated by positions[t] * inv_freq[i], explicit 2x2 matrix (float64)."""
    x = np.asarray(x, np.float64)
    out = np.empty_like(x)
    half = x.shape[-1] // 2
    for t in range(x.shape[1]):
        for i in range(half):
            a = float(positions[t]) * float(inv_freq[i])
            rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
            idx = [i, i + half] if pairing == "half" else [2 * i, 2 * i + 1]
            # x[:, t, :, idx] is [2, b, h]: the int t and the list idx are both advanced indices
            out[:, t, :, idx] = np.einsum("rc,cbh->rbh", rot, x[:, t, :, idx])
    return out


@pytest.mark.parametrize("pairing", ["half", "interleaved"])
@given(seed=seeds, positions=st.lists(st.integers(-300, 3000), min_size=5, max_size=5))
def test_matches_explicit_pair_rotations(pairing, seed, positions):
    x = normal(seed, (2, 5, 3, D))
    inv_freq = rope_inv_freq(D)
    got = _rope(x, jnp.asarray(positions), inv_freq, pairing=pairing)
    want = _rotate_numpy(x, positions, np.asarray(inv_freq), pairing)
    np.testing.assert_allclose(np.asarray(got), want, atol=2e-4)  # float32 angles up to 3000 rad


@given(seed=seeds)
def test_pairings_differ_by_a_fixed_channel_permutation(seed):
    x = normal(seed, (1, 5, 2, D))
    perm = np.stack(
        [np.arange(D // 2), np.arange(D // 2) + D // 2], axis=-1
    ).ravel()  # 0, 4, 1, 5, ...
    inv_freq, pos = rope_inv_freq(D), jnp.arange(5) * 7
    half = _rope(x, pos, inv_freq, pairing="half")
    inter = _rope(x[..., perm], pos, inv_freq, pairing="interleaved")
    np.testing.assert_allclose(np.asarray(inter), np.asarray(half)[..., perm], atol=1e-6)
    assert not np.allclose(
        np.asarray(_rope(x, pos, inv_freq, pairing="interleaved")), np.asarray(half)
    )


@given(seed=seeds, scale=st.sampled_from([2.0, 8.0]))
def test_position_interpolation_is_a_table_or_scaled_positions(seed, scale):
    x = normal(seed, (1, 5, 2, D))
    pos = jnp.arange(5) * 13
    by_positions = _rope(x, pos / scale, rope_inv_freq(D))
    by_table = _rope(x, pos, linear_inv_freq(D, scale=scale))
    np.testing.assert_allclose(np.asarray(by_table), np.asarray(by_positions), atol=1e-5)


@given(seed=seeds)
def test_batched_positions_equal_per_example_calls(seed):
    x = normal(seed, (2, 5, 2, D))
    pos = jnp.array([[0, 1, 2, 3, 4], [10, 30, 50, 70, 90]])
    inv_freq = rope_inv_freq(D)
    got = _rope(x, pos, inv_freq)
    for b in range(2):
        np.testing.assert_allclose(
            np.asarray(got[b : b + 1]),
            np.asarray(_rope(x[b : b + 1], pos[b], inv_freq)),
            atol=1e-6,
        )
    np.testing.assert_allclose(
        np.asarray(_rope(x, None, inv_freq)),
        np.asarray(_rope(x, jnp.arange(5), inv_freq)),
        atol=0,
    )


def test_bfloat16_angles_are_computed_in_float32():
    """At position 3000 a bf16 angle would be off by ~8 rad; float32 angles keep it exact."""
    x = normal(3, (1, 2, 1, D))
    pos = jnp.array([3000, 3001])
    got = _rope(x.astype(jnp.bfloat16), pos, rope_inv_freq(D))
    assert got.dtype == jnp.bfloat16
    want = _rotate_numpy(
        np.asarray(x.astype(jnp.bfloat16), np.float32),
        [3000, 3001],
        np.asarray(rope_inv_freq(D)),
        "half",
    )
    np.testing.assert_allclose(np.asarray(got, np.float32), want, atol=3e-2)  # bf16 output rounding


def test_errors_name_the_argument():
    inv_freq = rope_inv_freq(D)
    with pytest.raises(ValueError, match="x: head_dim must be even"):
        apply_rope(jnp.zeros((1, 2, 1, 7)), None, rope_inv_freq(6))
    with pytest.raises(ValueError, match="x: expected rank 4"):
        apply_rope(jnp.zeros((2, 1, D)), None, inv_freq)
    with pytest.raises(ValueError, match="x: expected a floating dtype"):
        apply_rope(jnp.zeros((1, 2, 1, D), jnp.int32), None, inv_freq)
    with pytest.raises(ValueError, match="inv_freq"):
        apply_rope(jnp.zeros((1, 2, 1, D)), None, rope_inv_freq(D + 2))
    with pytest.raises(ValueError, match="positions"):
        apply_rope(jnp.zeros((1, 2, 1, D)), jnp.arange(3), inv_freq)
    with pytest.raises(ValueError, match="positions"):
        apply_rope(jnp.zeros((2, 2, 1, D)), jnp.zeros((3, 2)), inv_freq)
    with pytest.raises(ValueError, match="pairing"):
        apply_rope(jnp.zeros((1, 2, 1, D)), None, inv_freq, pairing="odd-even")
