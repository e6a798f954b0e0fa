"""Attention: softmax (dispatching to ``jax.nn.dot_product_attention``), masks, linear, sparse,
Synthesizer, GAU/FLASH, the fixes for the relative-position defect of kexue.fm 9105, causal
attention under a :class:`PositionScheme` with KV caches (:mod:`~kexue_jax.attention.positional`),
Su's length-extrapolation protocol (:mod:`~kexue_jax.attention.extrapolation`), and a fused
flash-style Pallas kernel for ReRoPE / Leaky ReRoPE (:mod:`~kexue_jax.attention.rerope_flash`).

Every function is pure, takes ``[batch, seq, heads, head_dim]`` arrays, computes its softmax or
normaliser in float32 and returns the value dtype. ``ATTENTIONS`` / ``PARAMETRIC_ATTENTIONS`` list
the members that the shared suite ``tests/suites/test_attentions.py`` checks. The language-model
task (Transformer or GAU-α blocks of :mod:`kexue_jax.nn.transformer`) is ``lm_model.py``.
"""

from kexue_jax.attention.dot_product import (
    IMPLEMENTATIONS,
    attention_from_logits,
    attention_logits,
    dot_product_attention,
    reference_attention,
    select_implementation,
)
from kexue_jax.attention.extrapolation import (
    SCHEME_NAMES,
    extrapolation_scheme,
    extrapolation_table,
    extrapolation_windows,
    next_token_accuracy,
)
from kexue_jax.attention.gau import (
    flash,
    gau,
    init_flash,
    init_gau,
    mixed_chunk_attention,
    mixed_chunk_attention_reference,
    relu2_attention,
)
from kexue_jax.attention.linear import (
    FEATURE_MAPS,
    efficient_attention,
    elu_plus_one,
    linear_attention,
    taylor_features,
)
from kexue_jax.attention.masks import (
    block_diagonal_mask,
    causal_mask,
    combine_masks,
    local_window_mask,
    padding_mask,
)
from kexue_jax.attention.positional import (
    LayerCache,
    PositionScheme,
    cached_attention,
    hfwa_schemes,
    init_layer_cache,
    positional_attention,
)
from kexue_jax.attention.registry import (
    ATTENTIONS,
    PARAMETRIC_ATTENTIONS,
    PERMUTATION_EQUIVARIANT,
    bind,
    register_attention,
)
from kexue_jax.attention.relative_defect import (
    add_boundary_tokens,
    denominator_free_attention,
    l2_normalized_attention,
    probe_targets,
    toeplitz,
    toeplitz_gated_attention,
)
from kexue_jax.attention.rerope_flash import rerope_flash_attention
from kexue_jax.attention.sparse import sparse_attention, sparse_mask
from kexue_jax.attention.synthesizer import (
    dense_synthesizer_logits,
    factorized_dense_synthesizer_logits,
    factorized_random_synthesizer_logits,
    init_dense_synthesizer,
    init_factorized_dense_synthesizer,
    init_factorized_random_synthesizer,
    init_random_synthesizer,
    mixture_logits,
    random_synthesizer_logits,
    synthesizer_attention,
)

__all__ = [
    "ATTENTIONS",
    "FEATURE_MAPS",
    "IMPLEMENTATIONS",
    "PARAMETRIC_ATTENTIONS",
    "PERMUTATION_EQUIVARIANT",
    "SCHEME_NAMES",
    "LayerCache",
    "PositionScheme",
    "add_boundary_tokens",
    "attention_from_logits",
    "attention_logits",
    "bind",
    "block_diagonal_mask",
    "cached_attention",
    "causal_mask",
    "combine_masks",
    "denominator_free_attention",
    "dense_synthesizer_logits",
    "dot_product_attention",
    "efficient_attention",
    "elu_plus_one",
    "extrapolation_scheme",
    "extrapolation_table",
    "extrapolation_windows",
    "factorized_dense_synthesizer_logits",
    "factorized_random_synthesizer_logits",
    "flash",
    "gau",
    "hfwa_schemes",
    "init_dense_synthesizer",
    "init_factorized_dense_synthesizer",
    "init_factorized_random_synthesizer",
    "init_flash",
    "init_gau",
    "init_layer_cache",
    "init_random_synthesizer",
    "l2_normalized_attention",
    "linear_attention",
    "local_window_mask",
    "mixed_chunk_attention",
    "mixed_chunk_attention_reference",
    "mixture_logits",
    "next_token_accuracy",
    "padding_mask",
    "positional_attention",
    "probe_targets",
    "random_synthesizer_logits",
    "reference_attention",
    "register_attention",
    "relu2_attention",
    "rerope_flash_attention",
    "select_implementation",
    "sparse_attention",
    "sparse_mask",
    "synthesizer_attention",
    "taylor_features",
    "toeplitz",
    "toeplitz_gated_attention",
]
