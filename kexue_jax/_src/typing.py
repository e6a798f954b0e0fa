"""jaxtyping aliases used across kexue_jax.

Shapes are annotated in the strings (``Float[Array, "b h w c"]``); under pytest the annotations are
checked by ``jaxtyping``'s import hook (see ``tests/conftest.py``), at no cost in library use.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import jax
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray, PyTree, Shaped, UInt8

PRNGKey: TypeAlias = PRNGKeyArray
Params: TypeAlias = PyTree[Any]
Batch: TypeAlias = dict[str, Any]
Scalar: TypeAlias = Float[Array, ""]
HostArray: TypeAlias = np.ndarray
Device: TypeAlias = jax.Device

__all__ = [
    "Array",
    "ArrayLike",
    "Batch",
    "Bool",
    "Device",
    "Float",
    "HostArray",
    "Int",
    "PRNGKey",
    "Params",
    "PyTree",
    "Scalar",
    "Shaped",
    "UInt8",
]
