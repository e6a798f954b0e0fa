"""The contract between a model and the training engine.

A model plugs into the engine by giving a :class:`Task`: pure functions over pytrees of arrays.
The engine never sees a Flax module; an NNX model is split once (``nnx.split``) into a static graph
and a pytree of parameters, and the task's functions merge them back inside ``jit``.

* ``params`` is the pytree the optimizer updates (plain nested dicts of arrays, so that checkpoints
  do not depend on Flax's internal classes);
* ``model_state`` is the pytree of non-gradient state (EMA codebooks, batch statistics, an actnorm
  "initialised" flag); ``{}`` for models that have none;
* every function takes its randomness as the keyword-only ``key`` and is deterministic given it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from kexue_jax._src.typing import Array, Batch, PRNGKey, PyTree


class LossOutput(NamedTuple):
    """What ``Task.loss`` returns.

    Attributes:
        loss: scalar float32 objective to minimise (mean over the batch).
        metrics: scalar float32 diagnostics (mean over the batch), logged as they are.
        model_state: the updated non-gradient state, or ``None`` to keep the old one.
    """

    loss: Array
    metrics: Mapping[str, Array]
    model_state: PyTree | None = None


InitFn = Callable[..., tuple[PyTree, PyTree]]
"""``init(batch, *, key) -> (params, model_state)``; ``batch`` is the first training batch (so that
data-dependent initialisation, e.g. Glow's actnorm, sees real data)."""

LossFn = Callable[..., LossOutput]
"""``loss(params, model_state, batch, *, key) -> LossOutput``."""

EvalFn = Callable[..., Mapping[str, Array]]
"""``evaluate(params, model_state, batch, *, key) -> {name: scalar}``: means over the batch; the
engine averages them over the evaluation set weighting by batch size."""

SampleFn = Callable[..., Array]
"""``sample(params, model_state, num, *, key) -> images [num, h, w, c]`` in ``[0, 1]``."""

FiguresFn = Callable[..., Mapping[str, Array]]
"""``figures(params, model_state, batch, *, key) -> {name: images [n, h, w, c] in [0, 1]}``
(reconstructions, interpolations, ...), written as PNG grids next to the samples."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Task:
    """A model as the engine sees it.

    Attributes:
        name: short name used in logs.
        init: see :data:`InitFn`.
        loss: see :data:`LossFn`. Must be jit-able; the engine takes ``jax.grad`` of ``.loss``.
        evaluate: optional, see :data:`EvalFn`.
        sample: optional, see :data:`SampleFn`.
        figures: optional, see :data:`FiguresFn`.
        grid_columns: columns of the PNG grids.
        extras: anything else a CLI command may need (e.g. the config of the model).
    """

    name: str
    init: InitFn
    loss: LossFn
    evaluate: EvalFn | None = None
    sample: SampleFn | None = None
    figures: FiguresFn | None = None
    grid_columns: int = 8
    extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def config_dict(section: Any) -> dict[str, Any]:
    """A config section (``ml_collections.ConfigDict``, a mapping or ``None``) as a plain dict."""
    if section is None:
        return {}
    return dict(section.to_dict()) if hasattr(section, "to_dict") else dict(section)


TaskBuilder = Callable[[Any], Task]
"""Builds a task from the ``model`` section of an experiment config (an ``ml_collections``
ConfigDict) plus the dataset info; registered in :mod:`kexue_jax.train.registry`."""

__all__ = ["Batch", "config_dict", "EvalFn", "FiguresFn", "InitFn", "LossFn", "LossOutput", "PRNGKey", "SampleFn", "Task", "TaskBuilder"]
