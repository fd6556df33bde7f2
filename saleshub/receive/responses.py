"""The JSON bodies the HTTP interface answers with; they appear as schemas in the OpenAPI document.

Errors use RFC 9457 problem details (``application/problem+json``) with the hub's own extensions:
``event_id`` when the event was recorded, ``errors`` for the structured reasons.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

__all__ = ["EventReceipt", "Health", "Problem", "Readiness"]


class EventReceipt(BaseModel):
    """The answer to an accepted webhook: the event as recorded (and, on a repeat, as it stands now)."""

    event_id: uuid.UUID = Field(
        description="the hub's id of the recorded event (of the original on a repeat)"
    )
    status: str = Field(
        description="accepted (recorded, waiting for the processor); on a repeat the original's status "
        "now: accepted, mapped, duplicate, stale, quarantined or failed"
    )
    repeated: bool = Field(description="true when this webhook-id was received before; nothing was written")
    hub_order_id: uuid.UUID | None = Field(default=None, description="on a repeat, once processed")
    order_version: int | None = Field(default=None, description="on a repeat, once processed")
    errors: dict[str, Any] | None = Field(default=None, description="why the event was quarantined")


class Problem(BaseModel):
    """An RFC 9457 problem detail."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    event_id: uuid.UUID | None = Field(default=None, description="set when the event was recorded")
    errors: dict[str, Any] | None = None


class Health(BaseModel):
    """Liveness: the process answers."""

    status: str = "ok"


class Readiness(BaseModel):
    """Readiness: the database answers, its schema is the one this hub expects, secrets can be read."""

    status: str
    database: str
    schema_revision: str | None
    expected_revision: str | None
    secrets: str = "ok"
    #: The deployed mapping revision this process maps with (``None``: files read from a directory).
    mapping_revision: int | None = None
    #: This process, as ``host:pid`` (as ``saleshub status`` lists it).
    process: str | None = None
    #: With several web workers: how many run and how many the supervisor replaced (a restart loop
    #: makes the status ``unavailable``); ``None`` with one worker.
    workers: str | None = None
