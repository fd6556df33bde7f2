"""The comparison engine (DuckDB) against the store's path (PostgreSQL): the same findings, every class.

A CSV manifest of plainly readable rows without orders is compared in DuckDB; the same rows as JSON
lines are staged in PostgreSQL. Both runs must agree on every finding, count and figure. Values
DuckDB would read but PostgreSQL would not (``1.5`` as a version, ``epoch`` as a time) must still be
unreadable rows reported by their line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from canonical.model import ServiceOrder
from reconciliation import comparison
from reconciliation.engine import ERASED_RULE, reconcile
from reconciliation.model import Kind, Window
from reconciliation.reports.data import build_report
from reconciliation.rules import SystemRules
from reconciliation.sources import FileManifestReader
from saleshub.platform.settings import Settings
from saleshub.store import findings
from saleshub.store.database import open_database
from saleshub.store.manifest import ManifestLayout
from tests.support.orders import canonical_order, store_orders

pytestmark = pytest.mark.integration

WINDOW = Window(start=datetime(2026, 11, 1, tzinfo=UTC), end=datetime(2026, 11, 2, tzinfo=UTC))
RULES = SystemRules(grace_period_minutes=30)
COLUMNS = ["external_order_id", "source_version", "updated_at", "fingerprint", "country_code"]


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    database = open_database(Settings(database={"url": db_url, "pool_size": 4}))  # type: ignore[arg-type]
    yield database.engine
    database.close()


def key(n: int) -> str:
    return f"PYX-ES-2026-{n:06d}"


def row(order: ServiceOrder, **override: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "external_order_id": order.external_order_id,
        "source_version": order.source_version,
        "updated_at": order.source_updated_at.isoformat() if order.source_updated_at else None,
        "fingerprint": order.fingerprint(),
        "country_code": None,
    }
    values.update(override)
    return values


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        for values in rows:
            writer.writerow({k: "" if v is None else v for k, v in values.items()})
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    lines = [json.dumps({k: v for k, v in values.items() if v is not None}) for values in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def seed(engine: Engine) -> list[dict[str, Any]]:
    """Hub orders, and manifest rows with every class the engine decides (no orders carried)."""
    recent = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    same = [canonical_order(key(n)) for n in range(1, 11)]
    hub: list[ServiceOrder] = list(same)
    rows = [row(o) for o in same]
    rows.append(row(canonical_order(key(21)), country_code="FR"))  # missing in the hub
    hub.append(canonical_order(key(23)))  # missing in the source
    hub += [canonical_order(key(24), version=2), canonical_order(key(25), version=2)]
    rows += [row(canonical_order(key(24), version=3)), row(canonical_order(key(25), version=1))]
    hub.append(canonical_order(key(27)))
    rows.append(row(canonical_order(key(27)), fingerprint=12345))  # same version, other content
    # Listed three times: the newest (highest version) is compared.
    hub.append(canonical_order(key(29), version=2))
    rows += [row(canonical_order(key(29), version=v)) for v in (1, 2, 1)]
    # No version: compared by time; equal in another offset, and one an hour apart.
    hub += [canonical_order(key(30), version=None), canonical_order(key(36), version=None)]
    rows.append(row(canonical_order(key(30)), source_version=None, updated_at="2026-11-01T11:00:00+01:00"))
    rows.append(row(canonical_order(key(36)), source_version=None, updated_at="2026-11-01T12:00:00+00:00"))
    hub.append(canonical_order(key(31), updated_at="2026-11-01T12:00:00+00:00"))  # young on the source side
    rows.append(row(canonical_order(key(31), version=2, updated_at=recent)))
    hub.append(canonical_order(key(32), updated_at="2026-10-15T10:00:00+00:00"))  # outside, not listed
    hub.append(canonical_order(key(35), updated_at="2026-10-30T10:00:00+00:00"))  # hub's copy before
    rows.append(row(canonical_order(key(35), version=2)))
    rows.append(row(canonical_order(key(37), updated_at="2026-11-05T10:00:00+00:00")))  # outside
    odd = 'PYX,"7"'  # a key with a comma and quotes, on both sides
    hub.append(canonical_order(odd))
    rows.append(row(canonical_order(odd), fingerprint=1))
    store_orders(engine, hub)
    return rows


def outcome(engine: Engine, path: Path) -> tuple[dict[str, int], dict[str, int], list[tuple[Any, ...]]]:
    run_id = reconcile(engine, FileManifestReader("pyxis", path), WINDOW, RULES)
    with engine.connect() as conn:
        report = build_report(conn, run_id)
        stored = findings.findings(conn, run_id)
    assert report.run.status == "completed"
    # Everything but when it was first seen (the second run sees the first run's findings as open).
    found = sorted(tuple(v for k, v in f.items() if k != "first_seen_at") for f in stored)
    return report.run.counts, report.run.stats, found


def test_the_engine_and_the_store_find_the_same(engine: Engine, tmp_path: Path) -> None:
    rows = seed(engine)
    csv_path = write_csv(tmp_path / "pyxis.csv", rows)
    taken = comparison.compare(
        FileManifestReader("pyxis", csv_path),
        ManifestLayout(),
        WINDOW,
        timezone="UTC",
        snapshot=lambda _out: None,
        progress=lambda _phase: None,
    )
    assert taken is not None  # this manifest goes through the engine
    by_engine = outcome(engine, csv_path)
    by_store = outcome(engine, write_jsonl(tmp_path / "pyxis.jsonl", rows))
    # The same but for the lines of the repeated key: a JSON-lines file has no header line.
    assert by_engine[:2] == by_store[:2]
    assert [f[:-1] for f in by_engine[2]] == [f[:-1] for f in by_store[2]]
    assert [f[-1] for f in by_store[2] if f[-1]] == ["listed 3 times, on lines 15, 16, 17"]
    counts, stats, found = by_engine
    assert counts == {
        Kind.MISSING_IN_HUB.value: 1,
        Kind.MISSING_IN_SOURCE.value: 1,
        Kind.HUB_STALE.value: 3,
        Kind.SOURCE_STALE.value: 1,
        Kind.CONTENT_MISMATCH.value: 2,
        Kind.DUPLICATE_IN_SOURCE.value: 1,
    }
    assert stats["manifest_rows"] == len(rows)
    assert stats["compared_manifest_rows"] == len(rows) - 2
    assert (stats["young"], stats["same"]) == (1, 12)
    duplicate = next(f for f in found if f[0] == Kind.DUPLICATE_IN_SOURCE)
    assert (duplicate[1], duplicate[-1]) == (key(29), "listed 3 times, on lines 16, 17, 18")
    missing = next(f for f in found if f[0] == Kind.MISSING_IN_HUB)
    assert (missing[1], missing[3]) == (key(21), "FR")
    assert any(f[1] == 'PYX,"7"' and f[0] == Kind.CONTENT_MISMATCH for f in found)
    assert any(f[1] == key(36) and f[0] == Kind.HUB_STALE for f in found)


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("source_version", "1.5", "source_version is not a whole number"),
        ("source_version", "1e3", "source_version is not a whole number"),
        ("fingerprint", "12.0", "fingerprint is not a signed 64-bit integer"),
        ("fingerprint", "9223372036854775808", "fingerprint is not a signed 64-bit integer"),
        ("updated_at", "epoch", "updated_at is not a date and time"),
        ("updated_at", "infinity", "updated_at is not a date and time"),
    ],
)
def test_values_only_duckdb_would_read_are_unreadable_rows(
    engine: Engine, tmp_path: Path, column: str, value: str, problem: str
) -> None:
    orders = [canonical_order(key(n)) for n in (1, 2)]
    store_orders(engine, orders)
    path = write_csv(tmp_path / "m.csv", [row(orders[0]), row(orders[1], **{column: value})])
    run_id = reconcile(engine, FileManifestReader("pyxis", path), WINDOW, RULES)
    with engine.connect() as conn:
        report = build_report(conn, run_id)
    (invalid,) = [f for f in report.findings if f.kind == Kind.INVALID_MANIFEST_ROW]
    assert invalid.external_order_id == key(2)
    assert invalid.detail == f"line 3: {problem}"
    assert report.run.stats["same"] == 1


def test_an_empty_window_and_manifest(engine: Engine, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "empty.csv", [])
    run_id = reconcile(engine, FileManifestReader("pyxis", path), WINDOW, RULES)
    with engine.connect() as conn:
        report = build_report(conn, run_id)
    assert report.run.counts == {}
    assert report.run.stats["manifest_rows"] == 0


def test_an_erased_order_is_compared_by_version_and_fingerprint_and_says_so(
    engine: Engine, tmp_path: Path
) -> None:
    rows = seed(engine)
    with engine.begin() as conn:  # as `saleshub privacy erase` leaves it: keys gone, facts kept
        conn.execute(
            text(
                "DELETE FROM data_keys WHERE key_id = (SELECT data_key_id FROM service_orders "
                "WHERE external_order_id = :k)"
            ),
            {"k": key(27)},
        )
        conn.execute(
            text("UPDATE service_orders SET erased_at = now() WHERE external_order_id = :k"), {"k": key(27)}
        )
    run_id = reconcile(
        engine, FileManifestReader("pyxis", write_jsonl(tmp_path / "m.jsonl", rows)), WINDOW, RULES
    )
    with engine.connect() as conn:
        found = {f["external_order_id"]: f for f in findings.findings(conn, run_id)}
    assert found[key(27)]["kind"] == Kind.CONTENT_MISMATCH
    assert found[key(27)]["field_differences"] == [
        {"field": "order", "hub": None, "source": None, "rule": ERASED_RULE}
    ]
