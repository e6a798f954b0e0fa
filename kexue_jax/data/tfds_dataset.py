"""Named datasets of tensorflow-datasets, read with random access and without TensorFlow.

``tfds.data_source`` opens a prepared dataset in the ArrayRecord format as a random-access sequence
of decoded numpy examples (no TensorFlow needed to read). :class:`TfdsDataset` wraps it in the
:class:`~kexue_jax.data.Dataset` protocol, so that batching and resume work as for embedded data.

Nothing is ever downloaded here (``download=False``): the dataset must already be prepared under
``data_dir``; otherwise :func:`open_tfds` raises a ``ValueError`` that says how to prepare it on a
machine with network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kexue_jax.data.dataset import check_indices
from kexue_jax.data.info import DatasetInfo


def _feature_spec(feature: Any) -> tuple[tuple[int, ...], np.dtype] | None:
    """``(shape, dtype)`` of a fixed-shape tensor feature; ``None`` for ragged or nested ones."""
    shape, dtype = getattr(feature, "shape", None), getattr(feature, "np_dtype", None)
    if not isinstance(shape, tuple) or any(d is None for d in shape) or isinstance(dtype, dict):
        return None
    return tuple(int(d) for d in shape), np.dtype(dtype)


class TfdsDataset:
    """A split of a tensorflow-datasets dataset, as a :class:`~kexue_jax.data.Dataset`.

    ``get_batch`` reads the rows with the source's batched ``__getitems__`` (parallel reads for
    ArrayRecord) and stacks every feature into one numpy array: ``image`` stays ``uint8`` NHWC,
    ``label`` becomes ``int32``, every other fixed-shape feature keeps its dtype. Ragged or nested
    features (variable-size images, sequences of boxes) come back as ``object`` arrays of
    per-example values, and are described in ``info.features`` as ``((), dtype('O'))``.

    Build it with :func:`kexue_jax.data.load` (or :func:`open_tfds`), not directly.

    Args:
        source: the object returned by ``tfds.data_source(name, split=split, ...)``.
        name: the dataset's name (as given to ``load``).
        split: the split (any tfds split string, e.g. ``"train[:90%]"``).
    """

    def __init__(self, source: Any, *, name: str, split: str):
        self._source = source
        tfds_info = source.dataset_info
        features: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        self._fixed: set[str] = set()
        for key, feature in tfds_info.features.items():
            spec = _feature_spec(feature)
            if spec is None:
                features[key] = ((), np.dtype(object))
                continue
            shape, dtype = spec
            if key == "label" and np.issubdtype(dtype, np.integer):
                dtype = np.dtype(np.int32)
            features[key] = (shape, dtype)
            self._fixed.add(key)
        label = tfds_info.features["label"] if "label" in tfds_info.features else None
        image = features.get("image")
        self._info = DatasetInfo(
            name=name,
            split=split,
            num_examples=len(source),
            features=features,
            num_classes=getattr(label, "num_classes", None),
            num_bins=256 if image is not None and image[1] == np.uint8 else None,
            description=(
                f"tensorflow-datasets {tfds_info.full_name} (split {split!r}, read with "
                f"tfds.data_source from {tfds_info.data_dir}). {tfds_info.description.strip()}"
            ),
        )
        self._batched_reads = self._probe_batched_reads()

    def _probe_batched_reads(self) -> bool:
        # tfds 4.9.10's `tfds.testing.mock_data` installs `__getitems__` on the mocked ArrayRecord
        # reader as an unbound `functools.partial`, so any call raises TypeError; real readers work.
        # Probe once here instead of catching TypeError on every batch (which would hide real bugs).
        if len(self) == 0:
            return False
        try:
            self._source.__getitems__([0])
        except TypeError:
            return False
        return True

    def __len__(self) -> int:
        return self._info.num_examples

    def __repr__(self) -> str:
        return f"TfdsDataset(name={self._info.name!r}, split={self._info.split!r}, n={len(self)})"

    @property
    def info(self) -> DatasetInfo:
        """The dataset's :class:`~kexue_jax.data.DatasetInfo`."""
        return self._info

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Read rows ``indices`` (1-D integers in ``[0, len)``) and stack them per feature.

        Raises:
            ValueError: naming ``indices`` when they are not 1-D integers in range.
        """
        idx = check_indices(indices, len(self))
        keys = [int(i) for i in idx]
        if self._batched_reads and keys:
            records: Sequence[dict[str, Any]] = self._source.__getitems__(keys)
        else:
            records = [self._source[i] for i in keys]
        out: dict[str, np.ndarray] = {}
        for key, (shape, dtype) in self._info.features.items():
            if key in self._fixed:
                out[key] = np.asarray([np.asarray(r[key]) for r in records], dtype=dtype).reshape(
                    (len(records), *shape)
                )
            else:
                column = np.empty(len(records), dtype=object)
                column[:] = [r[key] for r in records]
                out[key] = column
        return out


def _offline_message(name: str, split: str, data_dir: str | None, embedded: Sequence[str]) -> str:
    where = data_dir or "the default TFDS data directory (TFDS_DATA_DIR or ~/tensorflow_datasets)"
    return (
        f"name: tensorflow-datasets dataset {name!r} (split {split!r}) is not prepared under "
        f"{where}, "
        f"and kexue_jax never downloads. On a machine with network (preparing image datasets needs "
        f"`pip install tensorflow` there), prepare it in the random-access ArrayRecord format:\n"
        f"    tfds build {name} --data_dir DIR --file_format array_record\n"
        f"or\n"
        f'    python -c "import tensorflow_datasets as tfds; '
        f"tfds.builder('{name}', data_dir='DIR', file_format='array_record')"
        f'.download_and_prepare()"\n'
        f"then copy DIR to this machine and pass data_dir=DIR (kexue-jax: --data_dir DIR, or "
        f"data.data_dir in a config). Embedded datasets that need no download: "
        f"{', '.join(embedded)}."
    )


def open_tfds(
    name: str, *, split: str, data_dir: str | None, embedded: Sequence[str]
) -> TfdsDataset:
    """Open a prepared tensorflow-datasets split with ``tfds.data_source(..., download=False)``.

    Args:
        name: a tfds name (``"mnist"``, ``"cifar10"``, ``"celeb_a/..."``, ...).
        split: a tfds split string (``"train"``, ``"test"``, ``"train[:90%]"``, ...).
        data_dir: where the prepared dataset lives (``None``: ``TFDS_DATA_DIR`` or
            ``~/tensorflow_datasets``).
        embedded: names of the embedded datasets, listed in the error messages as alternatives.

    Returns:
        The split as a :class:`TfdsDataset`.

    Raises:
        ValueError: naming ``name`` when tfds does not know it or it is not prepared under
            ``data_dir`` (with the commands that prepare it and the embedded alternatives);
            naming ``split`` when the prepared dataset has no such split (with the available ones).
    """
    import tensorflow_datasets as tfds

    try:
        source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except tfds.core.DatasetNotFoundError as e:
        raise ValueError(
            f"name: unknown dataset {name!r}: not an embedded dataset ({', '.join(embedded)}) and "
            f"not a tensorflow-datasets name"
        ) from e
    except Exception as e:
        builder = tfds.builder(name, data_dir=data_dir)
        if not builder.is_prepared():
            raise ValueError(_offline_message(name, split, data_dir, embedded)) from e
        splits = sorted(builder.info.splits.keys())
        if isinstance(e, ValueError) and "unknown split" in str(e).lower():
            raise ValueError(
                f"split: {split!r} is not a split of {name!r}; available: {splits} (tfds "
                f"slicing such as 'train[:90%]' is accepted)"
            ) from e
        if isinstance(e, NotImplementedError) and "random access" in str(e).lower():
            raise ValueError(
                f"name: {name!r} is prepared under {builder.data_dir} in the "
                f"{builder.info.file_format} format, which has no random access; prepare it again "
                f"with --file_format array_record (see tfds build --help)"
            ) from e
        raise
    return TfdsDataset(source, name=name, split=split)
