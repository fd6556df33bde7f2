"""Sealing and verifying the audit trail: ``--events`` events (and one operator action per 1,000)
spread over ``--hours`` ended hours, in an embedded PostgreSQL.

Printed, best of ``--rounds``: the seconds to seal every hour (``seal_ended``) and to verify them
(``verify``), each against its floor measured side by side: reading the same sealed columns of the
same rows without hashing (what any check must at least do).

    .venv/bin/python bench/audit_seal.py [--events 100000] [--hours 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, text  # noqa: E402

from saleshub.actions.audit_trail import period_of, seal_ended, verify  # noqa: E402
from saleshub.platform.settings import Settings  # noqa: E402
from saleshub.publish.outbox import Outbox  # noqa: E402
from saleshub.runtime import HubRuntime  # noqa: E402
from saleshub.store.seals import action_rows, event_rows  # noqa: E402

# Synthetic rows written by PostgreSQL itself (no personal data): body hash and size, headers, keys.
_FILL = text(
    "INSERT INTO sales_system_integration_events (event_id, received_at, source_system, transport, "
    "content_type, raw_body, body_sha256, body_size, idempotency_key, source_event_key, order_key, "
    "headers, status) "
    "SELECT gen_random_uuid(), :start + (i * :span / :n) * interval '1 microsecond', 'pyxis', 'webhook', "
    "'application/json', convert_to('{\"n\":' || i || '}', 'UTF8'), sha256(convert_to(i::text, 'UTF8')), "
    "800 + i % 400, 'wh_' || i, 'evt_' || i, 'PX-' || i, "
    "jsonb_build_object('webhook-id', 'wh_' || i, 'user-agent', 'bench/1.0'), 'mapped' "
    "FROM generate_series(0, :n - 1) AS i"
)
_ACTIONS = text(
    "INSERT INTO operator_actions (acted_at, subject, name, action, object_type, object_id, reason) "
    "SELECT :start + (i * :span / :n) * interval '1 microsecond', 'cli:bench', 'bench', 'events.dismiss', "
    "'event', 'e' || i, 'synthetic' FROM generate_series(0, :n - 1) AS i"
)


def read_floor(engine: Engine, start: datetime, hours: int) -> float:
    started = time.perf_counter()
    with engine.connect() as conn:
        for hour in range(hours):
            begin = start + timedelta(hours=hour)
            event_rows(conn, begin, begin + timedelta(hours=1))
            action_rows(conn, begin, begin + timedelta(hours=1))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--hours", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    start = period_of(datetime.now(UTC)) - timedelta(hours=args.hours + 1)
    span = args.hours * 3600 * 1_000_000
    workdir = Path(tempfile.mkdtemp(prefix="saleshub-bench-audit-"))
    seal_times, verify_times, floors = [], [], []
    try:
        hub = HubRuntime.open(
            Settings(database={"data_dir": workdir / "data"}, mappings_dir=ROOT / "mappings"),
            migrate=True,
        )
        try:
            engine = hub.database.engine
            with engine.begin() as conn:
                conn.execute(_FILL, {"start": start, "span": span, "n": args.events})
                conn.execute(_ACTIONS, {"start": start, "span": span, "n": max(1, args.events // 1000)})
                conn.execute(text("ANALYZE"))
            until = start + timedelta(hours=args.hours)
            for _ in range(args.rounds):
                with engine.begin() as conn:
                    conn.execute(text("DELETE FROM audit_seals"))
                    conn.execute(text("DELETE FROM event_outbox WHERE kind = 'audit_sealed'"))
                floors.append(read_floor(engine, start, args.hours))
                began = time.perf_counter()
                made = seal_ended(engine, Outbox(hub.schemas), until=until)
                seal_times.append(time.perf_counter() - began)
                began = time.perf_counter()
                result = verify(engine)
                verify_times.append(time.perf_counter() - began)
                if len(made) != args.hours or not result.intact or result.events != args.events:
                    raise SystemExit(f"unexpected: {len(made)} seals, findings {result.findings[:3]}")
        finally:
            hub.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    floor, seal, check = min(floors), min(seal_times), min(verify_times)
    print(
        f"{args.events:,} events and {max(1, args.events // 1000):,} operator actions over {args.hours} hours"
    )
    print(f"read the sealed columns (floor): {floor:.2f} s")
    print(f"seal:   {seal:.2f} s ({args.events / seal:,.0f} events/s, {seal / floor:.1f}x the floor)")
    print(f"verify: {check:.2f} s ({args.events / check:,.0f} events/s, {check / floor:.1f}x the floor)")


if __name__ == "__main__":
    main()
