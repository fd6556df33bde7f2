"""Reconciliation against a real PostgreSQL: seeded differences give exact counts per class."""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from canonical.model import ServiceOrder
from reconciliation.engine import reconcile
from reconciliation.history import compare_runs, list_runs
from reconciliation.model import Kind, Window
from reconciliation.reports.data import build_report
from reconciliation.rules import ManifestColumns, ReconciliationRules, SystemRules
from reconciliation.schedule import NightlyReconciliation
from reconciliation.sources import FileManifestReader
from saleshub.commands.common import StopSignal
from saleshub.errors import ManifestError
from saleshub.platform.settings import Settings
from saleshub.store.database import open_database
from saleshub.store.tables import integration_events
from tests.support.orders import canonical_order, store_orders

pytestmark = pytest.mark.integration

WINDOW = Window(start=datetime(2026, 11, 1, tzinfo=UTC), end=datetime(2026, 11, 2, tzinfo=UTC))
RULES = SystemRules(amount_tolerance="0.01", grace_period_minutes=30)  # type: ignore[arg-type]


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    database = open_database(Settings(database={"url": db_url, "pool_size": 4}))  # type: ignore[arg-type]
    yield database.engine
    database.close()


def key(n: int) -> str:
    return f"PYX-ES-2026-{n:06d}"


def row(order: ServiceOrder, *, with_order: bool = False, **override: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "external_order_id": order.external_order_id,
        "source_version": order.source_version,
        "updated_at": order.source_updated_at.isoformat() if order.source_updated_at else None,
        "fingerprint": order.fingerprint(),
    }
    if with_order:
        values["order"] = json.loads(order.model_dump_json())
        values.pop("fingerprint")
    values.update(override)
    return values


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(
            handle, ["external_order_id", "source_version", "updated_at", "fingerprint", "order"]
        )
        writer.writeheader()
        for values in rows:
            document = values.get("order")
            writer.writerow(
                {
                    **{k: "" if v is None else v for k, v in values.items()},
                    "order": json.dumps(document) if document is not None else "",
                }
            )
    return path


def layout_variant(order: ServiceOrder) -> dict[str, Any]:
    """The same order as the source might write it: other offsets, amount scale, line order."""
    document = json.loads(order.model_dump_json())
    document["ordered_at"] = (
        datetime.fromisoformat(document["ordered_at"]).astimezone(timezone_plus_one()).isoformat()
    )
    for line in document["lines"]:
        line["unit_price"]["amount"] = str(float(line["unit_price"]["amount"]))  # 450.0, one decimal
    document["lines"].reverse()
    return document


def timezone_plus_one() -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=1))


def seed(engine: Engine, tmp_path: Path) -> Path:
    """Hub orders and a CSV manifest with one or more orders of every class (see the counts below)."""
    now = datetime.now(UTC)
    same = [canonical_order(key(n)) for n in range(1, 21)]
    hub: list[ServiceOrder] = list(same)
    manifest = [row(o) for o in same[:10]]
    # Same content written differently by the source: an offset time, amounts at another scale and
    # lines in another order are not differences.
    manifest += [row(o, with_order=True) | {"order": layout_variant(o)} for o in same[10:]]
    # Missing in the hub.
    manifest += [row(canonical_order(key(21))), row(canonical_order(key(22)), with_order=True)]
    # Missing in the source.
    hub.append(canonical_order(key(23)))
    # Hub behind; source behind.
    hub += [canonical_order(key(24), version=2), canonical_order(key(25), version=2)]
    manifest += [row(canonical_order(key(24), version=3)), row(canonical_order(key(25), version=1))]
    # Same version, different content: one with the source's order (field differences), one not.
    hub += [canonical_order(key(26)), canonical_order(key(27))]
    manifest.append(
        row(canonical_order(key(26), status="CANCELLED", cancellation_reason="Customer"), with_order=True)
    )
    manifest.append(row(canonical_order(key(27)), fingerprint=12345))
    # An amount one cent off: within the steward's tolerance, so not a discrepancy.
    hub.append(canonical_order(key(28)))
    cent_off = json.loads(canonical_order(key(28)).model_dump_json())
    cent_off["totals"]["gross_amount"]["amount"] = str(
        round(float(cent_off["totals"]["gross_amount"]["amount"]) + 0.01, 2)
    )
    manifest.append(row(canonical_order(key(28)), with_order=True) | {"order": cent_off})
    # Listed twice by the source.
    hub.append(canonical_order(key(29)))
    manifest += [row(canonical_order(key(29)))] * 2
    # No version on the source's side, and its time in another offset: compared by time, equal.
    hub.append(canonical_order(key(30), version=None))
    manifest.append(
        row(canonical_order(key(30)), source_version=None, updated_at="2026-11-01T11:00:00+01:00")
    )
    # Updated within the grace period on the source side: left out.
    recent = (now - timedelta(minutes=5)).isoformat()
    hub.append(canonical_order(key(31), updated_at="2026-11-01T12:00:00+00:00"))
    manifest.append(row(canonical_order(key(31), version=2, updated_at=recent)))
    # A hub order outside the window and not listed: not part of this run.
    hub.append(canonical_order(key(32), updated_at="2026-10-15T10:00:00+00:00"))
    # An unreadable row.
    manifest.append(row(canonical_order(key(34)), source_version="three"))
    # The hub's copy was last updated before the window; the source updated it inside: hub behind.
    hub.append(canonical_order(key(35), updated_at="2026-10-30T10:00:00+00:00"))
    manifest.append(row(canonical_order(key(35), version=2)))
    store_orders(engine, hub)
    return write_csv(tmp_path / "pyxis-manifest.csv", manifest)


EXPECTED = {
    Kind.MISSING_IN_HUB: 2,
    Kind.MISSING_IN_SOURCE: 1,
    Kind.HUB_STALE: 2,
    Kind.SOURCE_STALE: 1,
    Kind.CONTENT_MISMATCH: 2,
    Kind.DUPLICATE_IN_SOURCE: 1,
    Kind.INVALID_MANIFEST_ROW: 1,
}


class ChangingReader(FileManifestReader):
    """A manifest whose order 1 is updated in the hub while the manifest is being read."""

    def __init__(self, engine: Engine, *args: Any) -> None:
        super().__init__(*args)
        self.engine = engine

    def chunks(self, window: Window) -> Iterator[bytes]:
        store_orders(self.engine, [canonical_order(key(1), version=2, notes="Changed meanwhile")])
        yield from super().chunks(window)


def test_seeded_differences_give_exact_counts_per_class(engine: Engine, tmp_path: Path) -> None:
    manifest = seed(engine, tmp_path)
    run_id = reconcile(engine, ChangingReader(engine, "pyxis", manifest), WINDOW, RULES)
    with engine.connect() as conn:
        report = build_report(conn, run_id)
    assert report.run.status == "completed"
    assert report.run.counts == {kind.value: count for kind, count in EXPECTED.items()}
    assert report.run.stats["young"] == 1
    assert report.run.stats["in_flight"] == 1
    assert report.run.stats["tolerated"] == 1
    assert report.run.stats["same"] == 20 - 1 + 2  # 1–20 less the one changed in flight, 29 and 30
    by_kind: dict[str, list[str]] = {}
    for finding in report.findings:
        by_kind.setdefault(finding.kind, []).append(finding.external_order_id)
    assert sorted(by_kind[Kind.HUB_STALE]) == [key(24), key(35)]
    assert by_kind[Kind.MISSING_IN_SOURCE] == [key(23)]
    assert by_kind[Kind.DUPLICATE_IN_SOURCE] == [key(29)]
    mismatch = next(f for f in report.findings if f.external_order_id == key(26))
    fields = {d.field: d for d in mismatch.field_differences}
    assert set(fields) == {"status", "cancellation_reason"}
    assert (fields["status"].hub, fields["status"].source) == ("CONFIRMED", "CANCELLED")
    invalid = next(f for f in report.findings if f.kind == Kind.INVALID_MANIFEST_ROW)
    assert invalid.detail is not None
    assert "source_version is not a whole number" in invalid.detail
    assert invalid.detail.startswith("line ")
    # Tenancy of an order the hub lacks comes from the order the source sent with the manifest row.
    assert report.by_country["ES"][Kind.MISSING_IN_HUB] == 1
    assert report.by_country["unknown"][Kind.MISSING_IN_HUB] == 1


def test_composite_keys_in_json_lines(engine: Engine, tmp_path: Path) -> None:
    """An ERP-style manifest naming an order by business unit and number; the hub key joins them."""
    orders = [canonical_order(f"LM-ES:{n}", system="erp") for n in (100, 101, 102)]
    store_orders(engine, orders[:2])
    lines = []
    for order in orders[1:]:
        bu, number = order.external_order_id.split(":")
        lines.append(
            json.dumps({"bu": bu, "number": number, "source_version": 1, "fingerprint": order.fingerprint()})
        )
    lines.append("")  # a blank line is not a row
    lines.append('{"bu": "LM-ES", "number": "103", "source_version": 1, "note": "tab\\there"}')
    path = tmp_path / "erp.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rules = SystemRules(grace_period_minutes=0, manifest=ManifestColumns(key_columns=["bu", "number"]))
    run_id = reconcile(engine, FileManifestReader("erp", path), WINDOW, rules)
    with engine.connect() as conn:
        report = build_report(conn, run_id)
    assert report.run.counts == {"missing_in_hub": 2, "missing_in_source": 1}
    assert sorted(f.external_order_id for f in report.findings) == ["LM-ES:100", "LM-ES:102", "LM-ES:103"]


def test_a_manifest_without_its_key_column_fails_the_run_with_file_and_line(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("order_ref,source_version\nX,1\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"bad.csv:1: the header lacks the key column"):
        reconcile(engine, FileManifestReader("pyxis", path), WINDOW, RULES)
    with engine.connect() as conn:
        (stored,) = list_runs(conn)
    assert stored.status == "failed"
    assert stored.error is not None
    assert "external_order_id" in stored.error


class StoppedReader(FileManifestReader):
    """A manifest whose reading is cut short by SIGTERM (the command's handler raises ``StopSignal``)."""

    def chunks(self, window: Window) -> Iterator[bytes]:
        raise StopSignal(15)
        yield b""


def test_a_run_stopped_by_a_signal_is_marked_failed(engine: Engine, tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "m.csv", [row(canonical_order(key(1)))])
    with pytest.raises(StopSignal):
        reconcile(engine, StoppedReader("pyxis", manifest), WINDOW, RULES)
    with engine.connect() as conn:
        (stored,) = list_runs(conn)
    assert (stored.status, stored.error) == ("failed", "stopped before the end (StopSignal)")


def test_two_runs_compared(engine: Engine, tmp_path: Path) -> None:
    store_orders(engine, [canonical_order(key(n)) for n in (1, 2, 3)])
    first = write_csv(tmp_path / "a.csv", [row(canonical_order(key(n))) for n in (1, 4)])
    run_a = reconcile(engine, FileManifestReader("pyxis", first), WINDOW, RULES)
    store_orders(engine, [canonical_order(key(4))])
    second = write_csv(tmp_path / "b.csv", [row(canonical_order(key(n))) for n in (1, 2, 4, 5)])
    run_b = reconcile(engine, FileManifestReader("pyxis", second), WINDOW, RULES)
    with engine.connect() as conn:
        comparison = compare_runs(conn, run_a, run_b)
        runs = list_runs(conn)
    assert [r.run_id for r in runs] == [run_b, run_a]
    assert {(f.kind, f.external_order_id) for f in comparison.new} == {(Kind.MISSING_IN_HUB, key(5))}
    assert {(f.kind, f.external_order_id) for f in comparison.resolved} == {
        (Kind.MISSING_IN_HUB, key(4)),
        (Kind.MISSING_IN_SOURCE, key(2)),
    }
    assert comparison.still_open == 1  # key 3, missing in the source in both runs
    assert comparison.oldest_open is not None
    assert comparison.oldest_open.external_order_id == key(3)
    assert comparison.oldest_open.first_seen_at == runs[1].started_at


def test_error_rate_and_the_nightly_job(engine: Engine, tmp_path: Path) -> None:
    """The report's error rate counts the window's events; the nightly job reconciles yesterday."""
    events = [("mapped", "webhook")] * 97 + [("quarantined", "webhook")] * 3 + [("quarantined", "replay")]
    with engine.begin() as conn:
        conn.execute(
            insert(integration_events),
            [
                {
                    "event_id": uuid.uuid4(),
                    "received_at": datetime(2026, 11, 1, 12, tzinfo=UTC),
                    "source_system": "pyxis",
                    "transport": transport,
                    "body_sha256": b"0" * 32,
                    "body_size": 2,
                    "idempotency_key": f"k{i}",
                    "status": status,
                }
                for i, (status, transport) in enumerate(events)
            ],
        )
    store_orders(engine, [canonical_order(key(1))])
    manifest = write_csv(tmp_path / "nightly.csv", [row(canonical_order(key(1)))])
    job = NightlyReconciliation(
        engine=engine,
        rules=ReconciliationRules(version=1),
        readers={"pyxis": FileManifestReader("pyxis", manifest)},
        clock=lambda: datetime(2026, 11, 2, 2, 30, tzinfo=UTC),
    )
    outcome = job()
    run_id = uuid.UUID(outcome["pyxis"])
    with engine.connect() as conn:
        report = build_report(conn, run_id)
    assert report.run.window == WINDOW
    assert report.run.counts == {}
    assert (report.events_received, report.events_quarantined) == (100, 3)
    assert report.error_rate == pytest.approx(0.03)


def test_rows_with_too_few_or_too_many_columns_are_invalid_rows_not_a_failed_run(
    engine: Engine, tmp_path: Path
) -> None:
    orders = [canonical_order(key(n)) for n in (1, 2, 3)]
    store_orders(engine, orders)
    good = [f"{o.external_order_id},{o.source_version},{o.fingerprint()}" for o in orders]
    path = tmp_path / "ragged.csv"
    lines = ["external_order_id,source_version,fingerprint", good[0], f"{good[1]},extra", key(9), good[2]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run_id = reconcile(engine, FileManifestReader("pyxis", path), WINDOW, RULES)
    with engine.connect() as conn:
        report = build_report(conn, run_id)
    assert report.run.status == "completed"
    invalid = sorted(f.detail or "" for f in report.findings if f.kind == Kind.INVALID_MANIFEST_ROW)
    assert invalid == [
        "line 3: the row has 4 values, the header 3",
        "line 4: the row has 1 values, the header 3",
    ]
    assert report.run.stats["same"] == 2  # lines 2 and 5 compared as usual


@pytest.mark.parametrize("word", ["yesterday", "now", "infinity", "today", "-infinity", "epoch"])
def test_only_real_dates_and_times_are_read(engine: Engine, tmp_path: Path, word: str) -> None:
    orders = [canonical_order(key(n)) for n in (1, 2)]
    store_orders(engine, orders)
    manifest = write_csv(tmp_path / "words.csv", [row(orders[0]), row(orders[1], updated_at=word)])
    run_id = reconcile(engine, FileManifestReader("pyxis", manifest), WINDOW, RULES)
    with engine.connect() as conn:
        report = build_report(conn, run_id)
    # The row cannot be compared, so the hub's order counts as not listed (as for any unreadable row).
    assert report.run.counts == {Kind.INVALID_MANIFEST_ROW.value: 1, Kind.MISSING_IN_SOURCE.value: 1}
    (invalid,) = [f for f in report.findings if f.kind == Kind.INVALID_MANIFEST_ROW]
    assert invalid.external_order_id == key(2)
    assert invalid.detail == "line 3: updated_at is not a date and time"


def test_the_command_line(
    engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from saleshub.cli import app

    monkeypatch.setenv("SALESHUB_DATABASE__URL", db_url)
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    store_orders(engine, [canonical_order(key(n)) for n in (1, 2)])
    manifest = write_csv(tmp_path / "m.csv", [row(canonical_order(key(n))) for n in (1, 3)])
    window = ["--from", "2026-11-01", "--to", "2026-11-02", "--source-file", str(manifest)]
    first = runner.invoke(app, ["reconcile", "run", "pyxis", *window])
    assert first.exit_code == 0, first.output
    assert "Missing in the hub" in first.output
    second = runner.invoke(app, ["reconcile", "run", "pyxis", *window, "--grace", "0"])
    assert second.exit_code == 0, second.output
    with engine.connect() as conn:
        run_b, run_a = (r.run_id for r in list_runs(conn))
    listed = runner.invoke(app, ["reconcile", "runs"])
    assert str(run_a) in listed.output
    assert str(run_b) in listed.output
    compared = runner.invoke(app, ["reconcile", "compare", str(run_a), str(run_b)])
    assert compared.exit_code == 0, compared.output
    assert "0 new" in compared.output
    assert "oldest open" in compared.output
    # The first characters of an id, as a narrow `reconcile runs` table shows them, are enough.
    by_prefix = runner.invoke(app, ["reconcile", "compare", str(run_a)[:8], str(run_b)[:8]])
    assert by_prefix.exit_code == 0, by_prefix.output
    assert by_prefix.output == compared.output
    unknown = runner.invoke(app, ["reconcile", "report", "ffffffff-ff"])
    assert unknown.exit_code == 1 and "no reconciliation run starts with 'ffffffff-ff'" in unknown.output
    out = tmp_path / "r.csv"
    written = runner.invoke(
        app, ["reconcile", "report", str(run_b)[:8], "--format", "csv", "--output", str(out)]
    )
    assert written.exit_code == 0, written.output
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3  # header, missing in hub, missing in source
    healing = runner.invoke(app, ["reconcile", "run", "pyxis", *window, "--heal"])
    assert healing.exit_code == 2
    assert "--heal reads pyxis's API, but SALESHUB_POLLERS__SYSTEMS has no entry 'pyxis'" in healing.output
