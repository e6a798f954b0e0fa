"""Layer-specific invariants of the flow bijectors (the shared ones live in tests/suites)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.flows import (
    Conditioner,
    actnorm,
    additive_coupling,
    affine_coupling,
    chain,
    conv1x1,
    conv1x1_lu,
    conv_conditioner,
    logit,
    lu_weight,
    make_mask,
    mlp_conditioner,
    reverse,
    scale,
    shuffle,
    squeeze,
    squeeze_nhwc,
    unsqueeze,
    unsqueeze_nhwc,
)

SHAPE = (2, 4, 4, 2)
seeds = st.integers(0, 2**31 - 1)


def _x(seed=0, shape=SHAPE):
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def _perturb(params, key, scale=0.1):
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, max(len(leaves), 1))
    return jax.tree.unflatten(
        treedef,
        [leaf + scale * jax.random.normal(k, leaf.shape)
         for leaf, k in zip(leaves, keys, strict=False)],
    )


# ----------------------------------------------------------------------------------- couplings


@pytest.mark.parametrize("mask", ["channel", "checkerboard"])
@pytest.mark.parametrize("kind", ["additive", "affine"])
def test_coupling_starts_as_identity_then_keeps_the_masked_half(kind, mask):
    net = conv_conditioner(hidden=4)
    bij = (additive_coupling if kind == "additive" else affine_coupling)(mask=mask, conditioner=net)
    x = _x()
    params = bij.init(jax.random.key(1), x)
    y, ld = bij.forward(params, x)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))  # zero-initialised last layer
    np.testing.assert_array_equal(np.asarray(ld), 0.0)
    params = _perturb(params, jax.random.key(2))
    y, ld = bij.forward(params, x)
    b = make_mask(mask, x.shape[1:])
    np.testing.assert_array_equal(np.asarray(y * b), np.asarray(x * b))  # y1 = x1
    assert not np.allclose(np.asarray(y * (1 - b)), np.asarray(x * (1 - b)), atol=1e-3)
    if kind == "additive":
        np.testing.assert_array_equal(np.asarray(ld), 0.0)  # NICE: det = 1 exactly
    else:
        assert np.all(np.asarray(ld) != 0.0)


def test_affine_sigmoid_scale_is_glows_sigmoid_h_plus_2():
    bij = affine_coupling(scale="sigmoid", conditioner=mlp_conditioner(hidden=4))
    x = _x(shape=(3, 6))
    params = bij.init(jax.random.key(0), x)
    y, ld = bij.forward(params, x)  # h = t = 0 at init: y2 = sigmoid(2) x2
    s = 1.0 / (1.0 + math.exp(-2.0))
    np.testing.assert_allclose(np.asarray(y[:, 3:]), np.asarray(x[:, 3:]) * s, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(y[:, :3]), np.asarray(x[:, :3]))
    np.testing.assert_allclose(np.asarray(ld), 3 * math.log(s), rtol=1e-6)


def test_affine_log_det_is_sum_of_log_scales():
    net = mlp_conditioner(hidden=4)
    bij = affine_coupling(mask="half", parity=True, conditioner=net)
    x = _x(shape=(3, 6))
    params = _perturb(bij.init(jax.random.key(0), x), jax.random.key(1), 0.5)
    # parity=True keeps the last half and transforms the first: h comes from the conditioner of x[:, 3:]
    np.testing.assert_array_equal(make_mask("half", (6,), parity=True), [0, 0, 0, 1, 1, 1])
    h, _ = jnp.split(net.apply(params["st"], x[:, 3:]), 2, axis=-1)
    y, ld = bij.forward(params, x)
    np.testing.assert_allclose(np.asarray(ld), np.asarray(jnp.sum(h, -1)), rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(y[:, 3:]), np.asarray(x[:, 3:]))  # the kept half


def test_masks():
    np.testing.assert_array_equal(make_mask("half", (4,)), [1, 1, 0, 0])
    np.testing.assert_array_equal(make_mask("channel", (4,), parity=True), [0, 0, 1, 1])
    cb = make_mask("checkerboard", (2, 2, 3))[..., 0]
    np.testing.assert_array_equal(cb, [[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="^mask: "):
        make_mask("stripes", (4,))
    with pytest.raises(ValueError, match="^x: "):
        make_mask("checkerboard", (4,))
    with pytest.raises(ValueError, match="^x: "):
        make_mask("channel", (1,))
    with pytest.raises(ValueError, match="^scale: "):
        affine_coupling(scale="softplus")


# -------------------------------------------------------------------------------------- squeeze


def test_squeeze_moves_each_2x2_block_into_channels():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    y = squeeze_nhwc(x)
    assert y.shape == (1, 2, 2, 4)
    np.testing.assert_array_equal(np.asarray(y[0, 0, 0]), [0, 1, 4, 5])
    np.testing.assert_array_equal(np.asarray(y[0, 1, 1]), [10, 11, 14, 15])


@given(seed=seeds, hw=st.sampled_from([(2, 2), (4, 6)]), c=st.sampled_from([1, 3]))
def test_squeeze_unsqueeze_are_inverse_permutations(seed, hw, c):
    x = _x(seed, (2, *hw, c))
    y = squeeze_nhwc(x)
    assert y.shape == (2, hw[0] // 2, hw[1] // 2, 4 * c)
    np.testing.assert_array_equal(np.asarray(unsqueeze_nhwc(y)), np.asarray(x))
    np.testing.assert_array_equal(np.sort(np.asarray(y).ravel()), np.sort(np.asarray(x).ravel()))
    z, ld = unsqueeze().forward((), y)
    np.testing.assert_array_equal(np.asarray(z), np.asarray(x))
    np.testing.assert_array_equal(np.asarray(ld), 0.0)


def test_squeeze_rejects_odd_sizes_and_unsqueeze_bad_channels():
    with pytest.raises(ValueError, match="^x: .*even"):
        squeeze().forward((), _x(shape=(2, 3, 4, 1)))
    with pytest.raises(ValueError, match="^x: .*even"):
        squeeze().init(jax.random.key(0), _x(shape=(2, 4, 5, 1)))
    with pytest.raises(ValueError, match="^y: .*divisible by 4"):
        squeeze().inverse((), _x(shape=(2, 2, 2, 6)))
    with pytest.raises(ValueError, match="^x: expected rank 4"):
        squeeze().forward((), _x(shape=(2, 4)))


# --------------------------------------------------------------------------------- permutations


@given(seed=seeds)
def test_reverse_and_shuffle_permute_channels(seed):
    x = _x(seed, (2, 3, 3, 5))
    y, ld = reverse().forward((), x)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x[..., ::-1]))
    np.testing.assert_array_equal(np.asarray(ld), 0.0)
    bij = shuffle()
    params = bij.init(jax.random.key(seed), x)
    y, _ = bij.forward(_perturb(params, jax.random.key(1), 0.2), x)
    perm = np.argsort(np.asarray(params["order"]))
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x)[..., perm])


def test_shuffle_draws_different_permutations_for_different_keys():
    x = _x(shape=(1, 16))
    perms = {tuple(np.asarray(shuffle().init(jax.random.key(k), x)["order"])) for k in range(4)}
    assert len(perms) > 1


# -------------------------------------------------------------------------------------- actnorm


@given(seed=seeds)
def test_actnorm_init_normalises_the_init_batch(seed):
    x = 3.0 + 2.5 * _x(seed, (4, 4, 4, 3)) * jnp.array([1.0, 0.1, 5.0])
    bij = actnorm()
    params = bij.init(jax.random.key(0), x)
    y, ld = bij.forward(params, x)
    np.testing.assert_allclose(np.asarray(jnp.mean(y, axis=(0, 1, 2))), 0.0, atol=1e-4)
    np.testing.assert_allclose(np.asarray(jnp.var(y, axis=(0, 1, 2))), 1.0, rtol=1e-3)
    np.testing.assert_allclose(np.asarray(ld), 16 * float(jnp.sum(params["log_scale"])), rtol=1e-5)


# ------------------------------------------------------------------------------ 1x1 convolution


@given(seed=seeds)
def test_lu_conv_stays_invertible_and_log_det_matches_slogdet_after_update(seed):
    bij = conv1x1_lu()
    x = _x(seed, (2, 3, 3, 4))
    params = bij.init(jax.random.key(seed), x)
    w0 = lu_weight(params)
    np.testing.assert_allclose(np.asarray(w0 @ w0.T), np.eye(4), atol=1e-5)  # orthogonal at init
    params = _perturb(params, jax.random.key(seed + 1), 0.5)  # a large random update
    w = lu_weight(params)
    sign, logabs = jnp.linalg.slogdet(w)
    assert float(sign) != 0.0
    np.testing.assert_allclose(np.asarray(w @ jnp.linalg.inv(w)), np.eye(4), atol=1e-3)
    _, ld = bij.forward(params, x)
    np.testing.assert_allclose(np.asarray(ld), 9 * float(logabs), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(float(logabs), float(jnp.sum(params["log_abs_s"])), atol=1e-4)


def test_lu_conv_reverse_init_is_the_reversal_and_learns_from_there():
    bij = conv1x1_lu(init="reverse")
    x = _x(0, (2, 3, 3, 4))
    params = bij.init(jax.random.key(0), x)
    np.testing.assert_array_equal(np.asarray(lu_weight(params)), np.eye(4)[::-1])
    y, ld = bij.forward(params, x)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x[..., ::-1]))
    np.testing.assert_array_equal(np.asarray(ld), 0.0)
    params = _perturb(params, jax.random.key(1), 0.5)  # any update keeps W invertible, log-det exact
    w = lu_weight(params)
    _, ld = bij.forward(params, x)
    np.testing.assert_allclose(np.asarray(ld), 9 * float(jnp.linalg.slogdet(w)[1]), rtol=1e-4, atol=1e-4)
    xr, _ = bij.inverse(params, bij.forward(params, x)[0])
    np.testing.assert_allclose(np.asarray(xr), np.asarray(x), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="init"):
        conv1x1_lu(init="identity")


def test_plain_conv1x1_log_det_is_hw_slogdet():
    bij = conv1x1()
    x = _x(shape=(2, 3, 5, 3))
    params = _perturb(bij.init(jax.random.key(0), x), jax.random.key(1), 0.5)
    y, ld = bij.forward(params, x)
    np.testing.assert_allclose(np.asarray(y), np.asarray(x @ params["w"].T), rtol=1e-5, atol=1e-6)
    expected = 15 * float(jnp.linalg.slogdet(params["w"])[1])
    np.testing.assert_allclose(np.asarray(ld), expected, rtol=1e-5)


# ------------------------------------------------------------------------------- scale & logit


def test_nice_scale_loss_is_gaussian_nll_with_learned_std():
    bij = scale()
    h = _x(shape=(3, 5))
    params = {"log_scale": jnp.linspace(-1.0, 1.0, 5)}
    z, ld = bij.forward(params, h)
    loss = 0.5 * jnp.sum(z**2, -1) - ld  # Su's eq. 15 (negated)
    sigma = jnp.exp(-params["log_scale"])
    nll = -jnp.sum(jax.scipy.stats.norm.logpdf(h, scale=sigma), -1) - 2.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(np.asarray(loss), np.asarray(nll), rtol=1e-5)


def test_logit_values_and_alpha_validation():
    bij = logit(alpha=0.05)
    x = jnp.array([[0.5, 0.0, 1.0]])
    y, ld = bij.forward((), x)
    np.testing.assert_allclose(np.asarray(y), [[0.0, math.log(0.05 / 0.95), math.log(0.95 / 0.05)]],
                               rtol=1e-5, atol=1e-6)
    expected = math.log(0.9 / 0.25) + 2 * math.log(0.9 / (0.05 * 0.95))
    np.testing.assert_allclose(float(ld[0]), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="^alpha: "):
        logit(alpha=0.5)


# ---------------------------------------------------------------------------------------- chain


def test_chain_log_det_is_sum_of_members_and_a_glow_step_round_trips():
    members = (squeeze(), actnorm(), conv1x1_lu(),
               affine_coupling(scale="sigmoid", conditioner=conv_conditioner(hidden=4)))
    flow = chain(*members)
    x = _x(shape=(2, 4, 4, 1))
    params = _perturb(flow.init(jax.random.key(0), x), jax.random.key(1))
    assert isinstance(params, tuple) and len(params) == 4
    y, ld = flow.forward(params, x)
    h, total = x, 0.0
    for b, p in zip(members, params, strict=True):
        h, ld_i = b.forward(p, h)
        total = total + ld_i
    np.testing.assert_allclose(np.asarray(y), np.asarray(h), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(ld), np.asarray(total), rtol=1e-6)
    x_back, ld_inv = flow.inverse(params, y)
    np.testing.assert_allclose(np.asarray(x_back), np.asarray(x), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(ld_inv), -np.asarray(ld), rtol=1e-4)
    with pytest.raises(ValueError, match="^params: "):
        flow.forward(params[:2], x)
    with pytest.raises(ValueError, match="^bijectors: "):
        chain()


def test_two_dimensional_flow_density_integrates_to_one():
    # An injected conditioner: the default MLP with tanh-bounded log-scales, so that the tails of
    # the density stay Gaussian-like (std <= e^2 per dimension) and a ±30 grid holds its mass.
    # With unbounded log-scales a ReLU MLP makes heavy tails and the grid misses ~2-20%.
    mlp = mlp_conditioner(hidden=16)

    def bounded(cparams, x):
        h, t = jnp.split(mlp.apply(cparams, x), 2, axis=-1)
        return jnp.concatenate([jnp.tanh(h), t], axis=-1)

    net = Conditioner(init=mlp.init, apply=bounded)
    layers = []
    for i in range(4):
        layers.append(affine_coupling(mask="half", parity=bool(i % 2), conditioner=net))
        layers.append(reverse() if i % 2 else shuffle())
    flow = chain(*layers)
    params = _perturb(flow.init(jax.random.key(0), _x(shape=(8, 2))), jax.random.key(1), 0.3)

    @jax.jit
    def log_density(x):
        z, ld = flow.forward(params, x)
        return jnp.sum(jax.scipy.stats.norm.logpdf(z), -1) + ld

    grid = jnp.linspace(-30.0, 30.0, 1201)
    xx, yy = jnp.meshgrid(grid, grid)
    pts = jnp.stack([xx.ravel(), yy.ravel()], -1)
    dens = jnp.exp(log_density(pts))
    mass = float(jnp.sum(dens) * (grid[1] - grid[0]) ** 2)
    assert abs(mass - 1.0) < 0.01, mass
    # the flow is not a rescaled Gaussian: the density departs from the base's
    base = jnp.exp(jnp.sum(jax.scipy.stats.norm.logpdf(pts), -1))
    assert float(jnp.max(jnp.abs(dens - base))) > 1e-2


# ---------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "make",
    [actnorm, scale, conv1x1, conv1x1_lu, shuffle,
     lambda: additive_coupling(conditioner=conv_conditioner(hidden=4)),
     lambda: affine_coupling(conditioner=conv_conditioner(hidden=4))],
    ids=["actnorm", "scale", "conv1x1", "conv1x1_lu", "shuffle", "additive", "affine"],
)
def test_wrong_channel_count_vs_params_raises(make):
    bij = make()
    params = bij.init(jax.random.key(0), _x())
    bad = _x(shape=(2, 4, 4, 4))
    # couplings feed their conditioner the kept half, and name x's full shape in the error
    with pytest.raises(ValueError, match=r"^x: (expected shape \(\*, \*, \*, 2\)|the channel count of x).*\(2, 4, 4, 4\)"):
        bij.forward(params, bad)
    with pytest.raises(ValueError, match=r"^y: |^x: "):
        bij.inverse(params, bad)
    if "coupling" in bij.name:  # one channel more than trained keeps the kept half's size
        with pytest.raises(ValueError, match=r"^x: expected 2 channels .*\(2, 4, 4, 3\)"):
            bij.forward(params, _x(shape=(2, 4, 4, 3)))


def test_integer_input_raises():
    with pytest.raises(ValueError, match="^x: expected a floating dtype"):
        actnorm().init(jax.random.key(0), jnp.ones(SHAPE, jnp.int32))
