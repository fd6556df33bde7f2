"""Polling throughput: a backfill of ERP orders from a loopback Order Hub, beside the processor's rate.

One run measures, on the same events:

* **backfill**: ``--orders`` synthetic ERP orders served by the loopback source API
  (``tests/support/source_server.py``, a process of its own) in pages of ``--page-size``, read by
  ``saleshub poll backfill erp`` (its own process, as an operator runs it: HTTP, admit, record the
  page and its cursor in one transaction) while one processor maps them in this process (as
  ``saleshub serve`` or ``saleshub process`` would); orders/s recorded, and orders/s recorded **and**
  processed (until the processing queue is empty). ``--in-process`` runs the poller as a thread
  beside the processor instead, as ``saleshub serve``'s scheduled polls run (they share the GIL);
* **processor alone**: the same recorded events queued again (their orders, versions and outbox rows
  removed) and processed by one processor, orders/s;
* the ratio: recorded and processed / processor alone (target >= 0.8: polling costs at most 25%
  over processing).

    .venv/bin/python bench/polling.py [--orders 100000] [--page-size 500]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from adapters.source import Window  # noqa: E402
from saleshub.platform.secrets import EnvSecretStore  # noqa: E402
from saleshub.platform.settings import Settings  # noqa: E402
from saleshub.receive.polling import build_poller  # noqa: E402
from saleshub.runtime import HubRuntime, tune_collector  # noqa: E402
from saleshub.store.events import enqueue, lane_of, queue_depth  # noqa: E402
from tests.support.source_server import PASSWORD, USERNAME  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_source(orders: int) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "tests.support.source_server",
        "--port",
        str(port),
        "--erp-orders",
        str(orders),
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        raise SystemExit("the source server did not start")
    time.sleep(0.5)  # uvicorn binds after "ready"
    return process, f"http://127.0.0.1:{port}"


def open_hub(data_dir: Path, url: str, page_size: int) -> HubRuntime:
    systems = {
        "erp": {"base_url": url, "page_size": page_size, "requests_per_second": 1000, "timeout_seconds": 60}
    }
    settings = Settings(
        database={"data_dir": data_dir},  # type: ignore[arg-type]
        mappings_dir=ROOT / "mappings",
        pollers={"systems": systems},  # type: ignore[arg-type]
    )
    hub = HubRuntime.open(settings, migrate=True)
    hub.secrets = EnvSecretStore(
        {"SALESHUB_SECRET_SOURCE_ERP_USERNAME": USERNAME, "SALESHUB_SECRET_SOURCE_ERP_PASSWORD": PASSWORD}
    )
    return hub


def backfill_command(data_dir: Path, url: str, page_size: int) -> None:
    """``saleshub poll backfill erp`` as a process of its own, on the same embedded database."""
    systems = {
        "erp": {"base_url": url, "page_size": page_size, "requests_per_second": 1000, "timeout_seconds": 60}
    }
    env = {
        **{k: v for k, v in os.environ.items() if k != "SALESHUB_DATABASE__URL"},
        "SALESHUB_DATABASE__DATA_DIR": str(data_dir),
        "SALESHUB_POLLERS__SYSTEMS": json.dumps(systems),
        "SALESHUB_SECRET_SOURCE_ERP_USERNAME": USERNAME,
        "SALESHUB_SECRET_SOURCE_ERP_PASSWORD": PASSWORD,
        "SALESHUB_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "saleshub", "poll", "backfill", "erp", "--since", "2026-01-01"]
    done = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise SystemExit(f"saleshub poll backfill exited {done.returncode}")


def backfill(
    hub: HubRuntime, orders: int, data_dir: Path, url: str, page_size: int, in_process: bool
) -> tuple[float, float]:
    """Seconds until every order is recorded, and until every order is also processed."""
    stop = threading.Event()
    processor = threading.Thread(
        target=hub.processor().run, args=(stop,), kwargs={"idle_seconds": 0.2}, daemon=True
    )
    processor.start()
    started = time.perf_counter()
    if in_process:
        window = Window(since=datetime(2026, 1, 1, tzinfo=UTC))
        result = build_poller(hub, "erp").run(stream="backfill", window=window)
        if result.outcome != "completed" or result.recorded != orders:
            raise SystemExit(f"backfill {result.outcome}: {result.recorded} of {orders}; {result.error}")
    else:
        backfill_command(data_dir, url, page_size)
    recorded = time.perf_counter() - started
    while True:
        with hub.database.engine.connect() as conn:
            if queue_depth(conn)[0] == 0:
                break
        time.sleep(0.05)
    processed = time.perf_counter() - started
    stop.set()
    processor.join()
    return recorded, processed


def requeue(hub: HubRuntime) -> int:
    """Put the recorded events back on the queue as never processed, their orders removed."""
    with hub.database.engine.begin() as conn:
        conn.execute(text("TRUNCATE service_orders, service_order_versions, event_outbox"))
        rows = conn.execute(
            text(
                "UPDATE sales_system_integration_events SET status = 'accepted', errors = NULL, "
                "mapping = NULL, mapping_hash = NULL, hub_order_id = NULL, order_version_no = NULL, "
                "processing_ms = NULL, processed_at = NULL WHERE transport = 'poll' "
                "RETURNING event_id, received_at, order_key"
            )
        ).all()
        rows = sorted(rows, key=lambda row: row[1])
        enqueue(conn, [(row[0], row[1], "erp", lane_of("erp", row[2])) for row in rows])
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--in-process", action="store_true", help="poll in a thread beside the processor")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="saleshub-bench-polling-"))
    print(f"serving {args.orders:,} ERP orders from the loopback Order Hub …", flush=True)
    source, url = start_source(args.orders)
    try:
        hub = open_hub(workdir / "hub", url, args.page_size)
        tune_collector()  # as `saleshub serve` does
        try:
            recorded, processed = backfill(
                hub, args.orders, workdir / "hub", url, args.page_size, args.in_process
            )
            queued = requeue(hub)
            started = time.perf_counter()
            done = hub.processor().drain(timeout=3600)
            alone = time.perf_counter() - started
        finally:
            hub.close()
    finally:
        source.terminate()
        source.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)
    if queued != args.orders or done.events != queued:
        raise SystemExit(f"{queued} of {args.orders} orders recorded; the processor did {done.events}")
    polled_rate, both_rate, alone_rate = args.orders / recorded, args.orders / processed, queued / alone
    where = "a thread beside the processor" if args.in_process else "saleshub poll backfill, its own process"
    print(f"poller: {where}; {args.orders:,} orders in pages of {args.page_size}")
    print(f"backfill, recorded:                    {polled_rate:>9,.0f} orders/s  ({recorded:.1f} s)")
    print(f"backfill, recorded and processed:      {both_rate:>9,.0f} orders/s  ({processed:.1f} s)")
    print(f"processor alone, same events:          {alone_rate:>9,.0f} orders/s  ({alone:.1f} s)")
    print(f"polling + processing / processing:     {both_rate / alone_rate:.2f}x   (target >= 0.8x)")


if __name__ == "__main__":
    main()
