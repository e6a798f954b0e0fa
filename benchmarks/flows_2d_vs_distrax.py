"""2-D RealNVP training step: ``kexue_jax.flows.coupling_flow_2d`` vs the same flow in distrax.

Both sides are the same function with the same parameters: ``depth`` × (reverse the two
coordinates, affine coupling keeping ``x[0]`` and mapping ``x[1] -> x[1] * exp(h) + t``) with
``(h, t)`` from an MLP (``mlp_depth`` relu Dense layers of ``hidden`` units, then a zero-initialised
Dense to ``2 d`` outputs) applied to the masked vector ``(x[0], 0)``, under a standard normal prior.

* ours: ``coupling_flow_2d(...)`` -> ``forward(params, x)``, log-likelihood
  ``standard_normal_log_prob(z) + log_det``.
* distrax: ``Transformed(MultivariateNormalDiag(0, 1), Inverse(Chain([...])))`` with
  ``MaskedCoupling(mask=[True, False], conditioner=<plain-JAX MLP closed over its params>,
  bijector=ScalarAffine(shift=t, log_scale=h))`` and the reversal as a ``Lambda`` bijector. The
  chain is written data -> latent and wrapped in ``Inverse`` so that ``log_prob`` (which runs the
  bijector's inverse) evaluates exactly our direction, ``z = x * exp(h) + t``; the distrax
  parameters are the very arrays of our couplings' conditioners.

Before timing, the script checks that both give the same log-likelihood and the same gradient at a
random non-identity parameter point. The timed step is ``jax.jit(value_and_grad(mean NLL) +
optax.adam update)`` on batches of 512 "moons" samples staged beforehand; each repeat runs
``--steps`` steps from Python (dispatch included, alike for both) and is blocked once at the end.
Repeats alternate between the two sides so that machine load hits both alike; the median is kept.

    python -m benchmarks.flows_2d_vs_distrax [--steps 50] [--repeats 20]

Needs the ``bench`` extra (``pip install -e .[bench]``, i.e. distrax). The reported ratio is
distrax / ours: above 1 means our step is faster.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.harness import time_fn, write_result
from kexue_jax.data import sample_density
from kexue_jax.flows import coupling_flow_2d, standard_normal_log_prob

DIM = 2


# --- ours --------------------------------------------------------------------------------------


def ours_flow(args):
    return coupling_flow_2d(depth=args.depth, hidden=args.hidden, mlp_depth=args.mlp_depth,
                            coupling="affine", scale="exp", use_actnorm=False,
                            permutation="reverse", unroll=args.unroll)


def ours_loss(flow, params, x):
    z, log_det = flow.forward(params, x)
    return -jnp.mean(standard_normal_log_prob(z) + log_det)


# --- distrax -------------------------------------------------------------------------------------


def mlp(p, x):
    """The conditioner in plain JAX: relu Dense layers, then the (zero-initialised) output Dense."""
    h = jax.nn.relu(x @ p["hidden"]["w"] + p["hidden"]["b"])
    for layer in p["more"]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    return h @ p["out"]["w"] + p["out"]["b"]


def scalar_affine(out):
    h, t = jnp.split(out, 2, axis=-1)
    return distrax.ScalarAffine(shift=t, log_scale=h)


REVERSE = distrax.Lambda(
    forward=lambda x: x[..., ::-1],
    inverse=lambda y: y[..., ::-1],
    forward_log_det_jacobian=lambda x: jnp.zeros(x.shape[:-1], x.dtype),
    inverse_log_det_jacobian=lambda y: jnp.zeros(y.shape[:-1], y.dtype),
    event_ndims_in=1,
    event_ndims_out=1,
    is_constant_jacobian=True,
)


def distrax_flow(cparams) -> distrax.Transformed:
    keep_first = jnp.arange(DIM) < DIM // 2  # True = kept (conditioned on), as our "half" mask
    layers = []  # data -> latent, applied in list order (as kexue_jax's chain)
    for p in cparams:
        layers.append(REVERSE)
        layers.append(distrax.MaskedCoupling(mask=keep_first, conditioner=partial(mlp, p),
                                             bijector=scalar_affine))
    # distrax.Chain([f1, ..., fn]) applies fn first, hence the reversal.
    data_to_latent = distrax.Chain(layers[::-1])
    base = distrax.MultivariateNormalDiag(jnp.zeros(DIM), jnp.ones(DIM))
    return distrax.Transformed(base, distrax.Inverse(data_to_latent))


def distrax_loss(cparams, x):
    return -jnp.mean(distrax_flow(cparams).log_prob(x))


def to_distrax_params(ours_params, depth: int):
    """Our step's params are ``[(), {"st": cparams}]`` stacked over ``depth`` (a scanned ``repeat``);
    distrax takes the list of per-coupling cparams."""
    stacked = next(p["st"] for p in ours_params if isinstance(p, dict))
    return [jax.tree.map(lambda a, i=i: a[i], stacked) for i in range(depth)]


# --- timing -------------------------------------------------------------------------------------


def make_step(loss, opt):
    @jax.jit
    def step(params, opt_state, x):
        value, grads = jax.value_and_grad(loss)(params, x)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return step


class Trainer:
    """Runs ``len(batches)`` jitted steps per call, carrying params and optimizer state along."""

    def __init__(self, loss, params, opt, batches):
        self.step = make_step(loss, opt)
        self.params, self.opt_state = params, opt.init(params)
        self.batches = batches
        self.loss = None

    def run(self):
        params, opt_state = self.params, self.opt_state
        for x in self.batches:
            params, opt_state, loss = self.step(params, opt_state, x)
        self.params, self.opt_state, self.loss = params, opt_state, loss
        return params, loss


def count(tree) -> int:
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def compiled_cost(step, *args) -> dict[str, float]:
    """XLA's cost analysis of the compiled step (how much work each side asks for)."""
    analysis = step.lower(*args).compile().cost_analysis()
    if isinstance(analysis, list):  # older jax returns one dict per device
        analysis = analysis[0]
    return {k: float(analysis[k]) for k in ("flops", "transcendentals", "bytes accessed")
            if k in analysis}


def check_same_function(flow, params, x, key, depth: int) -> dict[str, float]:
    """Log-likelihoods and gradients of both sides at a random non-identity point."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    noisy = jax.tree.unflatten(treedef, [
        leaf + 0.01 * jax.random.normal(k, leaf.shape, leaf.dtype) for leaf, k in zip(leaves, keys)
    ])
    z, log_det = flow.forward(noisy, x)
    ll_ours = standard_normal_log_prob(z) + log_det
    ll_theirs = distrax_flow(to_distrax_params(noisy, depth)).log_prob(x)
    g_ours = to_distrax_params(jax.grad(partial(ours_loss, flow))(noisy, x), depth)
    g_theirs = jax.grad(distrax_loss)(to_distrax_params(noisy, depth), x)
    ll_diff = float(jnp.max(jnp.abs(ll_ours - ll_theirs)))
    g_diff = max(float(jnp.max(jnp.abs(a - b)))
                 for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_theirs), strict=True))
    g_scale = max(float(jnp.max(jnp.abs(a))) for a in jax.tree.leaves(g_ours))
    # not the identity: the log-likelihood differs from the prior's at x
    moved = float(jnp.max(jnp.abs(ll_ours - standard_normal_log_prob(x))))
    print(f"same function: max |ll_ours - ll_distrax| = {ll_diff:.3g} (|ll| <= "
          f"{float(jnp.max(jnp.abs(ll_ours))):.3g}, away from identity by {moved:.3g}); "
          f"max |grad diff| = {g_diff:.3g} (|grad| <= {g_scale:.3g})")
    assert moved > 0.1, "the perturbed point is too close to the identity flow"
    assert np.allclose(ll_ours, ll_theirs, rtol=1e-5, atol=1e-4), ll_diff
    assert g_diff <= 1e-4 * (1.0 + g_scale), g_diff
    return {"max_abs_loglik_diff": ll_diff, "max_abs_grad_diff": g_diff,
            "max_abs_grad": g_scale, "loglik_change_from_identity": moved}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--mlp-depth", type=int, default=2)
    p.add_argument("--unroll", action="store_true",
                   help="compile our depth steps separately (as distrax's Chain does) instead of scanning one")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--steps", type=int, default=50, help="steps per timed repeat")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2, help="untimed repeats (incl. compilation)")
    p.add_argument("--lr", type=float, default=1e-3)
    args = p.parse_args()

    k_data, k_init, k_check = jax.random.split(jax.random.key(0), 3)
    batches = jax.vmap(lambda k: sample_density("moons", args.batch_size, key=k))(
        jax.random.split(k_data, args.steps))
    batches = list(jax.block_until_ready(batches))
    flow = ours_flow(args)
    params = flow.init(k_init, batches[0])
    checks = check_same_function(flow, params, batches[0], k_check, args.depth)

    opt = optax.adam(args.lr)
    ours = Trainer(partial(ours_loss, flow), params, opt, batches)
    theirs = Trainer(distrax_loss, to_distrax_params(params, args.depth), opt, batches)
    n_ours, n_theirs = count(ours.params), count(theirs.params)
    assert n_ours == n_theirs, (n_ours, n_theirs)

    first_call, cost = {}, {}
    for name, t in (("ours", ours), ("distrax", theirs)):
        s = time.perf_counter()  # trace + compile + one step
        jax.block_until_ready(t.step(t.params, t.opt_state, batches[0]))
        first_call[name] = time.perf_counter() - s
        cost[name] = compiled_cost(t.step, t.params, t.opt_state, batches[0])
    for _ in range(args.warmup):
        for t in (ours, theirs):
            jax.block_until_ready(t.run())

    ours_s, theirs_s = [], []
    for i in range(args.repeats):  # interleaved, alternating which side goes first
        pair = ((ours, ours_s), (theirs, theirs_s))
        for t, out in pair if i % 2 == 0 else pair[::-1]:
            out.append(time_fn(t.run, warmup=0, repeats=1)["median_s"] / args.steps)
    o, d = statistics.median(ours_s), statistics.median(theirs_s)
    paired = statistics.median(b / a for a, b in zip(ours_s, theirs_s, strict=True))

    result = {
        "config": {"density": "moons", "batch_size": args.batch_size, "depth": args.depth,
                   "hidden": args.hidden, "mlp_depth": args.mlp_depth, "coupling": "affine",
                   "scale": "exp", "permutation": "reverse", "unroll": args.unroll, "optimizer": f"adam({args.lr})",
                   "steps_per_repeat": args.steps, "repeats": args.repeats,
                   "warmup_repeats": args.warmup},
        "distrax_version": distrax.__version__,
        "param_count_ours": n_ours,
        "param_count_distrax": n_theirs,
        "same_function": checks,
        "ours_s_per_step": o,
        "distrax_s_per_step": d,
        "ours_runs_s_per_step": ours_s,
        "distrax_runs_s_per_step": theirs_s,
        "ratio_distrax_over_ours": d / o,
        "ratio_distrax_over_ours_of_minima": min(theirs_s) / min(ours_s),
        "ratio_distrax_over_ours_median_of_pairs": paired,
        "first_call_s": first_call,
        "compiled_cost": cost,
        "final_loss_ours": float(ours.loss),
        "final_loss_distrax": float(theirs.loss),
        "note": "ratio > 1: our step is faster. Both sides train the same parameters from the "
                "same init on the same batches, so their final losses should agree closely.",
    }
    path = write_result("flows_2d_vs_distrax", result)
    print(f"params {n_ours} (both); ours {o * 1e3:.3f} ms/step, distrax {d * 1e3:.3f} ms/step, "
          f"ratio distrax/ours {d / o:.3f} (of minima {min(theirs_s) / min(ours_s):.3f}, median "
          f"of pairs {paired:.3f}); flops/step ours {cost['ours'].get('flops', np.nan):.4g} "
          f"distrax {cost['distrax'].get('flops', np.nan):.4g}; final NLL ours "
          f"{float(ours.loss):.4f} distrax {float(theirs.loss):.4f} -> {path}")


if __name__ == "__main__":
    main()
