"""Conditional sampling: classifier guidance, classifier-free guidance, and label dropout for training.

Classifier guidance adds $\\gamma\\nabla_x\\log p_\\phi(y \\mid x_t, t)$ to the score, equivalently
$\\hat\\varepsilon = \\varepsilon_\\theta - \\gamma\\,s_t\\nabla_x\\log p_\\phi(y \\mid x_t, t)$ with
$s_t = \\sqrt{1-\\bar\\alpha_t}$ (Dhariwal & Nichol Alg. 2; kexue.fm 9257:
$\\nabla\\log p_t(x \\mid y) = -(\\varepsilon_\\theta - \\bar\\beta_t\\nabla\\log p_t(y \\mid x))/\\bar\\beta_t$).
Classifier-free guidance: $\\tilde\\varepsilon = (1 + w)\\,\\varepsilon_\\theta(x, t, y) - w\\,\\varepsilon_\\theta(x, t, \\varnothing)$,
with $\\varnothing$ a reserved null label seen in training through :func:`drop_labels`.

Every function returns a new model function with the usual ``(x, t)`` signature, so every sampler
takes it unchanged.

References:
    Su Jianlin, "生成扩散模型漫谈（九）：条件控制生成结果", https://kexue.fm/archives/9257.
    P. Dhariwal, A. Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021, §4.
    J. Ho, T. Salimans, "Classifier-Free Diffusion Guidance", 2022, eq. (6), Algorithm 1.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from kexue_jax._src.checks import check_integer, check_shape
from kexue_jax._src.numerics import to_f32
from kexue_jax._src.typing import Array, Int, PRNGKey
from kexue_jax.diffusion._broadcast import per_example

ModelFn = Callable[[Array, Array], Array]
ConditionalFn = Callable[[Array, Array, Array], Array]


def _classifier_grad(log_prob_fn: ConditionalFn, x: Array, t: Array, y: Array) -> Array:
    # The examples are independent, so the gradient of the batch sum is every example's gradient.
    return jax.grad(lambda u: jnp.sum(to_f32(log_prob_fn(u, t, y))))(x)


def classifier_guided_score(
    score_fn: ModelFn, classifier_log_prob: ConditionalFn, y: Array, *, scale: float
) -> ModelFn:
    """$s(x, t) + \\gamma\\nabla_x\\log p_\\phi(y \\mid x, t)$.

    Args:
        score_fn: unconditional score ``(x, t)``.
        classifier_log_prob: ``(x [b, ...], t [b], y [b]) -> [b]`` log-probabilities of a
            time-conditioned classifier trained on noisy $x_t$.
        y: target labels ``[b]``.
        scale: $\\gamma$ (0 gives the unconditional model).

    Returns:
        The guided ``score_fn(x, t)``.
    """
    def guided(x, t):
        return score_fn(x, t) + scale * _classifier_grad(classifier_log_prob, x, t, y)

    return guided


def classifier_guided_eps(
    eps_fn: ModelFn,
    classifier_log_prob: ConditionalFn,
    y: Array,
    std_fn: Callable[[Array], Array],
    *,
    scale: float,
) -> ModelFn:
    """$\\varepsilon_\\theta(x, t) - \\gamma\\,s_t\\nabla_x\\log p_\\phi(y \\mid x, t)$ (Dhariwal & Nichol Alg. 2).

    Args:
        eps_fn: unconditional noise predictor ``(x, t)``.
        classifier_log_prob: ``(x, t, y) -> [b]``.
        y: target labels ``[b]``.
        std_fn: ``t -> s_t [b]``, e.g. ``lambda t: marginal_coeffs(schedule, t)[1]``.
        scale: $\\gamma$.

    Returns:
        The guided ``eps_fn(x, t)``.
    """
    def guided(x, t):
        grad = _classifier_grad(classifier_log_prob, x, t, y)
        return eps_fn(x, t) - scale * per_example(std_fn(t), x) * grad

    return guided


def classifier_free_eps(
    eps_fn: ConditionalFn, y: Int[Array, " b"], *, guidance_scale: float, null_label: int
) -> ModelFn:
    """$(1 + w)\\,\\varepsilon_\\theta(x, t, y) - w\\,\\varepsilon_\\theta(x, t, \\varnothing)$ in one batched call.

    Args:
        eps_fn: conditional noise predictor ``(x, t, y)``; ``y == null_label`` means unconditional.
        y: labels ``int [b]``.
        guidance_scale: $w$ ($w = 0$: the conditional model; Su's $\\gamma = 1 + w$).
        null_label: the label reserved for $\\varnothing$.

    Returns:
        The guided ``eps_fn(x, t)``.

    Example:
        >>> eps = lambda x, t, y: x * (y[:, None] + 1.0)
        >>> guided = classifier_free_eps(eps, jnp.array([1]), guidance_scale=2.0, null_label=0)
        >>> guided(jnp.ones((1, 2)), jnp.zeros((1,))).tolist()  # 3*2 - 2*1
        [[4.0, 4.0]]
    """
    check_integer("y", y)

    def guided(x, t):
        b = x.shape[0]
        both = eps_fn(jnp.concatenate([x, x]), jnp.concatenate([t, t]),
                      jnp.concatenate([y, jnp.full_like(y, null_label)]))
        cond, uncond = both[:b], both[b:]
        return (1.0 + guidance_scale) * cond - guidance_scale * uncond

    return guided


def check_labels(y: Int[Array, " b"], *, batch_size: int, null_label: int) -> None:
    """Raise ``ValueError`` naming ``y`` unless it is one integer label per example in $0..\\varnothing$.

    A class-conditional network embeds labels ``0..null_label`` (``null_label`` = $\\varnothing$);
    an index outside the table is not an error in JAX but a row of NaN, so concrete labels are
    range-checked here. Traced labels (under ``jit``) can only have their shape and dtype checked.

    Args:
        y: labels ``int [batch_size]``.
        batch_size: the number of examples $b$.
        null_label: the largest valid label, the null label (a model's ``num_classes``).

    Raises:
        ValueError: on a shape other than ``(batch_size,)``, a non-integer dtype, or a concrete
            value outside ``0..null_label``.
    """
    check_shape("y", y, (batch_size,))
    check_integer("y", y)
    if isinstance(y, jax.core.Tracer):
        return
    values = np.asarray(y)
    if values.size and (values.min() < 0 or values.max() > null_label):
        raise ValueError(f"y: expected labels in 0..{null_label} ({null_label} is the null label), got values "
                         f"from {values.min()} to {values.max()} with shape {values.shape}")


def drop_labels(
    y: Int[Array, " b"], *, p_uncond: float = 0.1, null_label: int, key: PRNGKey
) -> Int[Array, " b"]:
    """Replace each label by ``null_label`` with probability ``p_uncond`` (CFG training; Ho & Salimans: 0.1-0.2).

    Args:
        y: labels ``int [b]``.
        p_uncond: drop probability in $[0, 1]$.
        null_label: the label of $\\varnothing$.
        key: PRNG key.

    Returns:
        Labels with the dtype and shape of ``y``.

    Raises:
        ValueError: when ``y`` is not integer or ``p_uncond`` is outside $[0, 1]$.
    """
    check_integer("y", y)
    if not 0.0 <= p_uncond <= 1.0:
        raise ValueError(f"p_uncond: expected a probability in [0, 1], got {p_uncond!r}")
    drop = jax.random.bernoulli(key, p_uncond, y.shape)
    return jnp.where(drop, jnp.asarray(null_label, y.dtype), y)
