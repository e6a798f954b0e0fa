"""Probability-flow ODE likelihood fully on device vs score_sde's host-side scipy RK45, same tolerance.

score_sde (Song et al. 2021, ``likelihood.py``) solves the likelihood ODE with
``scipy.integrate.solve_ivp(method="RK45")`` on the host: every right-hand-side evaluation copies the
state to the device, runs the jitted drift and Hutchinson divergence, and copies the result back.
``kexue_jax.diffusion.ode_log_prob`` runs the whole solve (diffrax Dormand–Prince 5(4), the same
pair as RK45) inside one ``jit``. Both sides here integrate the *same* field with the same fixed
Rademacher probes, from $t = 10^{-5}$ to 1, at ``rtol = atol = 1e-5``; the script checks that the
two log-likelihoods agree before timing. Issue 4's goal: at least 10x on a GPU.

    python -m benchmarks.ode_likelihood_vs_scipy [--batch 64] [--dim 64] [--repeats 3]

The network is a random ``TimeMLP`` score on $d$-dimensional data (an 8x8 image by default), so the
cost per evaluation is small and the measurement is of the solver loop, which is the point.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from scipy import integrate

from benchmarks.harness import time_fn, write_result
from kexue_jax.diffusion import VPSDE, ode_log_prob, sample_probes
from kexue_jax.diffusion.divergence import divergence_hutchinson
from kexue_jax.diffusion.sde import probability_flow
from kexue_jax.nn.time_mlp import TimeMLP

EPS, TOL = 1e-5, 1e-5


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    b, d = args.batch, args.dim
    sde = VPSDE()
    net = TimeMLP(d, (256, 256), zero_init_last=False, rngs=nnx.Rngs(0))

    def score_fn(x, t):
        _, std = sde.marginal(jnp.zeros_like(x), t)
        return -net(x, t) / std[:, None]

    kx, kp = jax.random.split(jax.random.key(1))
    x = jax.random.normal(kx, (b, d), jnp.float32)
    probes = sample_probes((b, d), kind="rademacher", key=kp)

    ours = jax.jit(lambda x: ode_log_prob(sde, score_fn, x, divergence="hutchinson", solver="dopri5",
                                          rtol=TOL, atol=TOL, eps=EPS, key=kp))
    flow = probability_flow(sde, score_fn)

    @jax.jit
    def rhs(y, t):  # the device-side right-hand side score_sde calls once per evaluation
        field = lambda u: flow.drift(u, jnp.full((b,), t, jnp.float32))
        return field(y), divergence_hutchinson(field, y, probes)

    def host_rhs(t, state):
        y = jnp.asarray(state[: b * d].reshape(b, d), jnp.float32)
        dy, div = rhs(y, t)
        return np.concatenate([np.asarray(dy).reshape(-1), np.asarray(div)]).astype(np.float64)

    def scipy_solve():
        y0 = np.concatenate([np.asarray(x).reshape(-1), np.zeros(b)]).astype(np.float64)
        sol = integrate.solve_ivp(host_rhs, (EPS, sde.T), y0, rtol=TOL, atol=TOL, method="RK45")
        z = sol.y[: b * d, -1].reshape(b, d)
        delta = sol.y[b * d :, -1]
        return np.asarray(sde.prior_log_prob(jnp.asarray(z, jnp.float32))) + delta, sol.nfev

    ref_ll, nfev = scipy_solve()
    res = ours(x)
    ll = np.asarray(res.log_prob)
    gap = float(np.max(np.abs(ll - ref_ll)))
    if gap > 1e-2 * max(1.0, float(np.max(np.abs(ref_ll)))):
        raise SystemExit(f"the two solves disagree: max |Δ log p| = {gap}")

    t_ours = time_fn(lambda: ours(x).log_prob, repeats=args.repeats, warmup=1)
    t_scipy = time_fn(lambda: scipy_solve()[0], repeats=args.repeats, warmup=0)
    result = {
        "batch": b, "dim": d, "rtol": TOL, "atol": TOL, "eps": EPS,
        "ours": {**t_ours, "solver": "diffrax Dopri5 in one jit", "steps": int(res.num_steps)},
        "scipy_rk45": {**t_scipy, "solver": "scipy solve_ivp RK45 on the host", "nfev": int(nfev)},
        "max_abs_log_prob_gap": gap,
        "ratio_scipy_over_ours": t_scipy["median_s"] / t_ours["median_s"],
        "goal": 10.0,
    }
    path = write_result("ode_likelihood_vs_scipy", result)
    print(f"ours {t_ours['median_s']:.3f} s ({int(res.num_steps)} steps), scipy RK45 {t_scipy['median_s']:.3f} s "
          f"({nfev} evaluations): ratio {result['ratio_scipy_over_ours']:.1f}x; max |Δ log p| {gap:.2e}")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
