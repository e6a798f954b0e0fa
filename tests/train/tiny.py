"""A tiny task for engine tests: softmax regression on scikit-learn digits.

``nan_at`` makes the loss NaN from the ``nan_at``-th update on (the count lives in ``model_state``,
so it also exercises non-gradient state through the engine).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from kexue_jax.train import LossOutput, Task
from kexue_jax.train import registry


def make_tiny_task(model_config, info) -> Task:
    nan_at = int(model_config.get("nan_at", -1))
    hidden = int(model_config.get("hidden", 16))
    num_classes = info.num_classes
    dim = int(np.prod(info.features["image"][0]))

    def features(batch):
        return batch["image"].reshape(batch["image"].shape[0], -1).astype(jnp.float32) / 16.0

    def init(batch, *, key):
        k1, k2 = jax.random.split(key)
        params = {
            "w1": jax.random.normal(k1, (dim, hidden)) / np.sqrt(dim),
            "b1": jnp.zeros((hidden,)),
            "w2": jax.random.normal(k2, (hidden, num_classes)) / np.sqrt(hidden),
            "b2": jnp.zeros((num_classes,)),
        }
        return params, {"count": jnp.zeros((), jnp.int32)}

    def logits(params, batch, key=None):
        h = jnp.tanh(features(batch) @ params["w1"] + params["b1"])
        if key is not None:  # dropout-like noise: makes the step depend on its key
            h = h * jax.random.bernoulli(key, 0.9, h.shape) / 0.9
        return h @ params["w2"] + params["b2"]

    def loss(params, model_state, batch, *, key):
        lg = logits(params, batch, key)
        nll = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(lg), batch["label"][:, None], axis=1))
        count = model_state["count"]
        if nan_at >= 0:
            nll = jnp.where(count >= nan_at, jnp.nan, nll)
        acc = jnp.mean(jnp.argmax(lg, -1) == batch["label"])
        return LossOutput(nll, {"accuracy": acc}, {"count": count + 1})

    def evaluate(params, model_state, batch, *, key):
        lg = logits(params, batch)
        nll = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(lg), batch["label"][:, None], axis=1))
        return {"nll": nll, "accuracy": jnp.mean(jnp.argmax(lg, -1) == batch["label"])}

    def sample(params, model_state, num, *, key):
        return jax.random.uniform(key, (num, 8, 8, 1))

    return Task(name="tiny", init=init, loss=loss, evaluate=evaluate, sample=sample)


if "tiny" not in registry.task_names():
    registry.register_task("tiny", make_tiny_task)


def tiny_config(**train) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "tiny"
    c.task = "tiny"
    c.seed = 3
    c.data = ml_collections.ConfigDict(
        dict(name="digits", split="train", eval_split="test", batch_size=32, eval_batch_size=100, data_dir="")
    )
    c.model = ml_collections.ConfigDict(dict(hidden=16, nan_at=-1))
    c.optim = ml_collections.ConfigDict(
        dict(name="adamw", learning_rate=3e-2, schedule="cosine", warmup_steps=3, end_factor=0.1, grad_clip_norm=1.0)
    )
    c.train = ml_collections.ConfigDict(
        dict(steps=20, log_every=5, eval_every=10, sample_every=10, checkpoint_every=10,
             keep_checkpoints=3, ema_decay=0.9, num_samples=4, progress=False)
    )
    c.train.update(train)
    return c
