"""PRNG key handling.

House rules: keys are made with :func:`jax.random.key` (typed keys), split once at the top of a
script, and inside a jitted step derived with ``fold_in(key, step)`` so that a resumed run replays
exactly the randomness of an uninterrupted one. Checkpoints store raw key data (``uint32``), which
:func:`key_data` / :func:`wrap_key` convert.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kexue_jax._src.typing import Array, PRNGKey


def make_key(seed: int) -> PRNGKey:
    """A typed PRNG key from an integer seed."""
    return jax.random.key(seed)


def as_key(key: PRNGKey | Array | int) -> PRNGKey:
    """Accept a typed key, raw ``uint32`` key data or an int seed; return a typed key."""
    if isinstance(key, int):
        return jax.random.key(key)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key)


def key_data(key: PRNGKey) -> Array:
    """Raw ``uint32`` data of a typed key (what checkpoints store)."""
    return jax.random.key_data(key)


def wrap_key(data: Array) -> PRNGKey:
    """Inverse of :func:`key_data`."""
    return jax.random.wrap_key_data(data)


def step_key(key: PRNGKey, step: int | Array) -> PRNGKey:
    """The key of training step ``step``: ``fold_in(key, step)``; identical on resume."""
    return jax.random.fold_in(key, step)


def split_named(key: PRNGKey, *names: str) -> dict[str, PRNGKey]:
    """Split ``key`` into one independent key per name (stable: depends only on the names' order)."""
    keys = jax.random.split(key, len(names))
    return dict(zip(names, keys, strict=True))
