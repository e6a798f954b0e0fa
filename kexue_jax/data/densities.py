r"""Two-dimensional toy densities with exact samplers and exact (or quadrature-exact) log-densities.

Five densities in the spirit of the FFJORD toy data (Grathwohl et al., 2019,
https://arxiv.org/abs/1810.01367, ``lib/toy_data.py``), each redefined so that it *has* a
log-density that can be evaluated to float32 accuracy. All live roughly in ``[-4, 4]^2``:

* ``eight_gaussians``: equal mixture of 8 isotropic Gaussians, means $R(\cos\frac{k\pi}{4},
  \sin\frac{k\pi}{4})$ with $R = 2\sqrt2$, standard deviation $\sigma = 0.5/\sqrt2$ (FFJORD's
  values). Exact closed form.
* ``checkerboard``: uniform on the 8 black squares of a 4×4 board of side-2 squares covering
  $[-4, 4)^2$; square $(i, j)$ (column $i = \lfloor (x_1 + 4)/2 \rfloor$, row
  $j = \lfloor (x_2 + 4)/2 \rfloor$) is black when $i + j$ is even. Exact: $\log(1/32)$ on black
  squares and $-\infty$ everywhere else (outside the board too): the support is bounded, and a
  finite stand-in would make the density integrate to more than 1.
* ``rings``: equal mixture of 4 rings of radii $r \in \{0.75, 1.5, 2.25, 3\}$: a point uniform on
  the circle plus isotropic Gaussian noise $\sigma = 0.1$. The angular integral is analytic:
  $p_r(x) = \frac{1}{2\pi\sigma^2} e^{-(|x|^2 + r^2)/(2\sigma^2)} I_0(|x| r/\sigma^2)$, evaluated in
  logs with the scaled Bessel function ``i0e`` (so $\log p_r = -\log 2\pi\sigma^2
  - (|x| - r)^2/2\sigma^2 + \log \mathrm{i0e}(|x| r/\sigma^2)$, stable for large arguments).
* ``moons``: scikit-learn's two moons scaled by 2 and centred: upper moon $(-1, -0.5) + 2(\cos t,
  \sin t)$, lower moon $(1, 0.5) - 2(\cos t, \sin t)$, $t \sim U[0, \pi]$, each moon with
  probability 1/2, plus isotropic Gaussian noise $\sigma = 0.2$ (scikit-learn's ``noise=0.1``
  scaled by 2, as FFJORD does).
* ``spirals``: two interleaved Archimedean spirals
  $\pm\frac13(-\theta\cos\theta, \theta\sin\theta)$, $\theta = 3\pi\sqrt{u}$ with
  $u \sim U[0, 1]$ (FFJORD's ``2spirals`` parameterisation, about uniform in arc length), plus
  isotropic Gaussian noise $\sigma = 0.1$ (FFJORD adds uniform noise; Gaussian noise is what makes
  the density smooth and computable).

For ``moons`` and ``spirals`` the density is a curve convolved with a Gaussian,
$p(x) = \sum_{\text{arm}} \frac12 \int q(t)\, \mathcal N(x; c(t), \sigma^2 I)\, dt$, with $q$ the
density of the curve parameter ($1/\pi$ for the moons, $2\theta/\theta_{\max}^2$ for the spirals,
whose parameter is $\theta$ so that the integrand is smooth). The integral is computed by
composite Gauss–Legendre quadrature over the curve parameter (equal panels of 16 nodes; 256 nodes
per moon, 1024 per spiral arm), summed in log space with ``logsumexp``. The integrand is a bump of
width $\sigma/|c'(t)|$ in the parameter (0.1 for the moons, at least 0.03 for the spirals) and the
node spacing is a fraction of it, so the quadrature error is below float32 resolution;
``tests/data/test_densities.py`` checks it against 16 times as many nodes.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from kexue_jax._src.checks import check_in, check_shape
from kexue_jax._src.typing import Array, Float, PRNGKey

DENSITIES = ("moons", "eight_gaussians", "checkerboard", "spirals", "rings")

EIGHT_GAUSSIANS_RADIUS = 2.0 * math.sqrt(2.0)
EIGHT_GAUSSIANS_SIGMA = 0.5 / math.sqrt(2.0)
RING_RADII = (0.75, 1.5, 2.25, 3.0)
RING_SIGMA = 0.1
MOONS_SIGMA = 0.2
SPIRALS_SIGMA = 0.1
SPIRALS_THETA_MAX = 3.0 * math.pi
SPIRALS_SCALE = 1.0 / 3.0
QUADRATURE_NODES = {"moons": 256, "spirals": 1024}
_PANEL_NODES = 16

_LOG_2PI = math.log(2.0 * math.pi)
# Bound on the (points × nodes) intermediate of the quadrature densities, in elements.
_CHUNK_ELEMENTS = 2**21


def _eight_centres() -> jax.Array:
    angles = jnp.arange(8, dtype=jnp.float32) * (jnp.pi / 4)
    return EIGHT_GAUSSIANS_RADIUS * jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=-1)


def _moon(t: jax.Array, upper: jax.Array | bool) -> jax.Array:
    circle = 2.0 * jnp.stack([jnp.cos(t), jnp.sin(t)], axis=-1)
    return jnp.where(
        jnp.asarray(upper)[..., None],
        jnp.array([-1.0, -0.5]) + circle,
        jnp.array([1.0, 0.5]) - circle,
    )


def _spiral(theta: jax.Array) -> jax.Array:
    return SPIRALS_SCALE * jnp.stack([-theta * jnp.cos(theta), theta * jnp.sin(theta)], axis=-1)


def sample_density(name: str, num: int, *, key: PRNGKey) -> Float[Array, "num 2"]:
    """Draw ``num`` exact samples from the 2-D density ``name`` (see the module docstring).

    Pure and jit-able with ``name`` and ``num`` static:
    ``jax.jit(sample_density, static_argnums=(0, 1))``.

    Args:
        name: one of :data:`DENSITIES`.
        num: number of samples.
        key: PRNG key.

    Returns:
        ``float32 [num, 2]``.

    Raises:
        ValueError: naming ``name`` when it is not a density, or ``num`` when it is negative.
    """
    check_in("name", name, DENSITIES)
    if num < 0:
        raise ValueError(f"num: expected a non-negative number of samples, got {num!r}")
    k_choice, k_param, k_noise = jax.random.split(key, 3)
    f32 = jnp.float32
    if name == "eight_gaussians":
        centre = _eight_centres()[jax.random.randint(k_choice, (num,), 0, 8)]
        return centre + EIGHT_GAUSSIANS_SIGMA * jax.random.normal(k_noise, (num, 2), f32)
    if name == "checkerboard":
        k_col, k_row = jax.random.split(k_choice)
        col = jax.random.randint(k_col, (num,), 0, 4)
        row = 2 * jax.random.randint(k_row, (num,), 0, 2) + col % 2  # col + row even: black
        # Clip below 1 so that rounding of `corner + 2u` can never land on the next square's edge.
        u = jnp.clip(jax.random.uniform(k_param, (num, 2), f32), 0.0, 1.0 - 2.0**-20)
        corner = 2.0 * jnp.stack([col, row], axis=-1).astype(f32) - 4.0
        return corner + 2.0 * u
    if name == "rings":
        radius = jnp.asarray(RING_RADII, f32)[
            jax.random.randint(k_choice, (num,), 0, len(RING_RADII))
        ]
        angle = jax.random.uniform(k_param, (num,), f32, 0.0, 2.0 * jnp.pi)
        circle = radius[:, None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=-1)
        return circle + RING_SIGMA * jax.random.normal(k_noise, (num, 2), f32)
    if name == "moons":
        upper = jax.random.bernoulli(k_choice, 0.5, (num,))
        t = jax.random.uniform(k_param, (num,), f32, 0.0, jnp.pi)
        return _moon(t, upper) + MOONS_SIGMA * jax.random.normal(k_noise, (num, 2), f32)
    # spirals
    sign = jnp.where(jax.random.bernoulli(k_choice, 0.5, (num,)), 1.0, -1.0).astype(f32)
    theta = SPIRALS_THETA_MAX * jnp.sqrt(jax.random.uniform(k_param, (num,), f32))
    return sign[:, None] * _spiral(theta) + SPIRALS_SIGMA * jax.random.normal(
        k_noise, (num, 2), f32
    )


def _composite_gauss_legendre(a: float, b: float, panels: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of ``panels`` equal panels of 16-point Gauss–Legendre rules on [a, b]."""
    z, w = np.polynomial.legendre.leggauss(_PANEL_NODES)
    edges = np.linspace(a, b, panels + 1)
    half = 0.5 * (edges[1:] - edges[:-1])[:, None]
    mid = 0.5 * (edges[1:] + edges[:-1])[:, None]
    return (mid + half * z[None]).ravel(), (half * w[None]).ravel()


@functools.cache
def _curve_nodes(name: str, num_nodes: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Quadrature points on the curve(s) of ``name`` and their log-weights (float64 host constants).

    The log-weight of a node folds in the Gauss–Legendre weight, the density of the curve parameter
    and the 1/2 weight of each arm, so that ``p(x) = sum_i exp(logw_i) N(x; point_i, sigma^2 I)``.
    """
    if num_nodes % _PANEL_NODES:
        raise ValueError(f"num_nodes: expected a multiple of {_PANEL_NODES}, got {num_nodes}")
    if name == "moons":
        t, w = _composite_gauss_legendre(0.0, np.pi, num_nodes // _PANEL_NODES)
        wt = w / np.pi  # parameter density 1/pi
        circle = 2.0 * np.stack([np.cos(t), np.sin(t)], axis=-1)
        points = np.concatenate([np.array([-1.0, -0.5]) + circle, np.array([1.0, 0.5]) - circle])
        sigma = MOONS_SIGMA
    elif name == "spirals":
        theta, w = _composite_gauss_legendre(0.0, SPIRALS_THETA_MAX, num_nodes // _PANEL_NODES)
        wt = w * 2.0 * theta / SPIRALS_THETA_MAX**2  # parameter density of theta = 3 pi sqrt(u)
        arm = SPIRALS_SCALE * np.stack([-theta * np.cos(theta), theta * np.sin(theta)], axis=-1)
        points = np.concatenate([arm, -arm])
        sigma = SPIRALS_SIGMA
    else:
        raise ValueError(f"name: expected 'moons' or 'spirals', got {name!r}")
    log_w = np.log(np.concatenate([wt, wt]) * 0.5)
    return points, log_w, sigma


@functools.partial(jax.jit, static_argnums=(0, 2))
def _curve_log_density(name: str, x: jax.Array, num_nodes: int) -> jax.Array:
    # Jitted so that eager callers do not pay one compile per primitive for each new shape.
    points_np, log_w_np, sigma = _curve_nodes(name, num_nodes)
    points = jnp.asarray(points_np, jnp.float32)
    log_w = jnp.asarray(log_w_np, jnp.float32)
    log_norm = -_LOG_2PI - 2.0 * math.log(sigma)

    def chunk(xc: jax.Array) -> jax.Array:
        d2 = jnp.sum((xc[:, None, :] - points[None]) ** 2, axis=-1)
        return jax.nn.logsumexp(log_w - d2 / (2.0 * sigma**2), axis=-1) + log_norm

    n = x.shape[0]
    rows = max(8, _CHUNK_ELEMENTS // len(points))
    if n <= rows:
        return chunk(x)
    pad = (-n) % rows
    xp = jnp.concatenate([x, jnp.zeros((pad, 2), x.dtype)]).reshape(-1, rows, 2)
    return jax.lax.map(chunk, xp).reshape(-1)[:n]


def log_density(name: str, x: Float[Array, "n 2"]) -> Float[Array, " n"]:
    """Exact log-density of the 2-D density ``name`` at the points ``x`` (nats).

    ``eight_gaussians``, ``checkerboard`` and ``rings`` are closed forms; ``moons`` and ``spirals``
    use fixed Gauss–Legendre quadrature over the curve parameter (see the module docstring),
    exact to float32 resolution. ``checkerboard`` returns ``-inf`` outside its support. Pure and
    jit-able with ``name`` static: ``jax.jit(log_density, static_argnums=0)``.

    Args:
        name: one of :data:`DENSITIES`.
        x: ``float [n, 2]`` points.

    Returns:
        ``float32 [n]``.

    Raises:
        ValueError: naming ``name`` when it is not a density, or ``x`` when it is not ``[n, 2]``.
    """
    check_in("name", name, DENSITIES)
    check_shape("x", x, (None, 2))
    x = jnp.asarray(x, jnp.float32)
    if name == "eight_gaussians":
        s2 = EIGHT_GAUSSIANS_SIGMA**2
        d2 = jnp.sum((x[:, None, :] - _eight_centres()[None]) ** 2, axis=-1)
        return jax.nn.logsumexp(-d2 / (2.0 * s2), axis=-1) - math.log(8.0) - _LOG_2PI - math.log(s2)
    if name == "checkerboard":
        cell = jnp.floor((x + 4.0) / 2.0)
        inside = jnp.all((cell >= 0) & (cell <= 3), axis=-1)
        black = jnp.sum(cell, axis=-1) % 2 == 0
        return jnp.where(inside & black, jnp.float32(-math.log(32.0)), -jnp.inf)
    if name == "rings":
        s2 = RING_SIGMA**2
        # sqrt(0) has an infinite derivative; the floor keeps jax.grad finite at the origin.
        rho = jnp.sqrt(jnp.maximum(jnp.sum(x**2, axis=-1), 1e-30))[:, None]
        radii = jnp.asarray(RING_RADII, jnp.float32)[None]
        log_ring = (
            -_LOG_2PI
            - math.log(s2)
            - (rho - radii) ** 2 / (2.0 * s2)
            + jnp.log(jax.scipy.special.i0e(rho * radii / s2))
        )
        return jax.nn.logsumexp(log_ring, axis=-1) - math.log(len(RING_RADII))
    return _curve_log_density(name, x, QUADRATURE_NODES[name])
