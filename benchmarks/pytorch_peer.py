"""What the benchmarks that race a PyTorch peer share: the engine's step, interleaved timing, ceilings.

``unet_vs_diffusers`` and ``glow_vs_pytorch`` time one training step of a library model (through
the engine's own jitted step, :func:`kexue_jax.train.make_train_step`, exactly what
``kexue-jax train`` runs) against the same model trained by PyTorch, in one process on one device.
Each side is a callable that runs ``steps`` updates and waits for the device; repeats alternate
between the sides so that clock and load drift hit all of them alike, and the median is kept.

JAX and PyTorch share the GPU here, so JAX must not take 75% of its memory at start:
``XLA_PYTHON_CLIENT_PREALLOCATE=false`` is set on import of this module (before JAX starts its
backend, which it does lazily) unless the caller set it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.harness import time_fn, write_result
from kexue_jax.train.mesh import make_mesh, shard_batch
from kexue_jax.train.state import create_train_state
from kexue_jax.train.step import make_train_step
from kexue_jax.train.task import Task

# Read when JAX starts its GPU client, which it does lazily: importing this module first is enough.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def count_arrays(tree: Any) -> int:
    """Number of scalars in a pytree of arrays (or of ``ShapeDtypeStruct``)."""
    return int(sum(np.prod(leaf.shape, dtype=np.int64) for leaf in jax.tree.leaves(tree)))


def count_torch(module: Any, *, trainable_only: bool = False) -> int:
    """Number of scalars in a torch module's parameters (all, or those with ``requires_grad``)."""
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only))


class EngineSide:
    """Our side: the engine's jitted, donated train step on staged batches.

    ``run()`` applies ``steps`` updates (batch ``i`` of the staged ones in turn) and blocks on the
    new state, the way the engine's loop would without its host-side logging.
    """

    def __init__(self, task: Task, optimizer: optax.GradientTransformation, batches: list[dict],
                 *, steps: int, key: jax.Array):
        mesh = make_mesh(1)
        self.batches = [shard_batch(b, mesh) for b in batches]
        init_key, run_key = jax.random.split(key)
        params, model_state = task.init(self.batches[0], key=init_key)
        self.num_params = count_arrays(params)
        self.state = create_train_state(params, model_state, optimizer, use_ema=False, key=run_key)
        self.step = make_train_step(task, optimizer, mesh=mesh)
        self.compiled: Any = None
        self.steps = steps
        self.metrics: dict[str, jax.Array] = {}

    def compile(self) -> dict[str, Any]:
        """Compile the step once; returns compile seconds and XLA's FLOP count of the compiled step."""
        t = time.perf_counter()
        self.compiled = self.step.lower(self.state, self.batches[0]).compile()
        seconds = time.perf_counter() - t
        cost = self.compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return {"compile_s": seconds, "step_flops": float(cost.get("flops", float("nan"))) if cost else None}

    def first_metrics(self) -> dict[str, float]:
        """One update from the initial state; its metrics (the loss at init) as floats."""
        step = self.compiled if self.compiled is not None else self.step
        self.state, metrics = step(self.state, self.batches[0])
        return {k: float(v) for k, v in metrics.items()}

    def run(self) -> None:
        step = self.compiled if self.compiled is not None else self.step
        state = self.state
        for i in range(self.steps):
            state, self.metrics = step(state, self.batches[i % len(self.batches)])
        jax.block_until_ready(state)
        self.state = state


def forward_flops(fn: Callable[..., Any], *args: Any) -> float:
    """XLA's FLOP count of ``fn(*args)`` from the lowered (unoptimised) HLO: no compile, no run."""
    cost = jax.jit(fn).lower(*args).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])


def time_interleaved(sides: Mapping[str, Callable[[], Any]], *, repeats: int) -> dict[str, dict[str, float]]:
    """Median / min / max seconds of each side's call, repeats alternating between the sides.

    Every callable must block until its device work is done (``jax.block_until_ready``,
    ``torch.cuda.synchronize``) and be warmed up (compiled) beforehand.
    """
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, fn in sides.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: {"median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts), "repeats": repeats}
            for name, ts in times.items()}


def matmul_ceiling(*, small: bool, repeats: int = 10) -> dict[str, Any]:
    """The matrix-unit ceiling measured here: an ``n x n x n`` matmul in JAX (bf16 on GPU).

    On a GPU, ``n = 8192`` in bfloat16 (the work a bf16 training step is made of); on a CPU
    (``small``) ``n = 1024`` in float32, which only checks the code.
    """
    n, dtype = (1024, jnp.float32) if small else (8192, jnp.bfloat16)
    ka, kb = jax.random.split(jax.random.key(7))
    a = jax.random.normal(ka, (n, n), dtype)
    b = jax.random.normal(kb, (n, n), dtype)
    mm = jax.jit(jnp.matmul)  # bf16 operands and result, float32 accumulation (XLA's default)
    r = time_fn(lambda: mm(a, b), warmup=3, repeats=repeats)
    return {**r, "n": n, "dtype": jnp.dtype(dtype).name, "tflops": 2.0 * n**3 / r["median_s"] / 1e12}


def torch_device(torch: Any, *, small: bool) -> Any:
    """CUDA when PyTorch sees a GPU and this is not a ``--small`` run, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() and not small else "cpu")


def torch_sync(torch: Any, device: Any) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def torch_environment(torch: Any, device: Any, **extra_versions: str) -> dict[str, Any]:
    """PyTorch's version and device, recorded next to :func:`benchmarks.harness.environment`."""
    env = {"torch": torch.__version__, "torch_device": str(device), **extra_versions}
    if device.type == "cuda":
        env["torch_device_name"] = torch.cuda.get_device_name(device)
        env["torch_cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
    return env


def configure_torch(torch: Any, device: Any) -> dict[str, Any]:
    """The PyTorch settings a practitioner would use for speed, returned for the record.

    cuDNN autotuning of convolutions, and TF32 for the float32 matrix products that autocast leaves
    in float32 (XLA's default precision on a GPU also takes TF32 for them).
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return {"cudnn_benchmark": device.type == "cuda", "allow_tf32": device.type == "cuda"}


class TorchTrainer:
    """The peer's update: ``loss_of(batch).backward()``, clip the gradient norm, step, zero the grads.

    ``run()`` applies ``steps`` updates over ``batches`` in turn and waits for the device;
    ``last_loss()`` reads the loss of the last update (kept on the device until then, so that the
    timed loop never waits for it).
    """

    def __init__(self, loss_of: Callable[[Any], Any], params: list[Any], optimizer: Any, batches: list[Any], *,
                 clip: float, steps: int, torch: Any, device: Any):
        self.loss_of, self.params, self.optimizer, self.batches = loss_of, params, optimizer, batches
        self.clip, self.steps, self.torch, self.device = clip, steps, torch, device
        self.last: Any = None

    def step(self, batch: Any) -> None:
        loss = self.loss_of(batch)
        loss.backward()
        self.torch.nn.utils.clip_grad_norm_(self.params, self.clip, foreach=True)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.last = loss.detach()

    def run(self) -> None:
        for i in range(self.steps):
            self.step(self.batches[i % len(self.batches)])
        torch_sync(self.torch, self.device)

    def last_loss(self) -> float:
        return float(self.last) if self.last is not None else float("nan")


def warm_up(run: Callable[[], Any], *, calls: int = 2) -> float:
    """Call ``run`` ``calls`` times (the first compiles); returns the seconds of the first call."""
    t = time.perf_counter()
    run()
    first = time.perf_counter() - t
    for _ in range(calls - 1):
        run()
    return first


def parse_args(doc: str, argv: Any, *, batch: int, steps: int, repeats: int, peer: str) -> argparse.Namespace:
    """The command line both benchmarks share; ``--small`` (CPU) sets batch 4, 2 x 2 steps, float32.

    Adds ``dtype`` (``bfloat16``, or ``float32`` with ``--small``) and ``compile`` (whether to time
    the peer under ``torch.compile``: ``--torch-compile yes``, or ``auto`` without ``--small``).
    """
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--small", action="store_true", help="CPU-sized check of the script")
    p.add_argument("--batch", type=int, default=None, help=f"default {batch} (4 with --small)")
    p.add_argument("--steps", type=int, default=None, help=f"steps per timed repeat (default {steps}, 2 with --small)")
    p.add_argument("--repeats", type=int, default=None, help=f"default {repeats} (2 with --small)")
    p.add_argument("--torch-compile", choices=("auto", "yes", "no"), default="auto",
                   help=f"time {peer} under torch.compile (auto: on a GPU, not with --small)")
    args = p.parse_args(argv)
    args.batch = args.batch or (4 if args.small else batch)
    args.steps = args.steps or (2 if args.small else steps)
    args.repeats = args.repeats or (2 if args.small else repeats)
    args.dtype = "float32" if args.small else "bfloat16"
    args.compile = args.torch_compile == "yes" or (args.torch_compile == "auto" and not args.small)
    return args


def throughput(timed: dict[str, float], *, batch: int, steps: int, flops_per_image: float | None = None,
               ceiling_flops: float | None = None) -> dict[str, float]:
    """A timing row plus img/s, ms/step and (given the FLOPs per image and the ceiling) MFU."""
    img_s = batch * steps / timed["median_s"]
    row = {**timed, "img_per_s": img_s, "ms_per_step": 1e3 * timed["median_s"] / steps}
    if flops_per_image is not None and ceiling_flops:
        row["mfu"] = img_s * flops_per_image / ceiling_flops
    return row


def time_phases(result: dict[str, Any], name: str, *, ours: Any, eager: Any, compiled: Callable[[], Any] | None,
                peer: str, repeats: int, final: Callable[[dict[str, Any]], dict[str, float]],
                **row_args: Any) -> None:
    """Time ours against the peer in eager mode, then (``compiled`` given) under ``torch.compile``.

    Phase 1 times ``ours`` and ``eager`` (objects with ``run()``) and writes the result; phase 2
    builds the compiled peer with ``compiled()``, warms it up (its first call compiles), times all
    three and writes the result again, so a time limit reached in PyTorch's compile keeps phase 1.
    ``row_args`` go to :func:`throughput`; ``final`` gives the last loss of each side (from a
    mapping of the side objects); ``result`` collects ``rows``, ``ratios`` (``ours_over_<side>``:
    ours' throughput over the side's, above 1 = ours faster), ``final_loss`` and ``path``.
    """
    sides = {"ours": ours, f"{peer}_eager": eager}

    def finish() -> None:
        timed = time_interleaved({k: side.run for k, side in sides.items()}, repeats=repeats)
        result["rows"] = {k: throughput(v, **row_args) for k, v in timed.items()}
        result["ratios"] = {f"ours_over_{k}": result["rows"]["ours"]["img_per_s"] / r["img_per_s"]
                            for k, r in result["rows"].items() if k != "ours"}
        result["final_loss"] = final(sides)
        result["path"] = str(write_result(name, result))

    finish()
    if compiled is None:
        result["rows"][f"{peer}_compiled"] = {"skipped": "torch.compile not requested (--torch-compile)"}
        result["path"] = str(write_result(name, result))
        return
    sides[f"{peer}_compiled"] = side = compiled()
    t = time.perf_counter()
    result["compile_s"][f"{peer}_compiled_first_call"] = warm_up(side.run)
    result["compile_s"][f"{peer}_compiled_warm_up"] = time.perf_counter() - t
    finish()


def print_rows(result: dict[str, Any]) -> None:
    """The timed rows, ratios and final losses of :func:`time_phases`, one line each."""
    for k, r in result["rows"].items():
        if "skipped" in r:
            print(f"{k:20s} skipped")
            continue
        mfu = f"  MFU {100 * r['mfu']:5.1f}%" if "mfu" in r else ""
        print(f"{k:20s} {r['ms_per_step']:9.2f} ms/step {r['img_per_s']:9.1f} img/s{mfu}")
    print("ratios " + ", ".join(f"{k} {v:.2f}" for k, v in result["ratios"].items())
          + f"; goals {result['goals']}; final losses {result['final_loss']}")
    print(f"written {result['path']}")


__all__ = [
    "EngineSide",
    "TorchTrainer",
    "configure_torch",
    "count_arrays",
    "count_torch",
    "forward_flops",
    "matmul_ceiling",
    "parse_args",
    "print_rows",
    "throughput",
    "time_interleaved",
    "time_phases",
    "torch_device",
    "torch_environment",
    "torch_sync",
    "warm_up",
]
