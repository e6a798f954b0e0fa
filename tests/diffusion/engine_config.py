"""The experiment config of the short engine runs of the 2-D diffusion tests (ddpm-2d in miniature)."""

from __future__ import annotations

from typing import Any

import ml_collections


def engine_config_2d(model: dict[str, Any], *, data: str = "eight_gaussians", batch_size: int = 256,
                     eval_batch_size: int = 5000, **train: Any) -> ml_collections.ConfigDict:
    """A ``diffusion`` task config on a 2-D density: Adam 3e-3, 300 steps logged every 50, no EMA (``train`` overrides)."""
    c = ml_collections.ConfigDict()
    c.name = "ddpm-2d-test"
    c.task = "diffusion"
    c.seed = 0
    c.data = ml_collections.ConfigDict(
        {"name": data, "split": "train", "eval_split": "test", "batch_size": batch_size,
         "eval_batch_size": eval_batch_size, "data_dir": ""})
    c.model = ml_collections.ConfigDict(model)
    c.optim = ml_collections.ConfigDict(
        {"name": "adam", "learning_rate": 3e-3, "schedule": "constant", "warmup_steps": 0, "end_factor": 1.0,
         "grad_clip_norm": 1.0})
    c.train = ml_collections.ConfigDict(
        {"steps": 300, "log_every": 50, "eval_every": 0, "sample_every": 0, "checkpoint_every": 300,
         "keep_checkpoints": 1, "ema_decay": 0.0, "num_samples": 1, "progress": False, **train})
    return c
