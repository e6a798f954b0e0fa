"""Shape and dtype validation shared by the attention functions (trace-time, raises ``ValueError``)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from kexue_jax._src.checks import check_dims, check_floating, check_rank, check_shape


def check_qkv(
    q: Any, k: Any, v: Any, names: tuple[str, str, str] = ("q", "k", "v")
) -> dict[str, int]:
    """Validate ``q [b, tq, h, d]``, ``k [b, tk, hk, d]``, ``v [b, tk, hk, dv]`` with ``hk | h``.

    ``names`` are the argument names used in error messages. Returns the sizes
    ``b, tq, tk, h, hk, d, dv``.
    """
    nq, nk, nv = names
    for name, x in ((nq, q), (nk, k), (nv, v)):
        check_floating(name, x)
    bq = check_shape(nq, q, ["b", "tq", "h", "d"])
    bk = check_shape(nk, k, ["b", "tk", "hk", "d"])
    bv = check_shape(nv, v, ["b", "tk", "hk", "dv"])
    dims = check_dims([(nq, bq), (nk, bk), (nv, bv)])
    if dims["h"] % dims["hk"]:
        raise ValueError(
            f"{nk}: the number of key/value heads ({dims['hk']}) must divide the number of query "
            f"heads ({dims['h']}); got {nq} {tuple(np.shape(q))}, {nk} {tuple(np.shape(k))}"
        )
    return dims


def check_logits_v(logits: Any, v: Any) -> dict[str, int]:
    """Validate ``logits [b or 1, h, tq, tk]`` against ``v [b, tk, hk, dv]`` with ``hk | h``."""
    check_floating("logits", logits)
    check_floating("v", v)
    bl = check_shape("logits", logits, [None, "h", "tq", "tk"])
    bv = check_shape("v", v, ["b", "tk", "hk", "dv"])
    dims = check_dims([("logits", bl), ("v", bv)])
    if np.shape(logits)[0] not in (1, dims["b"]):
        raise ValueError(
            f"logits: batch size {np.shape(logits)[0]} must be 1 or v's batch size {dims['b']}; "
            f"got logits {tuple(np.shape(logits))}, v {tuple(np.shape(v))}"
        )
    if dims["h"] % dims["hk"]:
        raise ValueError(
            f"v: the number of value heads ({dims['hk']}) must divide the number of logit heads "
            f"({dims['h']}); got logits {tuple(np.shape(logits))}, v {tuple(np.shape(v))}"
        )
    return dims


def check_broadcast_4d(
    name: str, x: Any, b: int, h: int, tq: int, tk: int, *, boolean: bool
) -> Any:
    """Validate a mask (``boolean``) or bias broadcastable to ``[b, h, tq, tk]``; return it as rank 4.

    Accepts ranks 2 to 4 (``[tq, tk]``, ``[h, tq, tk]``, ``[b, h, tq, tk]``) whose dims are 1 or the
    full size.
    """
    if x is None:
        return None
    check_rank(name, x, (2, 3, 4))
    if boolean:
        if jnp.result_type(x) != jnp.bool_:
            raise ValueError(
                f"{name}: expected a boolean mask (True = attend), got {jnp.result_type(x)} "
                f"with shape {tuple(np.shape(x))}"
            )
    else:
        check_floating(name, x)
    x = jnp.asarray(x)
    x = x.reshape((1,) * (4 - x.ndim) + x.shape)
    for got, want in zip(x.shape, (b, h, tq, tk), strict=True):
        if got not in (1, want):
            raise ValueError(
                f"{name}: expected a shape broadcastable to (b={b}, h={h}, tq={tq}, tk={tk}), "
                f"got {tuple(x.shape)}"
            )
    return x


def repeat_kv_heads(x: Any, h: int) -> Any:
    """Repeat the head axis (2) of ``x [b, t, hk, d]`` to ``h`` heads (grouped-query attention)."""
    hk = x.shape[2]
    return x if hk == h else jnp.repeat(x, h // hk, axis=2)
