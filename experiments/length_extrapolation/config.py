"""Length extrapolation on ``pysrc`` (kexue.fm 9431, 9603, 9675, 9706, 9708, 9577): the GPU config.

A byte-level causal LM trained at length 512 (Su's setup: GAU-α, Post-Norm, one softmax head),
then evaluated at 512, 1024, 2048 and 4096 under every inference-time position scheme by
``table.py`` in this folder. Variants by override (one training run each):

    kexue-jax train length-extrapolation                                 # RoPE ("baseline" rows)
    kexue-jax train length-extrapolation model.scheme.logn=True model.scheme.logn_clip=False  # "-logn"
    kexue-jax train length-extrapolation model.hfwa_window=16            # HWFA (9603)
    kexue-jax train length-extrapolation model.rope_bias=True            # RoPE + bias (9577)

    python experiments/length_extrapolation/table.py --workdir runs/length-extrapolation

The CPU-sized version (training length 128, evaluated at 128..1024) is ``cpu.py`` next to this
file; ``--smoke`` shrinks either to seconds.
"""

import ml_collections

TRAINING_LENGTH = 512


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "lm"
    c.seed = 0
    c.data = ml_collections.ConfigDict(
        dict(name="pysrc", split="train", eval_split="validation", batch_size=64,
             eval_batch_size=64, data_dir="", kwargs=dict(seq_len=TRAINING_LENGTH + 1))
    )
    c.model = ml_collections.ConfigDict(
        dict(
            block="gau",  # GAU-α as in Su's tables; block="attention" for a standard Transformer
            d_model=768,
            num_layers=24,
            gau_expansion=2,
            gau_key_size=128,
            norm="post",
            norm_type="rmsnorm",
            dtype="bfloat16",
            rope_bias=False,
            hfwa_window=0,
            scheme=ml_collections.ConfigDict(
                # rerope_kernel="pallas": the ReRoPE schemes of table.py through the fused kernel
                dict(rope="rope", logn=False, logn_clip=True, training_length=TRAINING_LENGTH, rerope_kernel="xla")
            ),
        )
    )
    c.optim = ml_collections.ConfigDict(
        dict(name="adamw", learning_rate=3e-4, schedule="cosine", warmup_steps=2000, end_factor=0.1,
             grad_clip_norm=1.0, weight_decay=0.01)
    )
    c.train = ml_collections.ConfigDict(
        dict(steps=100_000, log_every=100, eval_every=5000, checkpoint_every=5000, keep_checkpoints=2,
             ema_decay=0.0, progress=True)
    )
    # Read by table.py: evaluation lengths and windows per length.
    c.extrapolation = ml_collections.ConfigDict(
        dict(lengths=(512, 1024, 2048, 4096), num_windows=64, batch_size=8, rerope_window=128)
    )
    return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    c.model.d_model = 32
    c.model.num_layers = 2
    c.model.gau_key_size = 16
    c.model.dtype = "float32"
    c.model.scheme.training_length = 32
    c.data.kwargs.seq_len = 33
    c.data.batch_size = 8
    c.data.eval_batch_size = 64
    c.extrapolation.lengths = (32, 64)
    c.extrapolation.num_windows = 2
    c.extrapolation.batch_size = 2
    c.extrapolation.rerope_window = 8
    return c
