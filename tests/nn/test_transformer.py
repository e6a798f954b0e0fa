"""Transformer and GAU LMs: KV-cache decoding equals the full pass under every position scheme;
causality; per-layer schemes; dtypes, dropout, validation."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from kexue_jax.attention.positional import PositionScheme, hfwa_schemes
from kexue_jax.nn.transformer import TransformerConfig, TransformerLM

B, T, PREFILL = 2, 9, 3
L = 4  # training length of the length-dependent schemes (T > L)

SMALL = dict(d_model=16, num_layers=2, num_heads=2, gau_key_size=8, gau_expansion=2)

# (scheme, extra model fields)
CASES = {
    "rope": (PositionScheme(), {}),
    "rerope_logn": (PositionScheme(rerope_window=3, logn=True, training_length=L), {}),
    "leaky_rerope": (PositionScheme(rerope_window=3, leaky_scale=2.0), {}),
    "t5": (PositionScheme(rope=None, bias="t5", t5_buckets=8), dict(t5_buckets=8)),
    "rope_bias": (PositionScheme(), dict(rope_bias=True)),
    "rope_bias_rerope": (PositionScheme(rerope_window=3), dict(rope_bias=True)),
    "learned": (PositionScheme(rope=None), dict(absolute="learned", max_len=16)),
    "gqa_post_swiglu_rms": (PositionScheme(), dict(num_heads=4, num_kv_heads=2, norm="post",
                                                  mlp="swiglu", norm_type="rmsnorm")),
}
GAU_CASES = ("rope_bias", "leaky_rerope")


def _perturbed(config: TransformerConfig, seed: int = 0) -> TransformerLM:
    """A model with every parameter moved off its initial value (zero biases included)."""
    graphdef, params, state = nnx.split(TransformerLM(config, rngs=nnx.Rngs(seed)), nnx.Param, ...)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    moved = [x + 0.1 * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys, strict=True)]
    return nnx.merge(graphdef, jax.tree.unflatten(tree, moved), state)


@functools.partial(jax.jit, static_argnames=("graphdef", "scheme"))
def _apply(graphdef, state, tokens, scheme):
    return nnx.merge(graphdef, state)(tokens, scheme=scheme)


@functools.partial(jax.jit, static_argnames=("graphdef", "scheme"))
def _step(graphdef, state, tokens, cache, start, scheme):
    return nnx.merge(graphdef, state).decode(tokens, cache, start=start, scheme=scheme)


def _full(lm: TransformerLM, tokens, scheme=CASES["rope"][0]):
    """``lm(tokens, scheme=scheme)`` as one compiled call (eager NNX compiles op by op)."""
    graphdef, state = nnx.split(lm)
    return _apply(graphdef, state, tokens, scheme)


def _tokens(seed: int = 2, t: int = T) -> jax.Array:
    return jax.random.randint(jax.random.key(seed), (B, t), 0, 256)


def _decode(lm: TransformerLM, tokens, scheme):
    """Prefill ``PREFILL`` tokens, then decode one at a time (a traced ``start``: one compile)."""
    graphdef, state = nnx.split(lm)
    cache = lm.init_cache(B, T + 3)
    out, cache = _step(graphdef, state, tokens[:, :PREFILL], cache, 0, scheme)
    outs = [out]
    for m in range(PREFILL, tokens.shape[1]):
        out, cache = _step(graphdef, state, tokens[:, m:m + 1], cache, jnp.int32(m), scheme)
        outs.append(out)
    return jnp.concatenate(outs, axis=1)


# The pure attention of every scheme is checked against its cache in
# tests/attention/test_positional.py; here each kind of cache content (rotated keys, raw keys,
# per-layer bias tables, learned biases, absolute positions, grouped heads) goes through a model.
MODEL_CASES = ("rope", "rerope_logn", "t5", "rope_bias_rerope", "learned", "gqa_post_swiglu_rms")


@pytest.mark.parametrize(
    "block,name", [("attention", n) for n in MODEL_CASES] + [("gau", n) for n in GAU_CASES]
)
def test_kv_cache_decoding_equals_full_evaluation(block, name):
    scheme, extra = CASES[name]
    lm = _perturbed(TransformerConfig(**{**SMALL, **extra, "block": block}))
    tokens = _tokens()
    full = _full(lm, tokens, scheme)
    assert full.shape == (B, T, 256) and full.dtype == jnp.float32
    np.testing.assert_allclose(_decode(lm, tokens, scheme), full, atol=5e-5, rtol=1e-5)


def test_dynamic_ntk_decoding_equals_the_prefix_in_a_one_layer_model():
    # Dynamic NTK's table follows the current length. The cache keeps keys un-rotated, so a
    # one-layer model decodes token m exactly as the prefix 0..m evaluates. (In deeper models the
    # cached states of lower layers were computed under the table of their own step, as in every
    # KV cache for dynamic NTK; recomputing them would cost O(T^2) per token.)
    scheme = PositionScheme(rope="dynamic_ntk", training_length=L)
    lm = _perturbed(TransformerConfig(**{**SMALL, "num_layers": 1}))
    tokens = _tokens()
    decoded = _decode(lm, tokens, scheme)
    checked = (PREFILL - 1, L - 1, L, T - 2)  # prefilled, last plain-RoPE length, extended
    rows = jnp.stack([_full(lm, tokens[:, :m + 1], scheme)[:, m] for m in checked], axis=1)
    np.testing.assert_allclose(decoded[:, checked], rows, atol=5e-5, rtol=1e-5)
    full = _full(lm, tokens, scheme)
    assert float(jnp.abs(decoded[:, L] - full[:, L]).max()) > 1e-4  # the table did change


@pytest.mark.parametrize("block", ["attention", "gau"])
def test_causal_future_tokens_do_not_change_earlier_logits(block):
    lm = _perturbed(TransformerConfig(**{**SMALL, "block": block}))
    tokens = _tokens()
    changed = tokens.at[:, 5:].set((tokens[:, 5:] + 1) % 256)
    a, b = _full(lm, tokens), _full(lm, changed)
    np.testing.assert_allclose(a[:, :5], b[:, :5], atol=1e-6)
    assert float(jnp.abs(a[:, 5:] - b[:, 5:]).max()) > 1e-3


def test_per_layer_schemes_hfwa():
    config = TransformerConfig(**{**SMALL, "num_layers": 3})
    lm = _perturbed(config)
    tokens = _tokens()
    schemes = hfwa_schemes(3, window=2, training_length=L)
    out = _full(lm, tokens, schemes)
    np.testing.assert_allclose(_decode(lm, tokens, schemes), out, atol=5e-5)
    # Per-layer schemes are used per layer: giving every layer the first scheme changes the result.
    assert float(jnp.abs(out - _full(lm, tokens, schemes[0])).max()) > 1e-3


def test_bfloat16_compute_keeps_float32_params_and_logits():
    lm = TransformerLM(TransformerConfig(**{**SMALL, "dtype": "bfloat16"}), rngs=nnx.Rngs(0))
    params = nnx.state(lm, nnx.Param)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
    out = _full(lm, _tokens())
    assert out.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(out)))
    ref = _full(TransformerLM(TransformerConfig(**SMALL), rngs=nnx.Rngs(0)), _tokens())
    assert float(jnp.abs(out - ref).max()) < 0.05  # same weights, bf16 rounding only


def test_dropout_needs_a_key_and_is_deterministic_without_one():
    lm = _perturbed(TransformerConfig(**{**SMALL, "dropout": 0.5}))
    tokens = _tokens()
    np.testing.assert_array_equal(lm(tokens), lm(tokens))
    a = lm(tokens, key=jax.random.key(0))
    b = lm(tokens, key=jax.random.key(1))
    assert float(jnp.abs(a - b).max()) > 1e-3


def test_jit_of_the_merged_module_equals_eager():
    lm = _perturbed(TransformerConfig(**SMALL))
    graphdef, state = nnx.split(lm)
    tokens = _tokens()
    scheme = PositionScheme(rerope_window=3)

    @jax.jit
    def apply(state, tokens):
        return nnx.merge(graphdef, state)(tokens, scheme=scheme)

    np.testing.assert_allclose(apply(state, tokens), lm(tokens, scheme=scheme), atol=1e-5)


def test_greedy_generation_equals_repeated_full_argmax():
    lm = _perturbed(TransformerConfig(**SMALL))
    graphdef, state = nnx.split(lm)
    prompt = _tokens(t=3)
    scheme = CASES["rerope_logn"][0]

    @jax.jit
    def gen(state, prompt, key):
        return nnx.merge(graphdef, state).generate(prompt, 5, key=key, temperature=0.0, scheme=scheme)

    out = gen(state, prompt, jax.random.key(0))
    assert out.shape == (B, 8) and out.dtype == jnp.int32
    np.testing.assert_array_equal(out[:, :3], prompt)
    # Each generated token is the argmax of the full pass over what precedes it.
    full = _full(lm, out[:, :-1], scheme)
    np.testing.assert_array_equal(out[:, 3:], jnp.argmax(full[:, 2:], axis=-1))
    sampled = jax.jit(lambda s, p, k: nnx.merge(graphdef, s).generate(p, 5, key=k, scheme=scheme))
    a, b = sampled(state, prompt, jax.random.key(1)), sampled(state, prompt, jax.random.key(2))
    assert a.shape == (B, 8) and bool(jnp.any(a != b))  # temperature 1 samples differ by key


@pytest.mark.parametrize("kind", ["dense", "random", "factorized_random", "random+vanilla"])
def test_synthesizer_blocks_are_causal_and_random_ones_ignore_content(kind):
    lm = _perturbed(TransformerConfig(**{**SMALL, "synthesizer": kind, "max_len": 12}))
    tokens = _tokens()
    a = _full(lm, tokens)
    b = _full(lm, tokens.at[:, 5:].set((tokens[:, 5:] + 1) % 256))
    np.testing.assert_allclose(a[:, :5], b[:, :5], atol=1e-6)
    assert float(jnp.abs(a[:, 5:] - b[:, 5:]).max()) > 1e-3
    if kind in ("random", "factorized_random"):
        # Input-independent attention: the first layer's weights are the same for any tokens.
        block = lm.blocks[0].mixer
        x = jnp.zeros((1, T, SMALL["d_model"]))
        np.testing.assert_array_equal(block._logits(x, CASES["rope"][0]), block._logits(x + 1.0, CASES["rope"][0]))


def test_validation_errors_name_the_argument():
    with pytest.raises(ValueError, match="block"):
        TransformerConfig(block="mamba")
    with pytest.raises(ValueError, match="d_model"):
        TransformerConfig(d_model=10, num_heads=3)
    with pytest.raises(ValueError, match="num_kv_heads"):
        TransformerConfig(num_heads=4, num_kv_heads=3)
    with pytest.raises(ValueError, match="dropout"):
        TransformerConfig(dropout=1.0)
    lm = TransformerLM(TransformerConfig(**{**SMALL, "absolute": "learned", "max_len": 8}), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="tokens"):
        lm(_tokens(t=9))  # beyond the learned positions
    with pytest.raises(ValueError, match="tokens"):
        lm(jnp.zeros((2, 3, 1), jnp.int32))
    with pytest.raises(ValueError, match="tokens"):
        lm(jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="scheme"):
        lm(_tokens(t=4), scheme=(PositionScheme(),))  # one scheme for a 2-layer model
    with pytest.raises(ValueError, match="scheme"):
        lm(_tokens(t=4), scheme=PositionScheme(bias="t5", t5_buckets=8))  # no table
    cache = lm.init_cache(B, 4)
    with pytest.raises(ValueError, match="start"):
        lm.decode(_tokens(t=2), cache, start=3)
    with pytest.raises(ValueError, match="cache"):
        lm.decode(_tokens(t=1), cache[:1], start=0)
    with pytest.raises(ValueError, match="synthesizer"):
        TransformerConfig(synthesizer="dense", block="gau")
    syn = TransformerLM(TransformerConfig(**{**SMALL, "synthesizer": "random", "max_len": 8}), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="cache"):
        syn.decode(_tokens(t=1), syn.init_cache(B, 4), start=0)
    with pytest.raises(ValueError, match="scheme"):
        syn(_tokens(t=4), scheme=PositionScheme(rerope_window=2))
    with pytest.raises(ValueError, match="x"):
        syn(_tokens(t=9))  # beyond the synthesised key positions
    rb = TransformerLM(TransformerConfig(**{**SMALL, "rope_bias": True}), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="scheme"):
        rb(_tokens(t=4), scheme=PositionScheme(rope=None))
