"""Orbax checkpoints: atomic, keep the last ``k``, resume from the newest readable one.

Orbax writes each checkpoint to a temporary directory and renames it when complete, so a run killed
mid-save leaves the previous checkpoints intact. A checkpoint that exists but cannot be read (disk
error, truncated file) is reported, moved aside to ``<workdir>/corrupt/``, and the one before it is
used.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class Checkpointer:
    """Saves and restores :class:`~kexue_jax.train.state.TrainState` pytrees under ``directory``."""

    def __init__(self, directory: str | os.PathLike[str], *, max_to_keep: int = 3, async_save: bool = False):
        self.directory = Path(directory).absolute()
        self.max_to_keep = max_to_keep
        self.async_save = async_save
        self._manager = self._make_manager()

    def _make_manager(self) -> ocp.CheckpointManager:
        options = ocp.CheckpointManagerOptions(
            max_to_keep=self.max_to_keep,
            create=True,
            enable_async_checkpointing=self.async_save,
        )
        return ocp.CheckpointManager(self.directory, options=options)

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.all_steps()
        return steps[-1] if steps else None

    def save(self, step: int, state: Any) -> None:
        self._manager.save(step, args=ocp.args.StandardSave(state), force=True)

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def restore(self, step: int, target: Any) -> Any:
        """Restore ``step`` into the structure, shapes and shardings of ``target``."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def restore_latest(self, target: Any) -> tuple[int, Any] | None:
        """The newest readable checkpoint as ``(step, state)``, or ``None`` if there is none.

        Unreadable checkpoints are logged with their error, moved to ``<parent>/corrupt/`` and
        skipped.
        """
        for step in reversed(self.all_steps()):
            try:
                return step, self.restore(step, target)
            except Exception as e:  # noqa: BLE001 - any failure to read means "corrupt"
                log.warning("checkpoint at step %d in %s is unreadable (%s: %s); trying the previous one",
                            step, self.directory, type(e).__name__, e)
                self._quarantine(step)
        return None

    def _quarantine(self, step: int) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
        src = self.directory / str(step)
        dst = self.directory.parent / "corrupt" / f"{step}-{int(time.time())}"
        if src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(src), str(dst))
        self._manager = self._make_manager()
