"""The train state: everything a run needs to continue exactly where it stopped."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from kexue_jax._src.random import key_data
from kexue_jax._src.typing import Array, PRNGKey, PyTree


class TrainState(NamedTuple):
    """A pytree of arrays, checkpointed whole.

    Attributes:
        step: int32 scalar, the number of updates applied so far.
        params: the parameters the optimizer updates (float32).
        opt_state: state of the optax transformation.
        model_state: non-gradient model state (``{}`` when the model has none).
        ema_params: exponential moving average of ``params`` (``None`` when disabled).
        key: raw ``uint32`` data of the run's key; step ``k`` uses ``fold_in(key, k)``.
        nonfinite_step: int32 scalar, ``-1`` while every loss and gradient has been finite, else the
            first step whose loss or gradient was not (that update and all later ones are skipped).
    """

    step: Array
    params: PyTree
    opt_state: PyTree
    model_state: PyTree
    ema_params: PyTree | None
    key: Array
    nonfinite_step: Array


def create_train_state(
    params: PyTree,
    model_state: PyTree,
    optimizer: optax.GradientTransformation,
    *,
    use_ema: bool,
    key: PRNGKey,
) -> TrainState:
    """A fresh state at step 0.

    Raises:
        ValueError: when a floating parameter is not float32 (the dtype policy: parameters and
            optimizer moments in float32, compute in the model's ``dtype``).
    """
    check_param_dtypes(params)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=optimizer.init(params),
        model_state=model_state,
        ema_params=jax.tree.map(jnp.copy, params) if use_ema else None,
        key=key_data(key),
        nonfinite_step=jnp.full((), -1, jnp.int32),
    )


def check_param_dtypes(params: PyTree) -> None:
    """Raise ``ValueError`` naming the first floating parameter that is not float32."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        dtype = jnp.result_type(leaf)
        if jnp.issubdtype(dtype, jnp.floating) and dtype != jnp.float32:
            raise ValueError(
                f"params{jax.tree_util.keystr(path)}: parameters must be float32 (set the model's "
                f"param_dtype; its compute dtype may be bfloat16), got {dtype} with shape {jnp.shape(leaf)}"
            )


def eval_params(state: TrainState) -> PyTree:
    """The parameters used for evaluation and sampling: the EMA ones when kept."""
    return state.ema_params if state.ema_params is not None else state.params
