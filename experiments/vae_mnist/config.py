"""VAE on full MNIST through tensorflow-datasets: the GPU-size configuration.

A convolutional VAE with an 8-bit discretized-logistic decoder, so that its held-out bits/dim are
8-bit bits/dim comparable with the flows and diffusion models of this library. Prepare the data once
on a machine with network (see ``kexue_jax.data``'s error message), then::

    kexue-jax train vae-mnist data.data_dir=/path/to/tfds

The smoke configuration runs in CI under ``tfds.testing.mock_data`` (tests/test_experiments.py).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "vae"
    c.seed = 0
    c.data = ml_collections.ConfigDict(
        dict(name="mnist", split="train", eval_split="test", batch_size=256, eval_batch_size=1000, data_dir="")
    )
    c.model = ml_collections.ConfigDict(
        dict(
            latent_dim=32,
            architecture="conv",
            widths=(64, 128),
            activation="silu",
            likelihood="discretized_logistic",
            dtype="bfloat16",
            iwae_samples=256,
        )
    )
    c.optim = ml_collections.ConfigDict(
        dict(name="adamw", learning_rate=1e-3, schedule="cosine", warmup_steps=1000, end_factor=0.01,
             grad_clip_norm=1.0, weight_decay=1e-4)
    )
    c.train = ml_collections.ConfigDict(
        dict(
            steps=50_000,
            log_every=100,
            eval_every=5000,
            sample_every=5000,
            checkpoint_every=5000,
            keep_checkpoints=3,
            ema_decay=0.999,
            num_samples=100,
            progress=True,
        )
    )
    return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    c.model.widths = (8, 16)
    c.model.dtype = "float32"
    c.model.iwae_samples = 2
    c.data.batch_size = 16
    c.data.eval_batch_size = 16
    return c
