"""Batches as a pure function of ``(seed, step)``: exact resume and multi-process sharding for free.

A training batch is never the next item of a stateful iterator. Step ``s`` belongs to epoch
``e = s // steps_per_epoch``; the epoch's order is
``np.random.default_rng([*seed, e]).permutation(len(dataset))``; the step takes the window
``[(s mod steps_per_epoch) * batch_size, ... + batch_size)`` of it (the last ``len % batch_size``
examples of each epoch's permutation are dropped, a different set every epoch). With several
processes, each takes its contiguous ``batch_size / process_count`` share of that global window, so
that the union over processes is the global batch. Recreating a :class:`Batcher` with the same
arguments after a restart gives the same batches: resume is exact without saving any data state.

This module only decides which rows; placing them on the device mesh is the engine's job
(:func:`kexue_jax.train.shard_batch`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

from kexue_jax.data.dataset import Dataset


def seed_words(seed: Any) -> tuple[int, ...]:
    """A seed as non-negative integers for ``np.random.default_rng``.

    Accepts a non-negative int, or a jax PRNG key (typed ``jax.random.key`` or raw ``uint32``
    data), converted with ``jax.random.key_data`` to its ``uint32`` words.

    Raises:
        ValueError: naming ``seed`` when it is a negative int or neither an int nor a key.
    """
    if isinstance(seed, (bool, np.bool_)):
        raise ValueError(f"seed: expected a non-negative int or a jax PRNG key, got {seed!r}")
    if isinstance(seed, (int, np.integer)):
        if seed < 0:
            raise ValueError(f"seed: expected a non-negative int, got {seed!r}")
        return (int(seed),)
    try:
        dtype = seed.dtype
    except AttributeError:
        raise ValueError(
            f"seed: expected a non-negative int or a jax PRNG key, got {seed!r}"
        ) from None
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        seed = jax.random.key_data(seed)
    data = np.asarray(seed)
    if data.ndim != 1 or not np.issubdtype(data.dtype, np.unsignedinteger):
        raise ValueError(
            f"seed: expected a single jax PRNG key (or its uint32 key data), got dtype "
            f"{data.dtype} "
            f"with shape {data.shape}"
        )
    return tuple(int(w) for w in data)


class Batcher:
    """Training batches of a dataset, each a pure function of ``(seed, step)``.

    See the module docstring for the exact rule. ``batch_at(step)`` gathers
    ``dataset.get_batch(indices_at(step))``; ``iterate(start_step)`` yields them from a step on,
    which is how a resumed run continues exactly where it stopped.

    Args:
        dataset: any :class:`~kexue_jax.data.Dataset`.
        batch_size: the *global* batch size (over all processes).
        seed: non-negative int or jax PRNG key (see :func:`seed_words`); same seed, same batches.
        shuffle: ``False`` keeps the dataset's order in every epoch (the seed is then unused).
        process_index: this process's index in ``[0, process_count)`` (``jax.process_index()``).
        process_count: number of processes (``jax.process_count()``); must divide ``batch_size``.

    Raises:
        ValueError: naming ``batch_size`` when it is not a positive int, exceeds ``len(dataset)``
            or is not divisible by ``process_count``; naming ``process_index``/``process_count`` or
            ``seed`` when invalid.

    Example:
        >>> from kexue_jax.data import load
        >>> b = Batcher(load("digits"), 32, seed=0)
        >>> b.steps_per_epoch, b.batch_at(0)["image"].shape
        (45, (32, 8, 8, 1))
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        seed: Any,
        shuffle: bool = True,
        process_index: int = 0,
        process_count: int = 1,
    ):
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, (int, np.integer))
            or batch_size < 1
        ):
            raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
        if not isinstance(process_count, (int, np.integer)) or process_count < 1:
            raise ValueError(f"process_count: expected a positive int, got {process_count!r}")
        if (
            not isinstance(process_index, (int, np.integer))
            or not 0 <= process_index < process_count
        ):
            raise ValueError(
                f"process_index: expected an int in [0, {process_count}), got {process_index!r}"
            )
        if batch_size % process_count:
            raise ValueError(
                f"batch_size: the global batch size {batch_size} is not divisible by the "
                f"{process_count} processes"
            )
        n = len(dataset)
        if batch_size > n:
            raise ValueError(
                f"batch_size: {batch_size} is larger than the {n} examples of the dataset"
            )
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.seed = seed_words(seed)
        self.shuffle = bool(shuffle)
        self.process_index = int(process_index)
        self.process_count = int(process_count)
        self.steps_per_epoch = n // self.batch_size
        self._cached: tuple[int, np.ndarray] | None = None

    @property
    def local_batch_size(self) -> int:
        """Rows per step on this process: ``batch_size // process_count``."""
        return self.batch_size // self.process_count

    def epoch_of(self, step: int) -> int:
        """The epoch of ``step``: ``step // steps_per_epoch``."""
        return self._check_step(step) // self.steps_per_epoch

    def permutation(self, epoch: int) -> np.ndarray:
        """The order of the examples in ``epoch``: ``default_rng([*seed, epoch]).permutation(n)``.

        The identity when ``shuffle`` is False. The last epoch's order is cached (the function of
        ``epoch`` is unchanged).
        """
        cached = self._cached  # one read: safe if a prefetch thread calls concurrently
        if cached is not None and cached[0] == epoch:
            return cached[1]
        n = len(self.dataset)
        if self.shuffle:
            perm = np.random.default_rng([*self.seed, int(epoch)]).permutation(n)
        else:
            perm = np.arange(n)
        perm.setflags(write=False)
        self._cached = (int(epoch), perm)
        return perm

    def global_indices_at(self, step: int) -> np.ndarray:
        """Row indices of the whole (all-process) batch of ``step``: ``int64 [batch_size]``."""
        epoch, within = divmod(self._check_step(step), self.steps_per_epoch)
        start = within * self.batch_size
        return self.permutation(epoch)[start : start + self.batch_size]

    def indices_at(self, step: int) -> np.ndarray:
        """Row indices of this process's share of ``step``'s batch: ``int64 [local_batch_size]``.

        Process ``p`` takes rows ``[p * local, (p + 1) * local)`` of :meth:`global_indices_at`.
        """
        local = self.local_batch_size
        start = self.process_index * local
        return self.global_indices_at(step)[start : start + local]

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        """This process's share of ``step``'s batch: ``dataset.get_batch(indices_at(step))``."""
        return self.dataset.get_batch(self.indices_at(step))

    def iterate(self, start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Yield ``batch_at(step)`` for ``step = start_step, start_step + 1, ...`` (endless)."""
        step = self._check_step(start_step)
        while True:
            yield self.batch_at(step)
            step += 1

    def _check_step(self, step: int) -> int:
        if (
            isinstance(step, (bool, np.bool_))
            or not isinstance(step, (int, np.integer))
            or step < 0
        ):
            raise ValueError(f"step: expected a non-negative int, got {step!r}")
        return int(step)


def eval_batches(dataset: Dataset, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Every example of ``dataset`` exactly once, in order, for evaluation.

    Yields ``dataset.get_batch(arange(i, min(i + batch_size, n)))`` for ``i = 0, batch_size, ...``:
    all batches have ``batch_size`` rows except the last, which has ``n % batch_size`` rows when
    that is not zero (nothing is dropped or padded; weight per-batch means by the batch's size).

    Args:
        dataset: any :class:`~kexue_jax.data.Dataset`.
        batch_size: rows per batch, a positive int.

    Raises:
        ValueError: naming ``batch_size`` when it is not a positive int.
    """
    # Validated here, eagerly, rather than on the first next() of a generator.
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    return _in_order(dataset, int(batch_size))


def _in_order(dataset: Dataset, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    n = len(dataset)
    for start in range(0, n, batch_size):
        yield dataset.get_batch(np.arange(start, min(start + batch_size, n)))
