"""Length extrapolation on ``pysrc``, CPU-sized: train at 128 bytes, evaluate at 128..1024.

The same protocol as ``config.py`` at a quarter of the training length (the evaluation lengths
keep Su's ratios 1, 2, 4, 8) and a small Pre-Norm Transformer:

    kexue-jax train experiments/length_extrapolation/cpu.py --workdir runs/le-cpu-rope
    kexue-jax train experiments/length_extrapolation/cpu.py --workdir runs/le-cpu-logn \
        model.scheme.logn=True model.scheme.logn_clip=False
    python experiments/length_extrapolation/table.py --config experiments/length_extrapolation/cpu.py \
        --workdir runs/le-cpu-rope
"""

import importlib.util
from pathlib import Path

import ml_collections

TRAINING_LENGTH = 128

_spec = importlib.util.spec_from_file_location("_le_full", Path(__file__).with_name("config.py"))
_full = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_full)
smoke = _full.smoke


def get_config() -> ml_collections.ConfigDict:
    c = _full.get_config()
    c.data.kwargs.seq_len = TRAINING_LENGTH + 1
    c.data.batch_size = 32
    c.data.eval_batch_size = 256
    c.model.update(dict(block="attention", d_model=128, num_layers=3, num_heads=2, norm="pre",
                        norm_type="layernorm", dtype="float32"))
    c.model.scheme.training_length = TRAINING_LENGTH
    c.optim.update(dict(learning_rate=2e-3, warmup_steps=200, end_factor=0.05))
    c.train.update(dict(steps=3000, log_every=100, eval_every=1500, checkpoint_every=500))
    c.extrapolation.update(dict(lengths=(128, 256, 512, 1024), num_windows=32, batch_size=8,
                                rerope_window=32))
    return c
