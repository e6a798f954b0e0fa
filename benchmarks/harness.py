"""A small benchmark harness: warm-up, ``block_until_ready``, median of repeats, JSON results.

Every benchmark reports ratios against a reference measured in the same process (DESIGN.md §6);
absolute times are kept for context with the device and library versions.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jax

RESULTS = Path(__file__).resolve().parent / "results"


def block(tree: Any) -> Any:
    return jax.block_until_ready(tree)


def time_fn(fn: Callable[[], Any], *, warmup: int = 2, repeats: int = 7) -> dict[str, float]:
    """Median / min / max seconds of ``fn()`` (its output blocked on) after ``warmup`` calls."""
    for _ in range(warmup):
        block(fn())
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - t)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": repeats}


def environment() -> dict[str, Any]:
    """Device and versions, recorded with every result."""
    import flax
    import jaxlib
    import optax

    dev = jax.devices()[0]
    return {
        "device_kind": dev.device_kind,
        "platform": dev.platform,
        "num_devices": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_result(name: str, result: dict[str, Any], *, directory: Path | None = None,
                 platform: str | None = None) -> Path:
    """Write ``result`` plus :func:`environment` to ``results/<name>-<platform>.json``.

    ``platform`` defaults to the platform of JAX's first device; a result about another target (a
    kernel compiled for sm_90 on a CPU host) names that target instead."""
    directory = directory or RESULTS
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "environment": environment(), **result}
    path = directory / f"{name}-{platform or jax.devices()[0].platform}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path
