"""Batcher: batches as a pure function of (seed, step); epochs, resume, process shares, errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue_jax.data import ArrayDataset, Batcher, eval_batches, load, seed_words

PROPERTY = settings(deadline=None, max_examples=25)


def _rows(n: int) -> ArrayDataset:
    """A dataset whose feature ``i`` is the row index, so batches show which rows they hold."""
    return ArrayDataset(
        {"i": np.arange(n, dtype=np.int64), "x": np.arange(2 * n, dtype=np.float32).reshape(n, 2)}
    )


@PROPERTY
@given(
    n=st.integers(1, 80),
    data=st.data(),
    seed=st.integers(0, 2**63),
    epoch=st.integers(0, 3),
)
def test_each_epoch_visits_every_index_once_minus_the_remainder(n, data, seed, epoch):
    batch_size = data.draw(st.integers(1, n), label="batch_size")
    b = Batcher(_rows(n), batch_size, seed=seed)
    assert b.steps_per_epoch == n // batch_size
    steps = range(epoch * b.steps_per_epoch, (epoch + 1) * b.steps_per_epoch)
    seen = np.concatenate([b.batch_at(s)["i"] for s in steps])
    assert len(seen) == b.steps_per_epoch * batch_size
    assert len(np.unique(seen)) == len(seen) and seen.min() >= 0 and seen.max() < n
    assert all(b.epoch_of(s) == epoch for s in steps)
    # the order is the documented permutation, the dropped rows are its tail
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    np.testing.assert_array_equal(seen, perm[: len(seen)])


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), steps=st.lists(st.integers(0, 500), min_size=1, max_size=6))
def test_batch_at_is_a_pure_function_of_seed_and_step(seed, steps):
    ds = _rows(37)
    first = Batcher(ds, 8, seed=seed)
    for s in steps:
        first.batch_at(s)  # touch other epochs, so any hidden state would show below
    again = Batcher(ds, 8, seed=seed)  # "after a restart"
    for s in reversed(steps):
        a, b = first.batch_at(s), again.batch_at(s)
        np.testing.assert_array_equal(a["i"], b["i"])
        np.testing.assert_array_equal(a["x"], b["x"])


def test_iterate_resumes_exactly():
    ds = _rows(50)
    uninterrupted = Batcher(ds, 7, seed=3).iterate()
    straight = [next(uninterrupted)["i"] for _ in range(20)]
    resumed_iter = Batcher(ds, 7, seed=3).iterate(start_step=12)
    resumed = [next(resumed_iter)["i"] for _ in range(8)]
    for a, b in zip(straight[12:], resumed, strict=True):
        np.testing.assert_array_equal(a, b)


def test_different_seeds_and_epochs_give_different_orders():
    ds = _rows(100)
    a, b = Batcher(ds, 10, seed=0), Batcher(ds, 10, seed=1)
    assert not np.array_equal(a.global_indices_at(0), b.global_indices_at(0))
    # step 10 is the first step of epoch 1: a fresh permutation
    assert not np.array_equal(a.permutation(0), a.permutation(1))
    assert a.epoch_of(9) == 0 and a.epoch_of(10) == 1


def test_shuffle_false_keeps_the_dataset_order():
    b = Batcher(_rows(10), 3, seed=0, shuffle=False)
    np.testing.assert_array_equal(
        np.concatenate([b.indices_at(s) for s in range(4)]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2]
    )


@PROPERTY
@given(
    process_count=st.sampled_from([1, 2, 3, 4]),
    per_process=st.integers(1, 5),
    seed=st.integers(0, 1000),
    step=st.integers(0, 50),
)
def test_process_shares_concatenate_to_the_global_batch(process_count, per_process, seed, step):
    ds = _rows(41)
    batch_size = process_count * per_process
    shares = [
        Batcher(ds, batch_size, seed=seed, process_index=p, process_count=process_count)
        for p in range(process_count)
    ]
    whole = Batcher(ds, batch_size, seed=seed)
    assert all(s.local_batch_size == per_process for s in shares)
    np.testing.assert_array_equal(
        np.concatenate([s.batch_at(step)["i"] for s in shares]), whole.batch_at(step)["i"]
    )
    np.testing.assert_array_equal(shares[-1].global_indices_at(step), whole.indices_at(step))


def test_seed_may_be_a_jax_key():
    key = jax.random.key(42)
    assert seed_words(key) == tuple(int(w) for w in jax.random.key_data(key))
    assert seed_words(jax.random.key_data(key)) == seed_words(key)
    ds = _rows(30)
    a = Batcher(ds, 5, seed=key).indices_at(7)
    b = Batcher(ds, 5, seed=jax.random.key_data(key)).indices_at(7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, Batcher(ds, 5, seed=jax.random.key(43)).indices_at(7))


def test_batcher_over_an_embedded_dataset():
    b = Batcher(load("digits"), 32, seed=0)
    batch = b.batch_at(100)
    assert batch["image"].shape == (32, 8, 8, 1) and batch["label"].shape == (32,)
    assert b.steps_per_epoch == 1442 // 32


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(batch_size=0), "batch_size: expected a positive int"),
        (dict(batch_size=-4), "batch_size: expected a positive int"),
        (dict(batch_size=2.0), "batch_size: expected a positive int"),
        (dict(batch_size=True), "batch_size: expected a positive int"),
        (dict(batch_size=11), "batch_size: 11 is larger than the 10 examples"),
        (
            dict(batch_size=6, process_count=4),
            "batch_size: the global batch size 6 is not divisible by the 4",
        ),
        (
            dict(batch_size=4, process_count=2, process_index=2),
            r"process_index: expected an int in \[0, 2\)",
        ),
        (dict(batch_size=4, process_count=0), "process_count: expected a positive int"),
        (dict(batch_size=4, seed=-1), "seed: expected a non-negative int"),
        (dict(batch_size=4, seed="0"), "seed: expected a non-negative int or a jax PRNG key"),
        (
            dict(batch_size=4, seed=np.zeros((2, 2), np.uint32)),
            "seed: expected a single jax PRNG key",
        ),
    ],
)
def test_bad_batcher_arguments_raise_naming_them(kwargs, match):
    kwargs = {"seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        Batcher(_rows(10), kwargs.pop("batch_size"), **kwargs)


def test_bad_steps_raise():
    b = Batcher(_rows(10), 2, seed=0)
    for step in (-1, 1.5, True):
        with pytest.raises(ValueError, match="step: expected a non-negative int"):
            b.batch_at(step)  # type: ignore[arg-type]


@pytest.mark.parametrize("n, batch_size", [(10, 3), (9, 3), (2, 5), (1, 1)])
def test_eval_batches_cover_everything_in_order_with_a_final_partial_batch(n, batch_size):
    batches = list(eval_batches(_rows(n), batch_size))
    sizes = [len(b["i"]) for b in batches]
    assert sizes == [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
    np.testing.assert_array_equal(np.concatenate([b["i"] for b in batches]), np.arange(n))


def test_eval_batches_validates_eagerly():
    with pytest.raises(ValueError, match="batch_size: expected a positive int"):
        eval_batches(_rows(3), 0)
