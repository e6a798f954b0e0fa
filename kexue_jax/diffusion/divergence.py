"""The divergence $\\nabla\\cdot f(x) = \\mathrm{tr}\\,\\partial f/\\partial x$ of a per-example vector field.

Exact (one forward-mode JVP per dimension, vectorised with ``vmap``: for small $d$) or by
Hutchinson's estimator $\\mathbb E_v[v^\\top J v] = \\mathrm{tr} J$ for probes with $\\mathbb E[vv^\\top] = I$
(Gaussian or Rademacher; one JVP per probe). ``fn`` maps ``[b, ...]`` to ``[b, ...]`` and treats
the examples independently, so one batched JVP gives every example's $Jv$.

References:
    M. F. Hutchinson, "A stochastic estimator of the trace of the influence matrix", 1990.
    W. Grathwohl, R. T. Q. Chen, J. Bettencourt, I. Sutskever, D. Duvenaud, "FFJORD", ICLR 2019.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_floating, check_in, check_rank
from kexue_jax._src.numerics import sum_except_batch, to_f32
from kexue_jax._src.typing import Array, Float, PRNGKey

PROBES = ("gaussian", "rademacher")


def divergence_exact(fn: Callable[[Array], Array], x: Float[Array, "b ..."]) -> Float[Array, " b"]:
    """$\\sum_i \\partial f_i/\\partial x_i$ per example, float32 ``[b]``, with $d$ JVPs.

    Args:
        fn: per-example field ``[b, ...] -> [b, ...]``.
        x: ``[b, ...]``.

    Returns:
        float32 ``[b]``.

    Example:
        >>> x = jnp.ones((2, 3))
        >>> divergence_exact(lambda x: 2.0 * x, x).tolist()
        [6.0, 6.0]
    """
    check_floating("x", x)
    check_rank("x", x, tuple(range(2, 9)))
    b, d = x.shape[0], int(x[0].size)

    def column(e):
        tangent = jnp.broadcast_to(e.reshape(x.shape[1:]), x.shape).astype(x.dtype)
        return jax.jvp(fn, (x,), (tangent,))[1].reshape(b, d)

    jac_cols = jax.vmap(column)(jnp.eye(d, dtype=x.dtype))  # [d (input i), b, d (output)]
    return to_f32(jnp.einsum("ibi->b", jac_cols))


def sample_probes(
    shape: tuple[int, ...], *, num_probes: int = 1, kind: str = "gaussian", key: PRNGKey
) -> Float[Array, "k b ..."]:
    """``num_probes`` float32 probes of ``shape`` with $\\mathbb E[v v^\\top] = I$.

    Args:
        shape: ``(b, ...)``.
        num_probes: $k$.
        kind: ``"gaussian"`` ($\\mathcal N(0, I)$) or ``"rademacher"`` ($\\pm 1$; lower variance).
        key: PRNG key.

    Returns:
        ``[k, b, ...]``.
    """
    check_in("kind", kind, PROBES)
    full = (num_probes, *shape)
    if kind == "gaussian":
        return jax.random.normal(key, full, jnp.float32)
    return jax.random.rademacher(key, full, jnp.float32)


def divergence_hutchinson(
    fn: Callable[[Array], Array], x: Float[Array, "b ..."], probes: Float[Array, "k b ..."]
) -> Float[Array, " b"]:
    """Hutchinson's unbiased estimate $\\frac1k\\sum_j v_j^\\top J v_j$ per example, float32 ``[b]``.

    Args:
        fn: per-example field ``[b, ...] -> [b, ...]``.
        x: ``[b, ...]``.
        probes: ``[k, b, ...]`` from :func:`sample_probes`.

    Returns:
        float32 ``[b]``.

    Raises:
        ValueError: when ``probes`` is not ``[k, *x.shape]``.
    """
    check_floating("x", x)
    if probes.ndim != x.ndim + 1 or probes.shape[1:] != x.shape:
        raise ValueError(f"probes: expected shape (k, {', '.join(map(str, x.shape))}), got {probes.shape}")

    def one(v):
        return sum_except_batch(v * jax.jvp(fn, (x,), (v.astype(x.dtype),))[1])

    return jnp.mean(jax.vmap(one)(probes), axis=0)
