"""The embedded PostgreSQL: a private server from the ``pgserver`` package, data under ``data_dir``.

Used when no ``database.url`` is configured, so the hub runs on a fresh machine with nothing else
installed. The server listens on a Unix socket only (no TCP port to collide with or expose) and keeps
running while any process of the hub uses it; a second ``saleshub`` process on the same folder
attaches to the running server instead of starting another.

``pgserver`` keeps the ids of the processes using the server in ``<pgdata>/.handle_pids.json`` and
stops the server when the last of them lets go. A process killed before it let go (SIGKILL, a
crash) leaves its id behind, and the server would then never stop; so ids of processes that no
longer exist are removed whenever a process attaches or lets go.

While a process holds the server, a watchdog thread checks every ``watch_interval`` seconds that
the postmaster is alive and, if it died (killed, out of memory), starts it again on the same data
and socket; the engine's pre-ping then replaces the dead connections, and the hub recovers without
an operator.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import psutil

from saleshub.errors import ConfigurationError

__all__ = ["EmbeddedPostgres", "prune_stale_handles"]

log = logging.getLogger(__name__)

_HANDLES = ".handle_pids.json"


def _import_pgserver() -> Any:
    # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (servers, CI) and falls back
    # to /tmp/runtime-<uid>, which is what we want; the warning says nothing an operator can act on.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pgserver

    return pgserver


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def prune_stale_handles(pgdata: Path) -> list[int]:
    """Remove the ids of processes that no longer exist from pgserver's handle file; return them.

    Call it under pgserver's inter-process lock. A process id reused by an unrelated process is
    not detected (it stays until that process ends too).
    """
    from pgserver.utils import DiskList

    handles = DiskList(pgdata / _HANDLES)
    if not handles.path.exists():
        return []
    pids = handles.get()
    stale = [pid for pid in pids if not _alive(pid)]
    if stale:
        handles.put([pid for pid in pids if pid not in stale])
        log.info("embedded PostgreSQL: removed ids of ended processes %s from %s", stale, handles.path)
    return stale


class EmbeddedPostgres:
    """A running embedded PostgreSQL whose data lives in ``data_dir / 'postgres'``."""

    def __init__(self, data_dir: Path, *, watch_interval: float = 1.0) -> None:
        self.pgdata = (data_dir / "postgres").resolve()
        self.watch_interval = watch_interval
        self._server: Any = None
        self._stop_watching = threading.Event()
        self._watchdog: threading.Thread | None = None

    def start(self) -> str:
        """Start (or attach to) the server; the SQLAlchemy URL of its ``postgres`` database."""
        pgserver = _import_pgserver()
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
            with pgserver.PostgresServer._lock:
                prune_stale_handles(self.pgdata)
            # "stop": the server stops when the last process using it lets go.
            self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:  # pgserver raises bare exceptions for initdb/pg_ctl failures
            raise ConfigurationError(
                f"the embedded PostgreSQL in {self.pgdata} did not start: {exc}; "
                f"see {self.pgdata / 'log'} or set SALESHUB_DATABASE__URL to use another server"
            ) from exc
        if self.watch_interval > 0:
            self._stop_watching.clear()
            self._watchdog = threading.Thread(
                target=self._watch, name="embedded-postgres-watchdog", daemon=True
            )
            self._watchdog.start()
        uri: str = self._server.get_uri()
        return uri.replace("postgresql://", "postgresql+psycopg://", 1)

    def _postmaster_running(self) -> bool:
        info = self._server.get_postmaster_info()
        return bool(info.is_running())

    def _watch(self) -> None:
        while not self._stop_watching.wait(self.watch_interval):
            server = self._server
            if server is None or self._postmaster_running():
                continue
            log.warning("the embedded PostgreSQL in %s has stopped; starting it again", self.pgdata)
            try:
                with server._lock:
                    if self._stop_watching.is_set():
                        return
                    server.ensure_postgres_running()
            except Exception:  # the next round tries again; the reason goes to the log each time
                log.exception("the embedded PostgreSQL in %s did not restart; retrying", self.pgdata)
                continue
            log.warning("the embedded PostgreSQL in %s is running again", self.pgdata)

    def stop(self) -> None:
        """Release this process's hold on the server (it stops when no live process holds it)."""
        self._stop_watching.set()
        if self._watchdog is not None:
            self._watchdog.join()
            self._watchdog = None
        if self._server is not None:
            with self._server._lock:
                prune_stale_handles(self.pgdata)
            self._server.cleanup()
            self._server = None

    def __repr__(self) -> str:
        return f"EmbeddedPostgres({os.path.relpath(self.pgdata)})"
