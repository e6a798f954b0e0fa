"""The NNX VAE and its engine Task: config, contract, gradients, errors, a short training run."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from kexue_jax.latent import VAE, VAEConfig, make_vae_task
from kexue_jax.metrics import bits_per_dim

SMALL = (8, 8, 1)  # small images keep the eager initialisers' compiles cheap


def _info(shape=SMALL, num_bins=256):
    return SimpleNamespace(num_bins=num_bins, features={"image": SimpleNamespace(shape=shape)})


def _batch(b=6, shape=SMALL, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": jnp.asarray(rng.integers(0, 256, (b, *shape)), jnp.uint8), "label": jnp.zeros(b, jnp.int32)}


def _loss_and_output(task, params, state, batch, key):
    out = task.loss(params, state, batch, key=key)
    return out.loss, out


def _assert_all_finite(grads):
    for path, leaf in jax.tree_util.tree_leaves_with_path(grads):
        assert bool(jnp.all(jnp.isfinite(leaf))), f"non-finite gradient at {jax.tree_util.keystr(path)}"


def _plain(tree) -> bool:
    if isinstance(tree, dict):
        return type(tree) is dict and all(_plain(v) for v in tree.values())
    return isinstance(tree, jax.Array)


def test_config_defaults_and_validation():
    cfg = VAEConfig()
    assert (cfg.latent_dim, cfg.architecture, cfg.likelihood, cfg.widths) == (16, "mlp", "bernoulli", (512, 256))
    assert VAEConfig(architecture="conv").widths == (32, 64)
    assert VAEConfig(dtype=jnp.bfloat16, widths=[8, 4]) == VAEConfig(dtype="bfloat16", widths=(8, 4))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.latent_dim = 3  # type: ignore[misc]
    for bad in ({"architecture": "rnn"}, {"likelihood": "gaussian"}, {"latent_dim": 0}, {"widths": ()},
                {"image_shape": (28, 28)}, {"num_bins": 1}, {"activation": "swish2"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            VAEConfig(**bad)


def test_make_task_reads_dicts_config_dicts_and_info():
    cd = ml_collections.ConfigDict({"name": "vae", "latent_dim": 3, "widths": [16], "iwae_samples": 5})
    task = make_vae_task(cd, _info())
    cfg = task.extras["config"]
    assert cfg.image_shape == SMALL and cfg.latent_dim == 3 and cfg.widths == (16,)
    assert task.extras["options"]["iwae_samples"] == 5
    assert make_vae_task({"latent_dim": 3}, _info(num_bins=16)).extras["config"].num_bins == 16
    with pytest.raises(ValueError, match="unknown keys"):
        make_vae_task({"latnet_dim": 3}, _info())
    with pytest.raises(ValueError, match="image_shape"):
        make_vae_task({"image_shape": (28, 28, 1)}, _info())
    with pytest.raises(ValueError, match="iwae_samples"):
        make_vae_task({"iwae_samples": 0}, _info())


def test_make_task_from_the_real_mnist5k_dataset_info():
    from kexue_jax.data import load

    dataset = load("mnist5k", split="train")
    task = make_vae_task({"latent_dim": 3, "widths": (16,)}, dataset.info)
    assert task.extras["config"].image_shape == (28, 28, 1)
    assert task.extras["config"].num_bins == dataset.info.num_bins == 256
    batch = dataset.get_batch(np.arange(4))
    assert batch["image"].dtype == np.uint8 and batch["image"].shape == (4, 28, 28, 1)


@pytest.mark.parametrize(
    "likelihood,architecture",
    [("bernoulli", "mlp"), ("discretized_logistic", "mlp"), ("discretized_logistic", "conv")],
)
def test_task_contract(likelihood, architecture):
    widths = (4, 4) if architecture == "conv" else (16,)
    task = make_vae_task(
        {"likelihood": likelihood, "architecture": architecture, "latent_dim": 3, "widths": widths,
         "iwae_samples": 16, "num_reconstructions": 4, "num_interpolations": 2, "grid_columns": 5},
        _info(),
    )
    batch = _batch()
    params, state = task.init(batch, key=jax.random.key(0))
    assert _plain(params) and state == {}
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))

    key = jax.random.key(1)
    # One compile for the loss and its gradient (what the engine's step does).
    value_and_grad = jax.jit(jax.value_and_grad(lambda p, k: _loss_and_output(task, p, state, batch, k), has_aux=True))
    (_, out), grads = value_and_grad(params, key)
    assert out.loss.shape == () and out.loss.dtype == jnp.float32
    assert set(out.metrics) == {"elbo_nats", "recon", "kl", "bpd"}
    np.testing.assert_allclose(out.loss, -out.metrics["elbo_nats"], rtol=1e-6)
    np.testing.assert_allclose(out.metrics["elbo_nats"], out.metrics["recon"] - out.metrics["kl"], rtol=1e-5)
    np.testing.assert_allclose(out.metrics["bpd"], bits_per_dim(out.metrics["elbo_nats"], num_dims=64), rtol=1e-6)
    assert float(out.metrics["kl"]) >= 0.0 and float(out.metrics["bpd"]) > 0.0
    assert float(value_and_grad(params, jax.random.key(2))[0][1].loss) != float(out.loss)
    _assert_all_finite(grads)

    ev = jax.jit(task.evaluate)(params, state, batch, key=key)
    assert set(ev) == {"elbo_nats", "recon", "kl", "bpd", "iwae_nats", "iwae_bpd"}
    # E[IWAE_16] >= ELBO; an untrained model's gap is tens of nats, far above the noise.
    assert float(ev["iwae_nats"]) > float(ev["elbo_nats"])

    samples = jax.jit(task.sample, static_argnums=2)(params, state, 7, key=key)
    assert samples.shape == (7, *SMALL)
    figs = jax.jit(task.figures)(params, state, batch, key=key)
    assert figs["reconstructions"].shape == (8, *SMALL)
    np.testing.assert_allclose(figs["reconstructions"][0], batch["image"][0] / 255.0, atol=1e-6)
    assert figs["interpolation"].shape == (10, *SMALL)
    for img in (samples, *figs.values()):
        assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0


def test_default_config_on_mnist_shaped_batches_has_finite_grads():
    task = make_vae_task({}, _info(shape=(28, 28, 1)))
    batch = _batch(4, (28, 28, 1))
    params, state = task.init(batch, key=jax.random.key(0))
    (loss, _), grads = jax.jit(
        jax.value_and_grad(lambda p: _loss_and_output(task, p, state, batch, jax.random.key(3)), has_aux=True)
    )(params)
    assert bool(jnp.isfinite(loss))
    _assert_all_finite(grads)


def test_bfloat16_compute_keeps_float32_params_and_terms():
    task = make_vae_task({"dtype": "bfloat16", "latent_dim": 3, "widths": (16,),
                          "likelihood": "discretized_logistic"}, _info())
    batch = _batch()
    params, state = task.init(batch, key=jax.random.key(0))
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    out = jax.jit(task.loss)(params, state, batch, key=jax.random.key(1))
    assert out.loss.dtype == jnp.float32 and bool(jnp.isfinite(out.loss))


def test_shape_errors_name_the_arguments():
    vae = VAE(VAEConfig(latent_dim=3, widths=(16,), image_shape=SMALL), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="x: expected shape"):
        vae.encode(jnp.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="x: expected shape"):
        vae.encode(jnp.zeros((2, 28, 28, 1)))
    with pytest.raises(ValueError, match="z: expected shape"):
        vae.decode(jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="key"):
        vae.preprocess(jnp.zeros((2, *SMALL), jnp.uint8))
    task = make_vae_task({"latent_dim": 3, "widths": (16,)}, _info())
    with pytest.raises(ValueError, match="image"):
        task.init({"pixels": jnp.zeros((2, *SMALL), jnp.uint8)}, key=jax.random.key(0))
    with pytest.raises(ValueError, match="batch\\['image'\\]"):
        task.init({"image": jnp.zeros((2, 28, 28, 1), jnp.uint8)}, key=jax.random.key(0))


def test_a_short_training_run_improves_the_elbo():
    """40 Adam steps on 16 fixed images raise the ELBO by far more than its sampling noise."""
    task = make_vae_task({"latent_dim": 3, "widths": (16,)}, _info())
    rng = np.random.default_rng(0)
    templates = rng.random((2, *SMALL)) > 0.5
    images = (templates[rng.integers(0, 2, 16)] * 255).astype(np.uint8)
    batch = {"image": jnp.asarray(images)}
    params, state = task.init(batch, key=jax.random.key(0))
    opt = optax.adam(3e-2)
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, i):
        g = jax.grad(lambda p: task.loss(p, state, batch, key=jax.random.fold_in(jax.random.key(1), i)).loss)(params)
        updates, opt_state = opt.update(g, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    evaluate = jax.jit(task.evaluate)
    before = float(evaluate(params, state, batch, key=jax.random.key(9))["elbo_nats"])
    for i in range(40):
        params, opt_state = step(params, opt_state, i)
    after = float(evaluate(params, state, batch, key=jax.random.key(9))["elbo_nats"])
    assert after > before + 10.0, (before, after)
