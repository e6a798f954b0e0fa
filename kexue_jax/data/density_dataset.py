"""The 2-D densities of :mod:`kexue_jax.data.densities` as fixed datasets of samples."""

from __future__ import annotations

import functools
import zlib

import jax
import numpy as np

from kexue_jax.data.dataset import ArrayDataset
from kexue_jax.data.densities import DENSITIES, sample_density
from kexue_jax.data.info import DatasetInfo

SPLITS = ("train", "test")
DEFAULT_NUM_EXAMPLES = {"train": 50_000, "test": 10_000}


def split_seed(name: str, split: str) -> int:
    """The seed of a density's split: ``crc32(f"{name}/{split}") mod 2**31`` (fixed, documented)."""
    return zlib.crc32(f"{name}/{split}".encode()) % 2**31


_sample = jax.jit(sample_density, static_argnums=(0, 1))


@functools.lru_cache(maxsize=16)
def _samples(name: str, split: str, num: int) -> np.ndarray:
    x = np.asarray(_sample(name, num, key=jax.random.key(split_seed(name, split))))
    x.setflags(write=False)
    return x


def load_density_split(name: str, split: str, *, num_examples: int | None = None) -> ArrayDataset:
    """A fixed sample of the 2-D density ``name`` as a dataset ``{"x": float32 [n, 2]}``.

    The rows are ``sample_density(name, n, key=jax.random.key(split_seed(name, split)))``: fixed for
    a given ``(name, split, n)``, different between ``"train"`` and ``"test"`` (different keys).
    Changing ``n`` changes every row, not only the tail (jax's samplers are not prefix-stable).

    Args:
        name: one of :data:`~kexue_jax.data.densities.DENSITIES`.
        split: ``"train"`` or ``"test"``.
        num_examples: ``n``; default 50,000 for train and 10,000 for test.

    Returns:
        :class:`ArrayDataset` with feature ``x`` ``float32 [n, 2]``.

    Raises:
        ValueError: naming ``name``, ``split`` or ``num_examples`` when invalid.
    """
    if name not in DENSITIES:
        raise ValueError(f"name: expected one of {list(DENSITIES)}, got {name!r}")
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {list(SPLITS)} for {name!r}, got {split!r}")
    if num_examples is None:
        num_examples = DEFAULT_NUM_EXAMPLES[split]
    if (
        isinstance(num_examples, bool)
        or not isinstance(num_examples, (int, np.integer))
        or num_examples < 1
    ):
        raise ValueError(f"num_examples: expected a positive int, got {num_examples!r}")
    x = _samples(name, split, int(num_examples))
    info = DatasetInfo(
        name=name,
        split=split,
        num_examples=int(num_examples),
        features={"x": ((2,), np.dtype(np.float32))},
        description=(
            f"{num_examples} exact samples of the 2-D density {name!r} "
            f"(kexue_jax.data.densities.sample_density) drawn with "
            f"jax.random.key({split_seed(name, split)}) = key(crc32('{name}/{split}') % 2**31); "
            f"exact log-density: kexue_jax.data.densities.log_density."
        ),
    )
    return ArrayDataset({"x": x}, info)
