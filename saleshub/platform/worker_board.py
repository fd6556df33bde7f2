"""What the web workers' supervisor saw, shared with the workers so ``/health/ready`` can tell.

``saleshub serve --workers N`` runs a supervisor (uvicorn's) that pings each worker process and
replaces one that died or did not answer in time. Each replacement is logged by the supervisor, and
counted on this board: a few numbers in shared memory that the worker processes receive at their
start (with their configuration), so every worker's readiness answer says how many workers were
replaced and when, and a restart loop (``LOOP_REPLACEMENTS`` replacements within ``LOOP_SECONDS``)
makes readiness fail instead of passing unnoticed behind the one worker that still answers.
"""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.sharedctypes import SynchronizedArray

__all__ = ["LOOP_REPLACEMENTS", "LOOP_SECONDS", "WorkerBoard"]

#: A restart loop: this many worker replacements within ``LOOP_SECONDS``.
LOOP_REPLACEMENTS = 3
LOOP_SECONDS = 300.0
_RECENT = 8  # replacement times kept (a ring)


class WorkerBoard:
    """Worker count and replacements, in memory shared by the supervisor and its workers."""

    def __init__(self, workers: int) -> None:
        # The spawn context: uvicorn starts its workers with it, and the array travels to them in
        # their configuration while they are spawned. Layout: workers, replaced, ring of times.
        self._cells: SynchronizedArray[float] = multiprocessing.get_context("spawn").Array("d", 2 + _RECENT)
        self._cells[0] = workers

    def replaced(self) -> int:
        """Count one replacement now; the number within ``LOOP_SECONDS`` (this one included)."""
        with self._cells.get_lock():
            count = int(self._cells[1])
            self._cells[2 + count % _RECENT] = time.time()
            self._cells[1] = count + 1
        return self.recent()

    def recent(self) -> int:
        """Replacements within the last ``LOOP_SECONDS``."""
        now = time.time()
        with self._cells.get_lock():
            count = int(self._cells[1])
            times = [self._cells[2 + i] for i in range(min(count, _RECENT))]
        return sum(1 for at in times if now - at <= LOOP_SECONDS)

    @property
    def restart_loop(self) -> bool:
        """Whether workers keep being replaced (``LOOP_REPLACEMENTS`` within ``LOOP_SECONDS``)."""
        return self.recent() >= LOOP_REPLACEMENTS

    def describe(self) -> str:
        """One line for ``/health/ready``: ``2 running, none replaced`` or what happened."""
        with self._cells.get_lock():
            workers, count = int(self._cells[0]), int(self._cells[1])
            last = self._cells[2 + (count - 1) % _RECENT] if count else 0.0
        if count == 0:
            return f"{workers} running, none replaced"
        ago = f"the last {time.time() - last:.0f} s ago"
        if self.restart_loop:
            return (
                f"restart loop: {self.recent()} workers replaced in the last {LOOP_SECONDS / 60:.0f} min, "
                f"{ago}; a worker that does not answer the supervisor's health check within "
                "SALESHUB_WEB__WORKER_TIMEOUT_SECONDS is replaced (see the log)"
            )
        return f"{workers} running, {count} replaced, {ago} (see the log)"
