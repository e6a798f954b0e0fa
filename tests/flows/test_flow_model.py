"""The NNX flow models (NICE, RealNVP, Glow) and their engine task."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from kexue_jax import data as kdata
from kexue_jax._src.random import make_key, split_named
from kexue_jax.flows import NICE, Flow, FlowConfig, Glow, RealNVP, make_flow_task
from kexue_jax.metrics import bits_per_dim
from kexue_jax.nn.functional import split_module
from kexue_jax.train import build_task, train

SHAPE = (2, 4, 4, 2)

MODELS = {
    "nice": lambda x: NICE(x, rngs=nnx.Rngs(0), event_shape=x.shape[1:], depth=4, hidden=8, net_depth=1,
                           learn_top=False),
    "realnvp": lambda x: RealNVP(x, rngs=nnx.Rngs(0), event_shape=x.shape[1:], levels=2, hidden=4, net_depth=1,
                                 preprocess="logit", scale="exp", learn_top=False),
    "glow": lambda x: Glow(x, rngs=nnx.Rngs(0), event_shape=x.shape[1:], levels=2, depth=1, hidden=4),
    "glow_conditional": lambda x: Glow(x, rngs=nnx.Rngs(0), event_shape=x.shape[1:], levels=2, depth=1,
                                       hidden=4, num_classes=3, permutation="conv1x1"),
}


def _perturbed(module, key, scale=0.05):
    graphdef, params, state = split_module(module)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    noisy = jax.tree.unflatten(treedef, [v + scale * jax.random.normal(k, v.shape) for v, k in zip(leaves, keys)])
    return nnx.merge(graphdef, noisy, state) if state else nnx.merge(graphdef, noisy)


@functools.cache
def _model(name):
    # 32 init examples: actnorm's statistics on the 1×1 top level need more than a couple of values.
    x = jax.random.uniform(jax.random.key(0), (32, *SHAPE[1:]))
    return _perturbed(MODELS[name](x), jax.random.key(1))


def _labels(name, n):
    return jnp.arange(n, dtype=jnp.int32) % 3 if name == "glow_conditional" else None


# "glow" (LU 1×1 conv, unconditional) is the flow of test_multiscale.py's round-trip and Jacobian
# tests; here the conditional Glow covers the model shell, so the suite compiles one Glow less.
@pytest.mark.parametrize("name", ["glow_conditional", "nice", "realnvp"])
def test_model_round_trip_and_log_prob_is_change_of_variables(name):
    model = _model(name)
    x = jax.random.uniform(jax.random.key(2), SHAPE, minval=0.05, maxval=0.95)
    labels = _labels(name, 2)

    @nnx.jit
    def run(m, v, y):
        z, ld = m.forward(v)
        return z, ld, m.inverse(z), m.log_prob(v, y)

    z, ld, x_back, log_prob = run(model, x, labels)
    np.testing.assert_allclose(x_back, x, rtol=1e-4, atol=1e-5)
    # log p(x) = log N(z) + log|det J| (exact for the unconditional standard-normal prior)
    if name in ("nice", "realnvp"):
        zs = z if isinstance(z, tuple) else (z,)
        flat = jnp.concatenate([v.reshape(2, -1) for v in zs], -1)
        expected = jnp.sum(-0.5 * flat**2 - 0.5 * jnp.log(2 * jnp.pi), -1) + ld
        np.testing.assert_allclose(log_prob, expected, rtol=1e-5)
    if name.startswith("glow"):
        return  # a whole small Glow's log-det against jacfwd: tests/flows/test_multiscale.py

    # the log-det is the Jacobian's (with NICE's reshape and RealNVP's logit inside the flow)
    def f(v):
        zz, _ = model.forward(v.reshape(1, *SHAPE[1:]))
        zz = zz if isinstance(zz, tuple) else (zz,)
        return jnp.concatenate([t.reshape(-1) for t in zz])

    _, logabs = jnp.linalg.slogdet(jax.jit(jax.jacfwd(f))(x[:1].reshape(-1)))
    np.testing.assert_allclose(float(ld[0]), float(logabs), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("name", ["glow_conditional"])  # learned top prior + class shift
def test_sampling_temperature_zero_is_the_prior_mode_and_temperature_scales_spread(name):
    model = _model(name)
    labels = _labels(name, 6)
    sample = nnx.jit(lambda m, key, t, y: m.sample(6, key=key, temperature=t, labels=y))
    a = sample(model, jax.random.key(0), 0.0, labels)
    b = sample(model, jax.random.key(1), 0.0, labels)
    np.testing.assert_allclose(a, b, rtol=1e-6)  # T = 0: no randomness left
    z_model = nnx.jit(lambda m, v: m.forward(v)[0])
    cold = z_model(model, sample(model, jax.random.key(2), 0.5, labels))
    hot = z_model(model, sample(model, jax.random.key(2), 1.0, labels))
    # same noise, twice the temperature: the factored-out latents are exactly twice as large
    np.testing.assert_allclose(hot[0], 2.0 * cold[0], rtol=1e-3, atol=1e-4)
    # one temperature per sample gives the same samples as separate calls
    mixed = sample(model, jax.random.key(2), jnp.array([0.5, 0.5, 0.5, 1.0, 1.0, 1.0]), labels)
    np.testing.assert_allclose(mixed[:3], sample(model, jax.random.key(2), 0.5, labels)[:3], rtol=1e-5, atol=1e-6)


def test_class_conditional_prior_needs_labels_and_unconditional_refuses_them():
    x = jax.random.uniform(jax.random.key(2), SHAPE)
    with pytest.raises(ValueError, match="labels"):
        _model("glow_conditional").log_prob(x)
    with pytest.raises(ValueError, match="labels"):
        _model("glow").log_prob(x, jnp.zeros((2,), jnp.int32))


def test_model_errors_name_the_argument():
    x = jax.random.uniform(jax.random.key(0), SHAPE)
    with pytest.raises(ValueError, match="x"):
        _model("glow").log_prob(x[..., :1])
    with pytest.raises(ValueError, match="event_shape"):
        FlowConfig(architecture="glow", event_shape=(28, 28, 1), levels=3)
    with pytest.raises(ValueError, match="architecture"):
        FlowConfig(architecture="maf")
    with pytest.raises(ValueError, match="example"):
        Flow(FlowConfig(event_shape=(4, 4, 2)), jnp.zeros((2, 4, 4, 1)), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="num_classes"):
        FlowConfig(event_shape=(4, 4, 2), num_classes=3, learn_top=False)


# ------------------------------------------------------------------------------------- task


def _digits_task(**model):
    info = kdata.load("digits", split="train").info
    cfg = dict(architecture="glow", levels=2, depth=1, hidden=4, num_figure_samples=4)
    cfg.update(model)
    return make_flow_task(cfg, info), info


def test_task_bpd_is_the_shared_conversion_and_figures_have_each_temperature():
    task, info = _digits_task(num_classes=10)
    batch = kdata.Batcher(kdata.load("digits", split="train"), 8, seed=0).batch_at(0)
    params, state = task.init(batch, key=jax.random.key(0))
    out = jax.jit(task.loss)(params, state, batch, key=jax.random.key(1))
    d = 8 * 8 * 1
    np.testing.assert_allclose(float(out.loss), float(out.metrics["nll"]) / d, rtol=1e-6)
    expected_bpd = float(bits_per_dim(-out.metrics["nll"], num_dims=d, bin_width=1 / info.num_bins))
    np.testing.assert_allclose(float(out.metrics["bpd"]), expected_bpd, rtol=1e-5)
    assert float(out.metrics["bpd"]) > 0.0
    figs = jax.jit(task.figures)(params, state, batch, key=jax.random.key(2))
    assert sorted(figs) == ["samples_t0.5", "samples_t0.7", "samples_t1"]
    for images in figs.values():
        assert images.shape == (4, 8, 8, 1) and float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    grads = jax.jit(jax.grad(lambda p: task.loss(p, state, batch, key=jax.random.key(1)).loss))(params)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


def test_task_pads_images_and_crops_samples():
    task, _ = _digits_task(pad=2, levels=2)  # 8x8 -> 12x12: two squeezes fit (8x8 would too)
    assert task.extras["config"].event_shape == (12, 12, 1)
    batch = kdata.Batcher(kdata.load("digits", split="train"), 4, seed=0).batch_at(0)
    params, state = task.init(batch, key=jax.random.key(0))
    images = jax.jit(task.sample, static_argnums=2)(params, state, 3, key=jax.random.key(1))
    assert images.shape == (3, 8, 8, 1)


def test_task_rejects_unknown_keys_and_mismatched_shapes():
    info = kdata.load("digits", split="train").info
    with pytest.raises(ValueError, match="unknown keys"):
        make_flow_task({"architecture": "glow", "widht": 3}, info)
    with pytest.raises(ValueError, match="event_shape"):
        make_flow_task({"architecture": "glow", "levels": 1, "event_shape": (28, 28, 1)}, info)
    with pytest.raises(ValueError, match="batch"):
        task, _ = _digits_task()
        task.init({"x": jnp.zeros((2, 8, 8, 1))}, key=jax.random.key(0))


def test_2d_task_reports_the_exact_kl_and_density_pictures():
    info = kdata.load("moons", split="test").info
    task = make_flow_task({"architecture": "coupling_2d", "depth": 2, "hidden": 8, "plot_resolution": 16}, info)
    test = kdata.load("moons", split="test")
    batch = test.get_batch(np.arange(512))
    params, state = task.init(batch, key=jax.random.key(0))
    metrics = jax.jit(task.evaluate)(params, state, batch, key=jax.random.key(1))
    true_lp = kdata.log_density("moons", jnp.asarray(batch["x"]))
    np.testing.assert_allclose(float(metrics["kl"]), float(jnp.mean(true_lp) + metrics["nll"]), rtol=1e-5)
    assert float(metrics["kl"]) > 0.05  # an untrained flow is far from the moons
    figs = jax.jit(task.figures)(params, state, batch, key=jax.random.key(2))
    assert sorted(figs) == ["density", "samples", "true_density"]
    assert all(v.shape == (1, 16, 16, 1) for v in figs.values())


def _flow_config(steps=6):
    c = ml_collections.ConfigDict()
    c.name = "flow-resume"
    c.task = "flow"
    c.seed = 1
    c.data = ml_collections.ConfigDict(
        dict(name="moons", split="train", eval_split="test", batch_size=64, eval_batch_size=500, data_dir=""))
    c.model = ml_collections.ConfigDict(
        dict(architecture="coupling_2d", depth=2, hidden=8, use_actnorm=True, permutation="conv1x1_lu",
             plot_resolution=8))
    c.optim = ml_collections.ConfigDict(
        dict(name="adam", learning_rate=1e-2, schedule="constant", warmup_steps=2, end_factor=1.0, grad_clip_norm=1.0))
    c.train = ml_collections.ConfigDict(
        dict(steps=steps, log_every=3, eval_every=0, sample_every=0, checkpoint_every=3, keep_checkpoints=2,
             ema_decay=0.0, num_samples=1, progress=False))
    return c


def test_actnorm_is_initialised_on_the_first_batch_and_restored_not_reinitialised_on_resume(tmp_path):
    config = _flow_config()
    full = train(config, tmp_path / "full")
    first = train(config, tmp_path / "resumed", stop_after=3)
    second = train(config, tmp_path / "resumed")
    assert second.resumed_from == 3
    for a, b in zip(jax.tree.leaves(full.state.params), jax.tree.leaves(second.state.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the fresh init differs from the checkpointed params: had resume re-initialised actnorm,
    # the resumed run could not equal the uninterrupted one
    task = build_task("flow", config.model, kdata.load("moons", split="train").info)
    batch = kdata.Batcher(kdata.load("moons", split="train"), 64, seed=config.seed).batch_at(0)
    fresh, _ = task.init(batch, key=jax.random.key(0))
    # the flow's params are its one step's (actnorm, permutation, coupling) stacked over depth
    fresh_actnorm = np.asarray(fresh["flow"][0]["bias"][0])
    trained_actnorm = np.asarray(first.state.params["flow"][0]["bias"][0])
    assert not np.allclose(fresh_actnorm, trained_actnorm)
    # the actnorm of the first step standardises the first training batch at init
    x = jnp.asarray(batch["x"])
    params = jax.tree.map(lambda a: a[0], fresh["flow"][0])
    out = x * jnp.exp(params["log_scale"]) + params["bias"]
    np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(0), 1.0, atol=1e-4)


@pytest.mark.parametrize("permutation", ["conv1x1_lu", "shuffle"])
def test_fixed_permutations_are_model_state_that_weight_decay_never_touches(tmp_path, permutation):
    # AdamW's decoupled decay multiplies every optimised leaf by (1 - lr·wd) each step; kept among
    # the params, P, the signs and the shuffle order would shrink toward 0 until ties corrupt them.
    config = _flow_config(steps=4)
    config.model.permutation = permutation
    config.optim = ml_collections.ConfigDict(dict(
        name="adamw", learning_rate=1e-2, weight_decay=10.0, schedule="constant", warmup_steps=0,
        end_factor=1.0, grad_clip_norm=1.0))
    config.train.checkpoint_every = 0
    task = build_task("flow", config.model, kdata.load("moons", split="train").info)
    batch = kdata.Batcher(kdata.load("moons", split="train"), 64, seed=config.seed).batch_at(0)
    # the engine's own init (its key is the "init" stream of the seed)
    params0, state0 = task.init(batch, key=split_named(make_key(config.seed), "init")["init"])
    fixed = {"conv1x1_lu": {"p_order", "sign"}, "shuffle": {"order"}}[permutation]

    def keys_of(tree):
        return {getattr(path[-1], "key", None) for path, _ in jax.tree_util.tree_leaves_with_path(tree)}

    assert fixed <= keys_of(state0) and not fixed & keys_of(params0)
    run = train(config, tmp_path / permutation)
    for a, b in zip(jax.tree.leaves(state0), jax.tree.leaves(run.state.model_state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the decay did act on the trainable params: every leaf moved (lr·wd = 0.1 a step)
    for a, b in zip(jax.tree.leaves(params0), jax.tree.leaves(run.state.params), strict=True):
        assert not np.allclose(np.asarray(a), np.asarray(b))
