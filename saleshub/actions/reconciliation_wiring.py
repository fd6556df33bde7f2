"""Reconciliation wired to the running hub: its ports (``reconciliation.ports``) filled from receive.

Reconciliation does not import the receiving side; here, above both, a polled system's
``ApiManifestReader`` gets the pollers' client (``api_reader``), healing gets the recorder
(``heal_from_source``), and the nightly job gets both (``nightly``, ``schedule_nightly``).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from datetime import datetime

from apscheduler.schedulers.base import BaseScheduler

from reconciliation.api import ApiManifestReader
from reconciliation.heal import HealResult, heal
from reconciliation.model import Window
from reconciliation.schedule import NightlyReconciliation, api_nightly, schedule_api_nightly
from saleshub.receive.polling import PollingHub
from saleshub.receive.polling.sources import RecorderPolled, open_source

__all__ = ["api_reader", "heal_from_source", "nightly", "schedule_nightly"]


def api_reader(hub: PollingHub, system: str) -> ApiManifestReader:
    """The reader of ``system``'s API, with its pollers' client (``ConfigurationError`` if not polled)."""
    adapter, open_client = open_source(hub, system)
    return ApiManifestReader(adapter, open_client)


def heal_from_source(
    hub: PollingHub, reader: ApiManifestReader, run_id: uuid.UUID, window: Window
) -> HealResult:
    """``reconciliation.heal`` with the hub's recorder: what the run found lacking, recorded again."""
    return heal(hub.database.engine, RecorderPolled(hub.recorder), reader, run_id, window)


def nightly(hub: PollingHub, clock: Callable[[], datetime] | None = None) -> NightlyReconciliation:
    """The nightly job of every polled system of ``hub``, each read from its API."""
    return api_nightly(hub.settings, hub.database.engine, functools.partial(api_reader, hub), clock)


def schedule_nightly(hub: PollingHub, scheduler: BaseScheduler) -> NightlyReconciliation | None:
    """Add ``nightly`` to ``scheduler`` at ``pollers.reconcile_at``; ``None`` if off or none polled."""
    return schedule_api_nightly(
        hub.settings, hub.database.engine, functools.partial(api_reader, hub), scheduler
    )
