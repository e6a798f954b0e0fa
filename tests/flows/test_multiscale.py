"""Multi-scale factor-out, scanned repetition, dequantization, priors and the assembled flows."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.flows import (
    actnorm,
    affine_coupling,
    chain,
    conv1x1_lu,
    conv_conditioner,
    coupling_flow_2d,
    glow,
    init_top_prior,
    multiscale,
    nice,
    quantize,
    realnvp,
    repeat,
    reshape,
    squeeze,
    standard_normal_log_prob,
    top_prior_log_prob,
    uniform_dequantize,
)
from kexue_jax.likelihoods import gaussian_log_prob

seeds = st.integers(0, 2**31 - 1)


@functools.partial(jax.jit, static_argnames="scale")
def perturb(params, key, scale=0.1):
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, max(len(leaves), 1))
    return jax.tree.unflatten(
        treedef, [leaf + scale * jax.random.normal(k, leaf.shape, leaf.dtype) for leaf, k in zip(leaves, keys, strict=False)]
    )


def _flat(zs):
    return jnp.concatenate([z.reshape(z.shape[0], -1) for z in zs], axis=-1)


def _tiny_glow():
    return glow(levels=2, depth=2, hidden=4, coupling="affine", scale="sigmoid")


@functools.cache
def _setup(name):
    """Tiny multi-scale flows on 4×4×2 images with perturbed (non-identity) params."""
    bij = {"glow": _tiny_glow, "realnvp": lambda: realnvp(levels=2, hidden=4, blocks=1)}[name]()
    # 32 examples: actnorm's data-dependent init on the 1×1×16 top of a 2-example batch would
    # divide by the spread of two numbers.
    x = jax.random.normal(jax.random.key(0), (32, 4, 4, 2))
    # 0.03, not the single-layer suite's 0.1: ten exp-scaled couplings in a row with 0.1 noise on
    # every weight reach scales of e^40 and overflow float32 (a degenerate flow, not a bug).
    params = perturb(jax.jit(bij.init)(jax.random.key(1), x), jax.random.key(2), scale=0.03)
    return bij, jax.jit(bij.forward), jax.jit(bij.inverse), params


# (additive couplings and shuffle are checked layer by layer in tests/suites; two whole multi-scale
# flows keep the compile count down)
MULTISCALE = ["glow", "realnvp"]


@pytest.mark.parametrize("name", MULTISCALE)
@given(seed=seeds)
def test_multiscale_round_trip_and_opposite_log_dets(name, seed):
    _, fwd, inv, params = _setup(name)
    x = jax.random.normal(jax.random.key(seed), (2, 4, 4, 2))
    zs, ld = fwd(params, x)
    assert isinstance(zs, tuple) and len(zs) == 2
    assert sum(math.prod(z.shape[1:]) for z in zs) == 32  # dimension is preserved
    x_back, ld_inv = inv(params, zs)
    np.testing.assert_allclose(x_back, x, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ld_inv, -ld, rtol=1e-4, atol=1e-4)
    assert np.all(np.asarray(ld) != 0.0)  # the perturbed flow is not volume-preserving


@pytest.mark.parametrize("name", ["glow", "realnvp"])
def test_whole_small_flow_log_det_is_slogdet_of_jacobian(name):
    bij, fwd, _, params = _setup(name)
    x = jax.random.normal(jax.random.key(3), (1, 4, 4, 2))

    def f(v):
        zs, _ = bij.forward(params, v.reshape(x.shape))
        return _flat(zs)[0]

    jac = jax.jit(jax.jacfwd(f))(x.reshape(-1))
    sign, logabs = jnp.linalg.slogdet(jac)
    assert float(sign) != 0.0
    np.testing.assert_allclose(float(fwd(params, x)[1][0]), float(logabs), rtol=1e-4, atol=1e-3)


def test_split_prior_is_the_conditional_gaussian_of_the_factored_half():
    # The standardising map's log-det plus N(0, 1) of its output is log N(z2; mu(z1), sigma(z1)^2).
    level = chain(squeeze(), actnorm())
    bij = multiscale([level, chain(squeeze())])
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 2))
    params = perturb(bij.init(jax.random.key(1), x), jax.random.key(2), scale=0.3)
    split = params[0]["split"]["st"]
    h, _ = level.forward(params[0]["level"], x)
    z1, z2 = h[..., :4], h[..., 4:]
    # the zero conv reads z1 (4 channels) and writes (scale, shift) of z2's 4 channels
    assert split["w"].shape[-2:] == (4, 8)
    conv = jax.lax.conv_general_dilated(z1, split["w"], (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC")) + split["b"]
    s, t = conv[..., :4], conv[..., 4:]
    mu, log_sigma = -t * jnp.exp(-s), -s
    expected = gaussian_log_prob(z2, mu, 2 * log_sigma).reshape(2, -1).sum(-1)
    zs, ld = bij.forward(params, x)
    _, ld_level = level.forward(params[0]["level"], x)
    got = standard_normal_log_prob(zs[0]) + (ld - ld_level)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_multiscale_errors_name_the_argument():
    # Shapes are checked at trace time, so abstract evaluation is enough (and compiles nothing).
    bij = _tiny_glow()
    x = jax.ShapeDtypeStruct((2, 4, 4, 2), jnp.float32)
    params = jax.eval_shape(bij.init, jax.random.key(1), x)
    zs, _ = jax.eval_shape(bij.forward, params, x)
    with pytest.raises(ValueError, match="zs"):
        jax.eval_shape(bij.inverse, params, zs[:1])
    with pytest.raises(ValueError, match=r"zs\[0\]"):
        bad = jax.ShapeDtypeStruct((*zs[0].shape[:-1], 1), jnp.float32)
        jax.eval_shape(bij.inverse, params, (bad, zs[1]))
    with pytest.raises(ValueError, match="x"):
        jax.eval_shape(bij.forward, params, jax.ShapeDtypeStruct((4, 4, 2), jnp.float32))
    with pytest.raises(ValueError, match="even number of channels"):
        multiscale([chain(actnorm()), chain(actnorm())]).init(jax.random.key(0), jnp.ones((1, 2, 2, 3)))
    with pytest.raises(ValueError, match="levels"):
        multiscale([])
    with pytest.raises(ValueError, match="odd|squeeze|even"):
        jax.eval_shape(glow(levels=2, depth=1, hidden=4).init, jax.random.key(0),
                       jax.ShapeDtypeStruct((1, 6, 6, 1), jnp.float32))


# ------------------------------------------------------------------------------------- repeat


def test_repeat_equals_the_unrolled_chain_with_the_same_params():
    step = chain(actnorm(), conv1x1_lu(), affine_coupling(conditioner=conv_conditioner(hidden=4)))
    rep = repeat(step, 3)
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 2))
    params = perturb(rep.init(jax.random.key(1), x), jax.random.key(2))
    unstacked = [jax.tree.map(lambda leaf, i=i: leaf[i], params) for i in range(3)]
    y_chain, ld_chain = chain(step, step, step).forward(tuple(unstacked), x)
    y, ld = jax.jit(rep.forward)(params, x)
    np.testing.assert_allclose(y, y_chain, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ld, ld_chain, rtol=1e-5, atol=1e-4)
    x_back, ld_inv = jax.jit(rep.inverse)(params, y)
    np.testing.assert_allclose(x_back, x, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ld_inv, -ld, rtol=1e-5, atol=1e-4)
    # remat changes memory and unroll changes the compiled loop, not the values
    y_remat, _ = jax.jit(repeat(step, 3, remat=True).forward)(params, x)
    np.testing.assert_allclose(y_remat, y, rtol=1e-6, atol=1e-6)
    y_unrolled, ld_unrolled = jax.jit(repeat(step, 3, unroll=True).forward)(params, x)
    np.testing.assert_allclose(y_unrolled, y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ld_unrolled, ld, rtol=1e-5, atol=1e-4)


def test_repeat_init_propagates_data_for_actnorm():
    rep = repeat(chain(actnorm(), conv1x1_lu()), 2)
    x = 3.0 + 2.0 * jax.random.normal(jax.random.key(0), (64, 4, 4, 2))
    params = rep.init(jax.random.key(1), x)
    p0 = jax.tree.map(lambda leaf: leaf[0], params)
    h, _ = chain(actnorm(), conv1x1_lu()).forward(p0, x)
    # copy 1's actnorm was initialised on copy 0's output: its input statistics are its init's
    a1 = jax.tree.map(lambda leaf: leaf[1], params)[0]
    out = h * jnp.exp(a1["log_scale"]) + a1["bias"]
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1.0, atol=1e-3)


def test_repeat_errors():
    with pytest.raises(ValueError, match="num"):
        repeat(actnorm(), 0)
    with pytest.raises(ValueError, match="shape-preserving"):
        repeat(squeeze(), 2).init(jax.random.key(0), jnp.ones((1, 4, 4, 1)))
    rep = repeat(actnorm(), 2)
    params = rep.init(jax.random.key(0), jnp.ones((1, 2, 2, 2)))
    with pytest.raises(ValueError, match="params"):
        rep.forward(jax.tree.map(lambda leaf: leaf[:1], params), jnp.ones((1, 2, 2, 2)))


def test_reshape_size_mismatch_is_an_error():
    with pytest.raises(ValueError, match="event_shape_out"):
        reshape((4, 4, 1), (15,))


# ---------------------------------------------------------------------------- dequantization


@given(seed=seeds, num_bins=st.sampled_from([2, 17, 256]))
def test_dequantize_stays_in_its_bin_and_quantize_inverts_it(seed, num_bins):
    x = jax.random.randint(jax.random.key(seed), (3, 5, 5, 1), 0, num_bins).astype(jnp.uint8)
    y = uniform_dequantize(x, num_bins=num_bins, key=jax.random.key(seed + 1))
    assert y.dtype == jnp.float32
    assert float(y.min()) >= 0.0 and float(y.max()) < 1.0
    lower = np.asarray(x, np.float32) / num_bins
    assert np.all((np.asarray(y) >= lower) & (np.asarray(y) < lower + 1.0 / num_bins))
    # the level is recovered exactly; the division by K - 1 may differ by an ulp between XLA and numpy
    level = np.asarray(quantize(y, num_bins=num_bins)) * (num_bins - 1)
    np.testing.assert_array_equal(np.rint(level), np.asarray(x, np.float32))
    np.testing.assert_allclose(level, np.asarray(x, np.float32), atol=1e-4)
    centre = uniform_dequantize(x, num_bins=num_bins, key=None)
    np.testing.assert_allclose(centre, (np.asarray(x, np.float32) + 0.5) / num_bins, rtol=1e-6)


def test_dequantize_noise_is_uniform_on_the_bin():
    x = jnp.zeros((20000,), jnp.int32)
    y = np.asarray(uniform_dequantize(x, num_bins=4, key=jax.random.key(0)))
    # U[0, 1/4): mean 1/8, sd 1/(4 sqrt 12); 5 standard errors
    se = (0.25 / math.sqrt(12)) / math.sqrt(y.size)
    assert abs(y.mean() - 0.125) < 5 * se


def test_dequantize_errors():
    with pytest.raises(ValueError, match="x"):
        uniform_dequantize(jnp.ones((2, 2), jnp.float32), num_bins=256, key=None)
    with pytest.raises(ValueError, match="num_bins"):
        uniform_dequantize(jnp.ones((2, 2), jnp.int32), num_bins=1, key=None)


# ------------------------------------------------------------------------------------ priors


@given(seed=seeds)
def test_top_prior_is_the_gaussian_with_its_learned_and_class_moments(seed):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    params = init_top_prior((2, 2, 3), num_classes=4)
    params = perturb(params, k1, scale=0.5)
    z = jax.random.normal(k2, (5, 2, 2, 3))
    labels = jax.random.randint(k3, (5,), 0, 4)
    mean = params["mean"][None] + params["class_mean"][labels][:, None, None, :]
    log_scale = params["log_scale"][None] + params["class_log_scale"][labels][:, None, None, :]
    expected = gaussian_log_prob(z, mean, 2 * log_scale).reshape(5, -1).sum(-1)
    np.testing.assert_allclose(top_prior_log_prob(params, z, labels), expected, rtol=1e-5, atol=1e-4)
    # at zero parameters it is the standard normal
    zero = init_top_prior((2, 2, 3))
    np.testing.assert_allclose(top_prior_log_prob(zero, z), standard_normal_log_prob(z), rtol=1e-6)


def test_prior_label_errors():
    conditional = init_top_prior((2,), num_classes=3)
    with pytest.raises(ValueError, match="labels"):
        top_prior_log_prob(conditional, jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="labels"):
        top_prior_log_prob(conditional, jnp.zeros((4, 2)), jnp.zeros((3,), jnp.int32))
    with pytest.raises(ValueError, match="labels"):
        top_prior_log_prob(init_top_prior((2,)), jnp.zeros((4, 2)), jnp.zeros((4,), jnp.int32))
    with pytest.raises(ValueError, match="z_top"):
        top_prior_log_prob(init_top_prior((2,)), jnp.zeros((4, 3)))


# ------------------------------------------------------------------------------ architectures


def test_nice_is_volume_preserving_except_for_its_scale_layer():
    bij = nice((4, 4, 1), num_couplings=4, hidden=8, depth=2)
    x = jax.random.uniform(jax.random.key(0), (3, 4, 4, 1))
    params = perturb(bij.init(jax.random.key(1), x), jax.random.key(2))
    z, ld = jax.jit(bij.forward)(params, x)
    assert z.shape == (3, 16)
    np.testing.assert_allclose(ld, jnp.sum(params[-1]["log_scale"]) * jnp.ones(3), rtol=1e-5)
    np.testing.assert_allclose(jax.jit(bij.inverse)(params, z)[0], x, rtol=1e-4, atol=1e-5)
    # the scaling layer starts from the data's spread: at init (identity couplings) every latent
    # dimension of the init batch has unit standard deviation
    x_init = 0.3 + 0.01 * jax.random.uniform(jax.random.key(3), (64, 4, 4, 1))
    data_init = nice((4, 4, 1), num_couplings=4, hidden=8, depth=2, scale_data_init=True)
    z0, _ = data_init.forward(data_init.init(jax.random.key(1), x_init), x_init)
    np.testing.assert_allclose(z0.std(axis=0), 1.0, rtol=1e-3)


def test_coupling_flow_2d_density_integrates_to_one():
    bij = coupling_flow_2d(depth=3, hidden=16, use_actnorm=True, permutation="conv1x1_lu")
    x0 = jax.random.normal(jax.random.key(0), (256, 2)) * 1.5
    # The exp-scaled couplings amplify noise on the weights: the conditioners' first layer has
    # fan-in 1 (the kept coordinate), so its init weights are O(1), and with 0.1 noise on every
    # weight this draw overflows float32 at the grid's corners; 0.05 moves every weight well off
    # its init (the zero last layers included) and keeps the density on the grid.
    params = perturb(bij.init(jax.random.key(1), x0), jax.random.key(2), scale=0.05)
    n, half = 600, 12.0
    c = (jnp.arange(n) + 0.5) / n * 2 * half - half
    grid = jnp.stack(jnp.meshgrid(c, c), -1).reshape(-1, 2)

    @jax.jit
    def log_q(p, v):
        z, ld = bij.forward(p, v)
        return standard_normal_log_prob(z) + ld

    mass = float(jnp.sum(jnp.exp(log_q(params, grid))) * (2 * half / n) ** 2)
    assert abs(mass - 1.0) < 0.01, mass
    # and a wrong log-det (dropping it) would not integrate to one
    z, _ = jax.jit(bij.forward)(params, grid)
    wrong = float(jnp.sum(jnp.exp(standard_normal_log_prob(z))) * (2 * half / n) ** 2)
    assert abs(wrong - 1.0) > 0.05
