"""A time-conditional classifier of the eight_gaussians component, for classifier guidance of the
unconditional 2-D DDPM of ``ddpm-2d`` (kexue.fm 9257; Dhariwal & Nichol 2021, §4).

The density has no labels: the label of a point is its angular sector
(:func:`kexue_jax.diffusion.classifier_model.angular_sector_labels`, ``labels="angular_sector"``),
which for eight_gaussians is the nearest, i.e. the most probable, mixture component. The classifier
$p_\\phi(y \\mid x_t, t)$ is trained on points noised by ddpm-2d's forward process (DDPM, linear
betas, T = 1000); ``guidance.py`` in this folder samples the DDPM guided by it at several scales.

    kexue-jax train ddpm-2d data.name=eight_gaussians --steps 4000 --workdir runs/ddpm-2d-eight
    kexue-jax train classifier-guidance-2d
    python experiments/classifier_guidance_2d/guidance.py --ddpm-workdir runs/ddpm-2d-eight

Smoke: ``--smoke`` (seconds; T = 100 as ddpm-2d's smoke).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "classifier"
    c.seed = 0
    c.data = ml_collections.ConfigDict(
        {"name": "eight_gaussians", "split": "train", "eval_split": "test", "batch_size": 512,
         "eval_batch_size": 2000, "data_dir": ""}
    )
    c.model = ml_collections.ConfigDict(
        {
            "noise": "forward",
            "process": "ddpm",  # ddpm-2d's forward process
            "schedule": "linear",
            "num_steps": 1000,
            "labels": "angular_sector",
            "num_classes": 8,
            "widths": (128, 128, 128),
            "feature_dim": 64,
            "embed_dim": 64,
            "eval_times": (0.1, 0.25, 0.5, 0.75),
        }
    )
    c.optim = ml_collections.ConfigDict(
        {"name": "adam", "learning_rate": 2e-3, "schedule": "cosine", "warmup_steps": 200, "end_factor": 0.01,
         "grad_clip_norm": 1.0}
    )
    c.train = ml_collections.ConfigDict(
        {"steps": 3000, "log_every": 100, "eval_every": 1000, "sample_every": 0, "checkpoint_every": 1000,
         "keep_checkpoints": 1, "ema_decay": 0.999, "num_samples": 1, "progress": True}
    )
    return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    c.model.num_steps = 100  # ddpm-2d's smoke T
    c.model.widths = (16, 16)
    c.model.feature_dim = 8
    c.model.embed_dim = 8
    c.model.eval_times = (0.5,)
    c.data.batch_size = 64
    c.data.eval_batch_size = 5000
    return c
