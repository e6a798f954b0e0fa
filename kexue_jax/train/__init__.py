"""The training engine: one loop, one jitted sharded step, checkpoints and resume for every model.

Models plug in through :class:`Task`; experiments are configs (``experiments/*/config.py``).
"""

from kexue_jax.train.checkpoint import Checkpointer
from kexue_jax.train.config import apply_overrides, list_experiments, load_config
from kexue_jax.train.images import make_grid, save_grid
from kexue_jax.train.loop import (
    NonFiniteError,
    TrainResult,
    evaluate,
    load_for_inference,
    request_stop,
    setup,
    train,
    write_grids,
)
from kexue_jax.train.mesh import make_mesh, maybe_initialize_distributed, shard_batch
from kexue_jax.train.metrics_log import MetricsWriter, read_metrics
from kexue_jax.train.registry import build_task, register_task, task_names
from kexue_jax.train.state import TrainState, create_train_state
from kexue_jax.train.step import make_eval_step, make_train_step, train_step_fn
from kexue_jax.train.task import LossOutput, Task

__all__ = [
    "Checkpointer",
    "LossOutput",
    "MetricsWriter",
    "NonFiniteError",
    "Task",
    "TrainResult",
    "TrainState",
    "apply_overrides",
    "build_task",
    "create_train_state",
    "evaluate",
    "list_experiments",
    "load_config",
    "load_for_inference",
    "make_eval_step",
    "make_grid",
    "make_mesh",
    "make_train_step",
    "maybe_initialize_distributed",
    "read_metrics",
    "register_task",
    "request_stop",
    "save_grid",
    "setup",
    "shard_batch",
    "task_names",
    "train",
    "train_step_fn",
    "write_grids",
]
