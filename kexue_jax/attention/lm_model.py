r"""Causal language models (Transformer or GAU) as an engine :class:`~kexue_jax.train.task.Task`.

Batches are ``{"tokens": uint8/int [b, t + 1]}`` windows (``pysrc`` gives 513 bytes: 512 inputs
plus the shifted target). The loss is the mean next-token cross-entropy in nats; metrics add the
next-token ``accuracy`` (Su's metric in the extrapolation tables) and ``bits_per_token``.

The ``model`` section holds :class:`~kexue_jax.nn.transformer.TransformerConfig` fields plus

* ``scheme``: :class:`~kexue_jax.attention.PositionScheme` fields of the *training* scheme
  (e.g. ``{"logn": True}`` for Su's "-logn" models, ``{"rope": None, "bias": "alibi"}``);
* ``hfwa_window``: train HWFA (kexue.fm 9603) instead: window attention with RoPE in all layers but
  the last, which attends to everything without RoPE (``0``: off).

``extras["logits"](params, tokens, scheme)`` evaluates a trained model under any other scheme
(the extrapolation table of ``experiments/length_extrapolation``).

References:
    https://kexue.fm/archives/9431, https://kexue.fm/archives/9603, https://kexue.fm/archives/9708.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from kexue_jax._src.typing import Array, Batch, PRNGKey, PyTree
from kexue_jax.attention.extrapolation import next_token_accuracy
from kexue_jax.attention.positional import PositionScheme, hfwa_schemes
from kexue_jax.nn.functional import merge_module, split_module
from kexue_jax.nn.transformer import Schemes, TransformerConfig, TransformerLM
from kexue_jax.train.task import LossOutput, Task, config_dict

_TASK_KEYS = ("scheme", "hfwa_window")
_IGNORED_KEYS = ("name",)


def lm_config(model_config: Any, info: Any = None) -> tuple[TransformerConfig, Schemes]:
    """The :class:`TransformerConfig` and the training scheme(s) of a ``model`` config section.

    Raises:
        ValueError: unknown keys, invalid values, or a vocabulary smaller than the dataset's.
    """
    raw = config_dict(model_config)
    fields = {f.name for f in dataclasses.fields(TransformerConfig)}
    unknown = sorted(set(raw) - fields - set(_TASK_KEYS) - set(_IGNORED_KEYS))
    if unknown:
        raise ValueError(
            f"model_config: unknown keys {unknown}; expected TransformerConfig fields "
            f"{sorted(fields)} or {list(_TASK_KEYS)}"
        )
    config = TransformerConfig(**{k: v for k, v in raw.items() if k in fields})
    num_classes = getattr(info, "num_classes", None)
    if num_classes is not None and config.vocab_size < num_classes:
        raise ValueError(
            f"vocab_size: {config.vocab_size} is smaller than the dataset's {num_classes} tokens"
        )
    scheme_fields = {f.name for f in dataclasses.fields(PositionScheme)}
    scheme_raw = config_dict(raw.get("scheme"))
    bad = sorted(set(scheme_raw) - scheme_fields)
    if bad:
        raise ValueError(f"scheme: unknown keys {bad}; expected {sorted(scheme_fields)}")
    scheme = PositionScheme(**scheme_raw)
    window = int(raw.get("hfwa_window", 0) or 0)
    if window:
        return config, hfwa_schemes(
            config.num_layers, window=window, training_length=scheme.training_length
        )
    return config, scheme


def make_lm_task(model_config: Mapping[str, Any] | Any = None, info: Any = None) -> Task:
    """Build the engine task of a causal LM (see the module docstring for the config).

    Returns:
        A task with ``init``, ``loss`` (``loss`` = cross-entropy nats/token; metrics ``accuracy``,
        ``bits_per_token``), ``evaluate`` (the same metrics without dropout) and ``extras``:
        ``config``, ``scheme`` (the training scheme), ``model(params)`` and
        ``logits(params, tokens, scheme)``.
    """
    config, train_scheme = lm_config(model_config, info)
    abstract = nnx.eval_shape(lambda: TransformerLM(config, rngs=nnx.Rngs(0)))
    graphdef, _, _ = split_module(abstract)

    def model(params: PyTree) -> TransformerLM:
        return merge_module(graphdef, params, {})

    def split(batch: Batch) -> tuple[Array, Array]:
        if "tokens" not in batch:
            raise ValueError(f"batch: expected a 'tokens' entry, got keys {sorted(batch)}")
        tokens = batch["tokens"]
        if tokens.ndim != 2 or tokens.shape[1] < 2:
            raise ValueError(f"batch['tokens']: expected [b, t + 1] with t >= 1, got {tokens.shape}")
        tokens = tokens.astype(jnp.int32)
        return tokens[:, :-1], tokens[:, 1:]

    def metrics_of(logits: Array, targets: Array) -> dict[str, Array]:
        nll = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, targets))
        return {
            "loss": nll,
            "accuracy": next_token_accuracy(logits, targets),
            "bits_per_token": nll / math.log(2.0),
        }

    def init(batch: Batch, *, key: PRNGKey) -> tuple[PyTree, PyTree]:
        split(batch)
        _, params, state = split_module(TransformerLM(config, rngs=nnx.Rngs(params=key)))
        return params, state

    def loss(params: PyTree, model_state: PyTree, batch: Batch, *, key: PRNGKey) -> LossOutput:
        del model_state
        inputs, targets = split(batch)
        logits = model(params)(inputs, scheme=train_scheme, key=key if config.dropout else None)
        m = metrics_of(logits, targets)
        return LossOutput(m["loss"], m)

    def evaluate(params: PyTree, model_state: PyTree, batch: Batch, *, key: PRNGKey) -> dict[str, Array]:
        del model_state, key
        inputs, targets = split(batch)
        return metrics_of(model(params)(inputs, scheme=train_scheme), targets)

    def logits(params: PyTree, tokens: Array, scheme: Schemes) -> Array:
        return model(params)(tokens, scheme=scheme)

    return Task(
        name="lm",
        init=init,
        loss=loss,
        evaluate=evaluate,
        extras={
            "config": config,
            "scheme": train_scheme,
            "graphdef": graphdef,
            "model": model,
            "logits": jax.jit(logits, static_argnames="scheme"),
        },
    )


__all__ = ["lm_config", "make_lm_task"]
