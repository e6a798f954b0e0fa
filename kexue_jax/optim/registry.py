"""Build an optax optimizer (with schedule and clipping) from plain keyword arguments.

Experiment configs name an optimizer and its hyperparameters with the papers' names (``b1``,
``b2``, ``weight_decay``); this module maps them to optax. Lion is ``optax.lion`` (Chen et al.,
2023, "Symbolic Discovery of Optimization Algorithms"; kexue.fm/archives/9473) and AdamW is
``optax.adamw`` (Loshchilov & Hutter, 2019).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optax

from kexue_jax._src.checks import check_in

OptimizerFactory = Callable[..., optax.GradientTransformation]

OPTIMIZERS: dict[str, OptimizerFactory] = {
    "adam": lambda learning_rate, b1=0.9, b2=0.999, eps=1e-8: optax.adam(learning_rate, b1=b1, b2=b2, eps=eps),
    "adamw": lambda learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4: optax.adamw(
        learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay
    ),
    "lion": lambda learning_rate, b1=0.9, b2=0.99, weight_decay=1e-3: optax.lion(
        learning_rate, b1=b1, b2=b2, weight_decay=weight_decay
    ),
    "sgd": lambda learning_rate, momentum=0.9, nesterov=False: optax.sgd(
        learning_rate, momentum=momentum, nesterov=nesterov
    ),
}


def register_optimizer(name: str, factory: OptimizerFactory) -> None:
    """Add an optimizer factory ``factory(learning_rate, **hyperparameters)`` to the registry."""
    if name in OPTIMIZERS:
        raise ValueError(f"name: optimizer {name!r} is already registered")
    OPTIMIZERS[name] = factory


def make_schedule(
    *,
    learning_rate: float,
    schedule: str = "constant",
    warmup_steps: int = 0,
    total_steps: int | None = None,
    end_factor: float = 0.0,
) -> optax.Schedule:
    """Linear warm-up from 0 to ``learning_rate`` then ``constant`` or ``cosine`` decay.

    ``cosine`` decays to ``end_factor * learning_rate`` at ``total_steps``.
    """
    check_in("schedule", schedule, ("constant", "cosine"))
    if schedule == "constant":
        main = optax.constant_schedule(learning_rate)
    else:
        if total_steps is None or total_steps <= warmup_steps:
            raise ValueError(
                f"total_steps: cosine schedule needs total_steps > warmup_steps ({warmup_steps}), got {total_steps}"
            )
        main = optax.cosine_decay_schedule(learning_rate, total_steps - warmup_steps, alpha=end_factor)
    if warmup_steps <= 0:
        return main
    warmup = optax.linear_schedule(0.0, learning_rate, warmup_steps)
    return optax.join_schedules([warmup, main], [warmup_steps])


def make_optimizer(
    name: str,
    *,
    learning_rate: float,
    schedule: str = "constant",
    warmup_steps: int = 0,
    total_steps: int | None = None,
    end_factor: float = 0.0,
    grad_clip_norm: float | None = None,
    **hyperparameters: Any,
) -> optax.GradientTransformation:
    """An optax optimizer from the registry, with schedule and optional global-norm clipping."""
    check_in("name", name, sorted(OPTIMIZERS))
    lr = make_schedule(
        learning_rate=learning_rate,
        schedule=schedule,
        warmup_steps=warmup_steps,
        total_steps=total_steps,
        end_factor=end_factor,
    )
    try:
        opt = OPTIMIZERS[name](lr, **hyperparameters)
    except TypeError as e:
        raise ValueError(f"hyperparameters: {name} does not take {sorted(hyperparameters)} ({e})") from None
    if grad_clip_norm:
        opt = optax.chain(optax.clip_by_global_norm(grad_clip_norm), opt)
    return opt
