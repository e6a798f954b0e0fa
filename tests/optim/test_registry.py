"""Every registered optimizer decreases a convex quadratic; schedules and clipping behave."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from kexue_jax.optim import OPTIMIZERS, make_optimizer, make_schedule


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_minimises_a_quadratic(name):
    target = jnp.array([1.0, -2.0, 3.0])
    loss = lambda p: jnp.sum((p - target) ** 2)  # noqa: E731
    opt = make_optimizer(name, learning_rate=0.05 if name != "sgd" else 0.02)
    params = jnp.zeros(3)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        grads = jax.grad(loss)(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(300):
        params, state = step(params, state)
    assert float(loss(params)) < 0.05 * float(loss(jnp.zeros(3)))


def test_lion_is_optax_lion():
    opt = make_optimizer("lion", learning_rate=0.1, weight_decay=0.0)
    ref = optax.lion(0.1, weight_decay=0.0)
    g = jnp.array([0.3, -0.2])
    p = jnp.array([1.0, 1.0])
    u, _ = opt.update(g, opt.init(p), p)
    r, _ = ref.update(g, ref.init(p), p)
    np.testing.assert_allclose(np.asarray(u), np.asarray(r))
    np.testing.assert_allclose(np.abs(np.asarray(u)), 0.1)  # sign update


def test_warmup_then_cosine():
    s = make_schedule(learning_rate=1.0, schedule="cosine", warmup_steps=10, total_steps=110, end_factor=0.1)
    assert float(s(0)) == 0.0
    np.testing.assert_allclose(float(s(5)), 0.5)
    np.testing.assert_allclose(float(s(10)), 1.0)
    np.testing.assert_allclose(float(s(110)), 0.1, rtol=1e-6)
    assert float(s(60)) < 1.0


def test_clipping_bounds_the_update():
    opt = make_optimizer("sgd", learning_rate=1.0, momentum=0.0, grad_clip_norm=1.0)
    g = jnp.array([30.0, 40.0])
    u, _ = opt.update(g, opt.init(jnp.zeros(2)), jnp.zeros(2))
    np.testing.assert_allclose(float(jnp.linalg.norm(u)), 1.0, rtol=1e-6)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="name: expected one of"):
        make_optimizer("adagrad-nope", learning_rate=1.0)
    with pytest.raises(ValueError, match="hyperparameters"):
        make_optimizer("adam", learning_rate=1.0, beta_one=0.5)
    with pytest.raises(ValueError, match="total_steps"):
        make_schedule(learning_rate=1.0, schedule="cosine", warmup_steps=10, total_steps=5)
