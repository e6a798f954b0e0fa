"""Registry of task builders: ``config.task`` names one, built lazily by import path.

A family adds its models by adding a line to ``_BUILDERS`` (``"module:function"``) or by calling
:func:`register_task`; builders have the signature ``build(model_config, info) -> Task``.
"""

from __future__ import annotations

import importlib
from typing import Any

from kexue_jax.train.task import Task, TaskBuilder

_BUILDERS: dict[str, str | TaskBuilder] = {
    "vae": "kexue_jax.latent.vae_model:make_vae_task",
    "flow": "kexue_jax.flows.flow_model:make_flow_task",
    "diffusion": "kexue_jax.diffusion.diffusion_model:make_diffusion_task",
    "classifier": "kexue_jax.diffusion.classifier_model:make_classifier_task",
    "lm": "kexue_jax.attention.lm_model:make_lm_task",
}


def register_task(name: str, builder: TaskBuilder | str) -> None:
    """Register ``builder`` (a callable or a ``"module:function"`` path) under ``name``."""
    if name in _BUILDERS:
        raise ValueError(f"name: task {name!r} is already registered")
    _BUILDERS[name] = builder


def task_names() -> list[str]:
    return sorted(_BUILDERS)


def get_task_builder(name: str) -> TaskBuilder:
    if name not in _BUILDERS:
        raise ValueError(f"task: unknown task {name!r}; known tasks: {task_names()}")
    builder = _BUILDERS[name]
    if isinstance(builder, str):
        module, _, attr = builder.partition(":")
        builder = getattr(importlib.import_module(module), attr)
    return builder


def build_task(name: str, model_config: Any, info: Any) -> Task:
    """Build the task ``name`` from the ``model`` section of a config and the dataset info."""
    return get_task_builder(name)(model_config, info)
