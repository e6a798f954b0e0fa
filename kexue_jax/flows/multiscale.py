"""RealNVP/Glow's multi-scale architecture: factor out half the channels after each level.

``multiscale(levels)`` runs ``levels[0]``, then (except after the last level) splits the channels
into a kept half $z_1$, which goes on to the next level, and a factored-out half $z_2$, which is a
final latent. The factored-out half gets a **learned conditional prior**
$p(z_2 \\mid z_1) = \\mathcal N(\\mu(z_1), \\sigma(z_1)^2)$; it is written as the standardising
affine map $\\hat z_2 = (z_2 - \\mu(z_1)) / \\sigma(z_1)$ (Su's ``CondActnorm``; Glow's ``split2d``)
whose log-determinant $-\\sum \\log\\sigma(z_1)$ joins the flow's, so that every output latent is
scored by the **standard** normal: $\\log p(x) = \\sum_l \\log\\mathcal N(\\hat z_l; 0, I) +
\\log|\\det J|$. $\\mu, \\log\\sigma^{-1}$ come from one zero-initialised 3×3 convolution of
$z_1$, so the prior starts as $\\mathcal N(0, I)$.

The output is a tuple of latents ``(z_0, ..., z_{L-2}, z_top)``, finest first; the inverse takes
the same tuple. Sampling at temperature $T$ feeds $T\\epsilon$ to every entry.

References:
    Su Jianlin, "细水长flow之RealNVP与Glow", https://kexue.fm/archives/5807 (多尺度结构,
    conditional prior for the factored-out part); L. Dinh, J. Sohl-Dickstein, S. Bengio,
    "Density estimation using Real NVP", ICLR 2017 (§3.6, eq. 15–16); D. P. Kingma,
    P. Dhariwal, "Glow", NeurIPS 2018 (§3, multi-scale with learned prior of the split).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_rank
from kexue_jax._src.typing import Array, PRNGKey
from kexue_jax.flows.affine_coupling import affine_coupling
from kexue_jax.flows.bijector import Bijector
from kexue_jax.flows.conditioner import Conditioner


def _zero_conv_conditioner() -> Conditioner:
    """One zero-initialised 3×3 convolution (Glow's ``Conv2dZeros`` on $z_1$)."""

    def init(key: PRNGKey, example_x: Array, out_channels: int) -> dict[str, Array]:
        del key
        c = example_x.shape[-1]
        return {"w": jnp.zeros((3, 3, c, out_channels), jnp.float32),
                "b": jnp.zeros((out_channels,), jnp.float32)}

    def apply(cparams: dict[str, Array], x: Array) -> Array:
        y = jax.lax.conv_general_dilated(
            x, cparams["w"].astype(x.dtype), (1, 1), "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + cparams["b"].astype(x.dtype)

    return Conditioner(init=init, apply=apply)


def split_prior() -> Bijector:
    """The learned conditional prior of a factored-out half, as a standardising affine coupling.

    On ``[b, h, w, c]``: the first $c/2$ channels $z_1$ are kept, the last $c/2$ become
    $\\hat z_2 = z_2 e^{s(z_1)} + t(z_1)$ (i.e. $\\mu = -t e^{-s}$, $\\sigma = e^{-s}$), with
    $(s, t)$ from one zero-initialised 3×3 convolution.
    """
    bij = affine_coupling(mask="channel", conditioner=_zero_conv_conditioner())
    return bij._replace(name="split_prior", event_ndims=3)


def _check_even(name: str, x: Array, level: int) -> None:
    c = x.shape[-1]
    if c % 2:
        raise ValueError(
            f"{name}: the output of level {level} must have an even number of channels to factor out "
            f"half, got shape {tuple(x.shape)}"
        )


def multiscale(levels: Sequence[Bijector], *, learn_split_prior: bool = True) -> Bijector:
    """Compose ``levels`` with a factor-out of half the channels after each level but the last.

    Args:
        levels: one bijector per scale, e.g. Glow's ``chain(squeeze(), step_1, ..., step_K)`` or
            RealNVP's ``chain(3 checkerboard couplings, squeeze(), 3 channel couplings)``. Each
            non-final level must output an even number of channels.
        learn_split_prior: give each factored-out half the learned conditional prior
            (:func:`split_prior`); ``False`` scores it with the plain standard normal.

    Returns:
        A bijector on NHWC images whose ``forward`` returns ``(zs, log_det)`` with ``zs`` the tuple
        ``(z_0, ..., z_top)`` of ``len(levels)`` latents, and whose ``inverse`` takes that tuple.

    Raises:
        ValueError: for no levels, an odd channel count at a split, or a ``zs`` of the wrong length.
    """
    levels = tuple(levels)
    if not levels:
        raise ValueError("levels: expected at least one level, got none")
    num = len(levels)
    prior = split_prior()

    def init(key: PRNGKey, example_x: Array) -> tuple[dict[str, Any], ...]:
        check_rank("x", example_x, 4)
        keys = jax.random.split(key, 2 * num)
        params, x = [], example_x
        for i, level in enumerate(levels):
            p = {"level": level.init(keys[2 * i], x)}
            x, _ = level.forward(p["level"], x)
            if i < num - 1:
                _check_even("x", x, i)
                if learn_split_prior:
                    p["split"] = prior.init(keys[2 * i + 1], x)
                    x, _ = prior.forward(p["split"], x)
                x = x[..., : x.shape[-1] // 2]
            params.append(p)
        return tuple(params)

    def _check_params(params: Any) -> None:
        if not isinstance(params, tuple) or len(params) != num:
            raise ValueError(f"params: expected a tuple of {num} level params, got {type(params).__name__}")

    def forward(params: tuple[dict[str, Any], ...], x: Array) -> tuple[tuple[Array, ...], Array]:
        check_rank("x", x, 4)
        _check_params(params)
        zs, total = [], jnp.zeros(x.shape[:1], jnp.float32)
        for i, level in enumerate(levels):
            x, ld = level.forward(params[i]["level"], x)
            total = total + ld
            if i < num - 1:
                _check_even("x", x, i)
                if learn_split_prior:
                    x, ld = prior.forward(params[i]["split"], x)
                    total = total + ld
                half = x.shape[-1] // 2
                zs.append(x[..., half:])
                x = x[..., :half]
        zs.append(x)
        return tuple(zs), total

    def inverse(params: tuple[dict[str, Any], ...], zs: Sequence[Array]) -> tuple[Array, Array]:
        _check_params(params)
        if not isinstance(zs, (tuple, list)) or len(zs) != num:
            raise ValueError(
                f"zs: expected a tuple of {num} latents (one per level), got "
                f"{type(zs).__name__} of length {len(zs) if isinstance(zs, (tuple, list)) else 'n/a'}"
            )
        for i, z in enumerate(zs):
            check_rank(f"zs[{i}]", z, 4)
        x = zs[-1]
        total = jnp.zeros(x.shape[:1], jnp.float32)
        for i in reversed(range(num)):
            if i < num - 1:
                if zs[i].shape[:-1] != x.shape[:-1] or zs[i].shape[-1] != x.shape[-1]:
                    raise ValueError(
                        f"zs[{i}]: expected shape {tuple(x.shape)} to match the kept half at level {i}, "
                        f"got {tuple(zs[i].shape)}"
                    )
                x = jnp.concatenate([x, zs[i]], axis=-1)
                if learn_split_prior:
                    x, ld = prior.inverse(params[i]["split"], x)
                    total = total + ld
            x, ld = levels[i].inverse(params[i]["level"], x)
            total = total + ld
        return x, total

    return Bijector(init, forward, inverse, name=f"multiscale[{num}]", event_ndims=3)


__all__ = ["multiscale", "split_prior"]
