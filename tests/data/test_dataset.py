"""ArrayDataset, DatasetInfo, the Dataset protocol and the pixel transform."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kexue_jax.data import ArrayDataset, Dataset, DatasetInfo, random_horizontal_flip, to_unit_interval


def _toy(n: int = 6) -> ArrayDataset:
    return ArrayDataset(
        {
            "x": np.arange(2 * n, dtype=np.float32).reshape(n, 2),
            "label": np.arange(n, dtype=np.int32),
        },
        name="toy",
    )


def test_array_dataset_gathers_rows_in_the_order_asked():
    ds = _toy()
    assert isinstance(ds, Dataset)
    assert len(ds) == 6 and ds.info.num_examples == 6 and ds.info.name == "toy"
    assert ds.info.features == {
        "x": ((2,), np.dtype(np.float32)),
        "label": ((), np.dtype(np.int32)),
    }
    batch = ds.get_batch(np.array([4, 0, 4]))
    np.testing.assert_array_equal(batch["label"], [4, 0, 4])
    np.testing.assert_array_equal(batch["x"], [[8, 9], [0, 1], [8, 9]])
    assert ds.get_batch(np.array([], np.int64))["x"].shape == (0, 2)


def test_get_batch_returns_copies():
    ds = _toy()
    ds.get_batch(np.array([0]))["x"][:] = -1
    assert ds.get_batch(np.array([0]))["x"][0, 0] == 0


@pytest.mark.parametrize(
    "indices, match",
    [
        (np.zeros((2, 2), np.int64), r"indices: expected shape \(n,\)"),
        (np.array([0.0, 1.0]), "indices: expected an integer dtype"),
        (np.array([0, 6]), r"indices: expected values in \[0, 6\)"),
        (np.array([-1]), r"indices: expected values in \[0, 6\)"),
    ],
)
def test_get_batch_rejects_bad_indices(indices, match):
    with pytest.raises(ValueError, match=match):
        _toy().get_batch(indices)


def test_array_dataset_rejects_inconsistent_arrays_and_info():
    with pytest.raises(ValueError, match="arrays: expected the same leading"):
        ArrayDataset({"a": np.zeros((3, 2)), "b": np.zeros(4)})
    with pytest.raises(ValueError, match="arrays: expected at least one"):
        ArrayDataset({})
    info = dataclasses.replace(_toy().info, num_examples=5)
    with pytest.raises(ValueError, match="info: num_examples is 5"):
        ArrayDataset(_toy().arrays, info)
    info = dataclasses.replace(_toy().info, features={"x": ((3,), np.dtype(np.float32))})
    with pytest.raises(ValueError, match="info: features"):
        ArrayDataset(_toy().arrays, info)


def test_dataset_info_is_frozen():
    info = DatasetInfo(name="a", split="train", num_examples=1, features={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.name = "b"  # type: ignore[misc]


def test_to_unit_interval_maps_the_end_levels_to_0_and_1():
    x = jnp.array([[0, 128, 255]], jnp.uint8)
    np.testing.assert_allclose(to_unit_interval(x, 256), [[0.0, 128 / 255, 1.0]], rtol=1e-6)
    digits = jnp.arange(17, dtype=jnp.uint8)
    y = to_unit_interval(digits, 17)
    assert y.dtype == jnp.float32 and float(y[0]) == 0.0 and float(y[-1]) == 1.0
    np.testing.assert_array_equal(jax.jit(to_unit_interval, static_argnums=1)(digits, 17), y)


def test_to_unit_interval_rejects_bad_arguments():
    with pytest.raises(ValueError, match="image: expected an integer dtype"):
        to_unit_interval(jnp.zeros(3), 256)
    with pytest.raises(ValueError, match="num_bins: expected an int >= 2"):
        to_unit_interval(jnp.zeros(3, jnp.uint8), 1)


def test_random_horizontal_flip_mirrors_each_image_or_none_with_probability_one_half():
    n = 4000
    # Every image distinct and asymmetric, so "unchanged" and "mirrored" can be told apart.
    images = np.arange(n * 3 * 4 * 2, dtype=np.int32).reshape(n, 3, 4, 2)
    out = np.asarray(jax.jit(random_horizontal_flip)(images, key=jax.random.key(0)))
    assert out.shape == images.shape and out.dtype == images.dtype
    kept = np.all(out == images, axis=(1, 2, 3))
    mirrored = np.all(out == images[:, :, ::-1, :], axis=(1, 2, 3))
    assert np.all(kept ^ mirrored)  # each image is exactly one of the two, never a mix
    # Bernoulli(1/2) per image: the mirrored share within 4 standard errors (0.5 / sqrt(n)) of 1/2,
    # and no dependence between neighbours (the share of equal consecutive choices also ~1/2).
    assert abs(mirrored.mean() - 0.5) < 4 * 0.5 / np.sqrt(n)
    assert abs(np.mean(mirrored[1:] == mirrored[:-1]) - 0.5) < 4 * 0.5 / np.sqrt(n - 1)
    again = np.asarray(random_horizontal_flip(images, key=jax.random.key(0)))
    np.testing.assert_array_equal(again, out)
    with pytest.raises(ValueError, match="image"):
        random_horizontal_flip(images[0], key=jax.random.key(0))
