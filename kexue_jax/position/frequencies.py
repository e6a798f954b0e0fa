"""RoPE frequency tables ``inv_freq`` $[\\theta_0, \\dots, \\theta_{d/2-1}]$ per extension rule.

Each function returns a float32 ``[d/2]`` table for :func:`~kexue_jax.position.apply_rope`; a
longer context is then only another table, so every rule composes with any attention function.
With ``scale = 1`` every rule returns the plain table $\\theta_i = \\text{theta}^{-2i/d}$.

Su's β-base reading (9675): RoPE writes position $n$ as a $d/2$-digit number in base
$\\beta = \\text{theta}^{2/d}$, digit $i$ being $n/\\beta^{i}$ (mod $2\\pi$). To extend the context
$k$-fold ($k$ = ``scale``):

========================  ==========================================================  =========
rule                      $\\theta_i'$                                                 article
========================  ==========================================================  =========
plain                     $\\text{theta}^{-2i/d}$                                      8265
linear (PI)               $\\theta_i / k$ (positions $n \\mapsto n/k$)                  9675
ntk_old                   base $\\text{theta}\\cdot k$                                  9675
ntk_aware                 base $\\text{theta}\\cdot k^{d/(d-2)}$                        9675
dynamic_ntk               ntk_aware with $k$ from the current length                  (HF)
ntk_fixed                 $\\text{theta}^{-2i/d}\\, k^{-2(i+1)/d}$                      9706
ntk_mixed                 $\\text{theta}^{-2i/d}\\, e^{-a (i+1)^b}$, $a = \\ln k/(d/2)^b$   9706
yarn                      ramp between $\\theta_i$ and $\\theta_i/k$ by wavelength         YaRN
========================  ==========================================================  =========

Static tables are computed in float64 with NumPy and returned as float32.

References:
    Su Jianlin, https://kexue.fm/archives/9675 (RoPE is a β-base encoding; NTK-aware) and
    https://kexue.fm/archives/9706 (NTK-RoPE-fixed / mixed); bloc97, "NTK-Aware Scaled RoPE"
    (Reddit r/LocalLLaMA, 2023); S. Chen et al., "Extending Context Window of Large Language Models
    via Positional Interpolation", arXiv:2306.15595 (2023); B. Peng et al., "YaRN: Efficient Context
    Window Extension of Large Language Models", arXiv:2309.00071 (2023).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from kexue_jax._src.checks import check_positive
from kexue_jax._src.typing import Array, ArrayLike, Float


def check_table_args(
    head_dim: int, *, theta: float, scale: float | None = None, min_dim: int = 2
) -> None:
    """Raise ``ValueError`` naming the argument: odd/small ``head_dim``, non-positive values."""
    if not isinstance(head_dim, int | np.integer) or head_dim < min_dim or head_dim % 2:
        raise ValueError(f"head_dim: expected an even integer >= {min_dim}, got {head_dim!r}")
    check_positive("theta", theta)
    if scale is not None:
        check_positive("scale", scale)


def _exponents(head_dim: int) -> np.ndarray:
    """$2i/d$ for $i = 0..d/2-1$, float64."""
    return np.arange(0, head_dim, 2, dtype=np.float64) / head_dim


def _f32(table: np.ndarray) -> Array:
    return jnp.asarray(table, dtype=jnp.float32)


def rope_inv_freq(head_dim: int, *, theta: float = 10000.0) -> Float[Array, " half"]:
    """Plain RoPE: $\\theta_i = \\text{theta}^{-2i/d}$.

    Args:
        head_dim: $d$ (even).
        theta: the base (10000 in RoFormer and LLaMA).

    Returns:
        float32 ``[d/2]``.

    Example:
        >>> from kexue_jax.position import rope_inv_freq
        >>> [round(float(v), 4) for v in rope_inv_freq(4, theta=100.0)]
        [1.0, 0.1]

    References:
        https://kexue.fm/archives/8265; Su et al. 2021, RoFormer, arXiv:2104.09864.
    """
    check_table_args(head_dim, theta=theta)
    return _f32(float(theta) ** -_exponents(head_dim))


def linear_inv_freq(
    head_dim: int, *, theta: float = 10000.0, scale: float = 1.0
) -> Float[Array, " half"]:
    """Position interpolation (PI): $\\theta_i / k$, identical to rotating by positions $n/k$.

    Args:
        head_dim: $d$ (even).
        theta: the RoPE base.
        scale: the extension factor $k$.

    Returns:
        float32 ``[d/2]``.

    References:
        https://kexue.fm/archives/9675; Chen et al. 2023, PI, arXiv:2306.15595.
    """
    check_table_args(head_dim, theta=theta, scale=scale)
    return _f32(float(theta) ** -_exponents(head_dim) / scale)


def ntk_old_inv_freq(
    head_dim: int, *, theta: float = 10000.0, scale: float = 1.0
) -> Float[Array, " half"]:
    """Su's first NTK rule: $\\beta \\to \\beta k^{2/d}$, i.e. base $\\text{theta}\\cdot k$.

    Args:
        head_dim: $d$ (even).
        theta: the RoPE base.
        scale: the extension factor $k$.

    Returns:
        float32 ``[d/2]``; the lowest frequency is divided by $k^{(d-2)/d}$, not quite $k$.

    References:
        https://kexue.fm/archives/9675 ("NTK-RoPE-old" in 9706).
    """
    check_table_args(head_dim, theta=theta, scale=scale)
    return _f32((float(theta) * scale) ** -_exponents(head_dim))


def ntk_aware_inv_freq(
    head_dim: int, *, theta: float = 10000.0, scale: float = 1.0
) -> Float[Array, " half"]:
    """bloc97's NTK-aware RoPE: base $\\text{theta}\\cdot k^{d/(d-2)}$.

    The lowest frequency becomes exactly $\\theta_{d/2-1}/k$ (interpolation), the highest is kept
    (extrapolation): "high frequencies extrapolate, low frequencies interpolate".

    Args:
        head_dim: $d$ (even, at least 4).
        theta: the RoPE base.
        scale: the extension factor $k$.

    Returns:
        float32 ``[d/2]``.

    References:
        https://kexue.fm/archives/9675; bloc97, "NTK-Aware Scaled RoPE" (2023).
    """
    check_table_args(head_dim, theta=theta, scale=scale, min_dim=4)
    base = float(theta) * scale ** (head_dim / (head_dim - 2))
    return _f32(base ** -_exponents(head_dim))


def dynamic_ntk_inv_freq(
    head_dim: int,
    seq_len: ArrayLike,
    *,
    theta: float = 10000.0,
    training_length: int,
    scale: float = 1.0,
) -> Float[Array, " half"]:
    """Dynamic NTK: NTK-aware with the factor taken from the current length $n$.

    $k_n = \\max(1, \\text{scale}\\cdot n/L - (\\text{scale} - 1))$ and base
    $\\text{theta}\\cdot k_n^{d/(d-2)}$, where $L$ is ``training_length``. With ``scale = 1`` this
    is $k_n = \\max(1, n/L)$; for $n \\le L$ it is plain RoPE. ``seq_len`` may be traced, so the
    table can follow the length inside ``jit`` (computed in float32).

    Args:
        head_dim: $d$ (even, at least 4).
        seq_len: current sequence length $n$ (scalar, may be a traced array).
        theta: the RoPE base.
        training_length: $L$, the length the model was trained at.
        scale: Hugging Face's ``factor`` (1 gives the plain $n/L$ rule).

    Returns:
        float32 ``[d/2]``.

    Note:
        Keys cached under an older, shorter length were rotated with another table; re-rotate
        them (keep the cache un-rotated) or accept the mismatch (Hugging Face PR #27227 lists it).

    References:
        https://kexue.fm/archives/9675; bloc97 and emozilla, "Dynamically Scaled RoPE" (2023);
        Hugging Face ``rope_type="dynamic"``.
    """
    check_table_args(head_dim, theta=theta, scale=scale, min_dim=4)
    check_positive("training_length", training_length)
    n = jnp.asarray(seq_len, jnp.float32)
    if n.ndim:
        raise ValueError(f"seq_len: expected a scalar, got shape {n.shape}")
    k = jnp.maximum(1.0, scale * n / training_length - (scale - 1.0))
    base = theta * k ** (head_dim / (head_dim - 2))
    return base ** -jnp.asarray(_exponents(head_dim), jnp.float32)


def ntk_fixed_inv_freq(
    head_dim: int, *, theta: float = 10000.0, scale: float = 1.0
) -> Float[Array, " half"]:
    """Su's NTK-RoPE-fixed: every digit also divided by $\\lambda = k^{2/d}$.

    $\\theta_i' = \\text{theta}^{-2i/d}\\,k^{-2(i+1)/d}$, i.e. $n/(\\lambda(\\beta\\lambda)^{i})$:
    the lowest frequency is divided by exactly $k$, the highest by $k^{2/d}$.

    Args:
        head_dim: $d$ (even).
        theta: the RoPE base.
        scale: the extension factor $k$.

    Returns:
        float32 ``[d/2]``.

    References:
        https://kexue.fm/archives/9706 ("NTK-RoPE-fixed").
    """
    check_table_args(head_dim, theta=theta, scale=scale)
    i = np.arange(head_dim // 2, dtype=np.float64)
    return _f32(float(theta) ** (-2 * i / head_dim) * float(scale) ** (-2 * (i + 1) / head_dim))


def ntk_mixed_inv_freq(
    head_dim: int, *, theta: float = 10000.0, scale: float = 1.0, b: float = 0.625
) -> Float[Array, " half"]:
    """Su's NTK-RoPE-mixed (mixed radix): $\\theta_i' = \\text{theta}^{-2i/d}\\,e^{-a (i+1)^b}$.

    Digit $m = i+1$ is scaled by $\\lambda_1\\cdots\\lambda_m = e^{a m^b}$, with
    $a = \\ln k / (d/2)^b$ so that $\\prod\\lambda = k$ (the lowest frequency is divided by exactly
    $k$). $b = 1$ is :func:`ntk_fixed_inv_freq`, $b = 0$ is PI (:func:`linear_inv_freq`).

    Args:
        head_dim: $d$ (even).
        theta: the RoPE base.
        scale: the extension factor $k$.
        b: the exponent $b \\ge 0$ (0.625 is Su's best in 9706; his LLaMA-2 patch uses 0.75).

    Returns:
        float32 ``[d/2]``.

    References:
        https://kexue.fm/archives/9706 ("NTK-RoPE-mixed"); bojone/rerope ``ntk_patch.py``.
    """
    check_table_args(head_dim, theta=theta, scale=scale)
    if not b >= 0:
        raise ValueError(f"b: expected a value >= 0, got {b!r}")
    half = head_dim // 2
    i = np.arange(half, dtype=np.float64)
    a = math.log(scale) / half**b
    return _f32(float(theta) ** (-2 * i / head_dim) * np.exp(-a * (i + 1) ** b))


def yarn_inv_freq(
    head_dim: int,
    *,
    theta: float = 10000.0,
    scale: float = 1.0,
    original_max_position: int,
    alpha: float = 1.0,
    beta: float = 32.0,
) -> Float[Array, " half"]:
    """YaRN's "NTK-by-parts": $\\theta_i' = (1-\\gamma_i)\\,\\theta_i/k + \\gamma_i\\,\\theta_i$.

    $r_i = L\\theta_i/(2\\pi)$ counts the turns dimension $i$ makes over the original context $L$;
    $\\gamma(r) = \\mathrm{clip}((r-\\alpha)/(\\beta-\\alpha), 0, 1)$: dimensions turning more than
    $\\beta$ times keep their frequency, those turning less than $\\alpha$ times are interpolated.
    Pair it with :func:`yarn_attention_factor` on q and k.

    Args:
        head_dim: $d$ (even).
        theta: the RoPE base.
        scale: the extension factor $s$.
        original_max_position: $L$, the pre-training context length.
        alpha: $\\alpha$ (Hugging Face ``beta_slow``), default 1.
        beta: $\\beta$ (Hugging Face ``beta_fast``), default 32.

    Returns:
        float32 ``[d/2]``.

    Note:
        The ramp is linear in $r$, as in the paper (eq. 18). Hugging Face ramps linearly in the
        dimension index between the rounded boundary dimensions instead; the tables agree at the
        ends and differ slightly in between.

    References:
        https://kexue.fm/archives/9706 (related β-base view); Peng et al. 2023, YaRN,
        arXiv:2309.00071.
    """
    check_table_args(head_dim, theta=theta, scale=scale)
    check_positive("original_max_position", original_max_position)
    if not 0 <= alpha < beta:
        raise ValueError(
            f"alpha, beta: expected 0 <= alpha < beta, got alpha={alpha!r}, beta={beta!r}"
        )
    freq = float(theta) ** -_exponents(head_dim)
    turns = original_max_position * freq / (2 * math.pi)
    gamma = np.clip((turns - alpha) / (beta - alpha), 0.0, 1.0)
    return _f32((1 - gamma) * freq / scale + gamma * freq)


def yarn_attention_factor(scale: float) -> float:
    """YaRN's $\\sqrt{1/t} = 0.1 \\ln s + 1$ for $s > 1$ (1 otherwise), multiplied into q and k.

    Scaling both q and k by it multiplies the logits by $1/t$ (the paper's temperature).

    References:
        Peng et al. 2023, YaRN, arXiv:2309.00071 (eq. 22).
    """
    check_positive("scale", scale)
    return 1.0 if scale <= 1 else 0.1 * math.log(scale) + 1.0


__all__ = [
    "dynamic_ntk_inv_freq",
    "linear_inv_freq",
    "ntk_aware_inv_freq",
    "ntk_fixed_inv_freq",
    "ntk_mixed_inv_freq",
    "ntk_old_inv_freq",
    "rope_inv_freq",
    "yarn_attention_factor",
    "yarn_inv_freq",
]
