"""Sampler cost against the number of steps: run time linear in steps, compile time flat.

Issue 4's CPU benchmark. Every fixed-step sampler of ``kexue_jax.diffusion.SAMPLERS`` (DDPM with
both variances, DDIM, Euler–Maruyama, predictor–corrector, the probability-flow ODE with Heun) is a
``lax.scan`` over its steps, so one compiled program serves any step count: its compile time should
not grow with ``num_steps`` and its run time should grow in proportion to it. The model is a
randomly initialised ``TimeMLP`` noise predictor (three SiLU layers of 256) on a batch of 2-D points,
wrapped into both parameterisations (ε at integer steps, the score $-\\varepsilon/\\sigma_t$ of the
VP-SDE at continuous times), so that a step costs a real network call rather than a closed form.

For each sampler and each step count the script records the compile time of a fresh lowering and
the median run time, and reports, against the smallest step count measured in the same run:

* ``compile_ratio``: compile seconds at ``steps`` / at the fewest steps (goal: about 1);
* ``cost_per_step_ratio``: (run seconds / steps) at ``steps`` / the same at the reference step count
  (the middle one; goal: about 1, i.e. linear). The fewest steps are left out of that reference
  because a fixed per-call cost (the prior draw, dispatch) weighs on them;
* ``log_log_slope``: the least-squares slope of log run time against log steps over the two
  largest counts (goal: 1).

    python -m benchmarks.sampler_steps            # CPU: batch 1024, steps 10 / 100 / 1000 (about 3 min)
    python -m benchmarks.sampler_steps --small    # seconds: batch 256, steps 10 / 30 / 100

The adaptive ``ode_tsit5`` chooses its own steps and is not measured here.
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from benchmarks.harness import time_fn, write_result
from kexue_jax.diffusion import SAMPLERS, VPSDE, ModelFns, eps_fn_to_score_fn, linear_schedule
from kexue_jax.nn import TimeMLP, merge_module, split_module

T = 1000
HIDDEN = (256, 256, 256)


def model_fns() -> ModelFns:
    """A random TimeMLP as ε at step indices and as the VP-SDE score at continuous times."""
    schedule, sde = linear_schedule(T), VPSDE()
    graphdef, params, state = split_module(TimeMLP(2, HIDDEN, out_features=2, rngs=nnx.Rngs(params=0)))
    params = jax.tree.map(lambda p: p + 0.01, params)  # off the zero-initialised output layer

    def eps_continuous(x, t):
        return merge_module(graphdef, params, state)(x, t)

    def eps_fn(x, i):
        return eps_continuous(x, (i.astype(jnp.float32) + 1.0) / T)

    score_fn = eps_fn_to_score_fn(eps_continuous, lambda t: sde.marginal_coeffs(t)[1])
    return ModelFns(schedule, eps_fn, sde, score_fn)


def measure(name: str, model: ModelFns, batch: int, steps: int, repeats: int) -> dict[str, float]:
    sampler = SAMPLERS[name]
    fn = jax.jit(lambda key: sampler(model, (batch, 2), num_steps=steps, key=key))
    key = jax.random.key(0)
    lowered = fn.lower(key)  # a fresh lowering: the compile below is not served from a cache
    start = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start
    run = time_fn(lambda: compiled(key), warmup=1, repeats=repeats)
    out = compiled(key)
    if not bool(jnp.all(jnp.isfinite(out))):
        raise SystemExit(f"{name} at {steps} steps produced non-finite samples")
    return {"compile_s": compile_s, "run_s": run["median_s"], "run_min_s": run["min_s"]}


def summarise(rows: dict[int, dict[str, float]]) -> dict[str, object]:
    counts = sorted(rows)
    ref = counts[len(counts) // 2]
    per_step_ref = rows[ref]["run_s"] / ref
    top = counts[-2:]
    slope = float(np.polyfit(np.log(top), np.log([rows[n]["run_s"] for n in top]), 1)[0])
    return {
        "compile_ratio": {str(n): rows[n]["compile_s"] / rows[counts[0]]["compile_s"] for n in counts},
        "cost_per_step_ratio": {str(n): (rows[n]["run_s"] / n) / per_step_ref for n in counts},
        "reference_steps": ref,
        "log_log_slope": slope,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="seconds-sized check of the script")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    batch = args.batch or (256 if args.small else 1024)
    counts = (10, 30, 100) if args.small else (10, 100, 1000)
    model = model_fns()
    names = [n for n in sorted(SAMPLERS) if SAMPLERS[n].fixed_steps]
    result: dict[str, object] = {"config": {"batch": batch, "steps": list(counts), "hidden": list(HIDDEN),
                                            "repeats": args.repeats, "T": T}, "samplers": {}}
    for name in names:
        rows = {n: measure(name, model, batch, n, args.repeats) for n in counts}
        summary = summarise(rows)
        result["samplers"][name] = {"rows": {str(n): r for n, r in rows.items()}, **summary}
        compile_text = " ".join(f"{n}:{summary['compile_ratio'][str(n)]:.2f}" for n in counts)
        cost_text = " ".join(f"{n}:{summary['cost_per_step_ratio'][str(n)]:.2f}" for n in counts)
        print(f"{name:15s} compile ratio {compile_text} | cost/step ratio {cost_text} | "
              f"slope {summary['log_log_slope']:.3f} | {rows[counts[-1]]['run_s']:.3f} s at {counts[-1]} steps")
    slopes = [s["log_log_slope"] for s in result["samplers"].values()]
    compiles = [max(s["compile_ratio"].values()) for s in result["samplers"].values()]
    result["worst"] = {"log_log_slope_farthest_from_1": max(slopes, key=lambda s: abs(s - 1.0)),
                       "max_compile_ratio": max(compiles)}
    result["goals"] = {"log_log_slope": 1.0, "max_compile_ratio": 1.2}
    if not all(math.isfinite(s) for s in slopes):
        raise SystemExit("a slope is not finite")
    name = "sampler_steps" + ("_small" if args.small else "")
    print(f"written {write_result(name, result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
