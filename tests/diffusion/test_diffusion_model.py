"""The 2-D diffusion task: loss and grads, a short engine run, evaluation, the schedule's SDE."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from kexue_jax import data as kdata
from kexue_jax.data.transforms import random_horizontal_flip
from kexue_jax.diffusion import gaussian_log_prob, linear_schedule, ode_log_prob
from kexue_jax.diffusion.diffusion_model import (
    DiffusionConfig,
    DiffusionModel,
    ScheduleVPSDE,
    make_diffusion_task,
    spread_indices,
)
from kexue_jax.nn.time_mlp import TimeMLP
from kexue_jax.train import read_metrics, train
from tests.diffusion.engine_config import engine_config_2d

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
    c = engine_config_2d(dict(SMALL, hidden=(32, 32), eval_points=100))
    result = train(c, tmp_path)
    losses = [r["loss"] for r in read_metrics(tmp_path / "metrics.jsonl", "train")]
    assert len(losses) == 6 and np.all(np.isfinite(losses))
    # from E|eps|^2 = 2 to well below: the model has learned part of the score
    assert losses[-1] < 0.75 * losses[0], losses
    assert np.isfinite(result.eval_metrics["ode_nll"]) and "kl" in result.eval_metrics


# ---------------------------------------------------------------------------------------------
# Images: the UNet task (UNetConfig.tiny on 8x8x1, one task built and initialised per module).

_NULL = 10
_IMAGE_MODEL = {"network": "unet", "unet": "tiny", "num_steps": 50, "sampler_steps": 4, "num_classes": 10,
                "cfg_dropout": 0.1, "guidance": 1.5}


def _image_info(shape=(8, 8, 1), labels=True):
    features = {"image": (shape, np.dtype(np.uint8))}
    if labels:
        features["label"] = ((), np.dtype(np.int32))
    return kdata.DatasetInfo(name="toy_images", split="train", num_examples=64, features=features,
                             num_classes=10 if labels else None, num_bins=256)


def _image_batch(n=16, shape=(8, 8, 1)):
    rng = np.random.default_rng(0)
    return {"image": rng.integers(0, 256, (n, *shape)).astype(np.uint8),
            "label": rng.integers(0, 10, n).astype(np.int32)}


@pytest.fixture(scope="module")
def image_task():
    task = make_diffusion_task(_IMAGE_MODEL, _image_info())
    batch = _image_batch()
    params, state = task.init(batch, key=jax.random.key(0))
    return task, batch, params, state, _perturbed(params)


def _perturbed(params):
    # The UNet's output layers start at exactly zero (eps = 0 for every input); random weights make
    # the output depend on x, t and y, so that equalities between model calls can fail. NumPy
    # draws: a jitted jax.random per leaf costs tens of seconds of XLA compile on a busy CPU.
    rng = np.random.default_rng(42)
    return jax.tree.map(lambda p: np.asarray(p) + 0.05 * rng.standard_normal(p.shape).astype(np.float32), params)


def test_image_task_loss_starts_at_the_noise_variance_with_finite_grads(image_task):
    task, batch, params, state, _ = image_task
    config = task.extras["config"]
    assert config.event_shape == (8, 8, 1) and config.num_bins == 256 and config.unet.num_classes == 10

    def objective(p, key):
        out = task.loss(p, state, batch, key=key)
        return out.loss, out.metrics

    (value, metrics), grads = jax.jit(jax.value_and_grad(objective, has_aux=True))(params, jax.random.key(1))
    # eps_theta = 0 at init, so the pixel-mean loss is E eps^2 = 1 (16 x 64 draws: sd 0.044)
    np.testing.assert_allclose(float(value), 1.0, atol=0.2)
    np.testing.assert_allclose(float(metrics["eps_mse"]), float(value))
    leaves = jax.tree.leaves(grads)
    assert all(np.all(np.isfinite(g)) for g in leaves)
    assert any(float(jnp.abs(g).max()) > 0 for g in leaves)


def test_random_flip_trains_on_the_mirrored_batch_and_is_refused_for_vectors(image_task):
    task, batch, _, state, perturbed = image_task
    flip_task = make_diffusion_task({**_IMAGE_MODEL, "random_flip": True}, _image_info())
    key = jax.random.key(3)
    k_loss, k_flip = jax.random.split(key)
    mirrored = dict(batch, image=np.asarray(random_horizontal_flip(jnp.asarray(batch["image"]), key=k_flip)))
    # Some images mirrored, some not (16 fair coins): the comparison below is not vacuous.
    same = [np.array_equal(a, b) for a, b in zip(mirrored["image"], batch["image"], strict=True)]
    assert 0 < sum(same) < len(same)
    got = float(jax.jit(lambda p: flip_task.loss(p, state, batch, key=key).loss)(perturbed))
    want = float(jax.jit(lambda p: task.loss(p, state, mirrored, key=k_loss).loss)(perturbed))
    unflipped = float(jax.jit(lambda p: task.loss(p, state, batch, key=k_loss).loss)(perturbed))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert abs(got - unflipped) > 1e-4
    with pytest.raises(ValueError, match="random_flip: mirrors images"):
        make_diffusion_task({"hidden": (8,), "random_flip": True}, kdata.load("moons").info)
    with pytest.raises(ValueError, match="random_flip: expected a bool"):
        make_diffusion_task({**_IMAGE_MODEL, "random_flip": 1}, _image_info())


def test_image_task_samples_are_images_on_the_pixel_levels(image_task):
    task, _, _, state, perturbed = image_task
    images = jax.jit(task.sample, static_argnums=2)(perturbed, state, 12, key=jax.random.key(3))
    assert images.shape == (12, 8, 8, 1)
    images = np.asarray(images)
    assert np.all(np.isfinite(images)) and 0.0 <= images.min() <= images.max() <= 1.0
    np.testing.assert_allclose(images * 255, np.round(images * 255), atol=1e-4)
    assert images.std() > 0.01  # not all black: the samples went through the map from [-1, 1]


def test_classifier_free_guidance_with_w_zero_equals_the_conditional_model(image_task):
    task, _, params, state, perturbed = image_task
    x = jax.random.normal(jax.random.key(4), (4, 8, 8, 1))
    t = jnp.array([0.02, 0.3, 0.6, 0.9], jnp.float32)
    y = jnp.array([0, 3, 7, 9], jnp.int32)
    x2, t2, y2 = jnp.concatenate([x, x]), jnp.concatenate([t, t]), jnp.concatenate([y, y])

    def calls(p):
        model = task.extras["model"](p, state)
        both = model.eps(x2, t2, jnp.concatenate([y, jnp.full_like(y, _NULL)]))
        # per-example w = (0, 0, 0, 0, 2, 2, 2, 2): the batched (cond, uncond) path of
        # classifier_free_eps for w = 0 too (a Python 0 would take the conditional-only shortcut)
        guided = model.guided_eps(y2, jnp.repeat(jnp.array([0.0, 2.0]), 4))(x2, t2)
        return both[:4], both[4:], guided[:4], guided[4:]

    cond, uncond, w0, w2 = jax.jit(calls)(perturbed)
    assert float(jnp.max(jnp.abs(cond - uncond))) > 1e-2  # the label matters
    np.testing.assert_allclose(w0, cond, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(w2, 3.0 * cond - 2.0 * uncond, rtol=1e-4, atol=1e-4)
    # a Python w = 0 is the conditional model itself (no unconditional half is computed)
    model = task.extras["model"](params, state)
    assert model.guided_eps(y, 0.0).__name__ == "<lambda>"


class _LabelEcho(nnx.Module):
    """A stand-in UNet whose output is 100 on examples whose label is the null label, else 0."""

    def __call__(self, x, t, y, *, deterministic, key):
        assert not deterministic and key is not None  # training runs the UNet's dropout
        return jnp.where((y == _NULL)[:, None, None, None], 100.0, 0.0) * jnp.ones_like(x)


@pytest.mark.parametrize("p_uncond", [0.1, 0.3])
def test_label_dropout_rate_is_cfg_dropout(p_uncond):
    config = DiffusionConfig(**dict(_IMAGE_MODEL, cfg_dropout=p_uncond), event_shape=(8, 8, 1))
    model = nnx.eval_shape(lambda: DiffusionModel(config, rngs=nnx.Rngs(0)))
    model.net = _LabelEcho()
    n = 4000
    x0 = jnp.zeros((n, 8, 8, 1))
    y = jnp.arange(n, dtype=jnp.int32) % 10
    # a dropped label costs (100 - eps)^2 ~ 1e4 per pixel, a kept one eps^2 ~ 1
    per_example = model.loss(x0, y, key=jax.random.key(5))
    rate = float(jnp.mean(per_example > 5000.0))
    # binomial sd sqrt(p(1-p)/n) <= 0.0073; 4 sd
    assert abs(rate - p_uncond) < 0.03, rate


def test_image_configs_raise_value_errors():
    info = _image_info()
    with pytest.raises(ValueError, match="network"):
        DiffusionConfig(network="transformer")
    with pytest.raises(ValueError, match="event_shape"):  # ch_mult (1, 2, 2): h, w divisible by 4
        make_diffusion_task(dict(_IMAGE_MODEL, unet={"preset": "tiny", "ch_mult": (1, 2, 2)}),
                            _image_info((10, 10, 1)))
    with pytest.raises(ValueError, match="event_shape"):
        DiffusionConfig(network="unet", unet="tiny", event_shape=(2,))
    with pytest.raises(ValueError, match="unet"):
        DiffusionConfig(network="unet", unet={"chanels": 8}, event_shape=(8, 8, 1))
    with pytest.raises(ValueError, match="preset"):
        DiffusionConfig(network="unet", unet="huge", event_shape=(8, 8, 1))
    with pytest.raises(ValueError, match="num_classes"):
        DiffusionConfig(network="unet", unet={"preset": "tiny", "num_classes": 5}, event_shape=(8, 8, 1),
                        num_classes=10)
    with pytest.raises(ValueError, match="cfg_dropout"):
        DiffusionConfig(network="unet", unet="tiny", event_shape=(8, 8, 1), num_classes=10, cfg_dropout=1.5)
    with pytest.raises(ValueError, match="'image'"):
        make_diffusion_task(_IMAGE_MODEL, kdata.load("moons", split="test").info)
    with pytest.raises(ValueError, match="'x'"):
        make_diffusion_task({}, info)
    with pytest.raises(ValueError, match="label"):
        make_diffusion_task(_IMAGE_MODEL, _image_info(labels=False))
    with pytest.raises(ValueError, match="num_classes"):
        make_diffusion_task(dict(_IMAGE_MODEL, num_classes=5), info)
    with pytest.raises(ValueError, match="eval_bpd"):
        make_diffusion_task(dict(_IMAGE_MODEL, eval_bpd=("elbo",)), info)
    with pytest.raises(ValueError, match="vlb"):
        make_diffusion_task(dict(_IMAGE_MODEL, process="vp", sampler="auto", eval_bpd="vlb",
                                 eval_bpd_examples=2), info)


def test_evaluate_measures_bits_per_dim_on_images_spread_through_the_batch(image_task):
    _, batch, _, state, perturbed = image_task
    task = make_diffusion_task(dict(_IMAGE_MODEL, eval_bpd_examples=3, likelihood_rtol=1e-2,
                                    likelihood_atol=1e-2), _image_info())
    picked = spread_indices(16, 3)
    assert picked.tolist() == [0, 8, 15]  # first, middle, last; not the first three
    evaluate = jax.jit(task.evaluate)
    whole = evaluate(perturbed, state, batch, key=jax.random.key(6))
    sub = evaluate(perturbed, state, {k: v[picked] for k, v in batch.items()}, key=jax.random.key(6))
    head = evaluate(perturbed, state, {k: v[:3] for k, v in batch.items()}, key=jax.random.key(6))
    # Same images, same keys: the same solve. The batch's head is a different set of images.
    np.testing.assert_allclose(float(whole["ode_bpd"]), float(sub["ode_bpd"]), rtol=1e-6)
    assert abs(float(whole["ode_bpd"]) - float(head["ode_bpd"])) > 1e-4
    assert spread_indices(5, 1).tolist() == [0] and spread_indices(5, 5).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="n: expected 0 < n <= size"):
        spread_indices(3, 4)


def test_image_evaluate_reports_bits_per_dim_and_figures_at_each_guidance_weight(image_task):
    _, batch, params, state, perturbed = image_task
    task = make_diffusion_task(dict(_IMAGE_MODEL, eval_bpd_examples=2, eval_bpd=("ode", "vlb"),
                                    likelihood_rtol=1e-2, likelihood_atol=1e-2, figure_guidance=(0.0, 3.0),
                                    num_figure_samples=3), _image_info())
    metrics = jax.jit(task.evaluate)(params, state, batch, key=jax.random.key(6))
    assert sorted(metrics) == ["loss", "ode_bpd", "vlb_bpd"]
    # uniformly random pixels have 8 bits/dim of entropy; no model (nor bound) can do better
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert float(metrics["ode_bpd"]) > 7.5 and float(metrics["vlb_bpd"]) > 7.5, metrics
    figs = jax.jit(task.figures)(perturbed, state, batch, key=jax.random.key(7))
    assert sorted(figs) == ["samples_w0", "samples_w3"]
    assert all(v.shape == (3, 8, 8, 1) for v in figs.values())
    # same initial noise and labels, different guidance: different images
    assert float(jnp.abs(figs["samples_w0"] - figs["samples_w3"]).max()) > 0
