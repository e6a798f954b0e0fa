"""Linear attention and GAU/FLASH's mixed chunk attention vs softmax attention over sequence length.

Issue 5's last benchmark (GPU when lent): causal forward + backward at sequence lengths 1K to 32K
with the number of tokens per batch held fixed (``--tokens``, so the batch shrinks as $T$ grows):

* ``softmax``: ``jax.nn.dot_product_attention`` (cuDNN on GPU in bf16, XLA otherwise), the reference;
* ``linear``: :func:`kexue_jax.attention.linear_attention` (elu+1 features, causal, chunked, 7546);
* ``flash_mixed``: :func:`kexue_jax.attention.mixed_chunk_attention` (FLASH's relu² inside chunks of
  256 plus linear attention across chunks, 8934).

Softmax attention costs $O(T)$ per token, the other two $O(1)$, so the ratio
``softmax_time / time`` should grow with $T$; where it crosses 1 is the length from which the
linear forms pay off on this device (Su's point in 7546 and 8934 that this crossover sits at several
thousand tokens for head dims of 64-128 against a fused softmax kernel).

    python -m benchmarks.attention_lengths                 # GPU: T 1K..32K, 64K tokens, H16 D128 bf16
    python -m benchmarks.attention_lengths --small         # CPU: T 128..512, f32 (checks the script)

Ratios above 1 mean the method is faster than softmax attention at that length.
"""

from __future__ import annotations

import argparse
import functools

import jax
import jax.numpy as jnp

from benchmarks.harness import time_fn, write_result
from kexue_jax.attention import linear_attention, mixed_chunk_attention


def _fwd_bwd(attend, *operands):
    def loss(*xs):
        return jnp.sum(attend(*xs).astype(jnp.float32))

    step = jax.jit(jax.grad(loss, argnums=tuple(range(len(operands)))))
    return lambda: step(*operands)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="CPU-sized smoke run")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--tokens", type=int, default=None, help="tokens per batch (batch = tokens // T)")
    args = p.parse_args(argv)
    on_gpu = jax.default_backend() == "gpu"
    if args.small:
        lengths, h, d, dtype, tokens, chunk = (128, 256, 512), 2, 32, jnp.float32, 1024, 64
    else:
        lengths, h, d, dtype, tokens, chunk = (1024, 2048, 4096, 8192, 16384, 32768), 16, 128, jnp.bfloat16, 65536, 256
    tokens = args.tokens or tokens
    impl = "cudnn" if on_gpu and dtype != jnp.float32 else "xla"
    rows = {}
    for t in lengths:
        b = max(1, tokens // t)
        keys = jax.random.split(jax.random.key(t), 5)
        q, k, v = (jax.random.normal(kk, (b, t, h, d), dtype) for kk in keys[:3])
        # FLASH: one shared-head pair of projections, local (s) and global (r) dims = d, values 2d wide
        ql, kl = (jax.random.normal(kk, (b, t, h, d), dtype) for kk in keys[3:])
        v2 = jnp.concatenate([v, v], axis=-1)
        flops_softmax = 3.5 * 2.0 * 2.0 * b * h * t * t * d / 2.0  # causal fwd + bwd
        timed = {
            "softmax": _fwd_bwd(functools.partial(jax.nn.dot_product_attention, is_causal=True,
                                                  implementation=impl), q, k, v),
            "linear": _fwd_bwd(functools.partial(linear_attention, is_causal=True, method="chunked",
                                                 chunk_size=chunk), q, k, v),
            "flash_mixed": _fwd_bwd(functools.partial(mixed_chunk_attention, chunk_size=chunk,
                                                      is_causal=True), q, k, ql, kl, v2),
        }
        row = {"batch": b}
        for name, fn in timed.items():
            try:
                row[name] = time_fn(fn, repeats=args.repeats)
            except Exception as err:  # out of memory at the longest lengths is a result, not a crash
                row[name] = {"error": str(err)[:300]}
        ref = row["softmax"].get("median_s")
        if ref is not None:
            row["softmax"]["tflops"] = flops_softmax / ref / 1e12
            for name in ("linear", "flash_mixed"):
                if "median_s" in row[name]:
                    row[name]["ratio_vs_softmax"] = ref / row[name]["median_s"]
        rows[str(t)] = row
        summary = {n: (f"{1e3 * r['median_s']:.2f} ms" + (f" x{r['ratio_vs_softmax']:.2f}" if "ratio_vs_softmax" in r else ""))
                   if "median_s" in r else "failed" for n, r in row.items() if n != "batch"}
        print(f"T={t:6d} b={b:3d} {summary}")
    result = {"shape": {"tokens": tokens, "h": h, "d": d, "dtype": jnp.dtype(dtype).name, "chunk": chunk,
                        "softmax_implementation": impl}, "rows": rows}
    path = write_result("attention_lengths" + ("_small" if args.small else ""), result)
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
