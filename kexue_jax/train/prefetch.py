"""Prepare the next batches on a background thread while the device computes."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

_DONE = object()


class Prefetcher:
    """Iterate ``make(step)`` for ``step`` in ``range(start, stop)``, ``size`` batches ahead.

    ``make`` does the host work (gather, device placement); exceptions are re-raised in the
    consumer. ``close()`` stops the thread early.
    """

    def __init__(self, make: Callable[[int], Any], start: int, stop: int, *, size: int = 2):
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, size))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(make, start, stop), daemon=True)
        self._thread.start()

    def _run(self, make: Callable[[int], Any], start: int, stop: int) -> None:
        try:
            for step in range(start, stop):
                item = make(step)
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._queue.put(e)
            return
        self._queue.put(_DONE)

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
