r"""The length-extrapolation protocol of Su's "Transformer升级之路" series, as pure functions.

A model trained at length $L$ is evaluated at $T \in \{L, 2L, 4L, 8L\}$ under inference-time
position schemes, by next-token accuracy on two kinds of windows (kexue.fm 9603, 9675):

* **non-repeated**: $T + 1$ consecutive tokens of held-out text;
* **repeated**: a held-out snippet of $\lceil (T+1)/2\rceil$ tokens followed by itself, so that the
  second half can be copied from up to $T/2$ tokens back — a test of whether attention still
  *reaches* that far.

:func:`extrapolation_scheme` maps Su's names to :class:`~kexue_jax.attention.PositionScheme`\ s
with the scale $k = \max(1, T/L)$ of the evaluation length:

===================  =====================================================================
``baseline``         RoPE as trained
``pi``               position interpolation, positions divided by $k$ (Chen et al. 2023)
``ntk``              NTK-aware RoPE, base $\cdot k^{d/(d-2)}$ (9675)
``ntk-fixed``        NTK-RoPE-fixed (9706)
``ntk-mixed``        NTK-RoPE-mixed, $b = 0.625$ (9706)
``dynamic-ntk``      NTK with the factor of the current length
``local``            causal window of $L$ tokens (9431's "super strong baseline")
``rerope``           ReRoPE, window $w$ (default $L/4$; 9708)
``leaky-rerope``     Leaky ReRoPE, window $w$, $k_{\rm leaky} = 16$ (9708)
===================  =====================================================================

Each name takes a ``-logn`` suffix: queries scaled by $\log_L(m+1)$. On a model trained with that
scaling (``logn=True, logn_clip=False`` in its training scheme) the factor stays unclipped, Su's
"logn"; on any other model it is clipped to $\max(1, \log_L(m+1))$, Su's "logn†".

References:
    https://kexue.fm/archives/9431, https://kexue.fm/archives/9603, https://kexue.fm/archives/9675,
    https://kexue.fm/archives/9706, https://kexue.fm/archives/9708.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from kexue_jax._src.checks import check_positive
from kexue_jax._src.typing import Array, Float, Int
from kexue_jax.attention.positional import PositionScheme

_BASE = {
    "baseline": dict(rope="rope"),
    "pi": dict(rope="linear", scaled=True),
    "ntk": dict(rope="ntk_aware", scaled=True),
    "ntk-old": dict(rope="ntk_old", scaled=True),
    "ntk-fixed": dict(rope="ntk_fixed", scaled=True),
    "ntk-mixed": dict(rope="ntk_mixed", scaled=True),
    "dynamic-ntk": dict(rope="dynamic_ntk"),
    "local": dict(rope="rope", local=True),
    "rerope": dict(rope="rope", rerope=True),
    "leaky-rerope": dict(rope="rope", rerope=True, leaky=True),
}
SCHEME_NAMES = tuple(n + s for n in _BASE for s in ("", "-logn"))


def extrapolation_scheme(
    name: str,
    *,
    eval_length: int,
    training_length: int,
    rerope_window: int | None = None,
    leaky_scale: float = 16.0,
    base: PositionScheme | None = None,
) -> PositionScheme:
    """The :class:`PositionScheme` of Su's variant ``name`` at evaluation length ``eval_length``.

    Args:
        name: one of :data:`SCHEME_NAMES` (e.g. ``"ntk-mixed-logn"``).
        eval_length: $T$; the scale is $k = \\max(1, T/L)$.
        training_length: $L$.
        rerope_window: ReRoPE's $w$ (default $L/4$, Su's best range is $L/4$ to $L/2$).
        leaky_scale: Leaky ReRoPE's $k$ (16, bojone/rerope's default).
        base: the training scheme: ``theta``, ``bias``, ``t5_buckets`` are kept; ``rope``,
            windows and ``logn`` replaced; ``logn_clip`` is ``False`` only if the model was trained
            with unclipped log n.

    Returns:
        The scheme (``training_length`` set, so log-n and dynamic NTK use $L$).

    Raises:
        ValueError: unknown ``name`` or non-positive lengths.
    """
    if name not in SCHEME_NAMES:
        raise ValueError(f"name: expected one of {list(SCHEME_NAMES)}, got {name!r}")
    check_positive("eval_length", eval_length)
    check_positive("training_length", training_length)
    logn = name.endswith("-logn")
    spec = _BASE[name.removesuffix("-logn")]
    window = rerope_window if rerope_window is not None else max(1, training_length // 4)
    scale = max(1.0, eval_length / training_length) if spec.get("scaled") else 1.0
    base = base or PositionScheme(training_length=training_length)
    return dataclasses.replace(
        base,
        rope=spec["rope"],
        rope_scale=scale,
        training_length=training_length,
        logn=logn,
        logn_clip=not (logn and base.logn and not base.logn_clip),
        local_window=training_length if spec.get("local") else None,
        rerope_window=window if spec.get("rerope") else None,
        leaky_scale=leaky_scale if spec.get("leaky") else None,
    )


def extrapolation_windows(
    stream: np.ndarray, *, length: int, num: int, repeated: bool
) -> np.ndarray:
    """``num`` evaluation windows of ``length + 1`` tokens (inputs plus the shifted targets).

    Windows start at evenly spaced offsets of ``stream`` (deterministic: the same windows for every
    scheme and model). ``repeated=True`` takes a snippet of $\\lceil(T+1)/2\\rceil$ tokens and
    repeats it.

    Args:
        stream: 1-D token array (e.g. :func:`kexue_jax.data.pysrc.load_bytes` of the held-out split).
        length: $T$, the number of input tokens.
        num: number of windows.
        repeated: repeated or natural text.

    Returns:
        ``[num, length + 1]`` array of ``stream``'s dtype.

    Raises:
        ValueError: ``stream`` not 1-D or too short for ``num`` windows.
    """
    stream = np.asarray(stream)
    if stream.ndim != 1:
        raise ValueError(f"stream: expected a 1-D token array, got shape {stream.shape}")
    check_positive("length", length)
    check_positive("num", num)
    span = math.ceil((length + 1) / 2) if repeated else length + 1
    if len(stream) < span * num:
        raise ValueError(
            f"stream: {len(stream)} tokens cannot give {num} disjoint windows of {span}"
        )
    starts = np.linspace(0, len(stream) - span, num).astype(np.int64)
    windows = np.stack([stream[s : s + span] for s in starts])
    if repeated:
        windows = np.concatenate([windows, windows], axis=1)[:, : length + 1]
    return windows


def next_token_accuracy(
    logits: Float[Array, "b t v"], targets: Int[Array, "b t"]
) -> Float[Array, ""]:
    """Mean over all positions of $[\\arg\\max_v \\text{logits}_{t,v} = \\text{target}_t]$ (float32)."""
    if logits.ndim != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(
            f"logits, targets: expected [b, t, v] and [b, t], got {logits.shape} and {targets.shape}"
        )
    return jnp.mean((jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32))


def extrapolation_table(
    logits_fn: Callable[[Array, Any], Array],
    stream: np.ndarray,
    *,
    schemes: Mapping[str, Callable[[int], Any]],
    lengths: Sequence[int],
    num_windows: int,
    batch_size: int,
) -> dict[str, dict[str, dict[str, float]]]:
    """Next-token accuracy of a model under each scheme, length and window kind.

    Args:
        logits_fn: ``logits_fn(tokens [b, T] int32, scheme) -> [b, T, vocab]`` (e.g. the LM task's
            ``extras["logits"]`` with the parameters bound).
        stream: held-out 1-D token stream.
        schemes: ``{row name: scheme_at(T)}``, a function of the evaluation length returning what
            ``logits_fn`` takes as ``scheme`` (a :class:`PositionScheme` or one per layer).
        lengths: evaluation lengths $T$.
        num_windows: windows per length and kind (the same windows for every row).
        batch_size: windows per call.

    Returns:
        ``{row: {str(T): {"repeated": acc, "non_repeated": acc}}}`` with accuracies in ``[0, 1]``.
    """
    check_positive("batch_size", batch_size)
    table: dict[str, dict[str, dict[str, float]]] = {name: {} for name in schemes}
    for length in lengths:
        for kind in ("repeated", "non_repeated"):
            windows = extrapolation_windows(
                stream, length=length, num=num_windows, repeated=kind == "repeated"
            ).astype(np.int32)
            for name, scheme_at in schemes.items():
                scheme = scheme_at(length)
                correct = 0.0
                for i in range(0, num_windows, batch_size):
                    chunk = jnp.asarray(windows[i : i + batch_size])
                    logits = logits_fn(chunk[:, :-1], scheme)
                    correct += float(next_token_accuracy(logits, chunk[:, 1:])) * len(chunk)
                table[name].setdefault(str(length), {})[kind] = correct / num_windows
    return table


__all__ = [
    "SCHEME_NAMES",
    "extrapolation_scheme",
    "extrapolation_table",
    "extrapolation_windows",
    "next_token_accuracy",
]
