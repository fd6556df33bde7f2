"""How ``saleshub serve`` starts several web worker processes with its own resolved settings.

uvicorn starts each worker as a fresh interpreter (``multiprocessing`` spawn) and sends it its
``Config`` through the spawn pipe, pickled. ``WorkerConfig`` rides on that: it carries the parent's
settings with the database URL already resolved (the embedded server's socket, the credentials of
the secret store), so a worker neither reads nor writes ``os.environ`` for it and nothing is
written to disk. In the worker, uvicorn asks the config for its application; ``load_app`` answers
with a factory that tunes the garbage collector once (the worker's process entry) and builds the
app, which opens the worker's own runtime on that URL.
"""

from __future__ import annotations

import functools
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr
from typing_extensions import override

from saleshub.platform.logs import configure_logging
from saleshub.platform.settings import Settings
from saleshub.platform.telemetry import telemetry_from_settings
from saleshub.runtime import tune_collector

__all__ = ["WorkerConfig", "worker_app", "worker_settings"]


def worker_settings(settings: Settings, database_url: SecretStr) -> Settings:
    """``settings`` with the database URL the parent resolved."""
    database = settings.database.model_copy(update={"url": database_url})
    return settings.model_copy(update={"database": database})


def worker_app(settings: Settings) -> FastAPI:
    """The application of one worker process (its entry: the collector is tuned here, once)."""
    tune_collector()
    configure_logging(settings)
    telemetry_from_settings(settings)  # instruments the web framework before the app is built
    from saleshub.console.app import create_hub_app  # web framework and authlib: only in workers

    return create_hub_app(settings=settings)


class WorkerConfig(uvicorn.Config):
    """A uvicorn configuration whose workers build the hub's app from the given settings."""

    def __init__(self, settings: Settings, **options: Any) -> None:
        # The import string is never imported (``load_app`` is overridden); uvicorn only needs one.
        super().__init__("saleshub.commands.workers:worker_app", factory=True, **options)
        self.hub_settings = settings

    @override
    def load_app(self) -> Any:
        return functools.partial(worker_app, self.hub_settings)
