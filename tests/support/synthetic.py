"""Synthetic order events and signed webhook requests, for tests and benchmarks.

Orders are variations of golden samples with a new order id, event id, revision and change time:
Pyxis events of ``contracts/samples/pyxis/01_es_in_store_created.json``, ERP sales orders of
``contracts/samples/erp/01_es_b2b_installation.json`` and Tempo orders of
``contracts/samples/tempo/01_pl_in_store_installation.xml``. Every value is synthetic.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

from saleshub.platform.secrets import decode_secret
from saleshub.receive.signatures import webhook_headers

__all__ = ["erp_order", "pyxis_event", "signed_headers", "tempo_order"]

_SAMPLES = Path(__file__).resolve().parents[2] / "contracts" / "samples"
_SAMPLE = _SAMPLES / "pyxis" / "01_es_in_store_created.json"
_ERP_SAMPLE = _SAMPLES / "erp" / "01_es_b2b_installation.json"
_TEMPO_SAMPLE = _SAMPLES / "tempo" / "01_pl_in_store_installation.xml"
_TEMPO = "{urn:tempo:serviceorder:2}"


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


@cache
def _erp_template() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(_ERP_SAMPLE.read_bytes())
    return loaded


def erp_order(
    number: int,
    *,
    revision: int = 1,
    updated_at: str = "2026-11-18T08:45:03.481+00:00",
    notes: str | None = None,
) -> dict[str, Any]:
    """An ERP sales order (one Order Hub item) for order ``SYN{number:09d}`` at ``revision``.

    ``HeaderId`` is ``300000000000000 + number``; ``updated_at`` is its ``LastUpdateDate``.
    """
    order = copy.deepcopy(_erp_template())
    reference = f"SO-SYN-{number:09d}"
    order["HeaderId"] = 300_000_000_000_000 + number
    order["OrderKey"] = f"OPS:{reference}"
    order["OrderNumber"] = f"SYN{number:09d}"
    order["SourceTransactionNumber"] = order["SourceTransactionId"] = reference
    order["SourceTransactionRevisionNumber"] = revision
    order["LastUpdateDate"] = updated_at
    if notes is not None:
        order["Comments"] = notes
    return order


def tempo_order(
    number: int, *, modified_at: str = "2026-11-20T10:13:02", remarks: str | None = None
) -> bytes:
    """A Tempo ``tso:Order`` element (UTF-8 XML, namespace declared) for order ``PL/SYN/{number:09d}``."""
    root = etree.fromstring(_TEMPO_SAMPLE.read_bytes())
    order = root.find(f"{_TEMPO}Order")
    if order is None:  # the golden sample always has one
        raise ValueError(f"{_TEMPO_SAMPLE.name} has no Order")
    order.find(f"{_TEMPO}OrderNumber").text = f"PL/SYN/{number:09d}"  # type: ignore[union-attr]
    order.find(f"{_TEMPO}ModifiedAt").text = modified_at  # type: ignore[union-attr]
    if remarks is not None:
        order.find(f"{_TEMPO}Remarks").text = remarks  # type: ignore[union-attr]
    return etree.tostring(order, encoding="UTF-8")


def signed_headers(
    secret: str,
    webhook_id: str,
    body: bytes,
    *,
    content_type: str = "application/json",
    at: int | None = None,
) -> dict[str, str]:
    """The headers of a Standard Webhooks request signed with the ``whsec_`` ``secret``."""
    return webhook_headers(decode_secret(secret), webhook_id, body, content_type=content_type, at=at)
