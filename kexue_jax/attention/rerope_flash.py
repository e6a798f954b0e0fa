"""Fused ReRoPE / Leaky ReRoPE attention: a flash-style Pallas kernel with $O(T)$ memory.

ReRoPE (kexue.fm 9708) scores query $m$ against key $n$ with the relative position clipped:
$\\ell_{mn} = s\\, q_m^\\top R_{-\\rho(m-n)} k_n$, $\\rho(r) = r$ for $r < w$ and $w$ (ReRoPE) or
$w + (r - w)/k$ (Leaky ReRoPE) beyond. A clipped relative position is not a difference of two
absolute positions, so Su's implementation forms two $T \\times T$ logit matrices and merges them
by the window (:func:`~kexue_jax.position.rerope_logits`):

- near ($r < w$): $a^{(1)}_{mn} = (R_m q_m)^\\top (R_n k_n)$;
- far ($r \\ge w$): ReRoPE $a^{(2)}_{mn} = (R_w q_m)^\\top k_n$, Leaky
  $a^{(2)}_{mn} = (R_{(m-w)/k+w}\\, q_m)^\\top (R_{n/k}\\, k_n)$.

That costs two logit matrices in memory and two $QK^\\top$ products everywhere. This module rotates
the four operands $q^{(1)}, k^{(1)}, q^{(2)}, k^{(2)}$ once ($O(T d)$, fused by XLA), then runs a
flash-attention kernel (FlashAttention-2's online softmax; Dao 2023, arXiv:2307.08691) that walks
the key blocks of each query block in three ranges: blocks entirely beyond the window use only the
far product, blocks entirely inside it only the near product, and only the band of blocks the window
boundary cuts computes both and merges them. So the work is one $QK^\\top$ per block except along a
band of width $w$, and no $T \\times T$ array exists, forward or backward (the backward pass
recomputes the probabilities from the saved log-sum-exp, as flash attention does).

The kernel is written in Pallas: on GPU it compiles through Triton; on CPU it runs in Pallas'
interpreter (``interpret=True``, the default there), which is how the tests check it against the
two-matrix reference; a test also lowers the forward and both backward kernels through Pallas' Triton
lowering for a CUDA target from the CPU host, and ``benchmarks/rerope_kernel_resources.py`` compiles
that Triton IR to sm_90 machine code (registers, spills, shared memory) without a GPU. The launch
defaults below come from it. It is not tuned for TPU.

References:
    Su Jianlin, https://kexue.fm/archives/9708 (Transformer升级之路 12: 无限外推的ReRoPE?) and
    bojone/rerope; T. Dao, "FlashAttention-2", arXiv:2307.08691 (online softmax, backward by
    recomputation); Su et al., RoFormer, arXiv:2104.09864.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from kexue_jax._src.checks import check_positive
from kexue_jax._src.typing import Array, Float
from kexue_jax.attention._validate import check_qkv
from kexue_jax.position.rope import apply_rope, check_head_dim

# Finite, so that exp(NEG - m) is 0 and NEG - NEG is 0, never inf - inf.
_NEG = -1e30
_NEAR, _FAR, _BOTH = "near", "far", "both"


@dataclasses.dataclass(frozen=True)
class _Config:
    window: float
    causal: bool
    logit_scale: float
    seq_len: int  # the unpadded length; keys at or beyond it are masked
    padded_len: int
    block_q: int
    block_k: int
    group: int  # query heads per key/value head
    interpret: bool
    num_warps: int  # the forward kernel's Triton launch
    num_stages: int
    backward_num_warps: int  # the dq and dk/dv kernels'
    backward_num_stages: int


def _dot_t(a: Array, b: Array) -> Array:
    """$a b^\\top$ in float32: ``[m, d] × [n, d] → [m, n]``."""
    return jax.lax.dot_general(a, b, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)


def _dot(a: Array, b: Array) -> Array:
    """$a b$ in float32: ``[m, n] × [n, d] → [m, d]``."""
    return jax.lax.dot_general(a, b, (((1,), (0,)), ((), ())), preferred_element_type=jnp.float32)


def _t_dot(a: Array, b: Array) -> Array:
    """$a^\\top b$ in float32: ``[n, m] × [n, d] → [m, d]``."""
    return jax.lax.dot_general(a, b, (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)


def _int_window(cfg: _Config) -> int:
    """$\\lceil w \\rceil$: for integer relative positions, $r < w$ iff $r < \\lceil w \\rceil$."""
    return int(math.ceil(cfg.window))


def _key_block_ranges(q0, cfg: _Config):
    """For the query block starting at ``q0``: key-block bounds ``far_end ≤ near_start ≤ end``.

    Key blocks ``[0, far_end)`` lie entirely at relative positions $\\ge w$ (far product only),
    ``[far_end, near_start)`` straddle the window boundary (both), ``[near_start, end)`` lie entirely
    below $w$ (near product only); ``end`` stops at the diagonal when causal.
    """
    bq, bk, nk = cfg.block_q, cfg.block_k, cfg.padded_len // cfg.block_k
    w = _int_window(cfg)
    # Divisions of non-negative ints only (lax.div truncates; Triton lowers it directly).
    end = jnp.minimum(nk, jax.lax.div(q0 + bq + bk - 1, bk)) if cfg.causal else nk
    far_end = jnp.minimum(jax.lax.div(jnp.maximum(q0 - w + 1, 0), bk), end)
    last = q0 + bq - 1 - w  # the largest key position that is still far for some row
    near_start = jnp.where(last < 0, 0, jax.lax.div(jnp.maximum(last, 0), bk) + 1)
    near_start = jnp.clip(near_start, far_end, end)
    return far_end, near_start, end


def _query_block_ranges(k0, cfg: _Config):
    """For the key block starting at ``k0``: query-block bounds ``start ≤ near_end ≤ far_start``.

    Query blocks ``[start, near_end)`` see the block at relative positions $< w$ only,
    ``[near_end, far_start)`` straddle the boundary, ``[far_start, nq)`` are far only; ``start``
    skips the query blocks wholly before the key block when causal.
    """
    bq, bk, nq = cfg.block_q, cfg.block_k, cfg.padded_len // cfg.block_q
    w = _int_window(cfg)
    start = jax.lax.div(k0, bq) if cfg.causal else 0
    near_end = jnp.clip(jax.lax.div(jnp.maximum(w + k0 - bq + 1, 0) + bq - 1, bq), start, nq)
    far_start = jnp.clip(jax.lax.div(w + k0 + bk - 1 + bq - 1, bq), near_end, nq)
    return start, near_end, far_start, nq


def _scores(mode, q1, q2, k1, k2, q0, k0, cfg: _Config):
    """Scaled, masked logits of one ``[block_q, block_k]`` tile and the near selector."""
    rel = (q0 + jax.lax.broadcasted_iota(jnp.int32, (cfg.block_q, cfg.block_k), 0)) - (
        k0 + jax.lax.broadcasted_iota(jnp.int32, (cfg.block_q, cfg.block_k), 1)
    )
    near = rel < _int_window(cfg)
    if mode == _NEAR:
        s = _dot_t(q1, k1)
    elif mode == _FAR:
        s = _dot_t(q2, k2)
    else:
        s = jnp.where(near, _dot_t(q1, k1), _dot_t(q2, k2))
    s = s * cfg.logit_scale
    if mode != _FAR:  # far tiles are strictly in the past and hold only real keys of real rows
        keep = None
        if cfg.causal:
            keep = rel >= 0
        if cfg.padded_len != cfg.seq_len:
            real = (k0 + jax.lax.broadcasted_iota(jnp.int32, (cfg.block_q, cfg.block_k), 1)) < cfg.seq_len
            keep = real if keep is None else keep & real
        if keep is not None:
            s = jnp.where(keep, s, _NEG)
    return s, near


def _tiles(mode, near_ref, far_ref, rows):
    """The near and far operand tiles at ``rows`` that ``mode`` reads (``None`` for a skipped one)."""
    return (near_ref[rows, :] if mode != _FAR else None, far_ref[rows, :] if mode != _NEAR else None)


def _forward_kernel(q1_ref, q2_ref, k1_ref, k2_ref, v_ref, o_ref, lse_ref, *, cfg: _Config):
    bq, bk = cfg.block_q, cfg.block_k
    q0 = pl.program_id(0) * bq
    q1, q2 = q1_ref[...], q2_ref[...]

    def body(mode):
        def step(j, carry):
            acc, m, l = carry
            k0 = j * bk
            ks = pl.ds(k0, bk)
            k1, k2 = _tiles(mode, k1_ref, k2_ref, ks)
            s, _ = _scores(mode, q1, q2, k1, k2, q0, k0, cfg)
            m_new = jnp.maximum(m, jnp.max(s, axis=1))
            p = jnp.exp(s - m_new[:, None])
            corr = jnp.exp(m - m_new)
            v = v_ref[ks, :]
            acc = acc * corr[:, None] + _dot(p.astype(v.dtype), v)
            return acc, m_new, l * corr + jnp.sum(p, axis=1)

        return step

    carry = (
        jnp.zeros((bq, v_ref.shape[-1]), jnp.float32),
        jnp.full((bq,), _NEG, jnp.float32),
        jnp.zeros((bq,), jnp.float32),
    )
    far_end, near_start, end = _key_block_ranges(q0, cfg)
    carry = jax.lax.fori_loop(0, far_end, body(_FAR), carry)
    carry = jax.lax.fori_loop(far_end, near_start, body(_BOTH), carry)
    acc, m, l = jax.lax.fori_loop(near_start, end, body(_NEAR), carry)
    o_ref[...] = (acc / l[:, None]).astype(o_ref.dtype)
    lse_ref[...] = m + jnp.log(l)


def _dq_kernel(q1_ref, q2_ref, k1_ref, k2_ref, v_ref, do_ref, lse_ref, delta_ref, dq1_ref, dq2_ref,
               *, cfg: _Config):
    bq, bk = cfg.block_q, cfg.block_k
    q0 = pl.program_id(0) * bq
    q1, q2, do = q1_ref[...], q2_ref[...], do_ref[...]
    lse, delta = lse_ref[...], delta_ref[...]

    def body(mode):
        def step(j, carry):
            dq1, dq2 = carry
            k0 = j * bk
            ks = pl.ds(k0, bk)
            k1, k2 = _tiles(mode, k1_ref, k2_ref, ks)
            s, near = _scores(mode, q1, q2, k1, k2, q0, k0, cfg)
            p = jnp.exp(s - lse[:, None])
            ds = p * (_dot_t(do, v_ref[ks, :]) - delta[:, None]) * cfg.logit_scale
            if mode == _NEAR:
                return dq1 + _dot(ds.astype(k1.dtype), k1), dq2
            if mode == _FAR:
                return dq1, dq2 + _dot(ds.astype(k2.dtype), k2)
            ds_near = jnp.where(near, ds, 0.0)
            return (dq1 + _dot(ds_near.astype(k1.dtype), k1),
                    dq2 + _dot((ds - ds_near).astype(k2.dtype), k2))

        return step

    zeros = jnp.zeros((bq, q1_ref.shape[-1]), jnp.float32)
    far_end, near_start, end = _key_block_ranges(q0, cfg)
    carry = jax.lax.fori_loop(0, far_end, body(_FAR), (zeros, zeros))
    carry = jax.lax.fori_loop(far_end, near_start, body(_BOTH), carry)
    dq1, dq2 = jax.lax.fori_loop(near_start, end, body(_NEAR), carry)
    dq1_ref[...] = dq1.astype(dq1_ref.dtype)
    dq2_ref[...] = dq2.astype(dq2_ref.dtype)


def _dkv_kernel(q1_ref, q2_ref, k1_ref, k2_ref, v_ref, do_ref, lse_ref, delta_ref,
                dk1_ref, dk2_ref, dv_ref, *, cfg: _Config):
    bq, bk = cfg.block_q, cfg.block_k
    k0 = pl.program_id(0) * bk
    k1, k2, v = k1_ref[...], k2_ref[...], v_ref[...]

    def body(mode):
        def step(i, carry):
            dk1, dk2, dv = carry
            q0 = i * bq
            qs = pl.ds(q0, bq)
            q1, q2 = _tiles(mode, q1_ref, q2_ref, qs)
            do = do_ref[qs, :]
            s, near = _scores(mode, q1, q2, k1, k2, q0, k0, cfg)
            p = jnp.exp(s - lse_ref[qs][:, None])
            dv = dv + _t_dot(p.astype(do.dtype), do)
            ds = p * (_dot_t(do, v) - delta_ref[qs][:, None]) * cfg.logit_scale
            if mode == _NEAR:
                return dk1 + _t_dot(ds.astype(q1.dtype), q1), dk2, dv
            if mode == _FAR:
                return dk1, dk2 + _t_dot(ds.astype(q2.dtype), q2), dv
            ds_near = jnp.where(near, ds, 0.0)
            return (dk1 + _t_dot(ds_near.astype(q1.dtype), q1),
                    dk2 + _t_dot((ds - ds_near).astype(q2.dtype), q2), dv)

        return step

    zk = jnp.zeros((bk, k1_ref.shape[-1]), jnp.float32)
    zv = jnp.zeros((bk, v_ref.shape[-1]), jnp.float32)
    start, near_end, far_start, nq = _query_block_ranges(k0, cfg)
    carry = jax.lax.fori_loop(start, near_end, body(_NEAR), (zk, zk, zv))
    carry = jax.lax.fori_loop(near_end, far_start, body(_BOTH), carry)
    dk1, dk2, dv = jax.lax.fori_loop(far_start, nq, body(_FAR), carry)
    dk1_ref[...] = dk1.astype(dk1_ref.dtype)
    dk2_ref[...] = dk2.astype(dk2_ref.dtype)
    dv_ref[...] = dv.astype(dv_ref.dtype)


# Triton launch defaults, (num_warps, num_stages), chosen from the sm_90 compile of the kernels
# (benchmarks/rerope_kernel_resources.py, results/rerope_kernel_resources-sm90.json; bf16, d = 128,
# 64 x 64 tiles): the forward needs 252 registers and no spills in 4 warps with 3 pipeline stages
# (Pallas' own default). The dq and dk/dv kernels carry two and three float32 accumulators: with 4
# warps they spill 584 B and 2.5 KB per thread; 8 warps make dq spill-free and cut dk/dv to 604 B, and
# 2 stages keep their shared memory at 144 / 112 KiB. (d = 64 shows the same pattern.) This is a
# compile-time criterion; the GPU --sweep of benchmarks/attention_positions.py times the choices.
FORWARD_LAUNCH = (4, 3)
BACKWARD_LAUNCH = (8, 2)


def _compiler_params(cfg: _Config, backward: bool):
    # Triton's parameters whenever the kernel is compiled, also when lowering for a GPU from a
    # host without one (``jax.export``): without them Pallas may pick its Mosaic GPU backend, which
    # cannot lower this kernel.
    if cfg.interpret:
        return None
    from jax.experimental.pallas import triton as plgpu

    if backward:
        return plgpu.CompilerParams(num_warps=cfg.backward_num_warps, num_stages=cfg.backward_num_stages)
    return plgpu.CompilerParams(num_warps=cfg.num_warps, num_stages=cfg.num_stages)


def _call(kernel, cfg: _Config, grid_blocks: int, in_specs, out_specs, out_shape, name: str):
    b, h = out_shape[0].shape[:2]
    return pl.pallas_call(
        functools.partial(kernel, cfg=cfg),
        grid=(grid_blocks, b, h),
        in_specs=in_specs,
        out_specs=out_specs,
        out_shape=out_shape,
        interpret=cfg.interpret,
        compiler_params=_compiler_params(cfg, backward=kernel is not _forward_kernel),
        name=name,
    )


def _specs(cfg: _Config, d: int, dv: int):
    """BlockSpecs over ``[b, h, t, d]`` operands for a grid ``(block, b, h)``."""
    t, g = cfg.padded_len, cfg.group

    def q_block(size, depth):
        return pl.BlockSpec((None, None, size, depth), lambda i, b, h: (b, h, i, 0))

    def row_block(size):
        return pl.BlockSpec((None, None, size), lambda i, b, h: (b, h, i))

    q_full = pl.BlockSpec((None, None, t, d), lambda i, b, h: (b, h, 0, 0))
    kv_full = lambda depth: pl.BlockSpec((None, None, t, depth), lambda i, b, h: (b, h // g, 0, 0))  # noqa: E731
    kv_block = lambda depth: pl.BlockSpec((None, None, cfg.block_k, depth), lambda i, b, h: (b, h // g, i, 0))  # noqa: E731
    return dict(q_block=q_block, row_block=row_block, q_full=q_full, kv_full=kv_full, kv_block=kv_block,
                row_full=pl.BlockSpec((None, None, t), lambda i, b, h: (b, h, 0)))


def _forward(q1, q2, k1, k2, v, cfg: _Config):
    b, h, t, d = q1.shape
    dv = v.shape[-1]
    sp = _specs(cfg, d, dv)
    o, lse = _call(
        _forward_kernel, cfg, t // cfg.block_q,
        in_specs=[sp["q_block"](cfg.block_q, d)] * 2 + [sp["kv_full"](d)] * 2 + [sp["kv_full"](dv)],
        out_specs=[sp["q_block"](cfg.block_q, dv), sp["row_block"](cfg.block_q)],
        out_shape=[jax.ShapeDtypeStruct((b, h, t, dv), v.dtype), jax.ShapeDtypeStruct((b, h, t), jnp.float32)],
        name="rerope_flash_forward",
    )(q1, q2, k1, k2, v)
    return o, lse


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _fused(q1, q2, k1, k2, v, cfg: _Config):
    return _forward(q1, q2, k1, k2, v, cfg)[0]


def _fused_fwd(q1, q2, k1, k2, v, cfg: _Config):
    o, lse = _forward(q1, q2, k1, k2, v, cfg)
    return o, (q1, q2, k1, k2, v, o, lse)


def _fused_bwd(cfg: _Config, res, do):
    q1, q2, k1, k2, v, o, lse = res
    b, h, t, d = q1.shape
    dv_dim = v.shape[-1]
    delta = jnp.sum(o.astype(jnp.float32) * do.astype(jnp.float32), axis=-1)  # D = rowsum(dO ∘ O)
    do = do.astype(v.dtype)
    sp = _specs(cfg, d, dv_dim)
    rows = [sp["row_block"](cfg.block_q)] * 2
    dq1, dq2 = _call(
        _dq_kernel, cfg, t // cfg.block_q,
        in_specs=[sp["q_block"](cfg.block_q, d)] * 2 + [sp["kv_full"](d)] * 2 + [sp["kv_full"](dv_dim),
                  sp["q_block"](cfg.block_q, dv_dim)] + rows,
        out_specs=[sp["q_block"](cfg.block_q, d)] * 2,
        out_shape=[jax.ShapeDtypeStruct(q1.shape, q1.dtype), jax.ShapeDtypeStruct(q2.shape, q2.dtype)],
        name="rerope_flash_dq",
    )(q1, q2, k1, k2, v, do, lse, delta)
    # One dK/dV tile per (key block, query head); the query heads of a group are summed below.
    dk1, dk2, dv = _call(
        _dkv_kernel, cfg, t // cfg.block_k,
        in_specs=[sp["q_full"]] * 2 + [sp["kv_block"](d)] * 2 + [sp["kv_block"](dv_dim),
                  pl.BlockSpec((None, None, t, dv_dim), lambda i, b, h: (b, h, 0, 0))] + [sp["row_full"]] * 2,
        out_specs=[pl.BlockSpec((None, None, cfg.block_k, n), lambda i, b, h: (b, h, i, 0))
                   for n in (d, d, dv_dim)],
        out_shape=[jax.ShapeDtypeStruct((b, h, t, n), jnp.float32) for n in (d, d, dv_dim)],
        name="rerope_flash_dkv",
    )(q1, q2, k1, k2, v, do, lse, delta)

    def per_kv_head(x, like):
        return x.reshape(b, h // cfg.group, cfg.group, t, x.shape[-1]).sum(axis=2).astype(like.dtype)

    return dq1, dq2, per_kv_head(dk1, k1), per_kv_head(dk2, k2), per_kv_head(dv, v)


_fused.defvjp(_fused_fwd, _fused_bwd)


def _launch(name: str, value: int | None, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive int or None, got {value!r}")
    return value


def _block(requested: int, t: int, name: str) -> int:
    check_positive(name, requested)
    if requested & (requested - 1) or requested < 16:
        raise ValueError(f"{name}: expected a power of two >= 16 (Triton tiles), got {requested}")
    return min(requested, max(16, pl.next_power_of_2(t)))


def rerope_flash_attention(
    q: Float[Array, "b t h d"],
    k: Float[Array, "b t hk d"],
    v: Float[Array, "b t hk dv"],
    inv_freq: Float[Array, " half"],
    *,
    window: float,
    scale: float | None = None,
    causal: bool = True,
    logit_scale: float | None = None,
    pairing: str = "half",
    block_q: int = 64,
    block_k: int = 64,
    interpret: bool | None = None,
    num_warps: int | None = None,
    num_stages: int | None = None,
    backward_num_warps: int | None = None,
    backward_num_stages: int | None = None,
) -> Float[Array, "b t h dv"]:
    """ReRoPE / Leaky ReRoPE self-attention in one fused kernel, without a $T\\times T$ array.

    Computes $o_m = \\sum_n \\mathrm{softmax}_n(\\ell_{mn})\\, v_n$ with
    $\\ell_{mn} = s\\, q_m^\\top R_{-\\rho(m-n)} k_n$, $\\rho(r) = r$ for $r < w$, else $w$ (ReRoPE)
    or $w + (r-w)/k$ (Leaky ReRoPE, ``scale`` $= k$); positions are ``0 … t-1``. Equal to
    ``softmax(rerope_logits(q, k, …) + mask) @ v`` (:func:`~kexue_jax.position.rerope_logits`) and
    differentiable in ``q``, ``k`` and ``v``; see the module docstring for how it is computed.
    Scale ``q`` by :func:`~kexue_jax.position.logn_scale` first for Su's ReRoPE-log-n.

    Args:
        q: un-rotated queries ``[b, t, h, d]``.
        k: un-rotated keys ``[b, t, hk, d]``, ``hk`` dividing ``h`` (grouped-query attention).
        v: values ``[b, t, hk, dv]``.
        inv_freq: ``[d/2]`` RoPE frequency table (any table of :mod:`kexue_jax.position.frequencies`).
        window: $w > 0$, a Python number (it sets the kernel's block ranges).
        scale: Leaky ReRoPE's $k > 0$; ``None`` for ReRoPE.
        causal: mask keys after the query (Su's LM setting); otherwise future keys keep plain RoPE.
        logit_scale: $s$; default $1/\\sqrt{d}$.
        pairing: ``"half"`` or ``"interleaved"`` (see :func:`~kexue_jax.position.apply_rope`).
        block_q: query rows per tile, a power of two >= 16 (capped at the padded length).
        block_k: keys per tile, a power of two >= 16.
        interpret: run the kernel in Pallas' interpreter; default: on any backend but GPU.
        num_warps: Triton warps per program of the forward kernel (GPU); default
            ``FORWARD_LAUNCH[0]`` (4).
        num_stages: Triton pipeline stages of the forward kernel (GPU); default
            ``FORWARD_LAUNCH[1]`` (3).
        backward_num_warps: warps of the dq and dk/dv kernels; default ``BACKWARD_LAUNCH[0]`` (8:
            their float32 accumulators spill registers with 4 warps on sm_90).
        backward_num_stages: pipeline stages of the backward kernels; default ``BACKWARD_LAUNCH[1]`` (2).

    Returns:
        ``[b, t, h, dv]`` in ``v``'s dtype.

    Raises:
        ValueError: shapes that disagree (naming the argument), ``window`` or ``scale`` not a
            positive number, block sizes not powers of two.

    References:
        https://kexue.fm/archives/9708; Dao, FlashAttention-2, arXiv:2307.08691.
    """
    dims = check_qkv(q, k, v)
    if dims["tq"] != dims["tk"]:
        raise ValueError(f"k: self-attention needs as many keys as queries; got q {q.shape}, k {k.shape}")
    check_head_dim("q", q, jnp.asarray(inv_freq))
    if isinstance(window, bool) or not isinstance(window, int | float):
        raise ValueError(f"window: expected a Python number (it fixes the kernel's tiling), got {window!r}")
    check_positive("window", window)
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, int | float):
            raise ValueError(f"scale: expected a Python number or None, got {scale!r}")
        check_positive("scale", scale)
    t, d = dims["tq"], dims["d"]
    bq, bk = _block(block_q, t, "block_q"), _block(block_k, t, "block_k")
    interpret = (jax.default_backend() != "gpu") if interpret is None else bool(interpret)
    if not interpret:
        for name, n in (("q", d), ("v", dims["dv"])):
            if n & (n - 1) or n < 16:
                raise ValueError(f"{name}: the compiled (Triton) kernel needs a head dim that is a power "
                                 f"of two >= 16, got {n} (shape {(q if name == 'q' else v).shape})")
    tile = max(bq, bk)
    cfg = _Config(
        window=float(window),
        causal=bool(causal),
        logit_scale=float(logit_scale) if logit_scale is not None else 1.0 / math.sqrt(d),
        seq_len=t,
        padded_len=-(-t // tile) * tile,
        block_q=bq,
        block_k=bk,
        group=dims["h"] // dims["hk"],
        interpret=interpret,
        num_warps=_launch("num_warps", num_warps, FORWARD_LAUNCH[0]),
        num_stages=_launch("num_stages", num_stages, FORWARD_LAUNCH[1]),
        backward_num_warps=_launch("backward_num_warps", backward_num_warps, BACKWARD_LAUNCH[0]),
        backward_num_stages=_launch("backward_num_stages", backward_num_stages, BACKWARD_LAUNCH[1]),
    )
    return _rerope_flash(q, k, v, jnp.asarray(inv_freq, jnp.float32), scale, pairing, cfg)


@functools.partial(jax.jit, static_argnums=(4, 5, 6))
def _rerope_flash(q, k, v, inv_freq, scale, pairing, cfg: _Config):
    t = cfg.seq_len
    pos = jnp.arange(t, dtype=jnp.float32)
    rope = functools.partial(apply_rope, inv_freq=inv_freq, pairing=pairing)
    q1, k1 = rope(q, pos), rope(k, pos)
    if scale is None:
        q2, k2 = rope(q, jnp.full((t,), cfg.window, jnp.float32)), k
    else:
        q2, k2 = rope(q, (pos - cfg.window) / scale + cfg.window), rope(k, pos / scale)

    def layout(x):  # [b, t, h, d] -> [b, h, t_padded, d]; XLA fuses it with the rotation
        x = jnp.swapaxes(x, 1, 2)
        return jnp.pad(x, ((0, 0), (0, 0), (0, cfg.padded_len - t), (0, 0)))

    o = _fused(*(layout(x) for x in (q1, q2, k1, k2, v)), cfg)
    return jnp.swapaxes(o[:, :, :t], 1, 2)


__all__ = ["rerope_flash_attention"]
