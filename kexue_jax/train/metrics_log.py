"""Metrics as JSON lines, one object per logged step, safe under resume."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "__array__"):
        value = np.asarray(value)
        value = value.item() if value.ndim == 0 else value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # JSON has no NaN/inf; keep them readable
    return value


class MetricsWriter:
    """Appends ``{"step": k, "split": ..., name: value}`` lines to ``metrics.jsonl``.

    On resume from step ``k`` the lines of steps after ``k`` (written by the interrupted run after
    its last checkpoint) are dropped, so that the file of a resumed run equals that of an
    uninterrupted one.
    """

    def __init__(self, path: str | os.PathLike[str], *, resume_step: int | None = None, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept = [line for line in read_metrics(self.path) if line["step"] <= resume_step]
            self.path.write_text("".join(json.dumps(line) + "\n" for line in kept))

    def write(self, step: int, split: str, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), "split": split}
        record.update({k: _jsonable(v) for k, v in sorted(metrics.items())})
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())


def read_metrics(path: str | os.PathLike[str], split: str | None = None) -> list[dict[str, Any]]:
    """All records of ``metrics.jsonl`` (optionally of one split), in file order."""
    path = Path(path)
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if split is None or r["split"] == split]
