"""The bijector interface shared by every flow layer, and their composition.

A :class:`Bijector` is a triple of pure functions ``init``, ``forward`` and ``inverse`` over a
batch ``x`` whose last axis is the channel axis (images NHWC ``[b, h, w, c]``, vectors ``[b, d]``).
For $y = f(x)$ the change of variables gives

$$\\log p_X(x) = \\log p_Y(f(x)) + \\log\\left|\\det \\frac{\\partial f}{\\partial x}\\right|,$$

so ``forward`` returns $(y, \\log|\\det J_f(x)|)$ and ``inverse`` returns
$(x, \\log|\\det J_{f^{-1}}(y)|) = (x, -\\log|\\det J_f(x)|)$, both per example in float32.

References:
    Su Jianlin, "细水长flow之NICE：流模型的基本概念与实现", https://kexue.fm/archives/5776;
    Su Jianlin, "细水长flow之RealNVP与Glow：流模型的传承与升华", https://kexue.fm/archives/5807;
    L. Dinh, D. Krueger, Y. Bengio, "NICE: Non-linear Independent Components Estimation",
    ICLR 2015 workshop (eq. 1, the change of variables).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from kexue_jax._src.typing import Array, Float, PRNGKey

Params = Any

FIXED_KEYS: frozenset[str] = frozenset({"p_order", "sign", "order"})
"""Dict keys of the params leaves that are fixed buffers, not parameters.

A layer stores values that it decodes but never learns (the 1×1 convolution's permutation
``p_order`` and ``sign``, the shuffle's ``order``) in its params under one of these keys, and reads
them through ``stop_gradient``. The NNX shell (:class:`~kexue_jax.flows.Flow`) keeps such leaves out
of the trainable parameters, so that no optimizer (decoupled weight decay, in particular) and no EMA
ever touches them; ``tests/suites/test_bijectors.py`` checks, for every registered layer, that
the leaves under these keys are exactly the ones that get no gradient.
"""


def is_fixed(path: tuple[Any, ...]) -> bool:
    """Whether the leaf at ``path`` (a ``jax.tree_util`` key path into params) is a fixed buffer."""
    return bool(path) and isinstance(path[-1], jax.tree_util.DictKey) and path[-1].key in FIXED_KEYS


ForwardFn = Callable[[Params, Array], tuple[Array, Float[Array, " b"]]]


class Bijector(NamedTuple):
    """An invertible layer as three pure functions.

    Attributes:
        init: ``init(key, example_x) -> params``; ``params`` is a pytree of float32 arrays. It may
            use ``example_x`` (data-dependent init, e.g. actnorm).
        forward: ``forward(params, x) -> (y, log_det)``, ``log_det`` float32 of shape ``[b]``.
        inverse: ``inverse(params, y) -> (x, log_det)`` with ``log_det`` $= -$ the forward one at
            the matching point.
        name: a short name, for messages.
        event_ndims: 1 for layers on vectors ``[b, d]``, 3 for images ``[b, h, w, c]``, ``None``
            when any rank with a trailing channel axis works.
        domain: ``"real"`` or ``"unit_interval"`` (inputs in $(0, 1)$, e.g. :func:`logit`).
    """

    init: Callable[..., Params]
    forward: ForwardFn
    inverse: ForwardFn
    name: str = "bijector"
    event_ndims: int | None = None
    domain: str = "real"


def chain(*bijectors: Bijector) -> Bijector:
    """Compose bijectors: ``chain(f1, f2, f3)`` is $f_3 \\circ f_2 \\circ f_1$ (``f1`` first).

    The log-determinants add, $\\log|\\det J_{f_3 f_2 f_1}| = \\sum_i \\log|\\det J_{f_i}|$, and
    ``params`` is the tuple of the members' params. ``init`` propagates ``example_x`` through each
    member so that data-dependent inits (actnorm) see the data they will be applied to.

    Raises:
        ValueError: when no bijector is given.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from kexue_jax.flows import actnorm, chain, conv1x1_lu, squeeze
        >>> flow = chain(squeeze(), actnorm(), conv1x1_lu())
        >>> x = jax.random.normal(jax.random.key(0), (2, 4, 4, 1))
        >>> params = flow.init(jax.random.key(1), x)
        >>> y, log_det = flow.forward(params, x)
        >>> y.shape, log_det.shape, log_det.dtype
        ((2, 2, 2, 4), (2,), dtype('float32'))
        >>> bool(jnp.allclose(flow.inverse(params, y)[0], x, atol=1e-5))
        True
    """
    if not bijectors:
        raise ValueError("bijectors: expected at least one bijector, got none")
    members = tuple(bijectors)

    def init(key: PRNGKey, example_x: Array) -> tuple[Params, ...]:
        keys = jax.random.split(key, len(members))
        params = []
        x = example_x
        for k, b in zip(keys, members, strict=True):
            p = b.init(k, x)
            x, _ = b.forward(p, x)
            params.append(p)
        return tuple(params)

    def _check(params: Any) -> None:
        if not isinstance(params, tuple) or len(params) != len(members):
            raise ValueError(
                f"params: expected a tuple of {len(members)} member params, got "
                f"{type(params).__name__}"
                f" of length {len(params) if isinstance(params, tuple) else 'n/a'}"
            )

    def forward(params: tuple[Params, ...], x: Array) -> tuple[Array, Array]:
        _check(params)
        total = None
        for p, b in zip(params, members, strict=True):
            x, ld = b.forward(p, x)
            total = ld if total is None else total + ld
        return x, total

    def inverse(params: tuple[Params, ...], y: Array) -> tuple[Array, Array]:
        _check(params)
        total = None
        for p, b in zip(reversed(params), reversed(members), strict=True):
            y, ld = b.inverse(p, y)
            total = ld if total is None else total + ld
        return y, total

    ranks = {b.event_ndims for b in members} - {None}
    return Bijector(
        init=init,
        forward=forward,
        inverse=inverse,
        name="chain(" + ", ".join(b.name for b in members) + ")",
        event_ndims=ranks.pop() if len(ranks) == 1 else None,
        domain=members[0].domain,
    )


__all__ = ["Bijector", "chain", "FIXED_KEYS", "is_fixed"]
