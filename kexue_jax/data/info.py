"""What a dataset holds: :class:`DatasetInfo`, the static description every dataset carries."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, kw_only=True)
class DatasetInfo:
    """Static description of one split of a dataset.

    Models are built from it (image shape, number of classes, number of levels of the pixels), so it
    holds only what a model needs to know before it sees data.

    Attributes:
        name: the name given to :func:`kexue_jax.data.load`.
        split: the split given to :func:`kexue_jax.data.load` (after alias resolution).
        num_examples: number of examples (rows) in the split.
        features: ``{feature: (shape without the batch axis, numpy dtype)}``, exactly what
            ``get_batch`` returns with a leading batch axis, e.g. ``{"image": ((28, 28, 1),
            dtype('uint8')), "label": ((), dtype('int32'))}``.
        num_classes: number of label classes, or ``None`` for unlabelled data.
        num_bins: number of levels of integer image data (256 for 8-bit images, 17 for
            scikit-learn's digits whose pixels are ``0..16``), or ``None`` for continuous or
            non-image data. This is the ``num_bins`` of dequantization and bits/dim.
        description: where the data comes from and the exact split rule.
    """

    name: str
    split: str
    num_examples: int
    features: dict[str, tuple[tuple[int, ...], np.dtype]]
    num_classes: int | None = None
    num_bins: int | None = None
    description: str = ""
