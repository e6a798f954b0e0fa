"""Glow's invertible 1×1 convolution: $y_{ij} = W x_{ij}$ at every position, plain or LU-factored.

A 1×1 convolution applies the same $c \\times c$ matrix $W$ to the channels of every position, so
$\\log|\\det J| = H W \\log|\\det W|$. On vectors ``[b, d]`` ($H W = 1$) it is an
invertible linear map.

* :func:`conv1x1`: $W$ is a free parameter (random orthogonal at init), the log-det via
  ``slogdet`` and the inverse via ``inv`` — $O(c^3)$ each call.
* :func:`conv1x1_lu`: $W = P L (U + \\mathrm{diag}(\\mathrm{sign} \\cdot e^{\\log|s|}))$ with $P$ a
  fixed permutation, $L$ unit lower-triangular and $U$ strictly upper-triangular, so
  $\\log|\\det W| = \\sum_c \\log|s_c|$ in $O(c)$ and $W$ is invertible for *any* parameter values.
  Initialised from a random orthogonal matrix through :func:`jax.scipy.linalg.lu` (at init only),
  as Glow does, or (``init="reverse"``) at the channel reversal $P = J$, $L = U = I$: the step then
  starts as RealNVP's fixed reverse permutation and learns any mixing from there.
  $P$ (stored as a float32 vector ``p_order``, rows $= \\mathrm{argsort}(\\text{p\\_order})$) and
  ``sign`` (used through its sign) are stored in params under
  :data:`~kexue_jax.flows.bijector.FIXED_KEYS` and get no gradient, as Glow keeps them fixed (the
  NNX shell keeps them out of the optimizer); any real values decode to a valid permutation and
  signs, so $W$ stays invertible and the log-det formula exact after any update.

References:
    Su Jianlin, "细水长flow之RealNVP与Glow", https://kexue.fm/archives/5807 (可逆1×1卷积, LU 分解);
    D. P. Kingma, P. Dhariwal, "Glow: Generative Flow with Invertible 1×1 Convolutions",
    NeurIPS 2018 (§3.2, eq. 9–10, Table 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg

from kexue_jax._src.checks import check_in
from kexue_jax._src.numerics import to_f32
from kexue_jax._src.typing import Array, PRNGKey
from kexue_jax.flows._validate import check_channels, check_input, spatial_size
from kexue_jax.flows.bijector import Bijector


def random_orthogonal(key: PRNGKey, c: int) -> Array:
    """A random $c \\times c$ orthogonal float32 matrix (QR of a Gaussian, signs fixed)."""
    q, r = jnp.linalg.qr(jax.random.normal(key, (c, c), jnp.float32))
    return q * jnp.sign(jnp.diag(r))[None, :]


def _apply(x: Array, w: Array) -> Array:
    return jnp.einsum("...c,dc->...d", x, w.astype(x.dtype))


def _log_det(x: Array, log_abs_det_w: Array) -> Array:
    return jnp.broadcast_to(spatial_size(x) * to_f32(log_abs_det_w), x.shape[:1])


def conv1x1() -> Bijector:
    """The plain invertible 1×1 convolution, params ``{"w": [c, c]}``."""

    def init(key: PRNGKey, example_x: Array) -> dict:
        check_input("x", example_x)
        return {"w": random_orthogonal(key, example_x.shape[-1])}

    def _check(params: dict, x: Array, name: str) -> None:
        check_input(name, x)
        check_channels(name, x, params["w"].shape[0])

    def forward(params: dict, x: Array) -> tuple[Array, Array]:
        _check(params, x, "x")
        w = params["w"]
        return _apply(x, w), _log_det(x, jnp.linalg.slogdet(to_f32(w))[1])

    def inverse(params: dict, y: Array) -> tuple[Array, Array]:
        _check(params, y, "y")
        w = to_f32(params["w"])
        return _apply(y, jnp.linalg.inv(w)), -_log_det(y, jnp.linalg.slogdet(w)[1])

    return Bijector(init, forward, inverse, name="conv1x1")


def lu_weight(params: dict) -> Array:
    """The weight $W = P L (U + \\mathrm{diag}(\\mathrm{sign}\\, e^{\\log|s|}))$ of LU params."""
    c = params["log_abs_s"].shape[0]
    rows = jnp.argsort(jax.lax.stop_gradient(params["p_order"]))  # P[i, rows[i]] = 1
    sign = jnp.where(jax.lax.stop_gradient(params["sign"]) < 0, -1.0, 1.0)
    lower = jnp.tril(params["l"], -1) + jnp.eye(c, dtype=jnp.float32)
    upper = jnp.triu(params["u"], 1) + jnp.diag(sign * jnp.exp(params["log_abs_s"]))
    return (lower @ upper)[rows]


LU_INITS = ("orthogonal", "reverse")


def conv1x1_lu(init: str = "orthogonal") -> Bijector:
    """The LU-decomposed invertible 1×1 convolution.

    Params: ``p_order`` (the fixed permutation, ``[c]``), ``l`` (strictly lower part used),
    ``u`` (strictly upper part used), ``sign`` (fixed, ``[c]``) and ``log_abs_s`` (``[c]``).

    Args:
        init: ``"orthogonal"`` (Glow: LU of a random rotation) or ``"reverse"`` ($W$ starts as the
            channel reversal, the fixed permutation of RealNVP, with $L = U = I$).
    """
    check_in("init", init, LU_INITS)
    init_kind = init

    def init(key: PRNGKey, example_x: Array) -> dict:
        check_input("x", example_x)
        c = example_x.shape[-1]
        w0 = random_orthogonal(key, c) if init_kind == "orthogonal" else jnp.eye(c, dtype=jnp.float32)[::-1]
        p, lower, upper = jax.scipy.linalg.lu(w0)
        s = jnp.diag(upper)
        return {
            "p_order": jnp.argsort(jnp.argmax(p, axis=-1)).astype(jnp.float32),
            "l": jnp.tril(lower, -1).astype(jnp.float32),
            "u": jnp.triu(upper, 1).astype(jnp.float32),
            "sign": jnp.sign(s).astype(jnp.float32),
            "log_abs_s": jnp.log(jnp.abs(s)).astype(jnp.float32),
        }

    def _check(params: dict, x: Array, name: str) -> None:
        check_input(name, x)
        check_channels(name, x, params["log_abs_s"].shape[0])

    def forward(params: dict, x: Array) -> tuple[Array, Array]:
        _check(params, x, "x")
        return _apply(x, lu_weight(params)), _log_det(x, jnp.sum(params["log_abs_s"]))

    def inverse(params: dict, y: Array) -> tuple[Array, Array]:
        _check(params, y, "y")
        # Two triangular solves and a transpose would be cheaper for large c; inv is exact enough
        # for the channel counts of a flow step and keeps one code path.
        w_inv = jnp.linalg.inv(lu_weight(params))
        return _apply(y, w_inv), -_log_det(y, jnp.sum(params["log_abs_s"]))

    return Bijector(init, forward, inverse, name="conv1x1_lu")


__all__ = ["LU_INITS", "conv1x1", "conv1x1_lu", "lu_weight", "random_orthogonal"]
