"""How ``saleshub serve`` starts several web worker processes and keeps them running.

uvicorn starts each worker as a fresh interpreter (``multiprocessing`` spawn) and sends it its
``Config`` through the spawn pipe, pickled. ``WorkerConfig`` rides on that: it carries the parent's
settings with the database URL already resolved (the embedded server's socket, the credentials of
the secret store), so a worker neither reads nor writes ``os.environ`` for it and nothing is
written to disk. In the worker, uvicorn asks the config for its application; ``load_app`` answers
with a factory that tunes the garbage collector once (the worker's process entry) and builds the
app, which opens the worker's own runtime on that URL.

**Starting under load.** uvicorn's supervisor pings every worker and kills one that does not answer
within ``timeout_worker_healthcheck``; a worker answers from a thread started only once its
configuration is unpickled. So this module, which the worker imports to unpickle it, imports
nothing heavy: the web framework and the hub are imported by ``worker_app``, after the worker
answers pings. The timeout is ``SALESHUB_WEB__WORKER_TIMEOUT_SECONDS``. A worker process also does
not run the command line's script again (spawn re-imports the parent's ``__main__`` by its path;
``_no_main_for_workers``). Every replacement of a worker is logged and counted on a
``WorkerBoard`` that the workers' ``/health/ready`` reports.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from typing import TYPE_CHECKING, Any

import uvicorn
from pydantic import SecretStr
from typing_extensions import override
from uvicorn.supervisors.multiprocess import Multiprocess

from saleshub.platform.settings import Settings
from saleshub.platform.worker_board import LOOP_SECONDS, WorkerBoard

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["Supervisor", "WorkerConfig", "run_workers", "worker_app", "worker_settings"]

log = logging.getLogger(__name__)


def worker_settings(settings: Settings, database_url: SecretStr) -> Settings:
    """``settings`` with the database URL the parent resolved."""
    database = settings.database.model_copy(update={"url": database_url})
    return settings.model_copy(update={"database": database})


def worker_app(settings: Settings, board: WorkerBoard | None = None) -> FastAPI:
    """The application of one worker process (its entry: the collector is tuned here, once)."""
    # Imported here, in the worker, while it already answers the supervisor's pings.
    from saleshub.console.app import create_hub_app  # web framework and authlib: only in workers
    from saleshub.platform.logs import configure_logging
    from saleshub.platform.telemetry import telemetry_from_settings
    from saleshub.runtime import tune_collector

    tune_collector()
    configure_logging(settings)
    telemetry_from_settings(settings)  # instruments the web framework before the app is built
    return create_hub_app(settings=settings, workers=board)


class WorkerConfig(uvicorn.Config):
    """A uvicorn configuration whose workers build the hub's app from the given settings."""

    def __init__(self, settings: Settings, board: WorkerBoard | None = None, **options: Any) -> None:
        # The import string is never imported (``load_app`` is overridden); uvicorn only needs one.
        super().__init__(
            "saleshub.commands.workers:worker_app",
            factory=True,
            timeout_worker_healthcheck=settings.web.worker_timeout_seconds,
            **options,
        )
        self.hub_settings = settings
        self.board = board

    @override
    def load_app(self) -> Any:
        return functools.partial(worker_app, self.hub_settings, self.board)


class Supervisor(Multiprocess):
    """uvicorn's supervisor, saying when it replaces a worker and counting it on the board."""

    def __init__(self, config: WorkerConfig, board: WorkerBoard, **options: Any) -> None:
        super().__init__(config, **options)
        self.board = board

    @override
    def keep_subprocess_alive(self) -> None:
        before = list(self.processes)
        super().keep_subprocess_alive()
        for old, new in zip(before, self.processes, strict=False):
            if new is old:
                continue
            recent = self.board.replaced()
            code = old.exitcode
            reason = (
                f"it did not answer the health check within {self.config.timeout_worker_healthcheck} s "
                "(SALESHUB_WEB__WORKER_TIMEOUT_SECONDS) or was killed"
                if code is not None and code < 0
                else f"it exited with code {code}"
            )
            log.warning(
                "web worker [%s] replaced by [%s]: %s; %d replaced in the last %.0f min%s",
                old.pid,
                new.pid,
                reason,
                recent,
                LOOP_SECONDS / 60,
                "; restart loop: /health/ready answers 503" if self.board.restart_loop else "",
            )


@contextmanager
def _no_main_for_workers() -> Iterator[None]:
    """Keep spawned workers from running the command line's script again.

    ``multiprocessing`` spawn re-imports the parent's ``__main__`` in every child by its file path
    unless it is a package's ``__main__`` module. Run as the ``saleshub`` console script, that
    imports the whole command line before the worker can answer a ping; named as
    ``python -m saleshub`` names it (``saleshub.__main__``), the child skips it.
    """
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    main.__spec__ = ModuleSpec("saleshub.__main__", None)
    try:
        yield
    finally:
        main.__spec__ = None


def run_workers(settings: Settings, database_url: SecretStr, workers: int, **options: Any) -> None:
    """Serve with ``workers`` worker processes until SIGTERM/SIGINT."""
    board = WorkerBoard(workers)
    # The workers get the resolved database URL inside their configuration, not the environment.
    config = WorkerConfig(worker_settings(settings, database_url), board, workers=workers, **options)
    with _no_main_for_workers():
        Supervisor(config, board, sockets=[config.bind_socket()]).run()  # stops on SIGTERM/SIGINT
