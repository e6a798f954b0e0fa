"""The jitted, sharded train step built from a task's loss.

One compiled function per run: the state is replicated over the mesh, the batch split along the
``data`` axis, and the state's buffers are donated so that an update happens in place. The step's
randomness is ``fold_in(key, step)``, so a resumed run replays the uninterrupted one exactly.

A non-finite loss or gradient does not reach the parameters: the update is skipped (a select, not a
host round trip) and the first offending step is recorded in ``state.nonfinite_step``; the loop reads
it when it logs and stops there, before any checkpoint of a bad state could be written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from kexue_jax._src.random import step_key, wrap_key
from kexue_jax.train.mesh import data_sharded, replicated
from kexue_jax.train.state import TrainState, eval_params
from kexue_jax.train.task import Task

StepFn = Callable[[TrainState, dict[str, jax.Array]], tuple[TrainState, dict[str, jax.Array]]]


def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def ema_decay_at(step: jax.Array, decay: float) -> jax.Array:
    r"""The EMA decay of update ``step`` (0-based): $\min(d, (1 + n) / (10 + n))$.

    A constant $d$ from step 0 leaves weight $d^n$ on the initial parameters after $n$ updates
    (0.999: 14% after 2,000 steps), and a random or zero-initialised network mixed into the average
    can ruin it (a DDPM's noise prediction shrunk by that much sends its samples to the pixel
    bounds). The warm-up, as in TensorFlow's ``ExponentialMovingAverage(num_updates=...)`` and
    diffusers' ``EMAModel``, averages the early iterates almost uniformly, so the initial weight is
    $\prod_{k<n}(1 + k)/(10 + k) = 9!\,n!/(n + 9)!$ (below $10^{-6}$ after 20 updates), and reaches
    $d$ itself after $(10d - 1)/(1 - d)$ updates (8,990 for 0.999).
    """
    n = jnp.asarray(step, jnp.float32)
    return jnp.minimum(jnp.float32(decay), (1.0 + n) / (10.0 + n))


def train_step_fn(task: Task, optimizer: optax.GradientTransformation, *, ema_decay: float | None) -> StepFn:
    """The un-jitted step ``(state, batch) -> (state, metrics)``."""

    def step(state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, dict[str, jax.Array]]:
        key = step_key(wrap_key(state.key), state.step)

        def loss_fn(params):
            out = task.loss(params, state.model_state, batch, key=key)
            return jnp.asarray(out.loss, jnp.float32), out

        (loss, out), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        model_state = state.model_state if out.model_state is None else out.model_state
        ema = state.ema_params
        if ema is not None:
            decay = ema_decay_at(state.step, ema_decay)
            ema = optax.incremental_update(params, ema, step_size=1.0 - decay)

        finite = jnp.isfinite(loss) & _all_finite(grads) & (state.nonfinite_step < 0)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)  # noqa: E731
        new_state = TrainState(
            step=state.step + 1,
            params=keep(params, state.params),
            opt_state=keep(opt_state, state.opt_state),
            model_state=keep(model_state, state.model_state),
            ema_params=None if ema is None else keep(ema, state.ema_params),
            key=state.key,
            nonfinite_step=jnp.where(
                (state.nonfinite_step < 0) & ~finite, state.step, state.nonfinite_step
            ).astype(jnp.int32),
        )
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
        metrics.update({k: jnp.asarray(v, jnp.float32) for k, v in out.metrics.items()})
        return new_state, metrics

    return step


def make_train_step(
    task: Task,
    optimizer: optax.GradientTransformation,
    *,
    mesh: Mesh,
    ema_decay: float | None = None,
    donate: bool = True,
) -> StepFn:
    """Jit :func:`train_step_fn` with replicated state, data-sharded batch and donated state."""
    return jax.jit(
        train_step_fn(task, optimizer, ema_decay=ema_decay),
        in_shardings=(replicated(mesh), data_sharded(mesh)),
        out_shardings=(replicated(mesh), replicated(mesh)),
        donate_argnums=(0,) if donate else (),
    )


def make_eval_step(task: Task, *, mesh: Mesh) -> Callable[..., dict[str, jax.Array]]:
    """Jitted ``(state, batch, key) -> metrics`` on the evaluation parameters (EMA when kept)."""
    if task.evaluate is None:
        raise ValueError(f"task: {task.name} has no evaluate function")

    def fn(state: TrainState, batch: dict[str, jax.Array], key: jax.Array) -> dict[str, jax.Array]:
        metrics = task.evaluate(eval_params(state), state.model_state, batch, key=wrap_key(key))
        return {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}

    # The batch's sharding is taken from the argument: the last partial batch arrives replicated.
    return jax.jit(fn, out_shardings=replicated(mesh))
