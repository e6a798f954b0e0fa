"""The class-conditional MLP diffusion model: label embedding, null label, classifier-free guidance, label checks, the 2-D task."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from kexue_jax import data as kdata
from kexue_jax.diffusion.diffusion_model import DiffusionConfig, DiffusionModel, make_diffusion_task
from kexue_jax.diffusion.task_data import angular_sector_labels
from kexue_jax.nn.time_mlp import TimeMLP
from kexue_jax.train import read_metrics, train
from tests.diffusion.engine_config import engine_config_2d

K = 3  # classes; label K is the null label
# zero_init_last=False: a zero output layer would make every label give eps = 0, and the tests vacuous.
_CONFIG = DiffusionConfig(hidden=(16, 16), embed_dim=8, num_steps=100, sampler_steps=10, num_classes=K,
                          zero_init_last=False)


@pytest.fixture(scope="module")
def model():
    return DiffusionModel(_CONFIG, rngs=nnx.Rngs(0))


def _inputs(b=4):
    x = jax.random.normal(jax.random.key(1), (b, 2))
    t = jnp.linspace(0.05, 0.95, b, dtype=jnp.float32)
    return x, t


def test_conditional_mlp_output_depends_on_the_label_and_takes_the_null_label(model):
    x, t = _inputs()
    outs = [model.eps(x, t, jnp.full((4,), label, jnp.int32)) for label in range(K + 1)]  # K: the null label
    assert all(o.shape == (4, 2) and o.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(o))) for o in outs)
    for a in range(K + 1):
        for b in range(a):
            assert float(jnp.max(jnp.abs(outs[a] - outs[b]))) > 1e-3, (a, b)
    # the label only enters through its embedding row: per example, not mixed across the batch
    mixed = model.eps(x, t, jnp.array([0, 1, 2, K], jnp.int32))
    np.testing.assert_allclose(mixed, jnp.stack([outs[i][i] for i in range(4)]), rtol=1e-5, atol=1e-6)
    assert model.net.label_embed.embedding[...].shape == (K + 1, 16)


def test_classifier_free_guidance_with_w_zero_equals_the_conditional_mlp(model):
    x, t = _inputs()
    y = jnp.array([0, 1, 2, 1], jnp.int32)
    x2, t2, y2 = jnp.concatenate([x, x]), jnp.concatenate([t, t]), jnp.concatenate([y, y])
    cond = model.eps(x, t, y)
    uncond = model.eps(x, t, jnp.full_like(y, K))
    assert float(jnp.max(jnp.abs(cond - uncond))) > 1e-3  # the label matters
    # per-example w = (0, 0, 0, 0, 2, 2, 2, 2) goes through the batched (cond, uncond) path for w = 0 too
    guided = jax.jit(lambda v, s: model.guided_eps(y2, jnp.repeat(jnp.array([0.0, 2.0]), 4))(v, s))(x2, t2)
    np.testing.assert_allclose(guided[:4], cond, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(guided[4:], 3.0 * cond - 2.0 * uncond, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.guided_eps(y, 0.0)(x, t), cond, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("y", "match"),
    [
        (jnp.array([0, 1, 2, K + 1]), r"y: expected labels in 0\.\.3"),
        (jnp.array([0, -1, 2, 1]), r"y: expected labels in 0\.\.3"),
        (jnp.zeros((4, 1), jnp.int32), r"y: expected shape \(4,\)"),
        (jnp.zeros((5,), jnp.int32), r"y: expected shape \(4,\)"),
        (jnp.zeros((4,), jnp.float32), "y: expected an integer dtype"),
        (None, "y: "),
    ],
)
def test_bad_labels_raise_value_errors_naming_y(model, y, match):
    x, t = _inputs()
    with pytest.raises(ValueError, match=match):
        model.eps(x, t, y)
    with pytest.raises(ValueError, match=match):
        model.loss(x, y, key=jax.random.key(0))
    if y is not None and y.shape == (4,):
        with pytest.raises(ValueError, match=match):
            model.sample(4, key=jax.random.key(0), y=y)
    if y is not None and "labels in" not in match:
        # The network itself checks shape and dtype (its labels may be traced), the model the values.
        with pytest.raises(ValueError, match=match):
            TimeMLP(2, (8,), num_classes=K, rngs=nnx.Rngs(0))(x, t, y)



def test_unconditional_mlp_rejects_labels_and_traced_labels_pass_the_static_checks():
    x, t = _inputs()
    with pytest.raises(ValueError, match="y: this TimeMLP is unconditional"):
        TimeMLP(2, (8,), rngs=nnx.Rngs(0))(x, t, jnp.zeros((4,), jnp.int32))
    net = TimeMLP(2, (8,), num_classes=K, zero_init_last=False, rngs=nnx.Rngs(0))
    # under jit the values are unknown: shape and dtype are still checked, the range cannot be
    jitted = jax.jit(lambda y: net(x, t, y))
    np.testing.assert_allclose(jitted(jnp.array([0, 1, 2, K])), net(x, t, jnp.array([0, 1, 2, K])), rtol=1e-6)
    with pytest.raises(ValueError, match=r"y: expected shape \(4,\)"):
        jitted(jnp.zeros((3,), jnp.int32))
    with pytest.raises(ValueError, match="num_classes"):
        TimeMLP(2, (8,), num_classes=0, rngs=nnx.Rngs(0))


class _LabelEcho(nnx.Module):
    """A stand-in TimeMLP whose output is 100 on examples whose label is the null label, else 0."""

    def __call__(self, x, t, y):
        return jnp.where((y == K)[:, None], 100.0, 0.0) * jnp.ones_like(x)


@pytest.mark.parametrize("p_uncond", [0.1, 0.3])
def test_mlp_label_dropout_rate_is_cfg_dropout(p_uncond):
    config = DiffusionConfig(hidden=(4,), embed_dim=4, num_steps=100, sampler_steps=10, num_classes=K,
                             cfg_dropout=p_uncond)
    model = nnx.eval_shape(lambda: DiffusionModel(config, rngs=nnx.Rngs(0)))
    model.net = _LabelEcho()
    n = 4000
    # a dropped label costs |100 - eps|^2 ~ 2e4, a kept one |eps|^2 ~ 2
    per_example = model.loss(jnp.zeros((n, 2)), jnp.arange(n, dtype=jnp.int32) % K, key=jax.random.key(5))
    rate = float(jnp.mean(per_example > 5000.0))
    # binomial sd sqrt(p(1-p)/n) <= 0.0073; 4 sd
    assert abs(rate - p_uncond) < 0.03, rate


def test_conditional_mlp_configs_raise_value_errors():
    info = kdata.load("eight_gaussians", split="test").info
    with pytest.raises(ValueError, match="unet"):
        DiffusionConfig(network="mlp", unet="tiny", num_classes=3)
    with pytest.raises(ValueError, match="num_classes"):
        DiffusionConfig(num_classes=0)
    with pytest.raises(ValueError, match="cfg_dropout"):
        DiffusionConfig(num_classes=3, cfg_dropout=-0.1)
    with pytest.raises(ValueError, match="labels='data' needs a 'label' feature"):
        make_diffusion_task({"num_classes": 8}, info)
    with pytest.raises(ValueError, match="labels"):
        make_diffusion_task({"num_classes": 8, "labels": "nearest"}, info)
    with pytest.raises(ValueError, match="labels: 'angular_sector' labels 2-D vectors"):
        make_diffusion_task({"num_classes": 8, "labels": "angular_sector", "event_shape": (3,)}, None)


def test_a_conditional_2d_model_trains_through_the_engine(tmp_path):
    c = engine_config_2d(
        {"hidden": (32, 32), "embed_dim": 8, "num_steps": 100, "sampler_steps": 20, "eval_points": 100,
         "num_figure_samples": 64, "plot_resolution": 16, "likelihood_rtol": 1e-2, "likelihood_atol": 1e-2,
         "num_classes": 8, "labels": "angular_sector", "cfg_dropout": 0.2, "figure_guidance": (0.0, 3.0)})
    result = train(c, tmp_path)
    losses = [r["loss"] for r in read_metrics(tmp_path / "metrics.jsonl", "train")]
    assert len(losses) == 6 and np.all(np.isfinite(losses))
    assert losses[-1] < 0.75 * losses[0], losses
    assert {"loss", "sw", "mmd", "ode_nll", "kl"} <= set(result.eval_metrics)
    assert all(np.isfinite(v) for v in result.eval_metrics.values()), result.eval_metrics
    names = {p.name.rsplit("_", 1)[0] for p in (tmp_path / "figures").glob("*.png")}
    assert {"samples", "samples_w0", "samples_w3", "true_density"} <= names, names
    # The trained model follows its label: samples drawn for sector k land in sector k far more
    # often than the 1/8 of an unconditional model.
    task = make_diffusion_task(c.model, kdata.load("eight_gaussians", split="train").info)
    net = task.extras["model"](result.state.params, result.state.model_state)
    y = jnp.arange(400, dtype=jnp.int32) % 8
    x = jax.jit(lambda k: net.sample(400, key=k, y=y, guidance=1.0))(jax.random.key(3))
    hit = float(jnp.mean(angular_sector_labels(x, 8) == y))
    assert hit > 0.5, hit
