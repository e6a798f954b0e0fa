"""The fused ReRoPE / Leaky ReRoPE kernel against the two-matrix reference (Pallas interpreter on CPU)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue_jax._src.testing import jaxpr_eqns
from kexue_jax.attention import rerope_flash as rf
from kexue_jax.attention.rerope_flash import rerope_flash_attention
from kexue_jax.position import apply_rope, rerope_logits, rope_inv_freq
from tests.attention.arrays import normals

D = 16
INV = rope_inv_freq(D)


def _reference(q, k, v, *, window, scale, causal):
    """softmax(two-matrix ReRoPE logits + mask) @ v, with k/v heads repeated for GQA."""
    g = q.shape[2] // k.shape[2]
    k, v = jnp.repeat(k, g, axis=2), jnp.repeat(v, g, axis=2)
    logits = rerope_logits(q, k, INV, window=window, scale=scale)
    t = q.shape[1]
    if causal:
        logits = jnp.where(jnp.tril(jnp.ones((t, t), bool)), logits, -jnp.inf)
    return jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, axis=-1), v.astype(jnp.float32))


def _operands(seed, t, h, hk):
    return normals(seed, (2, t, h, D), (2, t, hk, D), (2, t, hk, D), (2, t, h, D))


# t = 40 with 16-wide tiles is padded to 48 (three tiles per axis). With a window of 16 the last query
# tile walks one far-only, one straddling and one near-only key tile (the tiling itself is checked by
# test_tile_ranges_classify_every_tile); window 12 gives far-only and straddling tiles.
CASES = [
    dict(window=16, scale=None, causal=True, h=2, hk=1),  # ReRoPE, grouped-query attention
    dict(window=12, scale=4.0, causal=True, h=2, hk=2),  # Leaky ReRoPE
    dict(window=5, scale=2.0, causal=False, h=1, hk=1),  # bidirectional: future keys keep RoPE
]


@pytest.mark.parametrize("case", CASES, ids=["rerope-gqa", "leaky", "leaky-bidirectional"])
def test_forward_and_gradients_equal_the_two_matrix_reference(case):
    h, hk = case.pop("h"), case.pop("hk")
    q, k, v, do = _operands(0, 40, h, hk)
    fused = lambda q, k, v: rerope_flash_attention(q, k, v, INV, block_q=16, block_k=16, **case)  # noqa: E731
    ref = lambda q, k, v: _reference(q, k, v, **case)  # noqa: E731
    o, vjp = jax.vjp(fused, q, k, v)
    o_ref, vjp_ref = jax.vjp(ref, q, k, v)
    np.testing.assert_allclose(np.asarray(o), np.asarray(o_ref), atol=2e-6)
    for name, g, g_ref in zip("qkv", vjp(do), vjp_ref(do), strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(g_ref), atol=1e-5, err_msg=f"d{name}")


def test_window_beyond_the_sequence_is_plain_rope_attention():
    q, k, v, _ = _operands(1, 32, 2, 2)
    o = rerope_flash_attention(q, k, v, INV, window=32, block_q=16, block_k=32)
    qr, kr = apply_rope(q, None, INV), apply_rope(k, None, INV)
    logits = jnp.einsum("bqhd,bkhd->bhqk", qr, kr) / np.sqrt(D)
    logits = jnp.where(jnp.tril(jnp.ones((32, 32), bool)), logits, -jnp.inf)
    o_rope = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, axis=-1), v)
    np.testing.assert_allclose(np.asarray(o), np.asarray(o_rope), atol=2e-6)


def test_bfloat16_inputs_stay_within_bfloat16_error_of_the_float32_reference():
    q, k, v, _ = _operands(2, 32, 2, 2)
    o = rerope_flash_attention(*(x.astype(jnp.bfloat16) for x in (q, k, v)), INV, window=8,
                               block_q=16, block_k=16)
    assert o.dtype == jnp.bfloat16
    o_ref = _reference(q, k, v, window=8, scale=None, causal=True)
    err = float(jnp.max(jnp.abs(o.astype(jnp.float32) - o_ref)))
    assert 0 < err < 5e-2  # bf16 rounding shows (nonzero) but stays at bf16's few-ulp level


def _all_avals(jaxpr):
    for eqn in jaxpr_eqns(jaxpr):
        for var in (*eqn.invars, *eqn.outvars):
            if hasattr(var, "aval") and hasattr(var.aval, "shape"):
                yield var.aval.shape


def test_forward_and_backward_never_form_a_t_by_t_array():
    t = 128
    q, k, v, _ = _operands(3, t, 1, 1)
    loss = lambda q, k, v: jnp.sum(rerope_flash_attention(q, k, v, INV, window=24, block_q=16, block_k=16) ** 2)  # noqa: E731
    jaxpr = jax.make_jaxpr(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v).jaxpr
    shapes = list(_all_avals(jaxpr))
    assert any(t in s for s in shapes)  # the walk sees the full-length operands ...
    assert not [s for s in shapes if sum(n >= t for n in s) >= 2]  # ... and nothing T x T
    # while the reference does form one, so the check can fail
    ref_jaxpr = jax.make_jaxpr(lambda q, k, v: _reference(q, k, v, window=24, scale=None, causal=True))(q, k, v)
    assert [s for s in _all_avals(ref_jaxpr.jaxpr) if sum(n >= t for n in s) >= 2]


@settings(max_examples=200, deadline=None)
@given(
    t_tiles=st.integers(1, 8),
    bq=st.sampled_from([16, 32, 64]),
    bk=st.sampled_from([16, 32, 64]),
    window=st.floats(0.5, 300.0),
    causal=st.booleans(),
)
def test_tile_ranges_classify_every_tile(t_tiles, bq, bk, window, causal):
    """Each tile is walked once, in the cheapest mode that is exact for every entry in it."""
    t = t_tiles * max(bq, bk)
    cfg = rf._Config(window=window, causal=causal, logit_scale=1.0, seq_len=t, padded_len=t,
                     block_q=bq, block_k=bk, group=1, interpret=True, num_warps=4, num_stages=3,
                     backward_num_warps=8, backward_num_stages=2)

    def truth(i, j):
        rel = (i * bq + np.arange(bq))[:, None] - (j * bk + np.arange(bk))[None, :]
        visible = rel >= 0 if causal else np.ones_like(rel, bool)
        if not visible.any():
            return None
        near = (rel < window) & visible
        far = (rel >= window) & visible
        return "near" if not far.any() else "far" if not near.any() else "both"

    def walked(bounds, modes):
        out, lo = {}, 0
        for hi, mode in zip(bounds, modes, strict=True):
            out.update({n: mode for n in range(int(lo), int(hi))})
            lo = hi
        return out

    nq, nk = t // bq, t // bk
    for i in range(nq):
        far_end, near_start, end = rf._key_block_ranges(i * bq, cfg)
        tiles = walked((far_end, near_start, end), ("far", "both", "near"))
        for j in range(nk):
            want = truth(i, j)
            if want is None:
                assert j not in tiles, (i, j)
            else:
                assert tiles.get(j) == want, (i, j, tiles.get(j), want)
    for j in range(nk):
        start, near_end, far_start, end = rf._query_block_ranges(j * bk, cfg)
        tiles = walked((near_end, far_start, end), ("near", "both", "far"))
        tiles = {i: m for i, m in tiles.items() if i >= int(start)}
        for i in range(nq):
            want = truth(i, j)
            if want is None:
                assert i not in tiles, (i, j)
            else:
                assert tiles.get(i) == want, (i, j, tiles.get(i), want)


def test_bad_arguments_raise_value_errors_naming_them():
    q, k, v, _ = _operands(0, 16, 2, 2)
    with pytest.raises(ValueError, match="window"):
        rerope_flash_attention(q, k, v, INV, window=0)
    with pytest.raises(ValueError, match="window"):
        rerope_flash_attention(q, k, v, INV, window=jnp.asarray(4.0))
    with pytest.raises(ValueError, match="scale"):
        rerope_flash_attention(q, k, v, INV, window=4, scale=-1.0)
    with pytest.raises(ValueError, match="block_q"):
        rerope_flash_attention(q, k, v, INV, window=4, block_q=24)
    with pytest.raises(ValueError, match="backward_num_warps"):
        rerope_flash_attention(q, k, v, INV, window=4, backward_num_warps=0)
    with pytest.raises(ValueError, match="k: self-attention"):
        rerope_flash_attention(q, k[:, :8], v[:, :8], INV, window=4)
    with pytest.raises(ValueError, match="v"):
        rerope_flash_attention(q, k, v[:, :, :1], INV, window=4)
    with pytest.raises(ValueError, match="q"):
        rerope_flash_attention(q, k, v, rope_inv_freq(8), window=4)


def test_position_scheme_pallas_kernel_equals_the_two_matrix_path():
    from kexue_jax.attention import PositionScheme, positional_attention

    q, k, v, _ = _operands(4, 40, 2, 1)
    base = dict(rerope_window=16, leaky_scale=4.0, logn=True, training_length=8)
    fused = positional_attention(q, k, v, scheme=PositionScheme(rerope_kernel="pallas", **base))
    two = positional_attention(q, k, v, scheme=PositionScheme(**base))
    np.testing.assert_allclose(np.asarray(fused), np.asarray(two), atol=2e-6)
    with pytest.raises(ValueError, match="rerope_kernel"):
        PositionScheme(rerope_kernel="pallas", rerope_window=16, bias="alibi")
    with pytest.raises(ValueError, match="rerope_kernel"):
        PositionScheme(rerope_kernel="triton", rerope_window=16)


def test_compiled_kernel_rejects_head_dims_triton_cannot_tile():
    q, k, v, _ = normals(5, (1, 16, 1, 12), (1, 16, 1, 12), (1, 16, 1, 12), (1,))
    with pytest.raises(ValueError, match="q: the compiled"):
        rerope_flash_attention(q, k, v, rope_inv_freq(12), window=4, interpret=False)


def test_eager_jit_and_vmap_agree():
    q, k, v, _ = _operands(6, 24, 1, 1)
    f = lambda q, k, v: rerope_flash_attention(q, k, v, INV, window=8, block_q=16, block_k=16)  # noqa: E731
    eager = f(q, k, v)
    np.testing.assert_allclose(np.asarray(jax.jit(f)(q, k, v)), np.asarray(eager), atol=1e-6)
    # vmap over a leading axis (here: the two examples of the batch, each given batch size 1)
    mapped = jax.vmap(f)(q[:, None], k[:, None], v[:, None])[:, 0]
    np.testing.assert_allclose(np.asarray(mapped), np.asarray(eager), atol=1e-6)


@pytest.mark.parametrize(
    ("case", "launch"),
    [
        (dict(window=48, scale=None, causal=True, pairing="half", dtype=jnp.bfloat16, t=200, h=4, hk=2),
         {}),
        (dict(window=33.5, scale=16.0, causal=False, pairing="interleaved", dtype=jnp.float32, t=256, h=2, hk=2),
         dict(num_warps=8, num_stages=2, backward_num_warps=4, backward_num_stages=3)),
    ],
    ids=["rerope-gqa-padded-bf16-default-launch", "leaky-bidirectional-f32-explicit-launch"],
)
def test_forward_and_backward_lower_to_triton_for_a_cuda_gpu(case, launch):
    """Lowering for CUDA on this GPU-less host runs Pallas' Triton lowering of all three kernels, so a
    primitive or an index computation Triton cannot take fails here rather than on a lent GPU. (It
    stops before Triton's own compilation to PTX, which needs the GPU toolchain.) Each kernel carries
    its launch parameters: the forward's, or the backward's for dq and dk/dv."""
    dtype, t, h, hk = case.pop("dtype"), case.pop("t"), case.pop("h"), case.pop("hk")
    d = 64
    inv = rope_inv_freq(d)

    def fwd(q, k, v):
        return rerope_flash_attention(q, k, v, inv, interpret=False, **case, **launch)

    def loss(q, k, v):
        return jnp.sum(fwd(q, k, v).astype(jnp.float32) ** 2)

    forward = (launch.get("num_warps", rf.FORWARD_LAUNCH[0]), launch.get("num_stages", rf.FORWARD_LAUNCH[1]))
    backward = (launch.get("backward_num_warps", rf.BACKWARD_LAUNCH[0]),
                launch.get("backward_num_stages", rf.BACKWARD_LAUNCH[1]))
    expected = {"forward": forward, "dq": backward, "dkv": backward}
    args = [jax.ShapeDtypeStruct((2, t, n, d), dtype) for n in (h, hk, hk)]
    for f, kernels in ((fwd, ["forward"]), (jax.grad(loss, argnums=(0, 1, 2)), ["forward", "dq", "dkv"])):
        text = jax.jit(f).trace(*args).lower(lowering_platforms=("cuda",)).as_text()
        calls = [line for line in text.splitlines() if "custom_call @__gpu$xla.gpu.triton" in line]
        found = {}
        for line in calls:
            name = line.split('name = "rerope_flash_')[1].split('"')[0]
            warps = int(line.split("num_warps = ")[1].split(" ")[0])
            stages = int(line.split("num_stages = ")[1].split(" ")[0])
            found[name] = (warps, stages)
        assert len(calls) == len(kernels)
        assert found == {k: expected[k] for k in kernels}
