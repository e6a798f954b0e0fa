"""Attention with position schemes vs fused attention alone, and RoPE vs the elementwise ceiling.

Issue 5's GPU targets (measure on a lent H100/H200; the CPU run only checks the script):

* causal attention with RoPE / NTK / β-mixed / log n (``kexue_jax.attention.positional_attention``),
  forward + backward, at least 0.97x the time-throughput of ``jax.nn.dot_product_attention`` alone
  (cuDNN on GPU) on the same q, k, v in the same run;
* RoPE applied to q and k alone at least 80% of the elementwise bandwidth ceiling, measured here as
  a fused elementwise op that reads and writes the same bytes (``x * c + y * c``);
* ReRoPE (two logit matrices, XLA) as a fraction of fused attention (the issue quotes about 0.26x;
  the goal of a future Pallas kernel is 0.5x).

    python -m benchmarks.attention_positions                 # GPU: B8 T4096 H16 D128 bf16
    python -m benchmarks.attention_positions --small         # CPU smoke: B1 T256 H2 D64 f32

Ratios above 1 mean the scheme is *faster* than the reference (``ref_time / time``).
"""

from __future__ import annotations

import argparse
import functools

import jax
import jax.numpy as jnp

from benchmarks.harness import time_fn, write_result
from kexue_jax.attention import PositionScheme, positional_attention
from kexue_jax.position import apply_rope, rope_inv_freq

SCHEMES = {
    "rope": PositionScheme(),
    "ntk_aware_k8": PositionScheme(rope="ntk_aware", rope_scale=8.0),
    "ntk_mixed_k8": PositionScheme(rope="ntk_mixed", rope_scale=8.0),
    "rope_logn": PositionScheme(logn=True, training_length=512),
    "rerope_w512_logn": PositionScheme(rerope_window=512, logn=True, training_length=512),
}


def _fwd_bwd(attend):
    """jit(grad of sum(attention)) w.r.t. q, k, v: one forward and one backward pass."""

    def loss(q, k, v):
        return jnp.sum(attend(q, k, v).astype(jnp.float32))

    return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="CPU-sized smoke run")
    p.add_argument("--repeats", type=int, default=10)
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
    for name, scheme in SCHEMES.items():
        step = _fwd_bwd(functools.partial(positional_attention, scheme=scheme))
        r = time_fn(lambda step=step: step(q, k, v), repeats=args.repeats)
        rows[name] = {**r, "ratio_vs_fused": ref["median_s"] / r["median_s"],
                      "tflops": flops / r["median_s"] / 1e12}

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
        print(f"{name:24s} {1e3 * row['median_s']:9.3f} ms  {extra}")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
