"""Position encodings as pure functions of positions, frequencies and plain parameter arrays.

Layout ``[batch, seq, heads, head_dim]`` everywhere. Encodings that change q or k
(:func:`apply_rope` with any frequency table, :func:`apply_logn`, :func:`apply_rope_with_bias`)
return arrays of the input's shape and dtype; encodings that add to the logits (:func:`t5_bias`,
:func:`alibi_bias`, :func:`shaw_bias`, :func:`xlnet_bias`, :func:`deberta_bias`) return float32
``[b or 1, heads, tq, tk]`` biases for ``jax.nn.dot_product_attention(..., bias=)``; ReRoPE
returns the logits themselves (:func:`rerope_logits`, :func:`rerope_decode_logits`).
:data:`POSITIONS` lists the RoPE variants checked by the shared suite.

References:
    Su Jianlin, https://kexue.fm/archives/8130 (survey), https://kexue.fm/archives/8231,
    https://kexue.fm/archives/9431, https://kexue.fm/archives/9675, https://kexue.fm/archives/9706,
    https://kexue.fm/archives/9708, https://kexue.fm/archives/9577.
"""

from kexue_jax.position.alibi import alibi_bias, alibi_slopes
from kexue_jax.position.deberta import deberta_bias, deberta_relative_index, init_deberta
from kexue_jax.position.frequencies import (
    dynamic_ntk_inv_freq,
    linear_inv_freq,
    ntk_aware_inv_freq,
    ntk_fixed_inv_freq,
    ntk_mixed_inv_freq,
    ntk_old_inv_freq,
    rope_inv_freq,
    yarn_attention_factor,
    yarn_inv_freq,
)
from kexue_jax.position.learned import init_learned_positions, learned_position_embedding
from kexue_jax.position.logn import apply_logn, logn_scale
from kexue_jax.position.registry import POSITIONS, RotaryEncoding
from kexue_jax.position.rerope import (
    rerope_decode_logits,
    rerope_logits,
    rerope_logits_reference,
    rerope_relative_positions,
)
from kexue_jax.position.rope import apply_rope, rope_angles
from kexue_jax.position.rope_bias import apply_rope_with_bias, init_rope_bias
from kexue_jax.position.shaw import init_shaw, shaw_bias, shaw_relative_index, shaw_values
from kexue_jax.position.sinusoidal import sinusoidal_embedding
from kexue_jax.position.t5 import init_t5_bias, relative_position_bucket, t5_bias
from kexue_jax.position.xlnet import init_xlnet, xlnet_bias

__all__ = [
    "POSITIONS",
    "RotaryEncoding",
    "alibi_bias",
    "alibi_slopes",
    "apply_logn",
    "apply_rope",
    "apply_rope_with_bias",
    "deberta_bias",
    "deberta_relative_index",
    "dynamic_ntk_inv_freq",
    "init_deberta",
    "init_learned_positions",
    "init_rope_bias",
    "init_shaw",
    "init_t5_bias",
    "init_xlnet",
    "learned_position_embedding",
    "linear_inv_freq",
    "logn_scale",
    "ntk_aware_inv_freq",
    "ntk_fixed_inv_freq",
    "ntk_mixed_inv_freq",
    "ntk_old_inv_freq",
    "relative_position_bucket",
    "rerope_decode_logits",
    "rerope_logits",
    "rerope_logits_reference",
    "rerope_relative_positions",
    "rope_angles",
    "rope_inv_freq",
    "shaw_bias",
    "shaw_relative_index",
    "shaw_values",
    "sinusoidal_embedding",
    "t5_bias",
    "xlnet_bias",
    "yarn_attention_factor",
    "yarn_inv_freq",
]
