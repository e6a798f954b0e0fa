"""Glow on full MNIST through tensorflow-datasets, the paper's configuration (target 1.05 bits/dim).

MNIST is zero-padded to 32×32 as in Glow's code so that L = 3 squeezes fit (the padded pixels count in
D). L = 3, K = 32, width 512, affine couplings, LU 1×1 convs, learned priors; bf16 coupling networks.
Prepare the data once on a machine with network (see ``kexue_jax.data``'s error message), then::

    kexue-jax train glow-mnist data.data_dir=/path/to/tfds

The smoke configuration runs in CI under ``tfds.testing.mock_data``.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "flow"
    c.seed = 0
    c.data = ml_collections.ConfigDict(
        dict(name="mnist", split="train", eval_split="test", batch_size=64, eval_batch_size=500, data_dir="")
    )
    c.model = ml_collections.ConfigDict(
        dict(architecture="glow", preprocess="center", pad=2, levels=3, depth=32, hidden=512, coupling="affine",
             scale="sigmoid", permutation="conv1x1_lu", learn_top=True, dtype="bfloat16")
    )
    c.optim = ml_collections.ConfigDict(
        dict(name="adam", learning_rate=1e-3, schedule="cosine", warmup_steps=5000, end_factor=0.01,
             grad_clip_norm=50.0)
    )
    c.train = ml_collections.ConfigDict(
        dict(steps=200_000, log_every=100, eval_every=10_000, sample_every=10_000, checkpoint_every=5000,
             keep_checkpoints=3, ema_decay=0.0, num_samples=64, progress=True)
    )
    return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    c.model.levels = 2  # each level is another compiled conv stack; CI time, not coverage
    c.model.depth = 1
    c.model.hidden = 8
    c.model.dtype = "float32"
    c.model.num_figure_samples = 4
    c.data.batch_size = 16
    c.data.eval_batch_size = 16
    return c
