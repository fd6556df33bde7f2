"""Pollers: pause and resume a polled system's scheduled runs, audited."""

from __future__ import annotations

from sqlalchemy import Engine

from saleshub.store import polling as store
from saleshub.store.audit import Actor, record_action
from saleshub.store.failures import database_errors

__all__ = ["pause_poller", "resume_poller"]


def pause_poller(engine: Engine, system: str, reason: str, actor: Actor) -> None:
    """Stop ``system``'s scheduled runs until resumed, saying why."""
    with database_errors(), engine.begin() as conn:
        store.pause(conn, system, reason)
        record_action(conn, actor, "pollers.pause", "poller", system, reason)


def resume_poller(engine: Engine, system: str, actor: Actor) -> None:
    """Restart ``system``'s scheduled runs and forget its failures in a row."""
    with database_errors(), engine.begin() as conn:
        store.resume(conn, system)
        record_action(conn, actor, "pollers.resume", "poller", system)
