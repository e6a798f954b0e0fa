"""Continuous forward SDEs $dx = f(x, t)\\,dt + g(t)\\,dw$ on $t \\in [0, 1]$: VP, VE and sub-VP.

Each SDE is a frozen dataclass of hyperparameters (hashable, so it can be a static argument of
``jit``) with pure methods. Times are float32 ``[b]``; data ``[b, ...]`` (any event shape).
The reverse-time SDE and the probability-flow ODE are *wrappers* around an SDE and a score
function (:func:`reverse_sde`, :func:`probability_flow`), not subclasses.

All three are linear: $x_t \\mid x_0 \\sim \\mathcal N(m_t x_0, s_t^2 I)$ with
$f = \\frac{d\\ln m_t}{dt} x$ and $g_t^2 = \\frac{d s_t^2}{dt} - 2\\frac{d\\ln m_t}{dt}s_t^2$
(kexue.fm 9209 in Su's notation $m = \\bar\\alpha$, $s = \\bar\\beta$).

References:
    Su Jianlin, "生成扩散模型漫谈（五）：一般框架之SDE篇", https://kexue.fm/archives/9209.
    Y. Song, J. Sohl-Dickstein, D. P. Kingma, A. Kumar, S. Ermon, B. Poole, "Score-Based Generative
    Modeling through Stochastic Differential Equations", ICLR 2021 (eqs. (9)-(11), App. B).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import NamedTuple, Protocol

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_floating, check_positive
from kexue_jax._src.numerics import sum_except_batch, to_f32
from kexue_jax._src.typing import Array, Float, PRNGKey
from kexue_jax.diffusion._broadcast import per_example

_LOG_2PI = math.log(2.0 * math.pi)

ScoreFn = Callable[[Array, Array], Array]


class SDE(Protocol):
    """What every forward SDE provides (see :class:`VPSDE` for the meaning of each method)."""

    T: float

    def drift(self, x: Array, t: Array) -> Array: ...
    def diffusion(self, t: Array) -> Array: ...
    def marginal_coeffs(self, t: Array) -> tuple[Array, Array]: ...
    def marginal(self, x0: Array, t: Array) -> tuple[Array, Array]: ...
    def prior_std(self) -> float: ...
    def prior_sample(self, shape: tuple[int, ...], *, key: PRNGKey) -> Array: ...
    def prior_log_prob(self, z: Array) -> Array: ...
    def discrete_alpha(self, t: Array, dt: float) -> Array: ...


class _Linear:
    """Shared methods of the linear SDEs, written once over ``marginal_coeffs`` and ``prior_std``."""

    T = 1.0

    def marginal(self, x0: Float[Array, "b ..."], t: Float[Array, " b"]) -> tuple[Array, Array]:
        """$(m_t x_0,\\ s_t)$: the mean ``[b, ...]`` and the std ``[b]`` of $x_t \\mid x_0$."""
        check_floating("x0", x0)
        scale, std = self.marginal_coeffs(t)
        return per_example(scale, x0) * x0, std

    def prior_sample(self, shape: tuple[int, ...], *, key: PRNGKey) -> Array:
        """A float32 draw of shape ``shape`` from the prior $\\mathcal N(0, \\sigma_T^2 I)$."""
        return self.prior_std() * jax.random.normal(key, shape, jnp.float32)

    def prior_log_prob(self, z: Float[Array, "b ..."]) -> Float[Array, " b"]:
        """$\\log\\mathcal N(z; 0, \\sigma_T^2 I)$ per example, float32 nats ``[b]``."""
        check_floating("z", z)
        z = to_f32(z)
        s = self.prior_std()
        d = z[0].size
        return -0.5 * sum_except_batch(jnp.square(z / s)) - d * (0.5 * _LOG_2PI + math.log(s))

    def discrete_alpha(self, t: Float[Array, " b"], dt: float) -> Float[Array, " b"]:
        """$\\alpha_i$ of the discretised process at $t$ (the Langevin step-size factor of score_sde).

        $e^{-\\beta(t)\\Delta t}$ for VP and sub-VP, $1$ for VE.
        """
        return jnp.ones_like(jnp.asarray(t, jnp.float32))


def _check_time(t: Array) -> Array:
    check_floating("t", t)
    return to_f32(t)


@dataclasses.dataclass(frozen=True, kw_only=True)
class VPSDE(_Linear):
    """Variance-preserving SDE $dx = -\\frac12\\beta(t)x\\,dt + \\sqrt{\\beta(t)}\\,dw$ (continuous DDPM).

    $\\beta(t) = \\beta_{\\min} + t(\\beta_{\\max}-\\beta_{\\min})$; $m_t = e^{-\\frac14 t^2(\\beta_{\\max}-\\beta_{\\min})
    - \\frac12 t\\beta_{\\min}}$, $s_t^2 = 1 - m_t^2$; prior $\\mathcal N(0, I)$.

    Args:
        beta_min: $\\beta_{\\min}$ (score_sde: 0.1).
        beta_max: $\\beta_{\\max}$ (score_sde: 20).

    Example:
        >>> sde = VPSDE()
        >>> m, s = sde.marginal_coeffs(jnp.array([1.0]))
        >>> round(float(m[0] ** 2 + s[0] ** 2), 6)
        1.0

    References:
        Y. Song et al., "Score-Based Generative Modeling through SDEs", ICLR 2021, eq. (11);
        https://kexue.fm/archives/9209.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self) -> None:
        check_positive("beta_min", self.beta_min)
        check_positive("beta_max", self.beta_max)

    def beta(self, t: Float[Array, " b"]) -> Float[Array, " b"]:
        """$\\beta(t)$."""
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def _log_mean_coeff(self, t: Array) -> Array:
        return -0.25 * jnp.square(t) * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def drift(self, x: Float[Array, "b ..."], t: Float[Array, " b"]) -> Float[Array, "b ..."]:
        """$f(x, t) = -\\frac12\\beta(t)x$."""
        t = _check_time(t)
        return -0.5 * per_example(self.beta(t), x) * x

    def diffusion(self, t: Float[Array, " b"]) -> Float[Array, " b"]:
        """$g(t) = \\sqrt{\\beta(t)}$, ``[b]``."""
        return jnp.sqrt(self.beta(_check_time(t)))

    def marginal_coeffs(self, t: Float[Array, " b"]) -> tuple[Array, Array]:
        """$(m_t, s_t)$, each ``[b]``: $x_t = m_t x_0 + s_t\\varepsilon$."""
        lmc = self._log_mean_coeff(_check_time(t))
        return jnp.exp(lmc), jnp.sqrt(-jnp.expm1(2.0 * lmc))

    def prior_std(self) -> float:
        """$\\sigma_T = 1$."""
        return 1.0

    def discrete_alpha(self, t: Float[Array, " b"], dt: float) -> Float[Array, " b"]:
        """$e^{-\\beta(t)\\Delta t}$: the ratio $\\bar\\alpha_i/\\bar\\alpha_{i-1}$ of the discretised chain.

        score_sde uses $1 - \\beta(t)\\Delta t$, the same to first order, which turns negative
        for coarse steps ($\\beta\\Delta t > 1$).
        """
        return jnp.exp(-self.beta(_check_time(t)) * dt)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SubVPSDE(VPSDE):
    """Sub-VP SDE $dx = -\\frac12\\beta(t)x\\,dt + \\sqrt{\\beta(t)(1 - e^{-2\\int_0^t\\beta})}\\,dw$.

    Same mean as VP, $s_t = 1 - m_t^2$ (so $s_t^2$ is below the VP variance); prior $\\mathcal N(0, I)$.

    Args:
        beta_min: $\\beta_{\\min}$ (0.1).
        beta_max: $\\beta_{\\max}$ (20).

    References:
        Y. Song et al., "Score-Based Generative Modeling through SDEs", ICLR 2021, eq. (12).
    """

    def diffusion(self, t: Float[Array, " b"]) -> Float[Array, " b"]:
        """$g(t) = \\sqrt{\\beta(t)(1 - e^{-2\\int_0^t\\beta})}$, using $\\int_0^t\\beta = -2\\ln m_t$."""
        t = _check_time(t)
        return jnp.sqrt(self.beta(t) * -jnp.expm1(4.0 * self._log_mean_coeff(t)))

    def marginal_coeffs(self, t: Float[Array, " b"]) -> tuple[Array, Array]:
        """$(m_t, 1 - m_t^2)$, each ``[b]``."""
        lmc = self._log_mean_coeff(_check_time(t))
        return jnp.exp(lmc), -jnp.expm1(2.0 * lmc)


@dataclasses.dataclass(frozen=True, kw_only=True)
class VESDE(_Linear):
    """Variance-exploding SDE $dx = \\sqrt{\\frac{d\\sigma^2(t)}{dt}}\\,dw$ (continuous SMLD / NCSN).

    $\\sigma(t) = \\sigma_{\\min}(\\sigma_{\\max}/\\sigma_{\\min})^t$,
    $g(t) = \\sigma(t)\\sqrt{2\\ln(\\sigma_{\\max}/\\sigma_{\\min})}$; $m_t = 1$, $s_t = \\sigma(t)$;
    prior $\\mathcal N(0, \\sigma_{\\max}^2 I)$.

    Args:
        sigma_min: $\\sigma_{\\min}$ (score_sde: 0.01).
        sigma_max: $\\sigma_{\\max}$ (score_sde CIFAR-10: 50).

    Note:
        Like score_sde, the marginal std is $\\sigma(t)$, i.e. the data at $t = 0$ are taken to be
        already perturbed with $\\sigma_{\\min}$; the SDE started from a clean $x_0$ has variance
        $\\sigma(t)^2 - \\sigma_{\\min}^2$.

    References:
        Y. Song et al., "Score-Based Generative Modeling through SDEs", ICLR 2021, eq. (9);
        Su Jianlin, https://kexue.fm/archives/9280 (the VE form of the diffusion ODE).
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def __post_init__(self) -> None:
        check_positive("sigma_min", self.sigma_min)
        check_positive("sigma_max", self.sigma_max)
        if not self.sigma_max > self.sigma_min:
            raise ValueError(
                f"sigma_max: expected > sigma_min = {self.sigma_min}, got {self.sigma_max}"
            )

    def sigma(self, t: Float[Array, " b"]) -> Float[Array, " b"]:
        """$\\sigma(t) = \\sigma_{\\min}(\\sigma_{\\max}/\\sigma_{\\min})^t$."""
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** _check_time(t)

    def drift(self, x: Float[Array, "b ..."], t: Float[Array, " b"]) -> Float[Array, "b ..."]:
        """$f = 0$."""
        _check_time(t)
        return jnp.zeros_like(x)

    def diffusion(self, t: Float[Array, " b"]) -> Float[Array, " b"]:
        """$g(t) = \\sigma(t)\\sqrt{2\\ln(\\sigma_{\\max}/\\sigma_{\\min})}$, ``[b]``."""
        return self.sigma(t) * math.sqrt(2.0 * math.log(self.sigma_max / self.sigma_min))

    def marginal_coeffs(self, t: Float[Array, " b"]) -> tuple[Array, Array]:
        """$(1, \\sigma(t))$, each ``[b]``."""
        s = self.sigma(t)
        return jnp.ones_like(s), s

    def prior_std(self) -> float:
        """$\\sigma_T = \\sigma_{\\max}$."""
        return float(self.sigma_max)


class ReverseSDE(NamedTuple):
    """The reverse-time SDE $dx = [f(x,t) - g(t)^2\\nabla_x\\log p_t(x)]\\,dt + g(t)\\,d\\bar w$.

    Integrated from $t = T$ down to $t \\approx 0$ (negative $dt$). Built by :func:`reverse_sde`.
    """

    sde: SDE
    score_fn: ScoreFn

    def drift(self, x: Float[Array, "b ..."], t: Float[Array, " b"]) -> Float[Array, "b ..."]:
        """$f(x,t) - g(t)^2 s(x,t)$."""
        g = per_example(self.sde.diffusion(t), x)
        return self.sde.drift(x, t) - jnp.square(g) * self.score_fn(x, t)

    def diffusion(self, t: Float[Array, " b"]) -> Float[Array, " b"]:
        """$g(t)$."""
        return self.sde.diffusion(t)


class ProbabilityFlow(NamedTuple):
    """The probability-flow ODE $\\frac{dx}{dt} = f(x,t) - \\frac12 g(t)^2\\nabla_x\\log p_t(x)$.

    It has the same marginals $p_t$ as the SDE (Song et al. 2021, eq. (13)). Built by
    :func:`probability_flow`.
    """

    sde: SDE
    score_fn: ScoreFn

    def drift(self, x: Float[Array, "b ..."], t: Float[Array, " b"]) -> Float[Array, "b ..."]:
        """$f(x,t) - \\frac12 g(t)^2 s(x,t)$."""
        g = per_example(self.sde.diffusion(t), x)
        return self.sde.drift(x, t) - 0.5 * jnp.square(g) * self.score_fn(x, t)

    def diffusion(self, t: Float[Array, " b"]) -> Float[Array, " b"]:
        """$0$ (an ODE)."""
        return jnp.zeros_like(jnp.asarray(t, jnp.float32))


def reverse_sde(sde: SDE, score_fn: ScoreFn) -> ReverseSDE:
    """Wrap ``sde`` and ``score_fn(x, t)`` (float32 ``t [b]``) into the reverse-time SDE.

    Args:
        sde: a forward SDE.
        score_fn: $s_\\theta(x, t) \\approx \\nabla_x\\log p_t(x)$, ``[b, ...]`` → ``[b, ...]``.

    Returns:
        A :class:`ReverseSDE` with ``drift(x, t)`` and ``diffusion(t)``.

    References:
        B. D. O. Anderson, "Reverse-time diffusion equation models", 1982; Y. Song et al. 2021,
        eq. (6); https://kexue.fm/archives/9209.
    """
    return ReverseSDE(sde, score_fn)


def probability_flow(sde: SDE, score_fn: ScoreFn) -> ProbabilityFlow:
    """Wrap ``sde`` and ``score_fn(x, t)`` into the probability-flow ODE.

    Args:
        sde: a forward SDE.
        score_fn: $s_\\theta(x, t)$.

    Returns:
        A :class:`ProbabilityFlow` with ``drift(x, t)``.

    References:
        Y. Song et al., "Score-Based Generative Modeling through SDEs", ICLR 2021, eq. (13);
        https://kexue.fm/archives/9280.
    """
    return ProbabilityFlow(sde, score_fn)
