"""The tensorflow-datasets path: mocked MNIST, a tiny dataset really prepared on disk, the errors.

No network and no TensorFlow: ``tfds.testing.mock_data`` fakes a dataset's records (its default
policy reads the features from the dataset's code), and the tiny ``kexue_toy_rows`` dataset below
is prepared with tfds' own writer in the ArrayRecord format, which needs neither (it has no
``Image`` feature: encoding PNGs is what needs TensorFlow).
"""

from __future__ import annotations

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from kexue_jax.data import Dataset, TfdsDataset, list_datasets, load  # noqa: E402

TRAIN_ROWS, TEST_ROWS = 10, 4


class KexueToyRows(tfds.core.GeneratorBasedBuilder):
    """Registered by tfds as ``kexue_toy_rows``: row ``i`` of a split holds ``i + offset``."""

    # tfds 4.9.10 locates a builder's code from its dotted module path, and for a module inside a
    # package (tests.data.test_tfds) that step imports `importlib_resources`, which tfds does not
    # declare and this environment lacks. A top-level module name takes the plain-file route.
    __module__ = "kexue_toy_rows_builder"

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description="kexue_jax test data",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(4, 4, 1), dtype=np.uint8),
                    "label": tfds.features.ClassLabel(num_classes=3),
                    "value": tfds.features.Tensor(shape=(2,), dtype=np.float32),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        return {
            "train": self._generate_examples(TRAIN_ROWS, 0),
            "test": self._generate_examples(TEST_ROWS, 100),
        }

    def _generate_examples(self, num, offset):
        for i in range(num):
            yield (
                i,
                {
                    "image": np.full((4, 4, 1), i + offset, np.uint8),
                    "label": i % 3,
                    "value": np.array([i, offset], np.float32),
                },
            )


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    KexueToyRows(data_dir=str(data_dir), file_format="array_record").download_and_prepare()
    return str(data_dir)


def test_mocked_mnist_has_the_documented_layout(tmp_path):
    with tfds.testing.mock_data(num_examples=10):
        ds = load("mnist", split="train", data_dir=str(tmp_path))
        assert isinstance(ds, TfdsDataset) and isinstance(ds, Dataset)
        assert len(ds) == 10
        assert ds.info.features == {
            "image": ((28, 28, 1), np.dtype(np.uint8)),
            "label": ((), np.dtype(np.int32)),
        }
        assert (ds.info.num_classes, ds.info.num_bins, ds.info.name) == (10, 256, "mnist")
        batch = ds.get_batch(np.array([9, 0, 4, 4]))
        again = ds.get_batch(np.array([9, 0, 4, 4]))
    assert batch["image"].shape == (4, 28, 28, 1) and batch["image"].dtype == np.uint8
    assert batch["label"].shape == (4,) and batch["label"].dtype == np.int32
    assert np.all((batch["label"] >= 0) & (batch["label"] < 10))
    np.testing.assert_array_equal(batch["image"][2], batch["image"][3])
    np.testing.assert_array_equal(batch["image"], again["image"])


def test_mocked_string_features_pass_through(tmp_path):
    with tfds.testing.mock_data(num_examples=5):
        ds = load("cifar10", split="test", data_dir=str(tmp_path))
        batch = ds.get_batch(np.arange(5))
    assert ds.info.features["id"] == ((), np.dtype(object)) and batch["id"].shape == (5,)
    assert batch["image"].shape == (5, 32, 32, 3)


def test_prepared_dataset_rows_and_dtypes(toy_dir):
    ds = load("kexue_toy_rows", split="train", data_dir=toy_dir)
    assert len(ds) == TRAIN_ROWS and ds._batched_reads  # the real, batched ArrayRecord reads
    assert ds.info.features == {
        "image": ((4, 4, 1), np.dtype(np.uint8)),
        "label": ((), np.dtype(np.int32)),
        "value": ((2,), np.dtype(np.float32)),
    }
    assert ds.info.num_classes == 3
    rows = np.array([7, 2, 2, 9])
    batch = ds.get_batch(rows)
    values = batch["value"][:, 0].astype(int)
    assert batch["value"].dtype == np.float32 and batch["label"].dtype == np.int32
    # each returned row is the one asked for, in the order asked (values identify the rows)
    assert values[1] == values[2] and len(set(values[[0, 1, 3]])) == 3
    np.testing.assert_array_equal(batch["image"][:, 0, 0, 0], values)
    np.testing.assert_array_equal(batch["label"], values % 3)
    everything = ds.get_batch(np.arange(TRAIN_ROWS))["value"][:, 0]
    np.testing.assert_array_equal(np.sort(everything), np.arange(TRAIN_ROWS))
    test = load("kexue_toy_rows", split="test", data_dir=toy_dir).get_batch(np.arange(TEST_ROWS))
    assert np.all(test["value"][:, 1] == 100)


def test_prepared_dataset_accepts_tfds_split_slicing(toy_dir):
    assert len(load("kexue_toy_rows", split="train[:50%]", data_dir=toy_dir)) == TRAIN_ROWS // 2
    assert (
        len(load("kexue_toy_rows", split="train+test", data_dir=toy_dir)) == TRAIN_ROWS + TEST_ROWS
    )


def test_unknown_split_names_the_split_and_the_available_ones(toy_dir):
    with pytest.raises(
        ValueError,
        match=r"split: 'validation' is not a split of 'kexue_toy_rows'; "
        r"available: \['test', 'train'\]",
    ):
        load("kexue_toy_rows", split="validation", data_dir=toy_dir)


def test_data_dir_is_respected(toy_dir, tmp_path):
    # the same prepared name is not found under another data_dir
    with pytest.raises(ValueError, match="'kexue_toy_rows' .* is not prepared under"):
        load("kexue_toy_rows", split="train", data_dir=str(tmp_path))


def test_offline_error_says_how_to_prepare_and_lists_embedded_alternatives(tmp_path):
    with pytest.raises(ValueError) as info:
        load("mnist", split="train", data_dir=str(tmp_path))
    message = str(info.value)
    assert message.startswith("name: tensorflow-datasets dataset 'mnist'")
    assert str(tmp_path) in message
    assert "tfds build mnist --data_dir DIR --file_format array_record" in message
    assert (
        "tfds.builder('mnist', data_dir='DIR', file_format='array_record').download_and_prepare()"
        in message
    )
    assert "data_dir=DIR" in message
    for name in list_datasets():
        assert name in message


def test_unknown_name_and_options_are_rejected(tmp_path):
    with pytest.raises(
        ValueError, match="name: unknown dataset 'kexue_no_such_ds'.*digits, mnist5k"
    ):
        load("kexue_no_such_ds", data_dir=str(tmp_path))
    with pytest.raises(
        ValueError, match="seq_len: not an option of tensorflow-datasets dataset 'mnist'"
    ):
        load("mnist", data_dir=str(tmp_path), seq_len=4)


def test_a_dataset_prepared_without_random_access_is_explained(toy_dir, monkeypatch):
    # Preparing in the default TFRecord format needs TensorFlow, absent here; simulate what
    # tfds.data_source raises then (tfds 4.9.10's message) on a dataset that is prepared.
    def tfrecord_only(*args, **kwargs):
        raise NotImplementedError(
            "Random access data source for file format FileFormat.TFRECORD is not supported."
        )

    monkeypatch.setattr(tfds, "data_source", tfrecord_only)
    with pytest.raises(ValueError, match="format, which has no random access; prepare it again"):
        load("kexue_toy_rows", split="train", data_dir=toy_dir)
