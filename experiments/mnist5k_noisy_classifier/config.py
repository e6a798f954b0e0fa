"""A time-conditional classifier $p_\\phi(y \\mid x_t, t)$ of mnist5k digits noised by the forward
process of ``ddpm-mnist5k`` (DDPM, linear betas 1e-4..0.02, T = 1000): the classifier of
classifier guidance (kexue.fm 9257; Dhariwal & Nichol 2021, §4). Task ``"classifier"`` with
``noise="forward"``.

The process fields must be those of ``ddpm-mnist5k`` (also in ``--smoke``, where both use
T = 100); ``experiments/ddpm_mnist5k/quality.py`` checks it before guiding.

    kexue-jax train mnist5k-noisy-classifier
    python experiments/ddpm_mnist5k/quality.py --classifier-scale 3 --unconditional

Smoke: ``--smoke`` (seconds).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "classifier"
    c.seed = 0
    c.data = ml_collections.ConfigDict(
        {"name": "mnist5k", "split": "train", "eval_split": "test", "batch_size": 64, "eval_batch_size": 500,
         "data_dir": ""}
    )
    c.model = ml_collections.ConfigDict(
        {
            "noise": "forward",
            "process": "ddpm",  # the forward process of ddpm-mnist5k
            "schedule": "linear",
            "num_steps": 1000,
            "num_classes": 10,
            "widths": (16, 32, 64, 128),  # the clean classifier's CPU size (README: GPU width)
            "depth": 1,
            "feature_dim": 128,
            "num_groups": 8,
            "embed_dim": 64,
            "eval_times": (0.1, 0.25, 0.5, 0.75),
        }
    )
    c.optim = ml_collections.ConfigDict(
        {"name": "adam", "learning_rate": 1e-3, "schedule": "cosine", "warmup_steps": 200, "end_factor": 0.01,
         "grad_clip_norm": 1.0}
    )
    c.train = ml_collections.ConfigDict(
        {"steps": 10000, "log_every": 100, "eval_every": 2000, "sample_every": 0, "checkpoint_every": 2000,
         "keep_checkpoints": 1, "ema_decay": 0.999, "num_samples": 1, "progress": True}
    )
    return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    c.model.num_steps = 100  # ddpm-mnist5k's smoke T
    c.model.widths = (8, 16)
    c.model.depth = 1
    c.model.feature_dim = 16
    c.model.num_groups = 4
    c.model.embed_dim = 8
    c.model.eval_times = (0.5,)
    c.data.batch_size = 32
    return c
