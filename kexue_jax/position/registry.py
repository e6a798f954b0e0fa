"""The registry of RoPE-style encodings: a frequency table (plus YaRN's factor) and a rotation.

``POSITIONS[name](head_dim, scale=k, theta=...)`` returns a :class:`RotaryEncoding`. The shared
suite ``tests/suites/test_positions.py`` checks every entry for the relative property
($\\langle R_m q, R_n k\\rangle$ depends only on $m - n$), norm preservation (up to
``attention_factor``), equality with plain RoPE at ``scale=1``, eager = jit = vmap, bf16 in = bf16
out and the odd-``head_dim`` ``ValueError``; a new entry gets every check for free.

References:
    https://kexue.fm/archives/9675, https://kexue.fm/archives/9706; Chen et al. 2023 (PI),
    arXiv:2306.15595; Peng et al. 2023 (YaRN), arXiv:2309.00071.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from kexue_jax._src.typing import Array, ArrayLike
from kexue_jax.position import frequencies as F
from kexue_jax.position.rope import apply_rope


class RotaryEncoding(NamedTuple):
    """A RoPE variant as data: ``inv_freq`` ``[d/2]``, a factor on q and k, and the pairing."""

    name: str
    inv_freq: Array
    attention_factor: float = 1.0
    pairing: str = "half"

    def rotate(self, x: Array, positions: ArrayLike | None) -> Array:
        """Rotate ``[b, t, h, d]`` queries or keys (see :func:`~kexue_jax.position.apply_rope`)."""
        return apply_rope(
            x,
            positions,
            self.inv_freq,
            pairing=self.pairing,
            attention_factor=self.attention_factor,
        )


# Length used by the length-dependent entries: dynamic NTK runs at seq_len = scale * this length,
# so that scale = 1 is the training length (plain RoPE), and YaRN's original context.
TRAINING_LENGTH = 2048


def _rope(head_dim: int, *, scale: float = 1.0, theta: float = 10000.0) -> RotaryEncoding:
    del scale  # plain RoPE has no extension factor; kept so that every factory has one signature
    return RotaryEncoding("rope", F.rope_inv_freq(head_dim, theta=theta))


def _rope_interleaved(
    head_dim: int, *, scale: float = 1.0, theta: float = 10000.0
) -> RotaryEncoding:
    del scale
    return RotaryEncoding(
        "rope_interleaved", F.rope_inv_freq(head_dim, theta=theta), pairing="interleaved"
    )


def _table(name: str, fn: Callable[..., Array], **fixed: object) -> Callable[..., RotaryEncoding]:
    def factory(head_dim: int, *, scale: float = 1.0, theta: float = 10000.0) -> RotaryEncoding:
        return RotaryEncoding(name, fn(head_dim, theta=theta, scale=scale, **fixed))

    factory.__doc__ = f"``{name}``: :func:`~kexue_jax.position.{fn.__name__}` as a RotaryEncoding."
    return factory


def _dynamic_ntk(head_dim: int, *, scale: float = 1.0, theta: float = 10000.0) -> RotaryEncoding:
    table = F.dynamic_ntk_inv_freq(
        head_dim, scale * TRAINING_LENGTH, theta=theta, training_length=TRAINING_LENGTH
    )
    return RotaryEncoding("dynamic_ntk", table)


def _yarn(head_dim: int, *, scale: float = 1.0, theta: float = 10000.0) -> RotaryEncoding:
    table = F.yarn_inv_freq(
        head_dim, theta=theta, scale=scale, original_max_position=TRAINING_LENGTH
    )
    return RotaryEncoding("yarn", table, attention_factor=F.yarn_attention_factor(scale))


POSITIONS: dict[str, Callable[..., RotaryEncoding]] = {
    "rope": _rope,
    "rope_interleaved": _rope_interleaved,
    "linear": _table("linear", F.linear_inv_freq),
    "ntk_old": _table("ntk_old", F.ntk_old_inv_freq),
    "ntk_aware": _table("ntk_aware", F.ntk_aware_inv_freq),
    "ntk_fixed": _table("ntk_fixed", F.ntk_fixed_inv_freq),
    "ntk_mixed": _table("ntk_mixed", F.ntk_mixed_inv_freq, b=0.625),
    "dynamic_ntk": _dynamic_ntk,
    "yarn": _yarn,
}

__all__ = ["POSITIONS", "TRAINING_LENGTH", "RotaryEncoding"]
