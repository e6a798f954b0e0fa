"""Device mesh, batch placement and multi-host start-up.

One mesh with a ``data`` axis over all devices (of all hosts); the train state is replicated and
batches are split along their leading axis. The same code runs on one CPU, on eight fake CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``, the tests) and on a TPU pod. No ``pmap``.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"

_distributed_started = False


def maybe_initialize_distributed(enabled: bool | None = None) -> None:
    """Call ``jax.distributed.initialize()`` for a multi-host launch.

    ``enabled=None`` reads ``KEXUE_JAX_DISTRIBUTED=1``; on TPU pods and SLURM clusters
    ``jax.distributed.initialize()`` discovers the coordinator itself, elsewhere set
    ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``.
    """
    global _distributed_started
    if enabled is None:
        enabled = os.environ.get("KEXUE_JAX_DISTRIBUTED", "0") == "1"
    if enabled and not _distributed_started:
        jax.distributed.initialize()
        _distributed_started = True


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh with axis ``data`` over the first ``num_devices`` devices (default: all)."""
    devices = jax.devices()
    if num_devices is not None:
        if not 1 <= num_devices <= len(devices):
            raise ValueError(f"num_devices: expected 1..{len(devices)}, got {num_devices}")
        devices = devices[:num_devices]
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding that keeps a full copy on every device."""
    return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
    """Sharding that splits the leading (batch) axis over the ``data`` axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def data_axis_size(mesh: Mesh) -> int:
    return mesh.shape[DATA_AXIS]


def check_batch_size(name: str, batch_size: int, mesh: Mesh) -> None:
    """Raise ``ValueError`` unless the global batch splits evenly over the data axis."""
    n = data_axis_size(mesh)
    if batch_size % n:
        raise ValueError(f"{name}: {batch_size} is not divisible by the {n} devices of the data axis")


def shard_batch(batch: dict[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
    """Place this process's share of a batch on the mesh, split along the ``data`` axis.

    A batch whose size does not divide over the data axis (the last partial evaluation batch) is
    replicated instead, so that every example is still seen once. Features that are not numeric
    (tensorflow-datasets' string ``id`` of CIFAR-10, ragged ``object`` columns) cannot live on a
    device and are left out.
    """
    sharding = data_sharded(mesh)
    out = {}
    for name, value in batch.items():
        value = np.asarray(value)
        if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
            continue
        global_size = value.shape[0] * jax.process_count()
        if global_size % data_axis_size(mesh):
            out[name] = jax.device_put(value, replicated(mesh))
        else:
            out[name] = jax.make_array_from_process_local_data(sharding, value)
    return out
