"""The 2-D picture grid: pixel order, histogram placement, normalisation, validation."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from kexue_jax.train.plane import PlaneGrid


def test_points_are_pixel_centres_with_the_top_row_first():
    plane = PlaneGrid(4, 2.0)
    pts = np.asarray(plane.points).reshape(4, 4, 2)
    np.testing.assert_allclose(pts[0, :, 0], [-1.5, -0.5, 0.5, 1.5])  # x grows along a row
    np.testing.assert_allclose(pts[:, 0, 1], [1.5, 0.5, -0.5, -1.5])  # y falls down the rows


def test_histogram_puts_a_sample_in_its_pixel_and_pictures_peak_at_one():
    plane = PlaneGrid(4, 2.0)
    img = np.asarray(plane.histogram(jnp.array([[1.2, 1.7], [1.3, 1.6], [-1.9, -1.9]])))[0, :, :, 0]
    assert img.shape == (4, 4) and img.max() == 1.0
    assert img[0, 3] == 1.0 and img[3, 0] == 0.5 and img.sum() == 1.5  # top right twice, bottom left once
    values = jnp.arange(16.0).at[3].set(jnp.nan).at[5].set(jnp.inf)
    pic = np.asarray(plane.picture(values))[0, :, :, 0]
    assert pic[0, 3] == 0.0 and pic[1, 1] == 0.0 and pic.max() == 1.0  # non-finite drawn as 0


def test_invalid_grid_raises():
    with pytest.raises(ValueError, match="resolution"):
        PlaneGrid(0, 1.0)
    with pytest.raises(ValueError, match="half_width"):
        PlaneGrid(8, -1.0)
