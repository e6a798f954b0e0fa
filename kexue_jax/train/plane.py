"""Pictures of 2-D densities for the sample and figure grids: a grid of points and two renderings.

Shared by every task that models 2-D data (flows, diffusion): the density of a model or of the truth
evaluated on :attr:`PlaneGrid.points`, and a histogram of samples, both as ``[1, res, res, 1]``
images in ``[0, 1]`` for :func:`kexue_jax.train.save_grid`.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from kexue_jax._src.checks import check_positive
from kexue_jax._src.typing import Array, Float


@dataclasses.dataclass(frozen=True)
class PlaneGrid:
    """The square $[-h, h]^2$ at ``resolution`` × ``resolution`` pixel centres.

    Row 0 of a picture is the top of the plane ($y$ decreases down the rows), column 0 its left.
    """

    resolution: int
    half_width: float

    def __post_init__(self) -> None:
        check_positive("resolution", self.resolution)
        check_positive("half_width", self.half_width)

    @property
    def points(self) -> Float[Array, "n 2"]:
        """The pixel centres, ``[resolution², 2]`` float32, in picture (row-major) order."""
        res, half = self.resolution, self.half_width
        centres = (jnp.arange(res, dtype=jnp.float32) + 0.5) / res * 2 * half - half
        return jnp.stack(jnp.meshgrid(centres, -centres, indexing="xy"), axis=-1).reshape(-1, 2)

    def picture(self, values: Float[Array, " n"]) -> Float[Array, "1 r r 1"]:
        """Values at :attr:`points` as an image scaled to a maximum of 1.

        Non-finite values (an overflowing flow far from the data) are drawn as 0, so that one NaN
        does not spoil the normalisation of the whole picture.
        """
        res = self.resolution
        img = jnp.where(jnp.isfinite(values), values, 0.0).reshape(res, res)
        return (img / jnp.maximum(jnp.max(img), 1e-12))[None, :, :, None]

    def histogram(self, x: Float[Array, "n 2"]) -> Float[Array, "1 r r 1"]:
        """A 2-D histogram of samples ``x`` on the grid's pixels (samples outside are dropped)."""
        half = self.half_width
        counts, _, _ = jnp.histogram2d(x[:, 0], -x[:, 1], bins=self.resolution,
                                       range=[[-half, half], [-half, half]])
        return self.picture(counts.T)


__all__ = ["PlaneGrid"]
