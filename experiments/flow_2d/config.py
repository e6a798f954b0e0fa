"""2-D density flows (kexue.fm 5807): RealNVP (default) or Glow-style steps on moons / eight_gaussians /
checkerboard, with the exact KL(p_true || model) from the true log-density.

    kexue-jax train flow-2d                                   # RealNVP on moons
    kexue-jax train flow-2d data.name=checkerboard data.eval_split=test
    kexue-jax train flow-2d model.use_actnorm=True model.permutation=conv1x1_lu   # Glow-style

Smoke: ``--smoke`` (seconds).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "flow"
    c.seed = 0
    c.data = ml_collections.ConfigDict(
        dict(name="moons", split="train", eval_split="test", batch_size=512, eval_batch_size=5000, data_dir="",
             # the size of the fixed training sample (the test split keeps its 10,000)
             train_kwargs=dict(num_examples=50_000))
    )
    c.model = ml_collections.ConfigDict(
        dict(
            architecture="coupling_2d",
            depth=8,
            hidden=128,
            net_depth=2,
            coupling="affine",
            # exp(2 tanh(h/2)): exp-scaled couplings overflow on eight_gaussians' separated modes
            scale="tanh",
            permutation="reverse",
            use_actnorm=False,
            learn_top=False,
            plot_range=4.0,
        )
    )
    c.optim = ml_collections.ConfigDict(
        dict(name="adam", learning_rate=1e-3, schedule="cosine", warmup_steps=200, end_factor=0.01,
             grad_clip_norm=10.0)
    )
    c.train = ml_collections.ConfigDict(
        dict(steps=15000, log_every=100, eval_every=5000, sample_every=5000, checkpoint_every=5000,
             keep_checkpoints=2, ema_decay=0.0, num_samples=1, progress=True)
    )
    return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    c.model.depth = 2
    c.model.hidden = 16
    c.model.plot_resolution = 32
    c.data.batch_size = 64
    c.data.eval_batch_size = 500
    return c
