"""The variational auto-encoder as pure functions of arrays.

A VAE models $p(x) = \\int p(x\\mid z)\\,p(z)\\,dz$ with $p(z) = \\mathcal N(0, I)$ and trains the
decoder $p(x\\mid z)$ together with a Gaussian encoder $q(z\\mid x) = \\mathcal N(\\mu(x),
\\mathrm{diag}\\,\\sigma^2(x))$ by maximising the evidence lower bound

$\\log p(x) \\ge \\mathcal L(x) = \\mathbb E_{q(z|x)}[\\log p(x\\mid z)] - \\mathrm{KL}(q(z\\mid x)\\,\\|\\,p(z))$,

whose KL term is in closed form and whose expectation is estimated with the reparameterisation
$z = \\mu + \\sigma\\odot\\varepsilon$, $\\varepsilon\\sim\\mathcal N(0, I)$. Su Jianlin's reading
(kexue.fm/archives/5253) is that every $x$ gets its own normal posterior, the KL pulls all of them
towards the standard normal so that the prior can be sampled, and the reconstruction term keeps
them apart; kexue.fm/archives/7725 gives the geometric picture (each $x$ becomes an ellipse
$(\\mu(x), \\sigma(x))$ every point of which must reconstruct $x$, and the KL term pulls the ellipses
towards the unit ball), and kexue.fm/archives/5343 derives the loss as the joint-distribution KL
$\\mathrm{KL}(\\tilde p(x) q(z|x)\\,\\|\\,p(z) p(x|z))$.

The functions here know nothing about networks: the encoder's ``mean``/``log_var`` and the
decoder's per-element ``log_likelihood`` come in as arrays (see :mod:`kexue_jax.latent.vae_model`
for the Flax NNX shell and the engine task).

References:
    Su Jianlin, "变分自编码器（一）：原来是这么一回事", https://kexue.fm/archives/5253.
    Su Jianlin, "变分自编码器（六）：从几何视角来理解VAE的尝试", https://kexue.fm/archives/7725.
    D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
    Y. Burda, R. Grosse, R. Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_floating, check_rank, check_same_shape, check_shape
from kexue_jax._src.numerics import sum_except_batch, to_f32
from kexue_jax._src.typing import Array, Float, PRNGKey
from kexue_jax.likelihoods.gaussian import gaussian_log_prob, standard_normal_kl


class ElboTerms(NamedTuple):
    """Per-example terms of the ELBO, float32 nats, each of shape ``[b]``.

    Attributes:
        elbo: $\\mathcal L = $ ``recon`` $-$ ``kl`` (a lower bound on $\\log p(x)$).
        recon: the reconstruction term $\\log p(x\\mid z)$ at the sampled $z$.
        kl: $\\mathrm{KL}(q(z\\mid x)\\,\\|\\,\\mathcal N(0, I))$ in closed form.
    """

    elbo: Array
    recon: Array
    kl: Array


def reparameterize(
    mean: Float[Array, "*batch d"], log_var: Float[Array, "*batch d"], *, key: PRNGKey
) -> Float[Array, "*batch d"]:
    """Sample $z = \\mu + e^{\\frac12\\log\\sigma^2}\\odot\\varepsilon$, $\\varepsilon\\sim\\mathcal N(0, I)$.

    The sample is a differentiable function of ``mean`` and ``log_var`` (the reparameterisation
    trick, kexue.fm/archives/5253 "重参数技巧"; Kingma & Welling 2014, section 2.4).

    Args:
        mean: $\\mu$, shape ``[*batch, d]``.
        log_var: $\\log\\sigma^2$, same shape.
        key: PRNG key.

    Returns:
        $z$ with the shape and dtype of ``mean``.

    Raises:
        ValueError: when the shapes differ or the inputs are not floating point.
    """
    check_floating("mean", mean)
    check_floating("log_var", log_var)
    check_same_shape("mean", mean, "log_var", log_var)
    eps = jax.random.normal(key, jnp.shape(mean), jnp.result_type(mean))
    return mean + jnp.exp(0.5 * log_var).astype(eps.dtype) * eps


def kl_to_standard_normal(mean: Float[Array, "b d"], log_var: Float[Array, "b d"]) -> Float[Array, " b"]:
    """Per-example $\\mathrm{KL}(\\mathcal N(\\mu, \\mathrm{diag}\\,\\sigma^2)\\,\\|\\,\\mathcal N(0, I))$ (float32 nats).

    $\\frac12\\sum_i(\\mu_i^2 + \\sigma_i^2 - \\log\\sigma_i^2 - 1)$, summed over the latent axis of
    :func:`kexue_jax.likelihoods.standard_normal_kl`.

    Raises:
        ValueError: unless ``mean`` and ``log_var`` are both ``[b, d]``.
    """
    dims = check_shape("mean", mean, ("b", "d"))
    check_shape("log_var", log_var, (dims["b"], dims["d"]))
    return sum_except_batch(standard_normal_kl(mean, log_var))


def elbo(
    log_likelihood: Float[Array, "b *event"], mean: Float[Array, "b d"], log_var: Float[Array, "b d"]
) -> ElboTerms:
    """Per-example ELBO terms in float32 nats from the decoder's log-likelihood and the posterior.

    $\\mathcal L(x) = \\log p(x\\mid z) - \\mathrm{KL}(q(z\\mid x)\\,\\|\\,\\mathcal N(0, I))$ with $z$
    drawn by :func:`reparameterize`; averaged over the data it is an unbiased estimate of the
    ELBO (the KL is analytic, only the reconstruction term is sampled).

    Args:
        log_likelihood: $\\log p(x\\mid z)$ per element, shape ``[b, *event]`` (summed over the
            event axes here) or already per example, shape ``[b]``.
        mean: posterior mean $\\mu(x)$, shape ``[b, d]``.
        log_var: posterior log-variance $\\log\\sigma^2(x)$, shape ``[b, d]``.

    Returns:
        :class:`ElboTerms` of ``[b]`` float32 arrays.

    Raises:
        ValueError: when the batch sizes disagree or ``mean``/``log_var`` are not ``[b, d]``.
    """
    check_rank("log_likelihood", log_likelihood, tuple(range(1, 8)))
    dims = check_shape("mean", mean, ("b", "d"))
    check_shape("log_var", log_var, (dims["b"], dims["d"]))
    if jnp.shape(log_likelihood)[0] != dims["b"]:
        raise ValueError(
            f"log_likelihood: expected batch size {dims['b']} (that of mean), got shape "
            f"{tuple(jnp.shape(log_likelihood))}"
        )
    recon = sum_except_batch(log_likelihood)
    kl = kl_to_standard_normal(mean, log_var)
    return ElboTerms(elbo=recon - kl, recon=recon, kl=kl)


def log_importance_weight(
    log_likelihood: Float[Array, "b *event"],
    z: Float[Array, "b d"],
    mean: Float[Array, "b d"],
    log_var: Float[Array, "b d"],
) -> Float[Array, " b"]:
    """$\\log w = \\log p(x\\mid z) + \\log\\mathcal N(z; 0, I) - \\log q(z\\mid x)$ per example (float32).

    $\\mathbb E_q[w] = p(x)$, so $\\log w$ at $z\\sim q(z\\mid x)$ is the single-sample IWAE term; its
    mean over $z$ is the ELBO (with a Monte-Carlo KL instead of the closed form).

    Args:
        log_likelihood: $\\log p(x\\mid z)$ per element ``[b, *event]`` or per example ``[b]``.
        z: the sample, ``[b, d]``.
        mean: posterior mean, ``[b, d]``.
        log_var: posterior log-variance, ``[b, d]``.

    Returns:
        ``[b]`` float32 log-weights.

    Raises:
        ValueError: on mismatched shapes.
    """
    dims = check_shape("z", z, ("b", "d"))
    check_shape("mean", mean, (dims["b"], dims["d"]))
    check_shape("log_var", log_var, (dims["b"], dims["d"]))
    check_rank("log_likelihood", log_likelihood, tuple(range(1, 8)))
    if jnp.shape(log_likelihood)[0] != dims["b"]:
        raise ValueError(
            f"log_likelihood: expected batch size {dims['b']} (that of z), got shape "
            f"{tuple(jnp.shape(log_likelihood))}"
        )
    z = to_f32(z)
    log_prior = sum_except_batch(gaussian_log_prob(z, jnp.zeros_like(z), jnp.zeros_like(z)))
    log_q = sum_except_batch(gaussian_log_prob(z, mean, log_var))
    return sum_except_batch(log_likelihood) + log_prior - log_q


def iwae_bound(log_weights: Float[Array, "k *batch"], *, axis: int = 0) -> Float[Array, "*batch"]:
    """The importance-weighted bound $\\log\\frac1K\\sum_{k=1}^K w_k$ (float32 nats).

    With $w_k = p(x, z_k)/q(z_k\\mid x)$ and $z_k \\sim q(z\\mid x)$ i.i.d., $\\mathbb E[\\log\\frac1K
    \\sum_k w_k]$ is a lower bound on $\\log p(x)$ that equals the ELBO for $K = 1$ and increases
    with $K$ (Burda et al. 2016, Theorem 1). Computed as ``logsumexp - log K`` in float32.

    Args:
        log_weights: $\\log w_k$ with the $K$ samples along ``axis`` (e.g. ``[K, b]``).
        axis: the sample axis.

    Returns:
        the bound, ``log_weights`` without ``axis``.

    Raises:
        ValueError: when ``log_weights`` is a scalar or not floating point.
    """
    check_floating("log_weights", log_weights)
    check_rank("log_weights", log_weights, tuple(range(1, 8)))
    lw = to_f32(log_weights)
    k = lw.shape[axis]
    return jax.nn.logsumexp(lw, axis=axis) - math.log(k)


def prior_path(
    z1: Float[Array, "*shape"], z2: Float[Array, "*shape"], num: int
) -> Float[Array, "num *shape"]:
    """The path $z(\\theta) = z_1\\cos\\theta + z_2\\sin\\theta$, $\\theta\\in[0, \\pi/2]$, in ``num`` steps.

    If $z_1, z_2 \\sim \\mathcal N(0, I)$ are independent then every point of the path is again
    $\\mathcal N(0, I)$, because $\\cos^2\\theta + \\sin^2\\theta = 1$: unlike the straight line
    $(1-t)z_1 + t z_2$, whose midpoint has variance $\\frac12$ and so lies where the decoder
    was never trained (its norm shrinks by $\\sqrt2$ in high dimension), the cos/sin path stays
    on the typical set of the prior. It starts at $z_1$ ($\\theta = 0$) and ends at $z_2$.

    Args:
        z1: the start, any shape (e.g. ``[d]`` or ``[pairs, d]``).
        z2: the end, same shape.
        num: number of points, $\\ge 2$ (endpoints included).

    Returns:
        ``[num, *shape]`` in the dtype of ``z1``.

    Raises:
        ValueError: when the shapes differ or ``num < 2``.

    References:
        T. White, "Sampling Generative Networks", 2016 (interpolating along great circles, not
        lines, for Gaussian latents); Su Jianlin, https://kexue.fm/archives/5253 (sampling the
        VAE's prior).
    """
    check_floating("z1", z1)
    check_same_shape("z1", z1, "z2", z2)
    if isinstance(num, bool) or not isinstance(num, int) or num < 2:
        raise ValueError(f"num: expected an int >= 2, got {num!r}")
    dtype = jnp.result_type(z1)
    theta = jnp.linspace(0.0, 0.5 * jnp.pi, num, dtype=jnp.float32)
    shape = (num,) + (1,) * jnp.ndim(z1)
    c = jnp.cos(theta).reshape(shape)
    s = jnp.sin(theta).reshape(shape)
    # cos(pi/2) is 4e-8, not 0, in float32: pin the endpoints so that they are exactly z1 and z2.
    c = c.at[-1].set(0.0)
    s = s.at[0].set(0.0)
    return (c * z1[None] + s * z2[None]).astype(dtype)


def binarize(x: Float[Array, "*shape"], *, key: PRNGKey) -> Float[Array, "*shape"]:
    """Dynamic binarisation: $b \\sim \\mathrm{Bernoulli}(x)$ for intensities $x\\in[0,1]$.

    Re-drawn at every step, as in the IWAE paper's MNIST experiments, so that a Bernoulli decoder
    sees binary data (its log-likelihood is then a normalised log-mass over $\\{0,1\\}^D$).

    Args:
        x: intensities in $[0, 1]$.
        key: PRNG key.

    Returns:
        $\\{0, 1\\}$ values in the dtype of ``x``.
    """
    check_floating("x", x)
    return jax.random.bernoulli(key, x).astype(jnp.result_type(x))
