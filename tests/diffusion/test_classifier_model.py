"""The classifier task: noisy p(y | x_t, t) for classifier guidance, clean p(y | x) for sample quality."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax import data as kdata
from kexue_jax.diffusion.classifier_model import (
    ClassifierConfig,
    ClassifierModel,
    _shift,
    angular_sector_labels,
    check_same_process,
    classifier_log_prob_fn,
    make_classifier_task,
)
from kexue_jax.diffusion.diffusion_model import DiffusionConfig, build_process
from kexue_jax.nn.classifier import Classifier
from kexue_jax.train import build_task, load_config, read_metrics, train

_VECTOR = {"noise": "forward", "labels": "angular_sector", "num_classes": 8, "widths": (16, 16), "feature_dim": 8,
           "embed_dim": 8, "num_steps": 100, "eval_times": (0.5,)}


def _density_batch(n=256):
    return kdata.load("eight_gaussians", split="test").get_batch(np.arange(n))


def _image_info():
    features = {"image": ((8, 8, 1), np.dtype(np.uint8)), "label": ((), np.dtype(np.int32))}
    return kdata.DatasetInfo(name="toy_images", split="train", num_examples=16, features=features,
                             num_classes=3, num_bins=256)


def _image_batch(n=6):
    rng = np.random.default_rng(0)
    return {"image": rng.integers(0, 256, (n, 8, 8, 1)).astype(np.uint8),
            "label": rng.integers(0, 3, n).astype(np.int32)}


def test_the_task_is_registered_and_a_smoke_engine_run_lowers_the_loss(tmp_path):
    config = load_config("classifier-guidance-2d", smoke=True, steps=60)
    config.train.update({"log_every": 20, "eval_every": 0, "checkpoint_every": 60, "ema_decay": 0.0,
                         "progress": False})
    config.data.update({"kwargs": {"num_examples": 2000}, "eval_batch_size": 2000})
    config.optim.learning_rate = 3e-2
    result = train(config, tmp_path)
    losses = [r["loss"] for r in read_metrics(tmp_path / "metrics.jsonl", "train")]
    assert len(losses) == 3 and np.all(np.isfinite(losses))
    # From about log 8 = 2.08 (chance over 8 components) to clearly below (measured 1.89 -> 1.50);
    # the noise of large t keeps the mean loss far from 0.
    assert losses[0] > 1.6 and losses[-1] < 0.85 * losses[0], losses
    metrics = result.eval_metrics
    assert sorted(metrics) == ["accuracy", "accuracy_t0.5", "loss", "nll", "nll_t0.5"]
    # The clean points are easier to classify than the half-noised ones.
    assert metrics["accuracy"] > metrics["accuracy_t0.5"] and metrics["nll"] < metrics["nll_t0.5"]
    assert build_task("classifier", config.model, kdata.load("eight_gaussians", split="test").info).name == \
        "classifier[forward,ddpm]"


def test_time_enters_the_network_and_only_a_noisy_classifier_takes_it():
    net = Classifier((2,), 3, widths=(8, 8), time_conditional=True, embed_dim=8, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 2))
    a, b = net(x, jnp.array([0.1, 0.1])), net(x, jnp.array([0.9, 0.9]))
    assert np.abs(np.asarray(a - b)).max() > 1e-4
    np.testing.assert_array_equal(np.asarray(net(x, 0.1)), np.asarray(a))  # a scalar t is broadcast
    with pytest.raises(ValueError, match="t: a time-conditional classifier needs times"):
        net(x)
    with pytest.raises(ValueError, match="t: expected a scalar or shape"):
        net(x, jnp.zeros((3,)))
    clean = Classifier((2,), 3, widths=(8,), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="t: this classifier is not time-conditional"):
        clean(x, jnp.zeros((2,)))
    with pytest.raises(ValueError, match=r"x: expected shape \(b, 2\)"):
        clean(jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="event_shape: expected images"):
        Classifier((8, 8), 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="num_groups: must divide every width"):
        Classifier((8, 8, 1), 3, widths=(12,), num_groups=8, rngs=nnx.Rngs(0))


def test_image_task_log_probs_normalise_and_evaluate_reports_each_noise_level():
    task = make_classifier_task({"noise": "forward", "num_classes": 3, "widths": (8, 16), "depth": 1,
                                 "feature_dim": 8, "num_groups": 4, "embed_dim": 8, "num_steps": 50,
                                 "eval_times": (0.25,)}, _image_info())
    batch = _image_batch()
    params, state = task.init(batch, key=jax.random.key(0))
    x = task.extras["inputs"](batch)

    @jax.jit
    def per_class(params, x):
        log_prob = classifier_log_prob_fn(task, params, state)
        return jnp.stack([log_prob(x, jnp.full((6,), 0.3), jnp.full((6,), k, jnp.int32)) for k in range(3)])

    np.testing.assert_allclose(np.asarray(jax.nn.logsumexp(per_class(params, x), axis=0)), 0.0, atol=1e-5)
    metrics = jax.jit(task.evaluate)(params, state, batch, key=jax.random.key(1))
    assert sorted(metrics) == ["accuracy", "accuracy_t0.25", "loss", "nll", "nll_t0.25"]
    assert all(np.isfinite(float(v)) for v in metrics.values())
    clean = make_classifier_task({"num_classes": 3, "widths": (8, 16), "feature_dim": 8, "num_groups": 4},
                                 _image_info())
    with pytest.raises(ValueError, match="noise='forward'"):
        classifier_log_prob_fn(clean, *clean.init(batch, key=jax.random.key(0)))


def test_noised_inputs_follow_the_diffusion_models_marginals():
    config = ClassifierConfig(noise="forward", event_shape=(2,), widths=(8,), num_classes=2, diffusion={"num_steps": 100})
    model = ClassifierModel(config, rngs=nnx.Rngs(0))
    x0 = jnp.ones((20000, 2))
    x_t, t = model.noised(x0, key=jax.random.key(3))
    # DDPM times are the grid (i + 1) / T.
    np.testing.assert_allclose(np.asarray(t * 100), np.round(np.asarray(t * 100)), atol=1e-4)
    _, sde = build_process(DiffusionConfig(num_steps=100, sampler_steps=1))
    m, s = sde.marginal_coeffs(t)
    z = (np.asarray(x_t) - np.asarray(m)[:, None]) / np.asarray(s)[:, None]
    # 5 standard errors: of the mean 1/sqrt(n), of the std about 1/sqrt(2n).
    assert abs(z.mean()) < 5 / math.sqrt(z.size) and abs(z.std() - 1) < 5 / math.sqrt(2 * z.size)


@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 7))
def test_angular_sectors_rotate_with_the_points_and_the_centres_are_their_own_component(seed, k):
    angles = jnp.arange(8) * (math.pi / 4)
    centres = 2.0 * jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=-1)
    np.testing.assert_array_equal(np.asarray(angular_sector_labels(centres, 8)), np.arange(8))
    x = jax.random.normal(jax.random.key(seed), (64, 2))
    c, s = math.cos(k * math.pi / 4), math.sin(k * math.pi / 4)
    rotated = x @ jnp.array([[c, s], [-s, c]])
    got = np.asarray(angular_sector_labels(rotated, 8))
    np.testing.assert_array_equal(got, (np.asarray(angular_sector_labels(x, 8)) + k) % 8)


def test_shift_augmentation_moves_the_digit_by_at_most_max_shift():
    image = jnp.full((64, 8, 8, 1), -1.0).at[:, 4, 3, 0].set(1.0)
    shifted = np.asarray(_shift(image, 2, jax.random.key(0)))
    rows, cols = np.nonzero(shifted[..., 0] > 0)[1:]
    assert np.all(np.abs(rows - 4) <= 2) and np.all(np.abs(cols - 3) <= 2)
    assert len(set(zip(rows, cols, strict=True))) > 10  # the offsets vary
    assert np.all(np.isin(shifted, [-1.0, 1.0]))  # the fill is the background level


def test_bad_configs_raise_value_errors_naming_the_field():
    info = _image_info()
    for cfg, match in [({"noise": "gaussian"}, "noise"),
                       ({"labels": "angular_sector"}, "labels"),
                       ({"noise": "forward", "max_shift": 2}, "max_shift"),
                       ({"process": "edm"}, "process"),
                       ({"diffusion": {"T": 5}}, r"diffusion: unknown keys \['T'\]"),
                       ({"diffusion": {"num_steps": 5}, "num_steps": 5}, "flat keys"),
                       ({"widht": (8,)}, r"model_config: unknown keys \['widht'\]"),
                       ({"event_shape": (4, 4, 1)}, "event_shape"),
                       ({"num_classes": 2}, "num_classes")]:
        with pytest.raises(ValueError, match=match):
            make_classifier_task({"widths": (8,), "num_groups": 4, **cfg}, info)
    with pytest.raises(ValueError, match="labels='data' needs a 'label' feature"):
        make_classifier_task({"noise": "forward"}, kdata.load("eight_gaussians", split="test").info)


def test_guidance_needs_the_diffusion_models_forward_process():
    classifier = ClassifierConfig(noise="forward", diffusion={"num_steps": 100})
    check_same_process(classifier, DiffusionConfig(num_steps=100, sampler_steps=1))
    with pytest.raises(ValueError, match="num_steps"):
        check_same_process(classifier, DiffusionConfig(num_steps=1000))
    with pytest.raises(ValueError, match="schedule"):
        check_same_process(classifier, DiffusionConfig(num_steps=100, sampler_steps=1, schedule="cosine"))
    with pytest.raises(ValueError, match="noise='forward'"):
        check_same_process(ClassifierConfig(diffusion={"num_steps": 100}), DiffusionConfig(num_steps=100, sampler_steps=1))
