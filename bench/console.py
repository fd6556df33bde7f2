"""Console page times with many stored events: p50/p95 per page over loopback, logged in over OIDC.

An embedded PostgreSQL is filled with ``--events`` synthetic events (one in a hundred quarantined)
and ``--orders`` orders, spread over the last ``--days`` (each inserted by one SQL statement), a hub
with the console is served by uvicorn in this process, a steward logs in through a real OIDC
provider (oidc-provider-mock, the same code flow as a browser), and each page is fetched
``--repeat`` times. The side-by-side baseline is ``/health/live`` on the same server and client (the
stack's floor); each page's p95 is printed with its ratio to it.

    .venv/bin/python bench/console.py [--events 1000000] [--orders 200000] [--days 30] [--repeat 40]
        [--drop-index ix_service_orders_updated]   # the baseline without an index
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from saleshub.console.app import create_hub_app  # noqa: E402
from saleshub.platform.secrets import EnvSecretStore  # noqa: E402
from saleshub.platform.settings import Settings  # noqa: E402
from saleshub.runtime import HubRuntime  # noqa: E402
from saleshub.store.embedded import EmbeddedPostgres  # noqa: E402
from saleshub.store.migrate import upgrade  # noqa: E402
from saleshub.store.partitions import ensure_partitions  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import oidc_provider_mock
    from oidc_provider_mock import User

FILL = """
INSERT INTO sales_system_integration_events (
    event_id, received_at, source_system, transport, event_type, content_type, raw_body, body_sha256,
    body_size, idempotency_key, order_key, status, errors, mapping, processed_at)
SELECT gen_random_uuid(), now() - i * (:span / :n) * interval '1 second',
       (ARRAY['pyxis', 'tempo', 'erp'])[1 + i % 3], 'webhook', 'CREATED', 'application/json',
       convert_to('{"order": ' || i || '}', 'UTF8'), sha256(convert_to(i::text, 'UTF8')), 16,
       'bench-' || i, 'PX-' || i,
       CASE WHEN i % 100 = 0 THEN 'quarantined' ELSE 'mapped' END,
       CASE WHEN i % 100 = 0 THEN '{"stage": "map", "message": "1 field", "fields":
           [{"target": "sales_channel", "source": "channel", "rule": "no crosswalk row"}]}'::jsonb END,
       'pyxis/order@bench', now()
FROM generate_series(1, :n) AS i
"""

ORDERS = """
INSERT INTO service_orders (
    hub_order_id, source_system, external_order_id, country_code, bu_code, store_code, sales_channel,
    service_type, status, content, fingerprint, mapping, mapping_hash, version_no, last_event_id,
    updated_at)
SELECT gen_random_uuid(), (ARRAY['pyxis', 'tempo', 'erp'])[1 + i % 3], 'BENCH-' || i, 'ES', 'ES01',
       '042', 'IN_STORE', 'INSTALLATION', 'CONFIRMED', '{}'::jsonb, i, 'pyxis/order@bench', 'bench', 1,
       gen_random_uuid(), now() - i * (:span / :n) * interval '1 second'
FROM generate_series(1, :n) AS i
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument(
        "--drop-index", action="append", default=[], help="measure without this index (a baseline)"
    )
    parser.add_argument("--days", type=int, default=30, help="the events are spread over this many days")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)
        server = EmbeddedPostgres(workdir / "pg")
        url = server.start()
        try:
            admin = create_engine(url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text("CREATE DATABASE bench"))
            admin.dispose()
            bench_url = make_url(url).set(database="bench")
            engine = create_engine(bench_url)
            upgrade(engine)
            started = time.perf_counter()
            with engine.begin() as conn:
                ensure_partitions(conn, now=datetime.now(UTC) - timedelta(days=args.days), ahead=3)
                ensure_partitions(conn)
                conn.execute(text(FILL), {"n": args.events, "span": args.days * 86400.0})
                conn.execute(text(ORDERS), {"n": args.orders, "span": args.days * 86400.0})
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE sales_system_integration_events"))
                for index in args.drop_index:
                    conn.execute(text(f'DROP INDEX "{index}"'))
                conn.execute(text("ANALYZE service_orders"))
            taken = time.perf_counter() - started
            print(
                f"stored {args.events:,} events and {args.orders:,} orders over the last {args.days} days "
                f"in {taken:.1f} s"
            )
            engine.dispose()
            measure(bench_url.render_as_string(hide_password=False), args.repeat, args.events, args.orders)
        finally:
            server.stop()


def measure(url: str, repeat: int, events: int, args_orders: int) -> None:
    users = [User(sub="stella", claims={"name": "Stella Steward", "groups": ["stewards"]})]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        provider_server = oidc_provider_mock.run_server_in_thread(user_claims=users)
    with provider_server as provider:
        issuer = f"http://localhost:{provider.server_port}"
        settings = Settings(
            database={"url": url},  # type: ignore[arg-type]
            console={  # type: ignore[arg-type]
                "issuer": issuer,
                "client_id": "bench",
                "roles": {"stewards": "steward"},
                "insecure_cookies": True,
            },
        )
        hub = HubRuntime.open(settings)
        hub.secrets = EnvSecretStore({"SALESHUB_SECRET_CONSOLE_CLIENT_SECRET": "bench-secret"})
        config = uvicorn.Config(create_hub_app(hub), host="127.0.0.1", port=0, log_level="warning")
        web = uvicorn.Server(config)
        thread = threading.Thread(target=web.run, daemon=True)
        thread.start()
        while not web.started:
            time.sleep(0.05)
        port = web.servers[0].sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(follow_redirects=True, timeout=60) as client:
                form = client.get(f"{base}/console/login")
                landed = client.post(str(form.url), data={"sub": "stella"})
                assert landed.url.path == "/console/", landed.url
                with hub.database.engine.connect() as conn:
                    middle = conn.execute(
                        text(
                            "SELECT received_at FROM sales_system_integration_events ORDER BY received_at "
                            "OFFSET :half LIMIT 1"
                        ),
                        {"half": events // 2},
                    ).scalar_one()
                    key = conn.execute(
                        text(
                            "SELECT updated_at, hub_order_id FROM service_orders "
                            "ORDER BY updated_at DESC, hub_order_id DESC OFFSET :half LIMIT 1"
                        ),
                        {"half": args_orders // 2},
                    ).one()
                    one = conn.execute(
                        text(
                            "SELECT event_id FROM sales_system_integration_events "
                            "WHERE status = 'quarantined' LIMIT 1"
                        )
                    ).scalar_one()
                older = urllib.parse.quote(middle.isoformat())
                order_page = urllib.parse.urlencode(
                    {"before": key.updated_at.isoformat(), "before_id": str(key.hub_order_id)}
                )
                pages = {
                    "/health/live (baseline)": "/health/live",
                    "dashboard": "/console/",
                    "quarantine, first page": "/console/events",
                    "quarantined (all), first page": "/console/events?status=quarantined",
                    "quarantine, an old page": f"/console/events?before={older}",
                    "all events, first page": "/console/events?status=",
                    "one event": f"/console/events/{one}",
                    "orders": "/console/orders",
                    "orders, a page halfway back": f"/console/orders?{order_page}",
                    "orders of one system": "/console/orders?system=tempo",
                    "pollers": "/console/pollers",
                    "mapping history": "/console/mappings",
                    "audit": "/console/audit",
                }
                times: dict[str, list[float]] = {}
                for name, path in pages.items():
                    client.get(base + path)  # warm
                    samples = []
                    for _ in range(repeat):
                        start = time.perf_counter()
                        answer = client.get(base + path)
                        samples.append((time.perf_counter() - start) * 1000)
                        assert answer.status_code == 200, (path, answer.status_code)
                    times[name] = samples
            floor = percentile(times["/health/live (baseline)"], 0.95)
            print(f"{'page':28} {'p50 ms':>8} {'p95 ms':>8} {'p95 / baseline':>15}")
            for name, samples in times.items():
                p95 = percentile(samples, 0.95)
                print(f"{name:28} {statistics.median(samples):8.1f} {p95:8.1f} {p95 / floor:15.1f}")
        finally:
            web.should_exit = True
            thread.join(timeout=10)
            hub.close()


if __name__ == "__main__":
    main()
