"""The embedded PostgreSQL: a private server from the ``pgserver`` package, data under ``data_dir``.

Used when no ``database_url`` is configured, so the hub runs on a fresh machine with nothing else
installed. The server listens on a Unix socket only (no TCP port to collide with or expose) and keeps
running while any process of the hub uses it; a second ``saleshub`` process on the same folder
attaches to the running server instead of starting another.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from saleshub.errors import ConfigurationError

__all__ = ["EmbeddedPostgres"]


def _import_pgserver() -> Any:
    # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (servers, CI) and falls back
    # to /tmp/runtime-<uid>, which is what we want; the warning says nothing an operator can act on.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pgserver

    return pgserver


class EmbeddedPostgres:
    """A running embedded PostgreSQL whose data lives in ``data_dir / 'postgres'``."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "postgres").resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server; the SQLAlchemy URL of its ``postgres`` database."""
        pgserver = _import_pgserver()
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
            # "stop": the server stops when the last process using it exits normally.
            self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:  # pgserver raises bare exceptions for initdb/pg_ctl failures
            raise ConfigurationError(
                f"the embedded PostgreSQL in {self.pgdata} did not start: {exc}; "
                f"see {self.pgdata / 'log'} or set SALESHUB_DATABASE_URL to use another server"
            ) from exc
        uri: str = self._server.get_uri()
        return uri.replace("postgresql://", "postgresql+psycopg://", 1)

    def stop(self) -> None:
        """Release this process's hold on the server (it stops when no process holds it)."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def __repr__(self) -> str:
        return f"EmbeddedPostgres({os.path.relpath(self.pgdata)})"
