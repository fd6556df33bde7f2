"""Synthetic Pyxis order events and signed webhook requests, for tests, benchmarks and demos.

Orders are variations of the golden sample ``contracts/samples/pyxis/01_es_in_store_created.json``
with a new order id, event id and revision; every value is synthetic.
"""

from __future__ import annotations

import copy
import json
import time
from functools import cache
from pathlib import Path
from typing import Any

from saleshub.receive.signatures import sign

__all__ = ["pyxis_event", "signed_headers"]

_SAMPLE = (
    Path(__file__).resolve().parent.parent / "contracts" / "samples" / "pyxis" / "01_es_in_store_created.json"
)


@cache
def _template() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(_SAMPLE.read_bytes())
    return loaded


def pyxis_event(
    order_number: int, *, revision: int = 1, event_type: str = "order.created", notes: str | None = None
) -> bytes:
    """A Pyxis order event as JSON bytes for order ``PX-SYN-{order_number}`` at ``revision``."""
    event = copy.deepcopy(_template())
    event["eventId"] = f"evt_syn_{order_number}_{revision}_{event_type}"
    event["eventType"] = event_type
    order = event["order"]
    order["orderId"] = f"PX-SYN-{order_number:09d}"
    order["revision"] = revision
    order["updatedAt"] = f"2026-11-20T09:{15 + revision % 40:02d}:00+01:00"
    if notes is not None:
        order["notes"] = notes
    return json.dumps(event, ensure_ascii=False).encode()


def signed_headers(
    secret: str,
    webhook_id: str,
    body: bytes,
    *,
    content_type: str = "application/json",
    at: int | None = None,
) -> dict[str, str]:
    """The headers of a Standard Webhooks request signed with ``secret``."""
    timestamp = int(time.time()) if at is None else at
    return {
        "content-type": content_type,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, webhook_id, timestamp, body),
    }
