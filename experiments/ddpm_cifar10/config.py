"""DDPM on CIFAR-10 through tensorflow-datasets, the paper's configuration (Ho et al. 2020, App. B).

The 35.7M-parameter UNet (``UNetConfig.ddpm_cifar10``: ch 128, ch_mult (1, 2, 2, 2), two ResNet
blocks per level, attention at 16×16, dropout 0.1), linear betas 1e-4..0.02 with T = 1000,
ε-prediction with the pixel-mean loss, Adam lr 2e-4 (5,000 warm-up steps), gradient clipping at 1,
batch 128, 800k steps, EMA 0.9999, random horizontal flips of the training images (task option
``random_flip``). Targets: FID 3.17 and NLL ≤ 3.75 bits/dim (DDPM), DDIM 50 steps FID 4.67, VP-SDE 3.21
bits/dim (``model.process=vp``). Prepare the data once on a machine with network (see
``kexue_jax.data``'s error message), then::

    kexue-jax train ddpm-cifar10 data.data_dir=/path/to/tfds

The smoke configuration runs in CI under ``tfds.testing.mock_data``.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "diffusion"
    c.seed = 0
    c.data = ml_collections.ConfigDict(
        {"name": "cifar10", "split": "train", "eval_split": "test", "batch_size": 128, "eval_batch_size": 500,
         "data_dir": ""}
    )
    c.model = ml_collections.ConfigDict(
        {
            "process": "ddpm",
            "schedule": "linear",
            "num_steps": 1000,
            "network": "unet",
            "unet": {"preset": "ddpm_cifar10"},
            "dtype": "bfloat16",
            "sampler": "ddpm_large",
            "sampler_steps": 1000,
            "likelihood_eps": 1e-3,
            "likelihood_rtol": 1e-5,
            "likelihood_atol": 1e-5,
            "eval_bpd_examples": 0,  # set > 0 for ODE / VLB bits/dim (expensive; see README)
            "eval_bpd": ("ode",),
            "grid_columns": 8,
            "random_flip": True,  # DDPM App. B: random horizontal flips during training
        }
    )
    c.optim = ml_collections.ConfigDict(
        {"name": "adam", "learning_rate": 2e-4, "schedule": "constant", "warmup_steps": 5000, "end_factor": 1.0,
         "grad_clip_norm": 1.0}
    )
    c.train = ml_collections.ConfigDict(
        {"steps": 800_000, "log_every": 100, "eval_every": 50_000, "sample_every": 50_000,
         "checkpoint_every": 10_000, "keep_checkpoints": 3, "ema_decay": 0.9999, "num_samples": 64,
         "progress": True}
    )
    return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    # one resolution level and no attention but the middle one: XLA:CPU compile time is the cost
    c.model.unet = {"preset": "tiny", "ch": 8, "ch_mult": (1,), "attn_resolutions": ()}
    c.model.dtype = "float32"
    c.model.num_steps = 50
    c.model.sampler_steps = 3
    c.data.batch_size = 8
    c.data.eval_batch_size = 16
    c.train.ema_decay = 0.999
    return c
