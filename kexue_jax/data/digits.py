"""scikit-learn's 8×8 handwritten digits (UCI optical digits, test part), embedded: no network."""

from __future__ import annotations

import functools

import numpy as np

from kexue_jax.data.class_split import labelled_images_split
from kexue_jax.data.dataset import ArrayDataset

NUM_BINS = 17
"""Pixels are counts ``0..16`` (a 4×4 block of a 32×32 bitmap), so 17 levels."""

DESCRIPTION = (
    "scikit-learn load_digits (1,797 8x8 images of digits 0-9, pixel values 0..16, shipped with "
    "scikit-learn; the test set of the UCI ML optical recognition of handwritten digits data). "
    "Split: for each class c with n_c rows in load_digits' order, the first n_c - n_c // 5 rows "
    "are 'train' (1,442 rows) and the last n_c // 5 rows are 'test' (355 rows); both keep the "
    "source order."
)


@functools.lru_cache(maxsize=1)
def _source() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.data).reshape(-1, 8, 8, 1)
    if images.min() < 0 or images.max() > NUM_BINS - 1 or not np.all(images == np.round(images)):
        raise RuntimeError(
            "scikit-learn's digits are not integers in 0..16; the embedded copy changed"
        )
    images = images.astype(np.uint8)
    labels = np.asarray(bunch.target).astype(np.int32)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_digits_split(split: str) -> ArrayDataset:
    """The ``split`` (``"train"`` or ``"test"``) of scikit-learn's digits.

    Returns:
        :class:`ArrayDataset` with ``image`` ``uint8 [n, 8, 8, 1]`` in ``0..16``
        (``num_bins=17``) and ``label`` ``int32 [n]``; ``n`` is 1,442 for train and 355 for test
        (see :data:`DESCRIPTION` for the exact rule).

    Raises:
        ValueError: naming ``split`` when it is neither ``"train"`` nor ``"test"``.
    """
    images, labels = _source()
    return labelled_images_split(
        "digits", images, labels, split, num_classes=10, num_bins=NUM_BINS, description=DESCRIPTION
    )
