"""RealNVP on CIFAR-10 through tensorflow-datasets, the paper's architecture (target 3.49 bits/dim).

Three scales of (3 checkerboard affine couplings, squeeze, 3 channel couplings, factor out half),
then 4 checkerboard couplings; ResNet coupling networks with 8 residual blocks of 64 feature maps;
logit preprocessing with alpha = 0.05; Adam, lr 1e-3, batch 64 (Dinh et al. 2017, §4.1). The
paper's batch normalisation and weight normalisation are left out (see
``kexue_jax.flows.resnet_conditioner``). Prepare the data once on a machine with network, then::

    kexue-jax train realnvp-cifar10 data.data_dir=/path/to/tfds

The smoke configuration runs in CI under ``tfds.testing.mock_data``.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "flow"
    c.seed = 0
    c.data = ml_collections.ConfigDict(
        dict(name="cifar10", split="train", eval_split="test", batch_size=64, eval_batch_size=500, data_dir="")
    )
    c.model = ml_collections.ConfigDict(
        dict(architecture="realnvp", preprocess="logit", logit_alpha=0.05, levels=4, hidden=64, net_depth=8,
             coupling="affine", scale="exp", learn_top=False, dtype="bfloat16")
    )
    c.optim = ml_collections.ConfigDict(
        dict(name="adamw", learning_rate=1e-3, schedule="cosine", warmup_steps=2000, end_factor=0.01,
             grad_clip_norm=100.0, weight_decay=5e-5)
    )
    c.train = ml_collections.ConfigDict(
        dict(steps=500_000, log_every=100, eval_every=10_000, sample_every=10_000, checkpoint_every=5000,
             keep_checkpoints=3, ema_decay=0.0, num_samples=64, progress=True)
    )
    return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    c.model.levels = 2
    c.model.hidden = 8
    c.model.net_depth = 1
    c.model.dtype = "float32"
    c.model.num_figure_samples = 4
    c.data.batch_size = 16
    c.data.eval_batch_size = 16
    return c
