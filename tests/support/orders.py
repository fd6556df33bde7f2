"""Canonical orders for tests: variations of a golden sample, stored through the store's order writes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Engine

from canonical.model import ServiceOrder
from saleshub.mapping.engine import MappingIdentity
from saleshub.store.orders import NewOrder, write_orders
from tests.conftest import SAMPLES

__all__ = ["TEST_MAPPING", "canonical_order", "store_orders"]

TEST_MAPPING = MappingIdentity("pyxis", "order", "test", "0" * 64, "pyxis/order.yaml")


@cache
def _base() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (SAMPLES / "pyxis" / "01_es_in_store_created.expected.json").read_text(encoding="utf-8")
    )["order"]
    return document


def canonical_order(
    external_id: str,
    *,
    version: int | None = 1,
    updated_at: str | None = "2026-11-01T10:00:00+00:00",
    system: str = "pyxis",
    **changes: Any,
) -> ServiceOrder:
    """The golden Pyxis order under another id, version and update time, with ``changes`` applied."""
    document = {**_base(), **changes}
    document.pop("hub_order_id")
    document.update(
        source_system=system,
        external_order_id=external_id,
        source_version=version,
        source_updated_at=updated_at,
    )
    return ServiceOrder.model_validate(document)


def store_orders(engine: Engine, orders: Sequence[ServiceOrder]) -> None:
    """Write ``orders`` as the processing path would (each with a fresh event id)."""
    with engine.begin() as conn:
        write_orders(
            conn,
            [
                NewOrder(order, uuid.uuid4(), TEST_MAPPING.label, TEST_MAPPING.content_hash)
                for order in orders
            ],
        )


def when(text: str) -> datetime:
    """An ISO time."""
    return datetime.fromisoformat(text)
