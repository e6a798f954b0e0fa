"""Binary coupling masks: channel (half) split and the spatial checkerboard.

A mask $b \\in \\{0, 1\\}$ selects the part $x_1 = b \\odot x$ that a coupling layer keeps and
feeds to its conditioner; the rest, $(1 - b) \\odot x$, is transformed (RealNVP eq. 9:
$y = b \\odot x + (1 - b) \\odot (x \\odot e^{s(b \\odot x)} + t(b \\odot x))$).

* ``"channel"`` (alias ``"half"`` for vectors): $b_c = 1$ for the first $\\lfloor C/2 \\rfloor$
  channels (the last axis), the split used by NICE on vectors and by RealNVP/Glow on channels.
* ``"alternate"``: $b_c = 1$ for even channel indices, the interleaved (odd/even) split of NICE
  (Dinh et al. 2015, §5.1; Su's NICE code).
* ``"checkerboard"``: $b_{ij} = 1$ where $i + j$ is even, the same for every channel (images only).

``parity=True`` swaps the roles ($b \\to 1 - b$), which is how consecutive couplings alternate.

References:
    Su Jianlin, https://kexue.fm/archives/5807 (channel vs checkerboard masks); L. Dinh,
    J. Sohl-Dickstein, S. Bengio, "Density estimation using Real NVP", ICLR 2017 (§3.4, Fig. 3).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from kexue_jax._src.checks import check_in

MASKS = ("channel", "half", "alternate", "checkerboard")


def make_mask(kind: str, event_shape: tuple[int, ...], *, parity: bool = False) -> np.ndarray:
    """The float32 mask for one example, broadcastable to ``event_shape``.

    Args:
        kind: ``"channel"``, ``"half"``, ``"alternate"`` or ``"checkerboard"``.
        event_shape: the shape of one example, ``(h, w, c)`` or ``(d,)``.
        parity: swap the kept and transformed parts.

    Raises:
        ValueError: for an unknown ``kind``, a checkerboard on vectors, or fewer than 2 channels
            for a channel split.
    """
    check_in("mask", kind, MASKS)
    if kind == "checkerboard":
        if len(event_shape) != 3:
            raise ValueError(
                f"x: a checkerboard mask needs images (b, h, w, c), got example shape {event_shape}"
            )
        h, w, _ = event_shape
        m = ((np.arange(h)[:, None] + np.arange(w)[None, :]) % 2 == 0)[..., None]
    else:
        c = event_shape[-1]
        if c < 2:
            raise ValueError(f"x: a channel split needs at least 2 channels, got shape (*, {c})")
        m = np.arange(c) < c // 2 if kind != "alternate" else np.arange(c) % 2 == 0
    m = m.astype(np.float32)
    return 1.0 - m if parity else m


def split_channels(x, kind: str, *, parity: bool = False):
    """The channel split as slices: ``(x1, x2, merge)`` with ``merge(y2)`` the full output, or ``None``.

    For ``"channel"``/``"half"`` the kept part $x_1$ and the transformed part $x_2$ are contiguous
    halves of the last axis, so a coupling can feed its conditioner $x_1$ alone and predict only
    $x_2$'s parameters (Glow's $c/2 \\to c$ conditioner) instead of the masked $b \\odot x$ with
    half its outputs unused: the same family of maps at about a quarter fewer FLOPs in Glow.
    ``merge(y2)`` puts $(x_1, y_2)$ back in channel order. ``None`` for the other masks, which stay
    masked. Raises like :func:`make_mask`.
    """
    make_mask(kind, x.shape[1:], parity=parity)  # validates kind and the channel count
    if kind not in ("channel", "half"):
        return None
    half = x.shape[-1] // 2
    lo, hi = x[..., :half], x[..., half:]
    if parity:  # the first half is transformed
        return hi, lo, lambda y2: jnp.concatenate([y2, hi], axis=-1)
    return lo, hi, lambda y2: jnp.concatenate([lo, y2], axis=-1)


__all__ = ["MASKS", "make_mask", "split_channels"]
