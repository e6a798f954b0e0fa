"""DDPM UNet: parameter count of the CIFAR-10 preset, zero init, conditioning, dropout, jit, errors.

Speed (CI is a 2-core CPU): every forward pass goes through one of a few jitted functions of the
tiny 8x8 model, the CIFAR-10 model is only ever built abstractly with ``nnx.eval_shape``, and the
models are initialised with ``rbg`` keys (threefry's per-shape initialiser compiles cost ~25 s
eagerly on this model, rbg's ~5 s). Parameters are perturbed with NumPy noise, which compiles
nothing, and the jitted graphs are compiled with LLVM at -O0.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.nn.functional import merge_module, split_module
from kexue_jax.nn.unet import UNet, UNetConfig, timestep_embedding
from kexue_jax.position.sinusoidal import sinusoidal_embedding

B, S, C = 3, 8, 1  # batch, image size, channels of the tiny model's inputs


def _key(seed: int) -> jax.Array:
    return jax.random.key(seed, impl="rbg")


def _perturb(params, seed: int, scale: float = 0.3):
    """Add N(0, scale^2) noise to every parameter (so that the zero-initialised layers are not)."""
    rng = np.random.default_rng(seed)
    # In NumPy: a jnp add per parameter shape would compile dozens of tiny kernels.
    return jax.tree.map(
        lambda p: jnp.asarray(np.asarray(p) + scale * rng.standard_normal(p.shape).astype(p.dtype)),
        params,
    )


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _forward_and_grad(graphdef, params, x, t, w, key):
    """$\\varepsilon_\\theta(x, t)$ (deterministic; ``key`` must be ignored) and the gradient of
    $\\langle w, \\varepsilon_\\theta(x, t)\\rangle$ w.r.t. the parameters, in one compile."""
    def f(p):
        return merge_module(graphdef, p)(x, t, key=key)

    out, vjp = jax.vjp(f, params)
    return out, vjp(w)[0]


@functools.partial(jax.jit, static_argnames=("graphdef", "deterministic"))
def _forward(graphdef, params, x, t, y, key, *, deterministic):
    return merge_module(graphdef, params)(x, t, y, deterministic=deterministic, key=key)


def _maxdiff(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).max())


def _inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((B, S, S, C)), jnp.float32)
    t = jnp.asarray(rng.integers(0, 1000, (B,)), jnp.int32)
    w = jnp.asarray(rng.standard_normal((B, S, S, C)), jnp.float32)
    return x, t, w


@pytest.fixture(scope="module")
def tiny():
    # Eager init with rbg keys: threefry's per-shape initialiser compiles are ~5x slower.
    model = UNet(UNetConfig.tiny(), in_channels=C, image_size=S, rngs=nnx.Rngs(_key(0)))
    graphdef, params, state = split_module(model)
    assert state == {}, "the UNet holds parameters only (dropout keys are passed in)"
    return model, graphdef, params


@pytest.fixture(scope="module")
def tiny_conditional():
    model = UNet(UNetConfig.tiny(num_classes=3), in_channels=C, image_size=S, rngs=nnx.Rngs(_key(1)))
    graphdef, params, _ = split_module(model)
    return merge_module(graphdef, _perturb(params, seed=1)), graphdef


# -- parameter count --------------------------------------------------------------------------


def _expected_num_params(cfg: UNetConfig, in_channels: int, image_size: int) -> int:
    """The count written out from Ho et al.'s architecture, independently of the module's code."""
    def conv(cin, cout, k=3):
        return k * k * cin * cout + cout

    def norm(c):
        return 2 * c

    temb = 4 * cfg.ch

    def res(cin, cout):
        return (norm(cin) + conv(cin, cout) + temb * cout + cout + norm(cout) + conv(cout, cout)
                + (conv(cin, cout, 1) if cin != cout else 0))

    def attn(c):
        return norm(c) + 4 * (c * c + c)

    n = cfg.ch * temb + temb + temb * temb + temb + conv(in_channels, cfg.ch)
    skips, cur, size = [cfg.ch], cfg.ch, image_size
    for level, mult in enumerate(cfg.ch_mult):
        for _ in range(cfg.num_res_blocks):
            n += res(cur, cfg.ch * mult) + (attn(cfg.ch * mult) if size in cfg.attn_resolutions else 0)
            cur = cfg.ch * mult
            skips.append(cur)
        if level < len(cfg.ch_mult) - 1:
            n += conv(cur, cur) if cfg.resample_with_conv else 0
            skips.append(cur)
            size //= 2
    n += 2 * res(cur, cur) + attn(cur)
    for level in reversed(range(len(cfg.ch_mult))):
        for _ in range(cfg.num_res_blocks + 1):
            out = cfg.ch * cfg.ch_mult[level]
            n += res(cur + skips.pop(), out) + (attn(out) if size in cfg.attn_resolutions else 0)
            cur = out
        if level > 0:
            n += conv(cur, cur) if cfg.resample_with_conv else 0
            size *= 2
    if cfg.num_classes is not None:
        n += (cfg.num_classes + 1) * temb
    return n + norm(cur) + conv(cur, in_channels)


def _abstract_params(cfg: UNetConfig, in_channels: int, image_size: int):
    abstract = nnx.eval_shape(lambda: UNet(cfg, in_channels=in_channels, image_size=image_size,
                                           rngs=nnx.Rngs(0)))
    return abstract, jax.tree.leaves(nnx.state(abstract, nnx.Param))


def test_cifar10_preset_has_the_papers_35_7m_parameters():
    cfg = UNetConfig.ddpm_cifar10()
    abstract, leaves = _abstract_params(cfg, 3, 32)
    count = sum(leaf.size for leaf in leaves)
    # Ho et al. 2020 report 35.7M parameters for this model.
    assert 35.5e6 <= count <= 35.9e6
    assert count == _expected_num_params(cfg, 3, 32) == 35_746_307
    assert all(leaf.dtype == jnp.float32 for leaf in leaves)
    # Attention at 16x16 only: 2 blocks down, 3 up, plus the middle one.
    attns = [m for _, m in nnx.iter_graph(abstract) if type(m).__name__ == "_AttnBlock"]
    assert len(attns) == 6


@pytest.mark.parametrize(
    "overrides",
    [{}, {"num_classes": 10, "resample_with_conv": False, "ch_mult": (1, 2, 3)}],
)
def test_parameter_count_of_variants_matches_the_architecture(overrides):
    cfg = UNetConfig.tiny(**overrides)
    _, leaves = _abstract_params(cfg, 2, 16)
    assert sum(leaf.size for leaf in leaves) == _expected_num_params(cfg, 2, 16)


# -- timestep embedding -----------------------------------------------------------------------


def test_timestep_embedding_is_the_transformer_table_permuted():
    t = jnp.array([0.0, 1.0, 7.0, 999.0, -3.5])
    dim, max_period = 16, 10000.0
    half = dim // 2
    ours = timestep_embedding(t, dim, max_period=max_period)
    # sinusoidal_embedding uses theta^(-i/half), interleaved; DDPM uses max_period^(-i/(half-1)).
    theirs = sinusoidal_embedding(t, dim, theta=max_period ** (half / (half - 1)))
    np.testing.assert_allclose(ours[..., :half], theirs[..., 0::2], atol=2e-4)
    np.testing.assert_allclose(ours[..., half:], theirs[..., 1::2], atol=2e-4)
    assert ours.dtype == jnp.float32 and ours.shape == (5, dim)
    np.testing.assert_array_equal(timestep_embedding(jnp.array([3]), 8), timestep_embedding(3.0, 8)[None])


_embed = jax.jit(timestep_embedding, static_argnames=("dim", "max_period"))


@given(dim=st.sampled_from([4, 8, 128]), t=st.floats(-1e4, 1e4, allow_nan=False), shift=st.integers(0, 50))
def test_timestep_embedding_properties(dim, t, shift):
    half = dim // 2
    e = np.asarray(_embed(jnp.array([t, 0.0, float(shift)]), dim=dim, max_period=100.0))
    # (sin, cos) pairs lie on the unit circle; t = 0 maps to (0, ..., 0, 1, ..., 1).
    np.testing.assert_allclose(e[0, :half] ** 2 + e[0, half:] ** 2, 1.0, atol=1e-5)
    np.testing.assert_array_equal(e[1], np.concatenate([np.zeros(half), np.ones(half)]))
    # Frequencies from 1 down to 1/max_period: <PE(0), PE(k)> = sum_i cos(k w_i).
    freqs = 100.0 ** (-np.arange(half) / (half - 1))
    np.testing.assert_allclose(e[1] @ e[2], np.cos(shift * freqs).sum(), atol=1e-4)


@pytest.mark.parametrize("dim", [2, 5, 0])
def test_timestep_embedding_rejects_bad_dim(dim):
    with pytest.raises(ValueError, match="dim: expected an even integer >= 4"):
        timestep_embedding(jnp.zeros(2), dim)
    with pytest.raises(ValueError, match="max_period"):
        timestep_embedding(jnp.zeros(2), 8, max_period=1.0)


# -- forward pass -----------------------------------------------------------------------------


def test_output_is_exactly_zero_at_init_and_gradients_reach_only_conv_out(tiny):
    _, graphdef, params = tiny
    x, t, w = _inputs()
    out, grads = _forward_and_grad(graphdef, params, x, t, w, _key(0))
    assert out.shape == (B, S, S, C) and out.dtype == jnp.float32
    np.testing.assert_array_equal(out, 0.0)
    # conv_out's kernel is zero, so nothing upstream of it gets a gradient; conv_out itself does.
    # (Checks in NumPy: a jnp reduction per parameter shape would compile dozens of tiny kernels.)
    for name, g in jax.device_get(grads).items():
        for leaf in jax.tree.leaves(g):
            assert bool(np.any(leaf != 0)) == (name == "conv_out"), name


@pytest.fixture(scope="module")
def perturbed(tiny):
    """The tiny model with every parameter perturbed, its output and gradients on `_inputs()`."""
    _, graphdef, params = tiny
    params = _perturb(params, seed=0)
    x, t, w = _inputs()
    out, grads = _forward_and_grad(graphdef, params, x, t, w, _key(0))
    return graphdef, params, out, grads


def test_perturbed_network_is_nonzero_with_finite_gradients_everywhere(perturbed):
    _, _, out, grads = perturbed
    out = np.asarray(out)
    assert np.all(np.isfinite(out)) and np.abs(out).mean() > 1e-3
    leaves = jax.tree.leaves(jax.device_get(grads))
    assert all(np.all(np.isfinite(g)) for g in leaves)
    # Every parameter tensor influences the output: the time MLP, attention, both convs of every
    # block, the shortcuts, the resampling convs, the norms.
    assert all(np.abs(g).max() > 0 for g in leaves)


def test_output_depends_on_time_and_examples_are_independent(perturbed):
    graphdef, params, out, _ = perturbed
    x, t, w = _inputs()
    out_t, _ = _forward_and_grad(graphdef, params, x, t.at[0].add(100), w, _key(0))
    assert _maxdiff(out_t[0], out[0]) > 1e-3
    # GroupNorm and attention act within each example: changing example 1 leaves the others alone.
    np.testing.assert_allclose(out_t[1:], out[1:], atol=1e-6)
    out_x, _ = _forward_and_grad(graphdef, params, x.at[1].multiply(-2.0), t, w, _key(0))
    assert _maxdiff(out_x[1], out[1]) > 1e-3
    np.testing.assert_allclose(out_x[::2], out[::2], atol=1e-6)


def test_jit_through_split_merge_equals_eager(perturbed):
    graphdef, params, out, _ = perturbed
    x, t, _ = _inputs()
    eager = merge_module(graphdef, params)(x, t)
    np.testing.assert_allclose(out, eager, rtol=1e-4, atol=1e-5)


def test_dropout_is_off_when_deterministic_and_keyed_when_not(perturbed):
    graphdef, params, out, _ = perturbed
    x, t, w = _inputs()
    # deterministic=True (the default) ignores the key: same output with another key.
    np.testing.assert_array_equal(_forward_and_grad(graphdef, params, x, t, w, _key(7))[0], out)
    d1 = _forward(graphdef, params, x, t, None, _key(1), deterministic=False)
    d1_again = _forward(graphdef, params, x, t, None, _key(1), deterministic=False)
    d2 = _forward(graphdef, params, x, t, None, _key(2), deterministic=False)
    np.testing.assert_array_equal(d1, d1_again)
    assert _maxdiff(d1, d2) > 1e-4
    assert _maxdiff(d1, out) > 1e-4
    with pytest.raises(ValueError, match="key: a PRNG key is required"):
        _forward(graphdef, params, x, t, None, None, deterministic=False)


def test_class_conditioning_and_null_label(tiny_conditional):
    # Eager: after test_jit_through_split_merge_equals_eager every op but the label embedding is
    # already compiled for these shapes, whereas a jit of this model would be a fresh compile.
    model, _ = tiny_conditional
    x, t, _ = _inputs()

    def fwd(y):
        return np.asarray(model(x, t, jnp.asarray(y, jnp.int32)))

    out0, out1, null = fwd([0, 0, 0]), fwd([1, 1, 1]), fwd([3, 3, 3])  # 3 = num_classes = null
    assert np.all(np.isfinite(null))
    assert _maxdiff(out0, out1) > 1e-3
    assert _maxdiff(out0, null) > 1e-3
    # Per-example labels: mixing labels in a batch gives each example its own label's output.
    mixed = fwd([0, 1, 3])
    np.testing.assert_allclose(mixed[0], out0[0], atol=1e-6)
    np.testing.assert_allclose(mixed[1], out1[1], atol=1e-6)
    np.testing.assert_allclose(mixed[2], null[2], atol=1e-6)
    assert UNetConfig.tiny(num_classes=3).null_label == 3


def test_dtypes_shapes_and_variants_trace():
    # jax.eval_shape traces without compiling: bf16 compute with float32 params, out_channels,
    # average-pool resampling, non-square images.
    cfg = UNetConfig.tiny(dtype=jnp.bfloat16, out_channels=2, resample_with_conv=False)
    assert cfg.dtype == "bfloat16"
    abstract = nnx.eval_shape(lambda: UNet(cfg, in_channels=3, image_size=(8, 16), rngs=nnx.Rngs(0)))
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(abstract, nnx.Param)))
    x = jax.ShapeDtypeStruct((2, 8, 16, 3), jnp.float32)
    t = jax.ShapeDtypeStruct((2,), jnp.float32)
    graphdef, state = nnx.split(abstract)
    out = jax.eval_shape(lambda s, x, t: nnx.merge(graphdef, s)(x, t), state, x, t)
    assert out.shape == (2, 8, 16, 2) and out.dtype == jnp.bfloat16
    hlo = jax.jit(lambda s, x, t: nnx.merge(graphdef, s)(x, t)).lower(state, x, t).as_text()
    lines = hlo.splitlines()
    # Attention at 4x8 = 32 positions: its softmax exponentiates [.., 32, 32] logits in float32,
    # and every GroupNorm's rsqrt(var + eps) is float32, although activations are bfloat16.
    softmax = [ln for ln in lines if "exponential" in ln and "x32x32x" in ln]
    rsqrt = [ln for ln in lines if "stablehlo.rsqrt" in ln]
    assert softmax and all(ln.rstrip().endswith("f32>") for ln in softmax)
    assert rsqrt and all(ln.rstrip().endswith("f32>") for ln in rsqrt)
    assert any("bf16>" in ln for ln in lines if "convolution" in ln)


# -- errors -----------------------------------------------------------------------------------


def test_call_errors_name_the_argument(tiny, tiny_conditional):
    model, _, _ = tiny
    cond, _ = tiny_conditional
    x, t, _ = _inputs()
    cases = [
        (model, (x[0], t), "x: expected rank 4"),
        (model, (jnp.zeros((B, 7, 8, C)), t), r"x: height and width must be divisible by .* = 2"),
        (model, (jnp.zeros((B, S, S, 3)), t), r"x: expected shape \(b, h, w, 1\)"),
        (model, (x, t[:2]), r"t: expected shape \(3,\)"),
        (model, (x, t[:, None]), r"t: expected shape \(3,\)"),
        (model, (x, t, jnp.zeros((B,), jnp.int32)), "y: this UNet is unconditional"),
        (cond, (x, t), "y: required when num_classes=3"),
        (cond, (x, t, jnp.zeros((2,), jnp.int32)), r"y: expected shape \(3,\)"),
        (cond, (x, t, jnp.zeros((B,))), "y: expected an integer dtype"),
    ]
    for net, args, match in cases:
        with pytest.raises(ValueError, match=match):
            net(*args)


def test_construction_errors_name_the_argument():
    with pytest.raises(ValueError, match="num_groups: must divide"):
        UNetConfig.tiny(num_groups=3)
    with pytest.raises(ValueError, match="dropout"):
        UNetConfig.tiny(dropout=1.0)
    with pytest.raises(ValueError, match="ch_mult"):
        UNetConfig.tiny(ch_mult=())
    with pytest.raises(ValueError, match=r"image_size: .* divisible .* = 8, got \(12, 12\)"):
        nnx.eval_shape(lambda: UNet(UNetConfig.ddpm_cifar10(), in_channels=3, image_size=12,
                                    rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="image_size"):
        nnx.eval_shape(lambda: UNet(UNetConfig.tiny(), in_channels=3, image_size=(8, 8, 8),
                                    rngs=nnx.Rngs(0)))
