"""Registers, spills and shared memory of the fused ReRoPE kernels on sm_90, compiled without a GPU.

The fused ReRoPE / Leaky ReRoPE kernel (:func:`kexue_jax.attention.rerope_flash_attention`) is three
Pallas kernels: the forward, the dq backward and the dk/dv backward. On a GPU each compiles through
Triton; this script does that compilation on any host:

1. JAX lowers the kernels for a CUDA target (``lowering_platforms=("cuda",)``), which runs Pallas'
   Triton lowering and yields each kernel's Triton IR;
2. the ``triton`` package compiles that IR for an sm_90 (H100/H200) target to PTX and a cubin, and
   reports the shared memory the kernel needs;
3. ``ptxas -v`` reports the registers per thread and the bytes spilled to local memory.

Spills and shared memory decide which tilings (block sizes, warps, pipeline stages) are worth
timing on a lent GPU, and which cannot launch at all (sm_90 gives a block at most 227 KiB of shared
memory). These are compile-time resources, not speed: the ``--sweep`` of
``benchmarks/attention_positions.py`` times the tilings on a GPU. The Triton inside the device's
jaxlib is a different build from the ``triton`` package used here, so the numbers are indicative of
what XLA will compile, not identical to it.

    pip install triton                                  # compiler only; no GPU or driver needed
    python -m benchmarks.rerope_kernel_resources        # d = 128, six tilings, 4/8 warps, 2/3 stages
    python -m benchmarks.rerope_kernel_resources --small

Writes ``benchmarks/results/rerope_kernel_resources-sm90.json``.
"""

from __future__ import annotations

import argparse
import itertools
import re
import subprocess
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp

from benchmarks.harness import write_result

SM90_MAX_SHARED = 227 * 1024  # bytes of shared memory one block may use on sm_90
KERNELS = ("forward", "dq", "dkv")
# (block_q, block_k) compiled, each with 4 / 8 warps and 2 / 3 pipeline stages.
TILINGS = [(64, 64), (128, 64), (64, 128), (128, 128), (64, 32), (128, 32)]


def triton_ir(d: int, block_q: int, block_k: int, *, t: int = 4096, window: float = 512.0) -> dict[str, str]:
    """The Triton IR (text) of the forward, dq and dkv kernels, lowered for CUDA from this host."""
    from jax._src.pallas.triton import pallas_call_registration as registration

    from kexue_jax.attention import rerope_flash_attention
    from kexue_jax.position import rope_inv_freq

    lower = registration.lowering.lower_jaxpr_to_triton_module
    texts: list[str] = []

    def capture(*args, **kwargs):
        result = lower(*args, **kwargs)
        texts.append(result.module.operation.get_asm(enable_debug_info=False))
        return result

    inv = rope_inv_freq(d)

    def loss(q, k, v):
        o = rerope_flash_attention(q, k, v, inv, window=window, block_q=block_q, block_k=block_k,
                                   interpret=False)
        return jnp.sum(o.astype(jnp.float32) ** 2)

    spec = jax.ShapeDtypeStruct((1, t, 4, d), jnp.bfloat16)
    registration.lowering.lower_jaxpr_to_triton_module = capture
    try:
        jax.jit(jax.grad(loss, argnums=(0, 1, 2))).trace(spec, spec, spec).lower(lowering_platforms=("cuda",))
    finally:
        registration.lowering.lower_jaxpr_to_triton_module = lower
    names = [re.search(r"module @rerope_flash_(\w+)", text).group(1) for text in texts]
    if sorted(names) != sorted(KERNELS):
        raise RuntimeError(f"expected the kernels {KERNELS}, lowered {names}")
    return dict(zip(names, texts, strict=True))


def _ptxas() -> list[Path]:
    import triton

    bin_dir = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
    return sorted(bin_dir.glob("ptxas*"), key=lambda p: p.name != "ptxas")


def _ptxas_report(ptx: str, arch: int) -> dict[str, int]:
    """Registers and spill bytes from ``ptxas -v`` (the first bundled ptxas that accepts the PTX)."""
    with tempfile.NamedTemporaryFile("w", suffix=".ptx") as f:
        f.write(ptx)
        f.flush()
        errors = []
        for exe in _ptxas():
            run = subprocess.run([str(exe), f"--gpu-name=sm_{arch}a", "-v", f.name, "-o", "/dev/null"],
                                 capture_output=True, text=True)
            if run.returncode == 0:
                out = run.stdout + run.stderr
                regs = re.search(r"Used (\d+) registers", out)
                spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", out)
                return {"registers": int(regs.group(1)),
                        "spill_store_bytes": int(spill.group(1)) if spill else 0,
                        "spill_load_bytes": int(spill.group(2)) if spill else 0,
                        "ptxas": exe.name}
            errors.append(f"{exe.name}: {run.stderr.strip()[:200]}")
    raise RuntimeError("no bundled ptxas accepted the PTX: " + "; ".join(errors))


def compile_kernel(ir: str, *, arch: int, num_warps: int, num_stages: int) -> dict[str, int | str]:
    import triton
    from triton.backends.compiler import GPUTarget

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.ttir"
        path.write_text(ir)
        kernel = triton.compile(str(path), target=GPUTarget("cuda", arch, 32),
                                options={"num_warps": num_warps, "num_stages": num_stages})
    row: dict[str, int | str] = {"shared_bytes": int(kernel.metadata.shared)}
    row.update(_ptxas_report(kernel.asm["ptx"], arch))
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="one tiling at d = 64 (a quick check of the script)")
    p.add_argument("--arch", type=int, default=90, help="CUDA compute capability (90: H100/H200)")
    p.add_argument("--head-dims", type=int, nargs="+", default=[128], help="head dims (128: the benchmark's)")
    args = p.parse_args()
    import triton

    dims = (64,) if args.small else tuple(args.head_dims)
    tilings = TILINGS[:1] if args.small else TILINGS
    rows = []
    for d in dims:
        for block_q, block_k in tilings:
            irs = triton_ir(d, block_q, block_k)
            launches = list(itertools.product((4, 8), (2, 3)))
            for (num_warps, num_stages), kernel in itertools.product(launches, KERNELS):
                row = {"kernel": kernel, "head_dim": d, "block_q": block_q, "block_k": block_k,
                       "num_warps": num_warps, "num_stages": num_stages}
                row.update(compile_kernel(irs[kernel], arch=args.arch, num_warps=num_warps, num_stages=num_stages))
                row["fits_shared_memory"] = row["shared_bytes"] <= SM90_MAX_SHARED
                rows.append(row)
                print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    write_result("rerope_kernel_resources", {
        "target": f"sm_{args.arch}",
        "triton_package": triton.__version__,
        "note": "compile-time resources from the triton package, not the device jaxlib's Triton build",
        "max_shared_bytes": SM90_MAX_SHARED,
        "rows": rows,
    }, platform=f"sm{args.arch}")


if __name__ == "__main__":
    main()
