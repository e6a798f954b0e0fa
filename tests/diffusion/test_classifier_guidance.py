"""Classifier guidance end to end on an exact problem, the classifier-judged sample quality, and the
ddpm-mnist5k quality script on smoke checkpoints."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from kexue_jax.diffusion import (
    SAMPLERS,
    ModelFns,
    classifier_frechet_distance,
    conditional_accuracy,
    linear_schedule,
    marginal_coeffs,
    quantize_pixels,
)
from kexue_jax.diffusion.classifier_model import classifier_guided_fns
from kexue_jax.diffusion.diffusion_model import ScheduleVPSDE
from kexue_jax.nn.classifier import Classifier
from kexue_jax.train import load_config
from kexue_jax.train.loop import initial_state, setup

REPO = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------------------------------
# Two Gaussian classes N(+-mu, sigma^2 I) under DDPM's forward process: p_t(x | y) stays Gaussian,
# N(a_t mu_y, (a_t^2 sigma^2 + s_t^2) I), so the mixture's eps and the noisy posterior p_t(y | x) are exact.

MEANS = jnp.array([[1.0, 0.0], [-1.0, 0.0]])
SIGMA = 0.5
SCHEDULE = linear_schedule(1000)
SDE = ScheduleVPSDE(SCHEDULE)
N = 2000


def _log_joint(x, a, s):
    """log N(x; a mu_k, v I) for both classes k, [b, 2] (equal priors drop out)."""
    v = (a * SIGMA) ** 2 + s**2
    d2 = jnp.sum((x[:, None, :] - a[:, None, None] * MEANS[None]) ** 2, axis=-1)
    return -0.5 * d2 / v[:, None]


def _exact_log_prob(x, t, y):
    a, s = SDE.marginal_coeffs(t)
    log_post = jax.nn.log_softmax(_log_joint(x, a, s), axis=-1)
    return jnp.take_along_axis(log_post, y[:, None], axis=-1)[:, 0]


def _mixture_score(x, a, s):
    v = (a * SIGMA) ** 2 + s**2
    w = jax.nn.softmax(_log_joint(x, a, s), axis=-1)
    mean = w @ MEANS * a[:, None]
    return -(x - mean) / v[:, None]


def _model() -> ModelFns:
    def eps(x, i):
        a, s = marginal_coeffs(SCHEDULE, i)
        return -s[:, None] * _mixture_score(x, a, s)

    def score(x, t):
        return _mixture_score(x, *SDE.marginal_coeffs(t))

    return ModelFns(SCHEDULE, eps, SDE, score)


def _in_class(x, label):
    # The Bayes classifier of the clean classes: class 0 on the right half-plane.
    return np.asarray(x[:, 0] > 0) == (label == 0)


def test_exact_classifier_guidance_draws_the_requested_class_more_often_as_gamma_grows():
    y = jnp.zeros((N,), jnp.int32)
    sampler = SAMPLERS["ddpm_large"]
    guided = jax.jit(lambda scale, key: sampler(
        classifier_guided_fns(_model(), _exact_log_prob, y, scale=scale), (N, 2), num_steps=500, key=key))
    plain = jax.jit(lambda key: sampler(_model(), (N, 2), num_steps=500, key=key))
    key = jax.random.key(0)
    samples = {g: np.asarray(guided(jnp.float32(g), key)) for g in (0.0, 1.0, 3.0)}
    # gamma = 0 is the unguided sampler, draw for draw.
    np.testing.assert_array_equal(samples[0.0], plain(key))
    frac = {g: _in_class(x, 0).mean() for g, x in samples.items()}
    se = lambda p: math.sqrt(p * (1 - p) / N)
    # Without guidance: the mixture, half in each class.
    assert abs(frac[0.0] - 0.5) < 5 * se(0.5), frac
    # gamma = 1: the exact p(x | y = 0) = N(mu_0, sigma^2 I), of which Phi(|mu| / sigma) = Phi(2) is on its side.
    p1 = 0.5 * (1 + math.erf(2 / math.sqrt(2)))
    assert abs(frac[1.0] - p1) < 5 * se(p1), frac
    # gamma = 3 sharpens further: p(x) p(y | x)^3.
    assert frac[3.0] > frac[1.0] + 3 * se(p1), frac


@jax.jit
def _guided_model_values(x, i):
    """(eps, score) of the model guided at gamma = 1 and 0, and of the class-0 Gaussian, at step i / time (i+1)/T."""
    y = jnp.zeros((x.shape[0],), jnp.int32)
    t = (i.astype(jnp.float32) + 1.0) / SCHEDULE.num_steps
    one, zero = (classifier_guided_fns(_model(), _exact_log_prob, y, scale=g) for g in (1.0, 0.0))
    a, s = SDE.marginal_coeffs(t)
    v = (a * SIGMA) ** 2 + s**2
    class_score = -(x - a[:, None] * MEANS[0]) / v[:, None]
    return (one.eps_fn(x, i), one.score_fn(x, t), -s[:, None] * class_score, class_score,
            zero.eps_fn(x, i), zero.score_fn(x, t), _model().eps_fn(x, i), _model().score_fn(x, t))


def test_guided_model_fns_give_the_class_conditional_model_in_both_parameterisations():
    """gamma = 1 with the exact p_t(y | x): eps and score of p_t(x | y) (Bayes); gamma = 0: the model itself."""
    x = jax.random.normal(jax.random.key(5), (6, 2)) * 1.5
    i = jnp.array([0, 10, 100, 400, 700, 999])
    eps1, score1, eps_class, score_class, eps0, score0, eps, score = map(np.asarray, _guided_model_values(x, i))
    np.testing.assert_allclose(eps1, eps_class, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(score1, score_class, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(eps0, eps)
    np.testing.assert_array_equal(score0, score)
    assert not np.allclose(eps, eps_class, atol=1e-2)  # the mixture is not the class


# ---------------------------------------------------------------------------------------------
# Classifier-judged sample quality.


def test_classifier_frechet_distance_is_zero_for_identical_sets_and_grows_with_a_shift():
    x = jax.random.normal(jax.random.key(0), (300, 3))
    linear = jnp.array([[1.0, 0.5], [0.0, 2.0], [1.0, -1.0]])

    def features(v):
        return v @ linear

    assert classifier_frechet_distance(features, x, x, batch_size=128) < 1e-9
    # A shift delta of the inputs shifts the features by delta @ linear and keeps their covariance,
    # so the distance is exactly |delta @ linear|^2.
    distances = []
    for c in (0.1, 0.5, 2.0):
        delta = c * jnp.array([1.0, -1.0, 0.5])
        d = classifier_frechet_distance(features, x + delta, x, batch_size=128)
        np.testing.assert_allclose(d, float(jnp.sum((delta @ linear) ** 2)), rtol=1e-6)
        distances.append(d)
    assert distances[0] < distances[1] < distances[2]
    # The same with a (random) classifier's penultimate features.
    net = Classifier((3,), 3, widths=(16,), feature_dim=4, rngs=nnx.Rngs(0))
    same = classifier_frechet_distance(net.features, x, x, batch_size=128)
    shifted = classifier_frechet_distance(net.features, x + 1.0, x, batch_size=128)
    assert same < 1e-9 and shifted > 1e-3


def test_conditional_accuracy_is_the_fraction_predicted_as_the_requested_label():
    # The "samples" are their own logits: predicted classes 0, 2, 1, 1, 2, 0.
    logits = np.eye(3)[[0, 2, 1, 1, 2, 0]] + 0.1
    labels = np.array([0, 1, 1, 2, 2, 0])  # right: 0, 2, 4, 5 -> 4 of 6; class 0: 2/2, 1: 1/2, 2: 1/2
    acc, per_class = conditional_accuracy(lambda v: v, logits, labels, batch_size=4)
    assert acc == pytest.approx(4 / 6)
    np.testing.assert_allclose(per_class, [1.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="labels: expected integer labels"):
        conditional_accuracy(lambda v: v, logits, labels[:5])
    with pytest.raises(ValueError, match="labels: expected values in 0..2"):
        conditional_accuracy(lambda v: v, logits, labels + 1)
    with pytest.raises(ValueError, match="samples, reference: expected the same event shape"):
        classifier_frechet_distance(lambda v: v, logits, logits[:, :2])


def test_quantize_pixels_rounds_to_the_data_levels():
    x = jnp.array([-1.7, -1.0, -0.0039, 0.0041, 0.5, 1.2, jnp.nan])
    q = np.asarray(quantize_pixels(x, 256))
    levels = (q + 1) * 127.5
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-4)
    np.testing.assert_allclose(q[[0, 1, 5, 6]], [-1.0, -1.0, 1.0, -1.0])
    np.testing.assert_array_equal(np.asarray(quantize_pixels(jnp.asarray(q), 256)), q)
    assert q[2] < q[3]  # 127 and 128 stay apart


# ---------------------------------------------------------------------------------------------
# The quality script of ddpm-mnist5k, in process, on freshly initialised smoke checkpoints.


def _quality_module():
    spec = importlib.util.spec_from_file_location("ddpm_mnist5k_quality", REPO / "experiments/ddpm_mnist5k/quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _smoke_checkpoint(name: str, workdir: Path) -> None:
    run = setup(load_config(name, smoke=True), workdir)
    run.checkpointer.save(0, initial_state(run))
    run.checkpointer.close()


@pytest.mark.slow  # about 20 s: the eager init of the smoke UNet and three checkpoints dominate
def test_quality_script_runs_end_to_end_on_smoke_checkpoints(tmp_path):
    dirs = {name: tmp_path / name for name in ("ddpm-mnist5k", "mnist5k-classifier", "mnist5k-noisy-classifier")}
    for name, workdir in dirs.items():
        _smoke_checkpoint(name, workdir)
    out = tmp_path / "quality.json"
    result = _quality_module().main([
        "--smoke", "--ddpm-workdir", str(dirs["ddpm-mnist5k"]), "--classifier-workdir", str(dirs["mnist5k-classifier"]),
        "--noisy-classifier-workdir", str(dirs["mnist5k-noisy-classifier"]), "--sampler", "ddim", "--steps", "2",
        "--guidance", "1", "--classifier-scale", "2", "--num-samples", "24", "--batch-size", "16", "--out", str(out)])
    written = json.loads(out.read_text())
    assert written["num_samples"] == 24 and written["ddpm"]["steps"] == 2 and written["ddpm"]["sampler"] == "ddim"
    assert written["classifier_guidance"]["scale"] == 2.0
    assert "not FID" in written["metric_note"]
    for key in ("classifier_frechet_distance", "classifier_frechet_distance_train_vs_test", "conditional_accuracy",
                "classifier_test_accuracy"):
        assert np.isfinite(written[key]) and written[key] >= 0, key
    assert 0 <= written["conditional_accuracy"] <= 1 and len(written["per_class_accuracy"]) == 10
    assert result["out"] == str(out)


@pytest.mark.parametrize("args, match", [
    (["--steps", "0"], "--steps"),
    (["--sampler", "heun"], "--sampler"),
    (["--num-samples", "1"], "--num-samples"),
    (["--batch-size", "0"], "--batch-size"),
    (["--classifier-scale", "-1"], "--classifier-scale"),
    (["--unconditional", "--guidance", "1"], "--guidance"),
])
def test_quality_script_rejects_bad_arguments_by_name(args, match):
    with pytest.raises(ValueError, match=match):
        _quality_module().main(args)
