"""Classifier guidance measured on eight_gaussians: the fraction of samples in the requested
component as the scale $\\gamma$ grows, with the trained noisy classifier and with the exact one.

Samples the unconditional 2-D DDPM of ``ddpm-2d`` (trained on eight_gaussians) with
$\\hat\\varepsilon = \\varepsilon_\\theta - \\gamma\\sqrt{1 - \\bar\\alpha_t}\\nabla_x\\log p(y \\mid x_t, t)$
(:func:`kexue_jax.diffusion.classifier_model.classifier_guided_fns`), labels $0..7$ in turn, for
each $\\gamma$ of ``--scales`` and two classifiers:

* ``learned``: the checkpoint of ``classifier-guidance-2d``;
* ``exact``: the true noisy posterior of the mixture, $p_t(k \\mid x) \\propto
  \\mathcal N(x; m_t\\mu_k, (m_t^2\\sigma^2 + s_t^2)I)$, in closed form (the components are
  isotropic Gaussians of equal weight, so the forward process keeps them Gaussian).

Reports, first, the negative log-likelihood and accuracy of both classifiers on the test points
noised to $t = 0, 0.1, 0.25, 0.5, 0.75$ (``classifier_eval``); then per sampling row ``in_requested`` (fraction of samples whose angular sector, i.e. nearest
component, is the requested label; $1/8$ without guidance), its binomial standard error, and
``mean_log_density`` (the exact $\\log p(x)$ of eight_gaussians averaged over the samples: whether
guidance pushes samples off the data). All rows share the initial noise and the sampler's draws.

    python experiments/classifier_guidance_2d/guidance.py --ddpm-workdir runs/ddpm-2d-eight \\
        --classifier-workdir runs/classifier-guidance-2d --out experiments/classifier_guidance_2d/results/guidance.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from kexue_jax.data.densities import EIGHT_GAUSSIANS_RADIUS, EIGHT_GAUSSIANS_SIGMA, log_density
from kexue_jax.diffusion.classifier_model import (
    angular_sector_labels,
    check_same_process,
    classifier_guided_fns,
    classifier_log_prob_fn,
)
from kexue_jax.diffusion.diffusion_model import build_process
from kexue_jax.diffusion.samplers.registry import SAMPLERS
from kexue_jax.train import load_config, load_for_inference
from kexue_jax.train.state import eval_params

NUM_COMPONENTS = 8


def exact_log_prob_fn(sde):
    """$\\log p_t(k \\mid x)$ of eight_gaussians under the forward process ``sde`` (closed form)."""
    angles = jnp.arange(NUM_COMPONENTS, dtype=jnp.float32) * (2 * math.pi / NUM_COMPONENTS)
    centres = EIGHT_GAUSSIANS_RADIUS * jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=-1)

    def log_prob(x, t, y):
        m, s = sde.marginal_coeffs(t)
        var = (m * EIGHT_GAUSSIANS_SIGMA) ** 2 + s**2
        d2 = jnp.sum((x[:, None, :] - m[:, None, None] * centres[None]) ** 2, axis=-1)
        log_post = jax.nn.log_softmax(-0.5 * d2 / var[:, None], axis=-1)
        return jnp.take_along_axis(log_post, y[:, None], axis=-1)[:, 0]

    return log_prob


def _classifier_nll(c_run, params, model_state, exact, key, times=(0.0, 0.1, 0.25, 0.5, 0.75)) -> list[dict]:
    """NLL and accuracy of the learned and of the exact noisy classifier on the test points at fixed times."""
    data = c_run.eval_data.get_batch(np.arange(len(c_run.eval_data)))
    x0 = c_run.task.extras["inputs"](data)
    y = c_run.task.extras["labels"](data, x0)
    net = c_run.task.extras["model"](params, model_state)
    rows = []
    for j, tau in enumerate(times):
        t = jnp.full((x0.shape[0],), tau, jnp.float32)
        x = net.noised_at(x0, t, key=jax.random.fold_in(key, j))
        row = {"t": tau}
        for name, log_prob in (("learned", net.log_prob), ("exact", exact)):
            log_p = jnp.stack([log_prob(x, t, jnp.full_like(y, k)) for k in range(NUM_COMPONENTS)], axis=1)
            row[f"{name}_nll"] = float(-jnp.mean(jnp.take_along_axis(log_p, y[:, None], axis=1)))
            row[f"{name}_accuracy"] = float(jnp.mean(jnp.argmax(log_p, axis=1) == y))
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ddpm", default="ddpm-2d")
    p.add_argument("--ddpm-workdir", required=True, help="a ddpm-2d run trained with data.name=eight_gaussians")
    p.add_argument("--classifier", default="classifier-guidance-2d")
    p.add_argument("--classifier-workdir", default=None, help="default runs/classifier-guidance-2d")
    p.add_argument("--scales", default="0,1,3,10", help="comma-separated gamma values")
    p.add_argument("--num-samples", type=int, default=2000)
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the config's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON path (default: stdout only)")
    p.add_argument("--smoke", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    scales = [float(s) for s in args.scales.split(",")]
    if any(s < 0 for s in scales):
        raise ValueError(f"--scales: expected gamma >= 0, got {scales}")
    if args.num_samples < NUM_COMPONENTS:
        raise ValueError(f"--num-samples: expected at least {NUM_COMPONENTS}, got {args.num_samples}")
    overrides = ["data.name=eight_gaussians"] + ([f"model.sampler_steps={args.steps}"] if args.steps else [])
    d_config = load_config(args.ddpm, smoke=args.smoke, overrides=overrides)
    d_run, d_state, d_step = load_for_inference(d_config, args.ddpm_workdir)
    d_run.checkpointer.close()
    c_config = load_config(args.classifier, smoke=args.smoke)
    c_workdir = args.classifier_workdir or Path("runs") / c_config.name
    c_run, c_state, c_step = load_for_inference(c_config, c_workdir)
    c_run.checkpointer.close()
    dconf, cconf = d_run.task.extras["config"], c_run.task.extras["config"]
    check_same_process(cconf, dconf)
    if cconf.labels != "angular_sector" or cconf.num_classes != NUM_COMPONENTS:
        raise ValueError(f"--classifier: expected angular-sector labels of {NUM_COMPONENTS} classes, got "
                         f"labels={cconf.labels!r}, num_classes={cconf.num_classes}")
    exact = exact_log_prob_fn(build_process(dconf)[1])
    sampler = SAMPLERS[dconf.sampler]
    n = args.num_samples
    y = jnp.arange(n, dtype=jnp.int32) % NUM_COMPONENTS

    def sample(which):
        @jax.jit
        def run(d_params, c_params, scale, key):
            fns = d_run.task.extras["model"](d_params, d_state.model_state).model_fns()
            log_prob = exact if which == "exact" else classifier_log_prob_fn(c_run.task, c_params, c_state.model_state)
            guided = classifier_guided_fns(fns, log_prob, y, scale=scale)
            return sampler(guided, (n, 2), num_steps=dconf.sampler_steps, key=key)
        return run

    key = jax.random.key(args.seed)
    classifier_rows = _classifier_nll(c_run, eval_params(c_state), c_state.model_state, exact, key)
    rows = []
    for which in ("learned", "exact"):
        run = sample(which)
        for scale in scales:
            start = time.perf_counter()
            x = run(eval_params(d_state), eval_params(c_state), jnp.float32(scale), key)
            x = jnp.clip(jnp.nan_to_num(x, nan=100.0), -100.0, 100.0)
            hit = np.asarray(angular_sector_labels(x, NUM_COMPONENTS) == y)
            frac = float(hit.mean())
            rows.append({
                "classifier": which, "gamma": scale, "in_requested": frac,
                "in_requested_se": math.sqrt(max(frac * (1 - frac), 1e-12) / n),
                "mean_log_density": float(jnp.mean(log_density("eight_gaussians", x))),
                "seconds": round(time.perf_counter() - start, 2),
            })
            print(json.dumps(rows[-1]), file=sys.stderr)
    result = {
        "claim": "classifier guidance with scale gamma samples p_t(x) p_t(y|x)^gamma: the fraction of samples in "
                 "the requested component rises with gamma (kexue.fm 9257; Dhariwal & Nichol 2021)",
        "ddpm": {"experiment": args.ddpm, "workdir": str(d_run.workdir), "step": d_step, "sampler": dconf.sampler,
                 "steps": dconf.sampler_steps, "num_steps": dconf.num_steps},
        "classifier": {"experiment": args.classifier, "workdir": str(c_run.workdir), "step": c_step},
        "classifier_eval": classifier_rows,
        "num_samples": n,
        "seed": args.seed,
        "rows": rows,
        "device": jax.devices()[0].device_kind,
        "jax_version": jax.__version__,
        "smoke": bool(args.smoke),
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    try:
        out = main()
    except ValueError as err:
        print(f"guidance.py: error: {err}", file=sys.stderr)
        sys.exit(2)
    for r in out["rows"]:
        print(f"{r['classifier']:8s} gamma={r['gamma']:<5g} in_requested={r['in_requested']:.3f} "
              f"(se {r['in_requested_se']:.3f})  mean log p(x)={r['mean_log_density']:.3f}")
