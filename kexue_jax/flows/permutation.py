"""Channel permutations between couplings: reverse (NICE) and a fixed random shuffle (RealNVP).

A permutation of the last axis has $|\\det J| = 1$, so $\\log|\\det J| = 0$; it lets every
dimension be transformed by some coupling.

The shuffle's permutation $\\pi$ is drawn once by ``init`` and stored as the float32 vector
``params["order"]`` with $\\pi = \\mathrm{argsort}(\\text{order})$. Any real vector decodes to a
valid
permutation, so the layer stays a bijection with log-det 0 whatever a test (noise) does to it, and
``argsort`` passes no gradient; ``order`` is one of :data:`~kexue_jax.flows.bijector.FIXED_KEYS`, so
the NNX shell keeps it out of the optimizer: the permutation is fixed in training.

References:
    Su Jianlin, "细水长flow之NICE", https://kexue.fm/archives/5776 (交错/反转);
    Su Jianlin, "细水长flow之RealNVP与Glow", https://kexue.fm/archives/5807 (随机打乱);
    L. Dinh, D. Krueger, Y. Bengio, "NICE", ICLR 2015 workshop; L. Dinh, J. Sohl-Dickstein,
    S. Bengio, "Real NVP", ICLR 2017; D. P. Kingma, P. Dhariwal, "Glow", NeurIPS 2018 (§3.2, the
    reverse and shuffle baselines of the 1×1 convolution).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kexue_jax._src.typing import Array, PRNGKey
from kexue_jax.flows._validate import check_channels, check_input
from kexue_jax.flows.bijector import Bijector


def _zeros(x: Array) -> Array:
    return jnp.zeros(x.shape[:1], jnp.float32)


def reverse() -> Bijector:
    """Reverse the channel order, $y_c = x_{C-1-c}$ (params ``()``, ``log_det`` 0)."""

    def init(key: PRNGKey, example_x: Array) -> tuple:
        del key
        check_input("x", example_x)
        return ()

    def forward(params: tuple, x: Array) -> tuple[Array, Array]:
        del params
        check_input("x", x)
        return x[..., ::-1], _zeros(x)

    def inverse(params: tuple, y: Array) -> tuple[Array, Array]:
        del params
        check_input("y", y)
        return y[..., ::-1], _zeros(y)

    return Bijector(init, forward, inverse, name="reverse")


def shuffle() -> Bijector:
    """A fixed random channel permutation $y_c = x_{\\pi(c)}$, $\\pi$ drawn from ``init``'s key."""

    def init(key: PRNGKey, example_x: Array) -> dict:
        check_input("x", example_x)
        c = example_x.shape[-1]
        perm = jax.random.permutation(key, c)
        return {"order": jnp.argsort(perm).astype(jnp.float32)}

    def _indices(params: dict, x: Array, name: str) -> Array:
        check_input(name, x)
        check_channels(name, x, params["order"].shape[0])
        return jnp.argsort(jax.lax.stop_gradient(params["order"]))

    def forward(params: dict, x: Array) -> tuple[Array, Array]:
        return x[..., _indices(params, x, "x")], _zeros(x)

    def inverse(params: dict, y: Array) -> tuple[Array, Array]:
        return y[..., jnp.argsort(_indices(params, y, "y"))], _zeros(y)

    return Bijector(init, forward, inverse, name="shuffle")


__all__ = ["reverse", "shuffle"]
