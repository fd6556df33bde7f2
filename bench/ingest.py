"""Intake and processing throughput: signed Pyxis webhooks over loopback into ``saleshub serve``.

One run measures, side by side:

* **intake, closed loop**: ``--connections`` clients post distinct signed orders back to back for
  ``--seconds`` to the hub (its processor running); sustained webhooks/s (every 202 is a committed
  recording, ``synchronous_commit=on``) and p50/p99 latency;
* **empty endpoint**: the same stack (FastAPI + uvicorn, same workers, same client) answering a
  handler that reads the body and returns 202 — the ceiling; the ratio intake / empty is printed;
* **open loop at --rate/s for --open-seconds**: requests started on a fixed schedule, latency
  measured from the scheduled time (so queueing counts), p50/p99; and, from the audit trail, p99 of
  the time from recording to the committed order (``received_at`` → ``processed_at``, an upper bound
  of acknowledgement → committed order);
* **processor over a backlog**: ``--backlog`` events recorded first, then processed by one
  processor (in-process), events/s;
* **processor floor**: the CPU work the processor does for each event without a database (decode,
  classify, map, validate, then the stored forms: fingerprint, canonical JSON, Avro event body),
  events/s. Processing cannot be faster than this, whatever the database does.

The load generator is a minimal HTTP/1.1 keep-alive client on asyncio streams with pre-built, pre-
signed requests: a general client (httpx) costs more CPU per request than the server under test on
this 2-core machine, and the generator's cost must stay small and identical for both servers.

    .venv/bin/python bench/ingest.py [--seconds 10] [--connections 32] [--workers 2] [--rate 300]
        [--open-seconds 30] [--backlog 50000] [--processor-only]

``--processor-only`` runs only the processor over the backlog and its floor, in a process that has
run nothing else.

Single runs on a 2-core VM swing by ±20%, more than most settings are worth. ``--compare
SETTING=VALUE --pairs N`` measures only that: N pairs of hub starts, closed loop, the default and
the variant, the order swapped from pair to pair (so warming up favours neither), and prints each
pair, how many the variant won and both means:

    .venv/bin/python bench/ingest.py --compare SALESHUB_DATABASE__POOL_SIZE=4 --pairs 8

It also prints what is steadier on a shared machine: the CPU seconds the hub's processes (the
server and its web workers; the embedded PostgreSQL runs detached and is not counted) spend per
1,000 webhooks, and the throughput the variant reaches at equal CPU (default CPU / variant CPU,
median over the pairs). The cost of Datadog telemetry (target: at least 0.85x):

    .venv/bin/python bench/ingest.py --compare SALESHUB_TELEMETRY__MODE=datadog --pairs 4 --seconds 6
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.synthetic import pyxis_event, signed_headers  # noqa: E402

SECRET = "whsec_" + base64.b64encode(b"benchmark-secret-of-32-bytes!!!!").decode()
EMPTY_APP = """
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI(redirect_slashes=False)


@app.post("/webhooks/{system}")
async def receive(system: str, request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"status": "ok"}, status_code=202)


@app.get("/health/ready")
async def ready() -> dict[str, str]:
    return {"status": "ok"}
"""


def build_requests(start: int, count: int) -> list[bytes]:
    requests = []
    for number in range(start, start + count):
        body = pyxis_event(number)
        headers = signed_headers(SECRET, f"bench-{number}", body)
        lines = [
            b"POST /webhooks/pyxis HTTP/1.1",
            b"host: 127.0.0.1",
            f"content-length: {len(body)}".encode(),
        ]
        lines += [f"{name}: {value}".encode() for name, value in headers.items()]
        requests.append(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    return requests


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def closed_loop(
    port: int, requests: Iterable[bytes], connections: int, seconds: float, *, warm_up: bool = False
) -> tuple[int, list[float]]:
    """Post ``requests`` over ``connections`` keep-alive connections for ``seconds``: non-202s, latencies.

    Unless warming up, raises if ``requests`` ran out before the time was up (the rate measured
    would then be capped by the requests built, not by the server).
    """
    latencies: list[float] = []
    cursor = iter(requests)
    deadline = time.perf_counter() + seconds
    bad = 0

    async def client() -> None:
        nonlocal bad
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for request in cursor:
            if time.perf_counter() > deadline:
                break
            began = time.perf_counter()
            status = await exchange(reader, writer, request)
            latencies.append(time.perf_counter() - began)
            bad += status != 202
        writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    if not warm_up and time.perf_counter() < deadline:
        raise RuntimeError(f"the {len(latencies):,} requests ran out before {seconds} s: build more")
    return bad, latencies


async def open_loop(
    port: int, requests: list[bytes], rate: float, seconds: float, pool: int
) -> tuple[int, list[float]]:
    connections: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(pool):
        connections.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    bad = 0

    async def one(request: bytes, scheduled: float) -> None:
        nonlocal bad
        conn = await connections.get()
        status = await exchange(*conn, request)
        latencies.append(time.perf_counter() - scheduled)
        bad += status != 202
        connections.put_nowait(conn)

    tasks = []
    start = time.perf_counter()
    for index in range(int(rate * seconds)):
        scheduled = start + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(requests[index], scheduled)))
    await asyncio.gather(*tasks)
    while not connections.empty():
        connections.get_nowait()[1].close()
    return bad, latencies


def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("server not ready within 120 s")


def start_hub(
    port: int, workers: int, data_dir: Path, settings: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "SALESHUB_DATABASE__URL"}
    env |= {
        "SALESHUB_DATABASE__DATA_DIR": str(data_dir),
        "SALESHUB_WEB__PORT": str(port),
        "SALESHUB_WEB__WORKERS": str(workers),
        "SALESHUB_LOG_LEVEL": "WARNING",
        "SALESHUB_SECRET_WEBHOOK_PYXIS": SECRET,
    }
    env |= settings or {}
    process = subprocess.Popen(
        [sys.executable, "-m", "saleshub", "serve"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
    )
    wait_ready(port, process)
    return process


def start_empty(port: int, workers: int, app_dir: Path) -> subprocess.Popen[bytes]:
    (app_dir / "empty_app.py").write_text(EMPTY_APP, encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "empty_app:app",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    command += ["--no-access-log", "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=app_dir, stdout=subprocess.DEVNULL)
    wait_ready(port, process)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=60)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def report(name: str, bad: int, latencies: list[float], seconds: float) -> float:
    rate = len(latencies) / seconds
    print(
        f"{name:<32} {rate:>9,.0f}/s   p50 {percentile(latencies, 0.5):6.1f} ms   "
        f"p99 {percentile(latencies, 0.99):6.1f} ms   non-202: {bad}"
    )
    return rate


def processor_rate(data_dir: Path, backlog: int) -> tuple[int, float]:
    """Record ``backlog`` events, then time one processor working them off (events, events/s)."""
    from saleshub.platform.settings import Settings
    from saleshub.receive.intake import InboundEvent, admit
    from saleshub.runtime import HubRuntime, tune_collector

    settings = Settings(database={"data_dir": data_dir}, mappings_dir=ROOT / "mappings")  # type: ignore[arg-type]
    hub = HubRuntime.open(settings, migrate=True)
    tune_collector()  # as `saleshub process` does
    try:
        adapter = hub.adapters["pyxis"]
        for start in range(0, backlog, 500):
            items = []
            for number in range(start, min(backlog, start + 500)):
                event = InboundEvent("pyxis", "webhook", pyxis_event(5_000_000 + number), "application/json")
                items.append((event, admit(event, adapter)))
            hub.recorder.record_batch(items)
        # Earlier runs leave dirty pages behind; written back during the timed part, they slow
        # every commit's WAL flush.
        os.sync()
        started = time.perf_counter()
        done = hub.processor().drain(timeout=3600)
        seconds = time.perf_counter() - started
    finally:
        hub.close()
    return done.events, done.events / seconds


def wait_for_empty_queue(data_dir: Path, timeout: float = 300.0) -> float:
    """Wait until the running hub's processor has emptied the event queue; the seconds it took.

    Connects straight to the hub's socket: attaching to the embedded server would make this
    process one of its users, keeping it running after the hub stops.
    """
    import psycopg

    started = time.monotonic()
    socket_dir = str((data_dir / "postgres").resolve())
    with psycopg.connect(host=socket_dir, dbname="postgres", user="postgres") as conn:
        conn.autocommit = True
        while time.monotonic() - started < timeout:
            if conn.execute("SELECT NOT EXISTS (SELECT FROM event_queue)").fetchone() == (True,):
                return time.monotonic() - started
            time.sleep(0.2)
    raise TimeoutError(f"the event queue was not empty after {timeout:.0f} s")


def commit_latency(data_dir: Path, first: int, count: int) -> tuple[int, float, float]:
    """Of the open-loop events: how many were processed, p50 and p99 of recording → committed order."""
    from sqlalchemy import text

    from saleshub.platform.settings import Settings
    from saleshub.store.database import open_database

    database = open_database(Settings(database={"data_dir": data_dir}))  # type: ignore[arg-type]
    try:
        with database.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT count(processed_at), "
                    "percentile_cont(0.5) WITHIN GROUP (ORDER BY processed_at - received_at), "
                    "percentile_cont(0.99) WITHIN GROUP (ORDER BY processed_at - received_at) "
                    "FROM sales_system_integration_events WHERE idempotency_key = ANY(:keys)"
                ),
                {"keys": [f"bench-{n}" for n in range(first, first + count)]},
            ).one()
    finally:
        database.close()
    return int(row[0]), row[1].total_seconds() * 1000, row[2].total_seconds() * 1000


def processor_floor(count: int, seconds: float) -> float:
    """Events/s of the processor's per-event CPU work without a database (see the module docstring)."""
    from datetime import UTC, datetime
    from uuid import uuid4

    from adapters.registry import AdapterRegistry
    from canonical.events import EventKind
    from saleshub.mapping.catalog import MappingCatalog
    from saleshub.publish.outbox import Outbox

    adapter = AdapterRegistry.default().create("pyxis", MappingCatalog.load(ROOT / "mappings"))
    outbox = Outbox()
    bodies = [pyxis_event(i) for i in range(count)]
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for body in bodies:
            order = adapter.translate(body).mapped.order
            order.fingerprint()
            order.model_dump_json()
            outbox.order_row(
                EventKind.ORDER_RECEIVED,
                event_id=uuid4(),
                occurred_at=datetime.now(UTC),
                order=order,
                version_no=1,
                mapping="bench",
            )
        done += len(bodies)
    return done / (time.perf_counter() - started)


def compare(variant: dict[str, str], pairs: int, port: int, args: argparse.Namespace) -> None:
    """Paired closed-loop runs of the default hub and ``variant`` (see the module docstring)."""
    workdir = Path(tempfile.mkdtemp(prefix="saleshub-bench-"))
    try:
        _compare(variant, pairs, port, workdir, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _compare(variant: dict[str, str], pairs: int, port: int, workdir: Path, args: argparse.Namespace) -> None:
    label = " ".join(f"{k}={v}" for k, v in variant.items())
    print(f"default against the variant {label}, {pairs} pairs\n")
    rates: dict[str, list[float]] = {"default": [], "variant": []}
    cpu: dict[str, list[float]] = {"default": [], "variant": []}
    for pair in range(pairs):
        order = [("default", {}), ("variant", variant)]
        for name, settings in order if pair % 2 == 0 else order[::-1]:
            port += 1
            # Signed afresh for each run: a run minutes later would find their timestamps out of the
            # webhook tolerance (five minutes) and measure 401s.
            requests = build_requests(0, int(args.seconds * 10_000))
            warm_up = build_requests(len(requests), 500)
            hub = start_hub(port, args.workers, workdir / f"pair-{port}", settings)
            try:
                asyncio.run(closed_loop(port, warm_up, args.connections, 2, warm_up=True))
                before = tree_cpu_seconds(hub.pid)
                bad, latencies = asyncio.run(closed_loop(port, requests, args.connections, args.seconds))
                used = tree_cpu_seconds(hub.pid) - before
            finally:
                stop(hub)
            rates[name].append(report(f"pair {pair + 1}, {name}", bad, latencies, args.seconds))
            cpu[name].append(1000 * used / max(len(latencies), 1))
            print(f"{'':<32} {cpu[name][-1]:9.2f} s of the hub's CPU per 1,000 webhooks")
    wins = sum(v > d for d, v in zip(rates["default"], rates["variant"], strict=True))
    mean = {name: sum(values) / len(values) for name, values in rates.items()}
    print(
        f"\n{label} won {wins} of {pairs} pairs; mean {mean['variant']:,.0f}/s "
        f"against the default's {mean['default']:,.0f}/s ({mean['variant'] / mean['default'] - 1:+.0%})"
    )
    # On a shared machine the rates swing with the neighbours' load; the CPU the hub spends per
    # webhook swings far less, and its inverse is the rate the hub would reach on cores of its own.
    per_pair = sorted(d / v for d, v in zip(cpu["default"], cpu["variant"], strict=True))
    middle = per_pair[len(per_pair) // 2]
    cost = {name: sum(values) / len(values) for name, values in cpu.items()}
    print(
        f"CPU per 1,000 webhooks: default {cost['default']:.2f} s, variant {cost['variant']:.2f} s; "
        f"throughput at equal CPU, variant/default: median {middle:.2f}x over the pairs "
        f"(range {per_pair[0]:.2f}-{per_pair[-1]:.2f}x)"
    )


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its descendants (the web workers)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def processing(workdir: Path, args: argparse.Namespace) -> None:
    """The processor over a recorded backlog, beside its floor (see the module docstring)."""
    events, rate = processor_rate(workdir / "backlog", args.backlog)
    floor = processor_floor(1_000, min(args.seconds, 5.0))
    print(f"processor over a backlog of {events:,}: {rate:,.0f} events/s")
    print(f"processor floor (decode + map + fingerprint + JSON + Avro, no database): {floor:,.0f} events/s")
    print(f"processor / floor: {rate / floor:.2f}x   (target >= 0.7x)")


def web_runs(workdir: Path, args: argparse.Namespace) -> None:
    """The empty endpoint, then the hub closed and open loop (see the module docstring)."""
    budget = int(args.seconds * 10_000)  # more than the hub can take (closed_loop checks)
    print(f"building {budget:,} signed requests …", flush=True)
    requests = build_requests(0, budget)
    open_requests = build_requests(budget, int(args.rate * args.open_seconds))
    # Each hub is warmed up (as the empty endpoint is) with orders of its own, kept out of the runs.
    warm_up = build_requests(budget + len(open_requests), 500)
    port = 18080
    print(f"workers {args.workers}, {args.connections} connections, {args.seconds:.0f} s per run\n")
    empty = start_empty(port + 1, args.workers, workdir)
    try:
        asyncio.run(closed_loop(port + 1, requests[:500], args.connections, 2, warm_up=True))
        # The empty endpoint keeps no state: the same requests serve again, however fast it is.
        empty_rate = report(
            "empty endpoint (ceiling)",
            *asyncio.run(closed_loop(port + 1, itertools.cycle(requests), args.connections, args.seconds)),
            args.seconds,
        )
    finally:
        stop(empty)
    hub = start_hub(port, args.workers, workdir / "hub")
    try:
        asyncio.run(closed_loop(port, warm_up, args.connections, 2, warm_up=True))
        hub_rate = report(
            "intake, closed loop",
            *asyncio.run(closed_loop(port, requests, args.connections, args.seconds)),
            args.seconds,
        )
        # The open loop starts on an empty queue: its latencies are not those of the closed
        # loop's backlog.
        drained = wait_for_empty_queue(workdir / "hub")
        print(f"{'closed loop backlog processed':<32} in {drained:.1f} s after the closed loop")
        webhook_p99 = percentile(
            asyncio.run(open_loop(port, open_requests, args.rate, args.open_seconds, 64))[1], 0.99
        )
        print(f"{'open loop at ' + format(args.rate, '.0f') + '/s':<32} webhook p99 {webhook_p99:6.1f} ms")
        time.sleep(3)  # the last open-loop events reach the store
    finally:
        stop(hub)
    processed, p50, p99 = commit_latency(workdir / "hub", budget, len(open_requests))
    print(
        f"{'recorded -> committed order':<32} p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   "
        f"({processed:,} of {len(open_requests):,} processed)"
    )
    print(f"\nintake / empty endpoint: {hub_rate / empty_rate:.2f}x   (target >= 0.35x)")
    print(f"open loop: webhook p99 {webhook_p99:.1f} ms (<= 50), commit p99 {p99:.1f} ms (<= 250)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--open-seconds", type=float, default=30.0)
    parser.add_argument("--backlog", type=int, default=50_000)
    parser.add_argument("--compare", metavar="SETTING=VALUE", action="append", default=[])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--processor-only", action="store_true")
    args = parser.parse_args()
    if args.compare:
        compare(dict(item.split("=", 1) for item in args.compare), args.pairs, 18200, args)
        return
    workdir = Path(tempfile.mkdtemp(prefix="saleshub-bench-"))
    try:
        if not args.processor_only:
            web_runs(workdir, args)
        processing(workdir, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
