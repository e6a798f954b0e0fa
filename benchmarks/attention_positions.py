"""Attention with position schemes vs fused attention alone, and RoPE vs the elementwise ceiling.

Issue 5's GPU targets (measure on a lent H100/H200; the CPU run only checks the script):

* causal attention with RoPE / NTK / β-mixed / log n (``kexue_jax.attention.positional_attention``),
  forward + backward, at least 0.97x the time-throughput of ``jax.nn.dot_product_attention`` alone
  (cuDNN on GPU) on the same q, k, v in the same run;
* RoPE applied to q and k alone at least 80% of the elementwise bandwidth ceiling, measured here as
  a fused elementwise op that reads and writes the same bytes (``x * c + y * c``);
* ReRoPE and Leaky ReRoPE as a fraction of fused attention, both as two logit matrices through XLA
  (the issue quotes about 0.26x) and through the fused Pallas kernel
  (:func:`kexue_jax.attention.rerope_flash_attention`; goal 0.5x), window $T/8$ (512 at 4096), with
  XLA's temporary memory of each compiled step (``temp_bytes``: the two-matrix path holds
  $T \\times T$ logits, the kernel only $O(T)$ statistics); ``--sweep`` also times the kernel's
  tilings on GPU.

    python -m benchmarks.attention_positions                 # GPU: B8 T4096 H16 D128 bf16
    python -m benchmarks.attention_positions --sweep         # GPU, plus the kernel's tilings
    python -m benchmarks.attention_positions --small         # CPU smoke: B1 T256 H2 D64 f32

Ratios above 1 mean the scheme is *faster* than the reference (``ref_time / time``).
"""

from __future__ import annotations

import argparse
import functools

import jax
import jax.numpy as jnp

from benchmarks.harness import time_fn, write_result
from kexue_jax.attention import PositionScheme, positional_attention, rerope_flash_attention
from kexue_jax.position import apply_rope, rope_inv_freq

def schemes(window: int) -> dict[str, PositionScheme]:
    """The timed schemes; ReRoPE's window is ``window`` (512 at T = 4096, as in bojone/rerope)."""
    rerope = dict(rerope_window=window, logn=True, training_length=512)
    leaky = dict(rerope_window=window, leaky_scale=16.0, training_length=512)
    return {
        "rope": PositionScheme(),
        "ntk_aware_k8": PositionScheme(rope="ntk_aware", rope_scale=8.0),
        "ntk_mixed_k8": PositionScheme(rope="ntk_mixed", rope_scale=8.0),
        "rope_logn": PositionScheme(logn=True, training_length=512),
        f"rerope_w{window}_logn": PositionScheme(**rerope),
        f"rerope_w{window}_logn_pallas": PositionScheme(**rerope, rerope_kernel="pallas"),
        f"leaky_rerope_w{window}_k16": PositionScheme(**leaky),
        f"leaky_rerope_w{window}_k16_pallas": PositionScheme(**leaky, rerope_kernel="pallas"),
    }


# Launches of the fused ReRoPE kernel timed by --sweep on GPU: (block_q, block_k, forward num_warps,
# forward num_stages, backward num_warps, backward num_stages). Pruned with the sm_90 compile of the
# kernels at d = 128 (benchmarks/rerope_kernel_resources.py, results/rerope_kernel_resources-sm90.json):
# 64 x 128 and 128 x 128 tiles cannot launch (the dq kernel needs 240 KiB of shared memory, more than
# the 227 KiB a block may use); of the rest, the launches that spill least.
SWEEP = [
    (64, 64, 4, 3, 8, 2),  # the defaults (FORWARD_LAUNCH, BACKWARD_LAUNCH): dk/dv spills 604 B
    (64, 64, 4, 3, 4, 3),  # Pallas' default launch for all three: dq spills 584 B, dk/dv 2.5 KB
    (64, 64, 8, 2, 8, 2),
    (128, 64, 8, 2, 8, 2),  # dq 528 B, dk/dv 232 B
    (128, 64, 8, 3, 8, 2),
    (64, 32, 4, 3, 8, 2),  # dk/dv 4 B: spill-free in effect
    (64, 32, 4, 3, 8, 3),  # all three spill-free
    (128, 32, 8, 2, 8, 2),  # dq 304 B
]


def _fwd_bwd(attend):
    """jit(grad of sum(attention)) w.r.t. q, k, v: one forward and one backward pass."""

    def loss(q, k, v):
        return jnp.sum(attend(q, k, v).astype(jnp.float32))

    return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))


def _temp_bytes(step, *args) -> int | None:
    """XLA's temporary buffer size of the compiled step (the T x T logits show up here)."""
    analysis = step.lower(*args).compile().memory_analysis()
    return None if analysis is None else int(analysis.temp_size_in_bytes)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="CPU-sized smoke run")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--sweep", action="store_true", help="also time the fused ReRoPE kernel's tilings (GPU)")
    args = p.parse_args(argv)
    on_gpu = jax.default_backend() == "gpu"
    if args.small:
        b, t, h, d, dtype = 1, 256, 2, 64, jnp.float32
    else:
        b, t, h, d, dtype = 8, 4096, 16, 128, jnp.bfloat16
    impl = "cudnn" if on_gpu and dtype != jnp.float32 else "xla"
    kq, kk, kv = jax.random.split(jax.random.key(0), 3)
    q = jax.random.normal(kq, (b, t, h, d), dtype)
    k = jax.random.normal(kk, (b, t, h, d), dtype)
    v = jax.random.normal(kv, (b, t, h, d), dtype)
    # causal fwd + bwd: 4 * (b h t^2 d) * 2 flops / 2 for the triangle, times 3.5 for fwd + bwd
    flops = 3.5 * 2.0 * 2.0 * b * h * t * t * d / 2.0

    fused = _fwd_bwd(functools.partial(jax.nn.dot_product_attention, is_causal=True, implementation=impl))
    ref = time_fn(lambda: fused(q, k, v), repeats=args.repeats)
    rows = {"fused_attention_alone": {**ref, "tflops": flops / ref["median_s"] / 1e12, "implementation": impl}}
    rows["fused_attention_alone"]["temp_bytes"] = _temp_bytes(fused, q, k, v)
    window = t // 8
    for name, scheme in schemes(window).items():
        step = _fwd_bwd(functools.partial(positional_attention, scheme=scheme))
        r = time_fn(lambda step=step: step(q, k, v), repeats=args.repeats)
        rows[name] = {**r, "ratio_vs_fused": ref["median_s"] / r["median_s"],
                      "tflops": flops / r["median_s"] / 1e12, "temp_bytes": _temp_bytes(step, q, k, v)}
    if args.sweep and on_gpu:
        inv = rope_inv_freq(d)
        for bq, bk, warps, stages, bwd_warps, bwd_stages in SWEEP:
            name = f"rerope_pallas_b{bq}x{bk}_w{warps}s{stages}_bw{bwd_warps}s{bwd_stages}"
            step = _fwd_bwd(functools.partial(
                rerope_flash_attention, inv_freq=inv, window=window, block_q=bq, block_k=bk,
                num_warps=warps, num_stages=stages, backward_num_warps=bwd_warps,
                backward_num_stages=bwd_stages))
            try:
                r = time_fn(lambda step=step: step(q, k, v), repeats=args.repeats)
            except Exception as err:  # a tiling Triton cannot compile (shared memory) is recorded
                rows[name] = {"error": str(err)[:300]}
                continue
            rows[name] = {
                **r, "ratio_vs_fused": ref["median_s"] / r["median_s"], "tflops": flops / r["median_s"] / 1e12}

    inv = rope_inv_freq(d)
    rope_qk = jax.jit(lambda q, k: (apply_rope(q, None, inv), apply_rope(k, None, inv)))
    ceiling = jax.jit(lambda q, k: (q * jnp.asarray(1.5, dtype), k * jnp.asarray(0.5, dtype)))
    moved = 4 * q.size * q.dtype.itemsize  # read q, k and write two outputs of the same size
    r_rope = time_fn(lambda: rope_qk(q, k), repeats=args.repeats)
    r_ceil = time_fn(lambda: ceiling(q, k), repeats=args.repeats)
    rows["rope_alone"] = {**r_rope, "gb_per_s": moved / r_rope["median_s"] / 1e9,
                          "fraction_of_elementwise_ceiling": r_ceil["median_s"] / r_rope["median_s"]}
    rows["elementwise_ceiling"] = {**r_ceil, "gb_per_s": moved / r_ceil["median_s"] / 1e9}

    result = {"shape": {"b": b, "t": t, "h": h, "d": d, "dtype": jnp.dtype(dtype).name}, "rows": rows,
              "goals": {"schemes_vs_fused": 0.97, "rope_fraction_of_ceiling": 0.8, "rerope_vs_fused": 0.5}}
    path = write_result("attention_positions" + ("_small" if args.small else ""), result)
    for name, row in rows.items():
        extra = {k: round(v, 3) for k, v in row.items() if k in ("ratio_vs_fused", "tflops", "gb_per_s",
                                                                 "fraction_of_elementwise_ceiling")}
        if "error" in row:
            print(f"{name:34s} failed: {row['error'][:80]}")
            continue
        print(f"{name:34s} {1e3 * row['median_s']:9.3f} ms  {extra}")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
