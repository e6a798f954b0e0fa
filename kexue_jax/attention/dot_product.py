r"""Softmax dot-product attention: a dispatcher to :func:`jax.nn.dot_product_attention` and a
naive float32 reference.

$\mathrm{out} = \mathrm{softmax}(s\,QK^\top + B + \log M)\,V$ with $s = 1/\sqrt{d}$ by default,
$B$ an additive bias and $M$ a boolean mask. Layout ``[batch, seq, heads, head_dim]``; grouped-query
attention (``k``/``v`` with fewer heads dividing ``q``'s) is supported everywhere.

Dispatch (``implementation=None``):

* ``"cudnn"`` through ``jax.nn.dot_product_attention`` on a GPU backend when the cuDNN fused
  kernel can take the call: bf16/f16 inputs, ``head_dim`` a multiple of 8 and at most 128, no
  explicit ``mask`` and no ``bias`` (both travel as dense tensors the kernel restricts), and a local
  window only on the left (cuDNN has no right window unless causal). If cuDNN still refuses at trace
  time we fall back to XLA.
* ``"xla"`` through ``jax.nn.dot_product_attention`` otherwise, when it accepts the inputs.
* ``"reference"`` (this module's naive path) when ``jax.nn`` cannot take the inputs: ``q``, ``k``,
  ``v`` of different dtypes, or a value head dimension different from the key's.

Both paths follow ``jax.nn``'s conventions: logits and softmax in float32, masked logits replaced
by a large finite negative (so a query whose keys are all masked averages all values), output in the
value dtype.

References:
    Vaswani et al. 2017, "Attention Is All You Need", arXiv:1706.03762.
    https://kexue.fm/archives/4765 (Su's reading of the Transformer).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from kexue_jax._src.checks import check_in
from kexue_jax._src.typing import Array, Bool, Float
from kexue_jax.attention._jit import jit_with_static
from kexue_jax.attention._validate import (
    check_broadcast_4d,
    check_logits_v,
    check_qkv,
    repeat_kv_heads,
)
from kexue_jax.attention.masks import causal_mask, combine_masks, local_window_mask

Implementation = Literal["xla", "cudnn", "reference"] | None
IMPLEMENTATIONS = (None, "xla", "cudnn", "reference")

# jax.nn uses this masking value (finite, so fully masked rows stay finite): match it exactly.
_MASK_VALUE = -0.7 * float(np.finfo(np.float32).max)


def _window(local_window, tq: int, tk: int) -> tuple[int, int] | None:
    """Normalise ``local_window`` to ``(left, right)`` ints (``None`` side = unbounded)."""
    if local_window is None:
        return None
    if isinstance(local_window, int):
        local_window = (local_window, local_window)
    if not (isinstance(local_window, tuple | list) and len(local_window) == 2):
        raise ValueError(
            f"local_window: expected an int or a (left, right) pair, got {local_window!r}"
        )
    out = []
    for side, value in zip(("left", "right"), local_window, strict=True):
        if value is None:
            value = max(tq, tk)
        if not (isinstance(value, int) and value >= 0):
            raise ValueError(
                f"local_window: {side} must be a non-negative int or None, got {value!r}"
            )
        out.append(value)
    return out[0], out[1]


def _structural_mask(tq: int, tk: int, is_causal: bool, window: tuple[int, int] | None):
    return combine_masks(
        causal_mask(tq, tk) if is_causal else None,
        local_window_mask(tq, tk, left=window[0], right=window[1]) if window is not None else None,
    )


@jit_with_static("scale")
def attention_logits(
    q: Float[Array, "b tq h d"], k: Float[Array, "b tk hk d"], *, scale: float | None = None
) -> Float[Array, "b h tq tk"]:
    r"""Scaled dot-product logits $s\,q_i^\top k_j$ in float32 (``k`` heads repeated for GQA).

    Args:
        q: ``[b, tq, h, d]`` queries.
        k: ``[b, tk, hk, d]`` keys, ``hk`` dividing ``h``.
        scale: logit scale $s$; default $1/\sqrt{d}$.

    Returns:
        ``[b, h, tq, tk]`` float32 logits.
    """
    dims = check_qkv(q, k, k)
    s = 1.0 / np.sqrt(dims["d"]) if scale is None else scale
    k = repeat_kv_heads(k, dims["h"])
    return jnp.einsum("bqhd,bkhd->bhqk", q.astype(jnp.float32), k.astype(jnp.float32)) * s


@jit_with_static("is_causal", "local_window")
def attention_from_logits(
    logits: Float[Array, "b h tq tk"],
    v: Float[Array, "b tk hk dv"],
    *,
    mask: Bool[Array, "b h tq tk"] | None = None,
    is_causal: bool = False,
    local_window: int | tuple[int | None, int | None] | None = None,
) -> Float[Array, "b tq h dv"]:
    r"""$\mathrm{softmax}(\text{logits} + \log M)\,V$ with the softmax in float32.

    For schemes that make their own logits (ReRoPE's two logit matrices, Synthesizer's
    synthetic logits, relative biases the fused kernel cannot take).

    Args:
        logits: ``[b or 1, h, tq, tk]`` attention logits (any float dtype).
        v: ``[b, tk, hk, dv]`` values, ``hk`` dividing ``h``.
        mask: optional boolean mask broadcastable to ``[b, h, tq, tk]`` (``True`` = attend).
        is_causal: also apply the causal mask.
        local_window: ``w`` or ``(left, right)``: also restrict to ``i - left <= j <= i + right``.

    Returns:
        ``[b, tq, h, dv]`` in ``v``'s dtype.

    Example:
        >>> v = jnp.arange(3.0).reshape(1, 3, 1, 1)
        >>> out = attention_from_logits(jnp.zeros((1, 1, 3, 3)), v, is_causal=True)
        >>> out[0, :, 0, 0].tolist()  # running means of 0, 1, 2
        [0.0, 0.5, 1.0]
    """
    dims = check_logits_v(logits, v)
    b, h, tq, tk = dims["b"], dims["h"], dims["tq"], dims["tk"]
    mask = check_broadcast_4d("mask", mask, b, h, tq, tk, boolean=True)
    mask = combine_masks(mask, _structural_mask(tq, tk, is_causal, _window(local_window, tq, tk)))
    logits = logits.astype(jnp.float32)
    if mask is not None:
        logits = jnp.where(mask, logits, _MASK_VALUE)
    probs = jax.nn.softmax(logits, axis=-1)
    out = jnp.einsum("bhqk,bkhe->bqhe", probs, repeat_kv_heads(v, h).astype(jnp.float32))
    return out.astype(v.dtype)


@jit_with_static("is_causal", "local_window", "scale")
def reference_attention(
    q: Float[Array, "b tq h d"],
    k: Float[Array, "b tk hk d"],
    v: Float[Array, "b tk hk dv"],
    *,
    bias: Float[Array, "b h tq tk"] | None = None,
    mask: Bool[Array, "b h tq tk"] | None = None,
    is_causal: bool = False,
    local_window: int | tuple[int | None, int | None] | None = None,
    scale: float | None = None,
) -> Float[Array, "b tq h dv"]:
    r"""Naive softmax attention, every step in float32: the oracle for the fused paths.

    $\mathrm{out} = \mathrm{softmax}(s\,QK^\top + B + \log M)\,V$.

    Args:
        q: ``[b, tq, h, d]`` queries.
        k: ``[b, tk, hk, d]`` keys (``hk`` divides ``h``: grouped-query attention).
        v: ``[b, tk, hk, dv]`` values (``dv`` may differ from ``d``).
        bias: optional additive bias broadcastable to ``[b, h, tq, tk]``.
        mask: optional boolean mask broadcastable to ``[b, h, tq, tk]`` (``True`` = attend).
        is_causal: apply the causal mask (query ``i`` sees keys ``j <= i``).
        local_window: ``w`` (= ``(w, w)``) or ``(left, right)``: query ``i`` sees
            ``i - left <= j <= i + right``; ``None`` on a side = unbounded.
        scale: logit scale $s$; default $1/\sqrt{d}$.

    Returns:
        ``[b, tq, h, dv]`` in ``v``'s dtype.

    References:
        Vaswani et al. 2017, arXiv:1706.03762.
    """
    dims = check_qkv(q, k, v)
    bias = check_broadcast_4d(
        "bias", bias, dims["b"], dims["h"], dims["tq"], dims["tk"], boolean=False
    )
    logits = attention_logits(q, k, scale=scale)
    if bias is not None:
        logits = logits + bias.astype(jnp.float32)
    return attention_from_logits(
        logits, v, mask=mask, is_causal=is_causal, local_window=local_window
    )


def _jax_nn_accepts(q, k, v) -> bool:
    return q.dtype == k.dtype == v.dtype and k.shape[-1] == v.shape[-1]


def _cudnn_eligible(q, bias, mask, is_causal: bool, window) -> bool:
    d = q.shape[-1]
    return (
        jax.default_backend() == "gpu"
        and q.dtype in (jnp.bfloat16, jnp.float16)
        and d % 8 == 0
        and d <= 128
        and bias is None
        and mask is None
        and (window is None or is_causal or window[1] == 0)
    )


def select_implementation(
    q: Array,
    k: Array,
    v: Array,
    *,
    bias: Array | None = None,
    mask: Array | None = None,
    is_causal: bool = False,
    local_window: int | tuple[int | None, int | None] | None = None,
    implementation: Implementation = None,
) -> str:
    """The path :func:`dot_product_attention` takes for these inputs: ``xla``, ``cudnn`` or ``reference``.

    Example:
        >>> x = jnp.zeros((1, 4, 2, 8))
        >>> select_implementation(x, x, x)  # float32 on CPU
        'xla'
        >>> select_implementation(x, x, jnp.zeros((1, 4, 2, 3)))  # dv != d: jax.nn cannot take it
        'reference'
    """
    check_in("implementation", implementation, IMPLEMENTATIONS)
    dims = check_qkv(q, k, v)
    window = _window(local_window, dims["tq"], dims["tk"])
    if implementation is not None:
        if implementation != "reference" and not _jax_nn_accepts(q, k, v):
            raise ValueError(
                f"implementation: {implementation!r} goes through jax.nn.dot_product_attention, which "
                f"needs equal q/k/v dtypes and v head_dim == k head_dim; got q {q.shape} {q.dtype}, "
                f"k {k.shape} {k.dtype}, v {v.shape} {v.dtype}: use implementation=None or 'reference'"
            )
        return implementation
    if not _jax_nn_accepts(q, k, v):
        return "reference"
    if _cudnn_eligible(q, bias, mask, is_causal, window):
        return "cudnn"
    return "xla"


@jit_with_static("is_causal", "local_window", "scale", "implementation")
def dot_product_attention(
    q: Float[Array, "b tq h d"],
    k: Float[Array, "b tk hk d"],
    v: Float[Array, "b tk hk dv"],
    *,
    bias: Float[Array, "b h tq tk"] | None = None,
    mask: Bool[Array, "b h tq tk"] | None = None,
    is_causal: bool = False,
    local_window: int | tuple[int | None, int | None] | None = None,
    scale: float | None = None,
    implementation: Implementation = None,
) -> Float[Array, "b tq h dv"]:
    r"""Softmax attention, dispatched to the fastest path that can take the inputs.

    $\mathrm{out} = \mathrm{softmax}(s\,QK^\top + B + \log M)\,V$; see the module docstring for
    the dispatch rules (:func:`select_implementation` tells which path a call takes).

    Args:
        q: ``[b, tq, h, d]`` queries.
        k: ``[b, tk, hk, d]`` keys (``hk`` divides ``h``: grouped-query attention).
        v: ``[b, tk, hk, dv]`` values.
        bias: optional additive bias broadcastable to ``[b, h, tq, tk]`` (rank 2 to 4).
        mask: optional boolean mask broadcastable to ``[b, h, tq, tk]`` (``True`` = attend).
        is_causal: apply the causal mask (query ``i`` sees keys ``j <= i``).
        local_window: ``w`` (= ``(w, w)``) or ``(left, right)``: query ``i`` sees
            ``i - left <= j <= i + right``; ``None`` on a side = unbounded.
        scale: logit scale $s$; default $1/\sqrt{d}$.
        implementation: ``None`` (dispatch), ``"xla"``, ``"cudnn"`` (both via ``jax.nn``; errors
            are not caught) or ``"reference"``.

    Returns:
        ``[b, tq, h, dv]`` in ``v``'s dtype.

    References:
        Vaswani et al. 2017, arXiv:1706.03762; ``jax.nn.dot_product_attention``.

    Example:
        >>> q = k = v = jnp.ones((1, 3, 2, 4))
        >>> dot_product_attention(q, k, v, is_causal=True).shape
        (1, 3, 2, 4)
    """
    dims = check_qkv(q, k, v)
    b, h, tq, tk = dims["b"], dims["h"], dims["tq"], dims["tk"]
    bias = check_broadcast_4d("bias", bias, b, h, tq, tk, boolean=False)
    mask = check_broadcast_4d("mask", mask, b, h, tq, tk, boolean=True)
    window = _window(local_window, tq, tk)
    path = select_implementation(
        q,
        k,
        v,
        bias=bias,
        mask=mask,
        is_causal=is_causal,
        local_window=window,
        implementation=implementation,
    )
    if path == "reference":
        return reference_attention(
            q, k, v, bias=bias, mask=mask, is_causal=is_causal, local_window=window, scale=scale
        )

    def call(impl: str) -> Array:
        return jax.nn.dot_product_attention(
            q,
            k,
            v,
            bias=bias,
            mask=mask,
            scale=scale,
            is_causal=is_causal,
            local_window_size=window,
            implementation=impl,
        )

    if path == "cudnn" and implementation is None:
        try:
            return call("cudnn")
        except (ValueError, NotImplementedError, RuntimeError, TypeError):
            # cuDNN refused (library version, GPU generation, shape): XLA computes the same thing.
            return call("xla")
    return call(path)
