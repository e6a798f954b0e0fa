"""The :class:`Dataset` protocol and its in-memory implementation :class:`ArrayDataset`.

A dataset is random access: ``get_batch(indices)`` gathers rows. Ordering, shuffling and sharding
over processes live in :mod:`kexue_jax.data.batching`, so that a batch is a pure function of
``(seed, step)`` whatever the storage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from kexue_jax.data.info import DatasetInfo


@runtime_checkable
class Dataset(Protocol):
    """Random-access dataset: a length, a :class:`DatasetInfo` and ``get_batch``.

    ``get_batch(indices)`` returns ``{feature: np.ndarray [len(indices), *shape]}`` with the shapes
    and dtypes of ``info.features`` (images ``uint8`` NHWC under ``"image"``, labels ``int32`` under
    ``"label"``).
    """

    def __len__(self) -> int: ...

    @property
    def info(self) -> DatasetInfo: ...

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]: ...


def check_indices(indices: np.ndarray, length: int) -> np.ndarray:
    """Validate row indices of a dataset of ``length`` rows; return them as a 1-D ``int64`` array.

    Raises:
        ValueError: naming ``indices`` when they are not a 1-D integer array or out of range.
    """
    idx = np.asarray(indices)
    if idx.ndim != 1:
        raise ValueError(f"indices: expected shape (n,), got {idx.shape}")
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(
            f"indices: expected an integer dtype, got {idx.dtype} with shape {idx.shape}"
        )
    idx = idx.astype(np.int64, copy=False)
    if idx.size and (idx.min() < 0 or idx.max() >= length):
        raise ValueError(
            f"indices: expected values in [0, {length}), got min {idx.min()} and max {idx.max()}"
        )
    return idx


class ArrayDataset:
    """A dataset held in memory as a dict of numpy arrays sharing their leading (row) axis.

    Args:
        arrays: ``{feature: np.ndarray [n, ...]}``; every array must have the same ``n``. The arrays
            are stored as given (not copied); ``get_batch`` returns fresh copies.
        info: the dataset's description. When omitted, one is made with ``name`` and ``split`` and
            ``features`` read off the arrays.
        name: name for the default ``info``.
        split: split for the default ``info``.

    Raises:
        ValueError: naming ``arrays`` when it is empty or the leading sizes differ, or ``info`` when
            its ``num_examples`` or ``features`` disagree with the arrays.

    Example:
        >>> ds = ArrayDataset({"x": np.zeros((5, 2), np.float32)})
        >>> len(ds), ds.get_batch(np.array([0, 3]))["x"].shape
        (5, (2, 2))
    """

    def __init__(
        self,
        arrays: Mapping[str, np.ndarray],
        info: DatasetInfo | None = None,
        *,
        name: str = "arrays",
        split: str = "train",
    ):
        if not arrays:
            raise ValueError("arrays: expected at least one feature, got an empty mapping")
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        sizes = {k: (v.shape[0] if v.ndim else None) for k, v in arrays.items()}
        if None in sizes.values() or len(set(sizes.values())) != 1:
            shapes = {k: v.shape for k, v in arrays.items()}
            raise ValueError(
                f"arrays: expected the same leading (row) size for every feature, got {shapes}"
            )
        n = next(iter(sizes.values()))
        features = {k: (tuple(v.shape[1:]), v.dtype) for k, v in arrays.items()}
        if info is None:
            info = DatasetInfo(name=name, split=split, num_examples=n, features=features)
        if info.num_examples != n:
            raise ValueError(
                f"info: num_examples is {info.num_examples} but the arrays have {n} rows"
            )
        if {k: (tuple(s), np.dtype(d)) for k, (s, d) in info.features.items()} != features:
            raise ValueError(f"info: features {info.features} disagree with the arrays' {features}")
        self._arrays = arrays
        self._info = info

    def __len__(self) -> int:
        return self._info.num_examples

    def __repr__(self) -> str:
        return f"ArrayDataset(name={self._info.name!r}, split={self._info.split!r}, n={len(self)})"

    @property
    def info(self) -> DatasetInfo:
        """The dataset's :class:`DatasetInfo`."""
        return self._info

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """All rows, ``{feature: np.ndarray [n, ...]}`` (the stored arrays: do not modify)."""
        return dict(self._arrays)

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Gather rows ``indices`` (1-D integers in ``[0, len)``) of every feature.

        Raises:
            ValueError: naming ``indices`` when they are not 1-D integers in range.
        """
        idx = check_indices(indices, len(self))
        return {k: v[idx] for k, v in self._arrays.items()}
