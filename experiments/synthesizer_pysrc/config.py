"""Synthesizer vs dot-product attention on a byte-level LM (kexue.fm 7430; Tay et al. 2020).

A small causal Transformer on ``pysrc`` (128-byte windows) with the query-key logits replaced by
Synthesizer logits; one run per variant, compared by held-out bits per byte and accuracy:

    kexue-jax train synthesizer-pysrc --workdir runs/syn-vanilla                     # dot product
    kexue-jax train synthesizer-pysrc --workdir runs/syn-dense model.synthesizer=dense
    kexue-jax train synthesizer-pysrc --workdir runs/syn-random model.synthesizer=random
    kexue-jax train synthesizer-pysrc --workdir runs/syn-frandom model.synthesizer=factorized_random
    kexue-jax train synthesizer-pysrc --workdir runs/syn-mix model.synthesizer=random+vanilla

Smoke: ``--smoke``.
"""

import ml_collections

LENGTH = 128


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "lm"
    c.seed = 0
    c.data = ml_collections.ConfigDict(
        dict(name="pysrc", split="train", eval_split="validation", batch_size=32, eval_batch_size=256,
             data_dir="", kwargs=dict(seq_len=LENGTH + 1))
    )
    c.model = ml_collections.ConfigDict(
        dict(block="attention", d_model=128, num_layers=3, num_heads=2, norm="pre", max_len=LENGTH,
             synthesizer=None, synthesizer_hidden=64, synthesizer_rank=8, dtype="float32",
             scheme=ml_collections.ConfigDict(dict(rope="rope", training_length=LENGTH)))
    )
    c.optim = ml_collections.ConfigDict(
        dict(name="adamw", learning_rate=2e-3, schedule="cosine", warmup_steps=200, end_factor=0.05,
             grad_clip_norm=1.0, weight_decay=0.01)
    )
    c.train = ml_collections.ConfigDict(
        dict(steps=3000, log_every=100, eval_every=1500, checkpoint_every=500, keep_checkpoints=2,
             ema_decay=0.0, progress=True)
    )
    return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    c.model.d_model = 32
    c.model.num_layers = 1
    c.data.batch_size = 8
    c.data.eval_batch_size = 512
    return c
