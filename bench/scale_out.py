"""Scale-out: N receivers and M processors as separate processes against one PostgreSQL.

Each configuration ``NxM`` gets a fresh database on the same PostgreSQL server, then starts N
``saleshub serve --receive-only`` processes (one web worker each, on ports of their own) and M
``saleshub process`` processes (one thread each), the roles the Kubernetes chart runs as
Deployments. A closed-loop load generator (the minimal keep-alive client of ``bench/ingest.py``)
keeps ``--connections`` connections busy for ``--seconds``, spread over the receivers; each
connection posts its own orders, ``--versions`` signed versions of an order one after the other
(each waits for the previous 202), so the order of an order's versions is fixed at receipt. When the
time is up the benchmark waits for the processors to empty the queue, then reports:

* intake: webhooks/s answered 202 over the load window;
* processed: events/s from the start of the load until the queue was empty (end to end, the
  processors' throughput when they are the bottleneck), and the backlog left when the load ended;
* drain: events/s the processors worked off that backlog at, the load generator and the receivers
  then idle (the processors' own throughput on the cores they then have);
* the guarantees, from the database: events processed more than once (an event with two order
  versions, or a version from two events) and orders whose versions were committed in another
  order than their events were received; both must be 0;
* each configuration's throughput as a ratio of the 1x1 run beside it.

The total number of connections stays the same in every configuration, so the load generator's
own cost does not change with N. On a machine with fewer cores than processes the processes share
the cores with PostgreSQL and the load generator: the ratios then show what the cores allow, not
what the hub would do with a core per process. Run the same script on a larger machine (and with
``--database-url`` against its PostgreSQL, whose server then needs ``CREATE DATABASE``):

    .venv/bin/python bench/scale_out.py [--grid 1x1 2x1 1x2 2x2] [--seconds 15] [--connections 16]
        [--versions 4] [--database-url postgresql+psycopg://user:pw@host/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.ingest import SECRET, exchange  # noqa: E402
from tests.support.synthetic import pyxis_event, signed_headers  # noqa: E402


@dataclass
class Outcome:
    receivers: int
    processors: int
    requests: int
    load_seconds: float
    drained_seconds: float
    backlog_at_end: int
    non_202: int
    twice: int
    out_of_order: int
    not_mapped: int

    @property
    def intake(self) -> float:
        return self.requests / self.load_seconds

    @property
    def processed(self) -> float:
        return self.requests / self.drained_seconds

    @property
    def drain(self) -> float:
        """Events/s of the processors alone, on the backlog left when the load stopped."""
        after = self.drained_seconds - self.load_seconds
        return self.backlog_at_end / after if self.backlog_at_end and after > 0 else 0.0


def request(order: int, version: int) -> bytes:
    body = pyxis_event(
        order,
        revision=version,
        event_type="order.created" if version == 1 else "order.updated",
        notes=f"version {version}",
    )
    headers = signed_headers(SECRET, f"scale-{order}-{version}", body)
    lines = [b"POST /webhooks/pyxis HTTP/1.1", b"host: 127.0.0.1", f"content-length: {len(body)}".encode()]
    lines += [f"{name}: {value}".encode() for name, value in headers.items()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def orders_of(connection: int, connections: int, versions: int) -> Iterator[list[bytes]]:
    """Connection ``connection``'s orders (every connections-th), each as its versions' requests."""
    order = connection
    while True:
        yield [request(order, version) for version in range(1, versions + 1)]
        order += connections


async def load(ports: list[int], connections: int, versions: int, seconds: float) -> tuple[int, int, float]:
    """Closed loop for ``seconds``: (requests answered, non-202 answers, seconds taken).

    The deadline is checked between orders, so no order is left with only some of its versions sent.
    """
    deadline = time.perf_counter() + seconds
    done = bad = 0

    async def client(number: int) -> None:
        nonlocal done, bad
        reader, writer = await asyncio.open_connection("127.0.0.1", ports[number % len(ports)])
        for order in orders_of(number, connections, versions):
            if time.perf_counter() > deadline:
                break
            for payload in order:
                status = await exchange(reader, writer, payload)
                done += 1
                bad += status != 202
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(number) for number in range(connections)))
    return done, bad, time.perf_counter() - started


def wait_ready(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} not ready within 180 s")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def fresh_database(server_url: str, name: str) -> Iterator[str]:
    """A new, migrated database ``name`` on the server of ``server_url``; dropped afterwards."""
    from saleshub.store.migrate import upgrade
    from saleshub.store.partitions import ensure_partitions

    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        ensure_partitions(conn)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def queue_depth(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM event_queue")).scalar_one())
    finally:
        engine.dispose()


def guarantees(url: str) -> tuple[int, int, int]:
    """(events processed twice, orders whose versions are out of receipt order, events not mapped)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            twice = conn.execute(
                text(
                    "SELECT count(*) FROM (SELECT hub_order_id, order_version_no FROM "
                    "sales_system_integration_events WHERE hub_order_id IS NOT NULL "
                    "GROUP BY 1, 2 HAVING count(*) > 1) AS repeated"
                )
            ).scalar_one()
            twice += conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM service_order_versions) - "
                    "(SELECT count(*) FROM sales_system_integration_events WHERE status = 'mapped')"
                )
            ).scalar_one()
            # Per order: the versions committed (version_no) must follow the events' receipt order.
            out_of_order = conn.execute(
                text(
                    "SELECT count(DISTINCT hub_order_id) FROM ("
                    "  SELECT hub_order_id, order_version_no,"
                    "         row_number() OVER (PARTITION BY hub_order_id ORDER BY received_at, event_id)"
                    "           AS by_receipt,"
                    "         row_number() OVER (PARTITION BY hub_order_id ORDER BY order_version_no)"
                    "           AS by_version"
                    "  FROM sales_system_integration_events WHERE hub_order_id IS NOT NULL"
                    ") AS versions WHERE by_receipt <> by_version"
                )
            ).scalar_one()
            not_mapped = conn.execute(
                text("SELECT count(*) FROM sales_system_integration_events WHERE status <> 'mapped'")
            ).scalar_one()
        return int(twice), int(out_of_order), int(not_mapped)
    finally:
        engine.dispose()


def start(args: list[str], url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SALESHUB_")}
    env |= {
        "SALESHUB_DATABASE__URL": url,
        "SALESHUB_DATABASE__POOL_SIZE": "8",
        "SALESHUB_WEB__WORKERS": "1",
        "SALESHUB_PROCESSOR__THREADS": "1",
        "SALESHUB_LOG_LEVEL": "WARNING",
        "SALESHUB_SECRET_WEBHOOK_PYXIS": SECRET,
    }
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "saleshub", *args], cwd=ROOT, env=env, stdout=sink, stderr=sink
        )


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)


def run(server_url: str, receivers: int, processors: int, args: argparse.Namespace, logs: Path) -> Outcome:
    with fresh_database(server_url, f"scale_{receivers}x{processors}") as url:
        processes: list[subprocess.Popen[bytes]] = []
        try:
            ports = []
            for number in range(receivers):
                port = free_port()
                process = start(
                    ["serve", "--receive-only", "--port", str(port)], url, logs / f"receiver-{number}.log"
                )
                processes.append(process)
                wait_ready(f"http://127.0.0.1:{port}/health/ready", process, "a receiver")
                ports.append(port)
            for number in range(processors):
                health = free_port()
                process = start(
                    ["process", "--health-port", str(health)], url, logs / f"processor-{number}.log"
                )
                processes.append(process)
                wait_ready(f"http://127.0.0.1:{health}/health/ready", process, "a processor")
            started = time.perf_counter()
            done, bad, load_seconds = asyncio.run(load(ports, args.connections, args.versions, args.seconds))
            backlog = queue_depth(url)
            while queue_depth(url):
                time.sleep(0.1)
            drained = time.perf_counter() - started
        finally:
            stop(processes)
        twice, out_of_order, not_mapped = guarantees(url)
    return Outcome(
        receivers, processors, done, load_seconds, drained, backlog, bad, twice, out_of_order, not_mapped
    )


def _ratio(processed: float, baseline: list[Outcome] | None) -> str:
    if not baseline:
        return "—"
    return f"{processed / (sum(o.processed for o in baseline) / len(baseline)):.2f}×"


def print_row(outcome: Outcome, baseline: list[Outcome] | None) -> None:
    print(
        f"{outcome.receivers}×{outcome.processors:<3} {outcome.intake:>9,.0f} {outcome.processed:>12,.0f} "
        f"{_ratio(outcome.processed, baseline):>7} {outcome.backlog_at_end:>8,} {outcome.drain:>8,.0f} "
        f"{outcome.non_202:>8} {outcome.twice:>6} {outcome.out_of_order:>10} {outcome.not_mapped:>11}",
        flush=True,
    )


def print_mean(outcomes: list[Outcome], baseline: list[Outcome] | None) -> None:
    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    processed = mean([o.processed for o in outcomes])
    print(
        f"{outcomes[0].receivers}×{outcomes[0].processors:<3} {mean([o.intake for o in outcomes]):>9,.0f} "
        f"{processed:>12,.0f} {_ratio(processed, baseline):>7} "
        f"{'':>8} {mean([o.drain for o in outcomes]):>8,.0f} {sum(o.non_202 for o in outcomes):>8} "
        f"{sum(o.twice for o in outcomes):>6} {sum(o.out_of_order for o in outcomes):>10} "
        f"{sum(o.not_mapped for o in outcomes):>11}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--grid", nargs="+", default=["1x1", "2x1", "1x2", "2x2"], help="NxM configurations")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--versions", type=int, default=4, help="versions per order, sent in sequence")
    parser.add_argument("--database-url", help="a PostgreSQL server (default: an embedded one)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="run the grid this many times, every other round reversed"
    )
    args = parser.parse_args()
    grid = [tuple(int(part) for part in cell.split("x")) for cell in args.grid]

    with tempfile.TemporaryDirectory(prefix="saleshub-scale-") as temporary:
        logs = Path(temporary)
        embedded = None
        server_url = args.database_url
        if server_url is None:
            from saleshub.store.embedded import EmbeddedPostgres

            embedded = EmbeddedPostgres(logs / "data")
            server_url = embedded.start()
        try:
            print(
                f"{os.cpu_count()} cores; {args.connections} connections, {args.versions} versions per "
                f"order, {args.seconds:.0f} s of load per configuration"
            )
            header = (
                f"{'N×M':<5} {'intake/s':>9} {'processed/s':>12} {'vs 1×1':>7} {'backlog':>8} {'drain/s':>8} "
                f"{'non-202':>8} {'twice':>6} {'reordered':>10} {'not mapped':>11}"
            )
            print(header)
            results: dict[tuple[int, int], list[Outcome]] = {}
            for round_number in range(args.rounds):
                cells = grid if round_number % 2 == 0 else list(reversed(grid))
                for receivers, processors in cells:
                    outcome = run(server_url, receivers, processors, args, logs)
                    results.setdefault((receivers, processors), []).append(outcome)
                    print_row(outcome, results.get((1, 1)))
            if args.rounds > 1:
                print("means over the rounds:")
                for cell in grid:
                    print_mean(results[cell], results.get((1, 1)))
        finally:
            if embedded is not None:
                embedded.stop()


if __name__ == "__main__":
    main()
