"""The 2-D diffusion task: loss and grads, a short engine run, evaluation, the schedule's SDE."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from kexue_jax import data as kdata
from kexue_jax.diffusion import gaussian_log_prob, linear_schedule, ode_log_prob
from kexue_jax.diffusion.diffusion_model import (
    DiffusionConfig,
    DiffusionModel,
    ScheduleVPSDE,
    make_diffusion_task,
)
from kexue_jax.nn.time_mlp import TimeMLP
from kexue_jax.train import read_metrics, train

SMALL = {"hidden": (16, 16), "embed_dim": 8, "num_steps": 100, "sampler_steps": 20, "eval_points": 200,
             "num_figure_samples": 256, "plot_resolution": 16, "likelihood_rtol": 1e-3, "likelihood_atol": 1e-3}


def _batch(n=400, name="moons"):
    return kdata.load(name, split="test").get_batch(np.arange(n))


def _task(**model):
    cfg = dict(SMALL)
    cfg.update(model)
    return make_diffusion_task(cfg, kdata.load("moons", split="test").info)


@pytest.mark.parametrize("process", ["ddpm", "ve"])
def test_loss_is_finite_with_finite_grads_and_starts_at_the_noise_variance(process):
    task = _task(process=process)
    batch = _batch(256)
    params, state = task.init(batch, key=jax.random.key(0))
    out = jax.jit(task.loss)(params, state, batch, key=jax.random.key(1))
    # zero-initialised output: eps_theta = 0, so the loss is E|eps|^2 = d = 2 (per dimension 1)
    np.testing.assert_allclose(float(out.metrics["eps_mse"]), 1.0, atol=0.15)
    grads = jax.jit(jax.grad(lambda p: task.loss(p, state, batch, key=jax.random.key(1)).loss))(params)
    leaves = jax.tree.leaves(grads)
    assert all(np.all(np.isfinite(g)) for g in leaves)
    assert any(float(jnp.abs(g).max()) > 0 for g in leaves)


def test_evaluate_reports_sample_distances_and_ode_nll_against_the_exact_nll_and_figures():
    task = _task(process="vp")
    batch = _batch(400)
    params, state = task.init(batch, key=jax.random.key(0))
    metrics = jax.jit(task.evaluate)(params, state, batch, key=jax.random.key(1))
    assert sorted(metrics) == ["kl", "loss", "mmd", "mmd_ref", "ode_nll", "sw", "sw_ref", "true_nll"]
    assert all(np.isfinite(float(v)) for v in metrics.values())
    true = -float(jnp.mean(kdata.log_density("moons", jnp.asarray(batch["x"][:200]))))
    np.testing.assert_allclose(float(metrics["true_nll"]), true, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["kl"]), float(metrics["ode_nll"] - metrics["true_nll"]), rtol=1e-5)
    # an untrained model (eps = 0, i.e. the score of N(0, I)) is far from the moons
    assert float(metrics["kl"]) > 0.3 and float(metrics["sw"]) > 3 * float(metrics["sw_ref"])
    figs = jax.jit(task.figures)(params, state, batch, key=jax.random.key(2))
    assert sorted(figs) == ["samples", "true_density"]
    assert all(v.shape == (1, 16, 16, 1) for v in figs.values())
    image = jax.jit(task.sample, static_argnums=2)(params, state, 4, key=jax.random.key(3))
    assert image.shape == (1, 16, 16, 1) and 0.0 <= float(image.min()) <= float(image.max()) <= 1.0


def test_schedule_sde_has_the_schedules_marginals_and_a_consistent_beta():
    schedule = linear_schedule(50)
    sde = ScheduleVPSDE(schedule)
    t = (jnp.arange(50, dtype=jnp.float32) + 1) / 50
    m, s = sde.marginal_coeffs(t)
    np.testing.assert_allclose(m, jnp.sqrt(schedule.alphas_cumprod), rtol=1e-5)
    np.testing.assert_allclose(s, jnp.sqrt(schedule.one_minus_alphas_cumprod), rtol=1e-4)
    # beta(t) = -d log m^2 / dt, checked by a finite difference inside one interval
    u = jnp.array([0.013, 0.51, 0.97], jnp.float32)  # mid-interval: T u = 0.65, 25.5, 48.5
    h = 1e-3
    fd = -(jnp.log(sde.marginal_coeffs(u + h)[0] ** 2) - jnp.log(sde.marginal_coeffs(u - h)[0] ** 2)) / (2 * h)
    np.testing.assert_allclose(sde.beta(u), fd, rtol=2e-3)


def test_exact_gaussian_network_gives_the_exact_likelihood_and_samples():
    # The oracle eps* of N(mu, diag(sig^2)) data plugged into the model's DDPM process: the ODE
    # likelihood through the schedule's SDE must reproduce the analytic log-density of the data
    # blurred to t = eps (an error in the time map (i + 1)/T or in ScheduleVPSDE would show here).
    config = DiffusionConfig(hidden=(4,), embed_dim=4, num_steps=100, sampler_steps=100,
                             likelihood_rtol=1e-5, likelihood_atol=1e-5)
    model = DiffusionModel(config, rngs=nnx.Rngs(0))
    _, sde = model.process
    mu, cov = jnp.array([0.5, -1.0]), jnp.diag(jnp.array([0.3, 1.5]) ** 2)
    model.net = _Oracle(sde, mu, cov)  # substitute the exact eps* for the network
    x = mu + jax.random.normal(jax.random.key(0), (64, 2)) @ jnp.sqrt(cov)
    a, s = sde.marginal_coeffs(jnp.full((64,), config.likelihood_eps))
    blurred = a[0] ** 2 * cov + s[0] ** 2 * jnp.eye(2)
    ll = jax.jit(lambda v: ode_log_prob(sde, model.score, v, rtol=1e-5, atol=1e-5, eps=config.likelihood_eps))(x)
    np.testing.assert_allclose(jax.jit(model.log_prob)(x), ll.log_prob, rtol=1e-4, atol=1e-4)
    # Tolerance 0.05 nats, not 2e-3: the same setup with the library's own VPSDE and
    # gaussian_score_fn (no task code involved) is off by up to 0.021 nats at rtol = atol = 1e-5
    # (measured while writing this test; reported to the lead), and this gap is 0.020 here.
    exact = gaussian_log_prob(x, a[0] * mu, blurred)
    np.testing.assert_allclose(ll.log_prob, exact, atol=0.05)
    samples = jax.jit(lambda k: model.sample(4000, key=k))(jax.random.key(1))
    np.testing.assert_allclose(samples.mean(0), mu, atol=0.06)
    np.testing.assert_allclose(jnp.cov(samples.T), cov, atol=0.1)


class _Oracle(nnx.Module):
    """$\\varepsilon^*(x, t) = -s_t\\nabla\\log p_t(x)$ of Gaussian data at any continuous $t$."""

    def __init__(self, sde, mu, cov):
        self.sde, self.mu, self.cov = sde, nnx.data(mu), nnx.data(cov)

    def __call__(self, x, t):
        m, s = self.sde.marginal_coeffs(t)
        c = m[:, None, None] ** 2 * self.cov + s[:, None, None] ** 2 * jnp.eye(2)
        score = -jnp.linalg.solve(c, (x - m[:, None] * self.mu)[..., None])[..., 0]
        return -s[:, None] * score


def test_bad_configs_raise_value_errors():
    info = kdata.load("moons", split="test").info
    with pytest.raises(ValueError, match="process"):
        DiffusionConfig(process="edm")
    with pytest.raises(ValueError, match="network"):
        DiffusionConfig(network="unet_3d")
    with pytest.raises(ValueError, match="sampler"):
        DiffusionConfig(process="vp", sampler="ddim")
    with pytest.raises(ValueError, match="sampler"):
        DiffusionConfig(sampler="no_such_sampler")
    with pytest.raises(ValueError, match="unknown keys"):
        make_diffusion_task({"hiden": (8,)}, info)
    with pytest.raises(ValueError, match="event_shape"):
        make_diffusion_task({"event_shape": (3,)}, info)
    with pytest.raises(ValueError, match="x"):
        TimeMLP(2, (4,), rngs=nnx.Rngs(0))(jnp.zeros((3, 5)), jnp.zeros((3,)))


def test_a_short_engine_run_lowers_the_loss(tmp_path):
    c = ml_collections.ConfigDict()
    c.name = "ddpm-2d-test"
    c.task = "diffusion"
    c.seed = 0
    c.data = ml_collections.ConfigDict(
        {"name": "eight_gaussians", "split": "train", "eval_split": "test", "batch_size": 256, "eval_batch_size": 5000,
             "data_dir": ""})
    c.model = ml_collections.ConfigDict(dict(SMALL, hidden=(32, 32), eval_points=100))
    c.optim = ml_collections.ConfigDict(
        {"name": "adam", "learning_rate": 3e-3, "schedule": "constant", "warmup_steps": 0, "end_factor": 1.0,
             "grad_clip_norm": 1.0})
    c.train = ml_collections.ConfigDict(
        {"steps": 300, "log_every": 50, "eval_every": 0, "sample_every": 0, "checkpoint_every": 300, "keep_checkpoints": 1,
             "ema_decay": 0.0, "num_samples": 1, "progress": False})
    result = train(c, tmp_path)
    losses = [r["loss"] for r in read_metrics(tmp_path / "metrics.jsonl", "train")]
    assert len(losses) == 6 and np.all(np.isfinite(losses))
    # from E|eps|^2 = 2 to well below: the model has learned part of the score
    assert losses[-1] < 0.75 * losses[0], losses
    assert np.isfinite(result.eval_metrics["ode_nll"]) and "kl" in result.eval_metrics
