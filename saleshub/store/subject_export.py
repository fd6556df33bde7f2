"""The reads of a subject's export that are not orders or events: linking and reconciliation rows.

Every row is returned whole, as JSON-ready values (ids, times and numbers as text where JSON has no
type for them), so the export shows what the hub holds, not a selection of it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, text

__all__ = ["subject_links_and_findings"]

_IDS = "ANY(CAST(:ids AS uuid[]))"
_RECORDS = f"SELECT record_id FROM customer_records WHERE hub_order_id = {_IDS}"
_READS = {
    "customer_records": f"SELECT * FROM customer_records WHERE hub_order_id = {_IDS} ORDER BY record_id",
    "customer_links": f"SELECT * FROM customer_links WHERE record_l IN ({_RECORDS}) "
    f"OR record_r IN ({_RECORDS}) ORDER BY record_l, record_r",
    "reconciliation_findings": f"SELECT * FROM reconciliation_findings WHERE hub_order_id = {_IDS} "
    "ORDER BY finding_id",
    "cross_system_conflicts": f"SELECT * FROM cross_system_conflicts WHERE left_hub_order_id = {_IDS} "
    f"OR right_hub_order_id = {_IDS} ORDER BY conflict_id",
}


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value


def subject_links_and_findings(
    conn: Connection, order_ids: Sequence[uuid.UUID]
) -> dict[str, list[dict[str, Any]]]:
    """``{table: [row, …]}`` of the linking and reconciliation rows about these orders."""
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in _READS}
    if not order_ids:
        return found
    for name, query in _READS.items():
        rows = conn.execute(text(query), {"ids": list(order_ids)})
        found[name] = [{k: _plain(v) for k, v in row._mapping.items()} for row in rows]
    return found
