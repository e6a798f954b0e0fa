"""The fixed per-class train/test rule shared by the embedded labelled datasets."""

from __future__ import annotations

import numpy as np

from kexue_jax.data.dataset import ArrayDataset
from kexue_jax.data.info import DatasetInfo

SPLITS = ("train", "test")


def per_class_split(
    labels: np.ndarray, split: str, *, test_fraction_denominator: int = 5
) -> np.ndarray:
    """Row indices of ``split`` under the rule "per class, the last ``n_c // 5`` rows are test".

    For each class ``c`` with ``n_c`` rows, taken in the source's order, the first
    ``n_c - n_c // test_fraction_denominator`` rows are ``"train"`` and the last
    ``n_c // test_fraction_denominator`` rows are ``"test"`` (about 80/20 with the default 5). The
    returned indices are sorted, so a split keeps the source's order.

    Args:
        labels: ``int [n]`` class of every row of the source.
        split: ``"train"`` or ``"test"``.
        test_fraction_denominator: ``n_c // test_fraction_denominator`` rows per class are test.

    Returns:
        ``int64 [m]`` sorted row indices of the split.

    Raises:
        ValueError: naming ``split`` when it is neither ``"train"`` nor ``"test"``.
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {list(SPLITS)}, got {split!r}")
    labels = np.asarray(labels)
    chosen = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        n_test = len(rows) // test_fraction_denominator
        chosen.append(rows[len(rows) - n_test :] if split == "test" else rows[: len(rows) - n_test])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def labelled_images_split(
    name: str,
    images: np.ndarray,
    labels: np.ndarray,
    split: str,
    *,
    num_classes: int,
    num_bins: int,
    description: str,
) -> ArrayDataset:
    """The :func:`per_class_split` rows of an embedded labelled image set as an :class:`ArrayDataset`.

    Returns:
        ``image`` ``uint8 [n, h, w, c]`` and ``label`` ``int32 [n]`` of ``split``.
    """
    idx = per_class_split(labels, split)
    info = DatasetInfo(
        name=name,
        split=split,
        num_examples=len(idx),
        features={"image": (tuple(images.shape[1:]), np.dtype(np.uint8)), "label": ((), np.dtype(np.int32))},
        num_classes=num_classes,
        num_bins=num_bins,
        description=description,
    )
    return ArrayDataset({"image": images[idx], "label": labels[idx]}, info)
