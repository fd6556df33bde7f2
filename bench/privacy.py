"""Personal data at rest: what sealing costs intake and processing, an erasure, the sealing migration.

One run, one embedded PostgreSQL, one hub (``HubRuntime``, the local master key), measures:

* **intake** (the record path every transport takes after its own protocol: ``admit`` then
  ``Recorder.record_batch`` in batches of ``--batch``, as the webhook group commit writes them) and
  **processing** (one processor draining what was just recorded, ``Processor.drain``), each with
  encryption **on** (the hub as it is) and **off**. Each event is an order of its own customer;
  ``--revisions 2`` sends every order twice, so half the events update an order (reading it back,
  opened). Rounds rotate which mode goes first, so none gains from warming up or loses to the
  tables growing; every phase uses orders never seen before.
* **sealing migration**: ``--migration-events`` events recorded and processed with encryption off
  (rows exactly as written before sealing existed), plus the off phases' rows, then sealed with
  ``saleshub.store.sealing.seal_batch`` in batches of ``--migration-batch`` as ``saleshub privacy
  encrypt`` does (one transaction per batch, table after table); rows/s per table, and the time for
  1,000,000 events extrapolated linearly from the run (labelled as such).
  ``--migration-events 1000000`` runs it for real (recording and processing a million events in
  clear first takes a long while).
* **erasure** (last): ``--erasure-subjects`` subjects of ``--erasure-orders`` orders each (one
  e-mail), among everything written before; wall time of ``saleshub.actions.privacy.erase`` (find +
  destroy the data keys + register + outbox event, one transaction) for each, with a cold key cache
  as in a fresh ``saleshub privacy erase`` process; and of its dry run (find alone).
  ``--without-key-index`` first erases as many subjects with the schema's index on the events'
  ``data_key_id`` (migration 0017) dropped from this benchmark's database, side by side: what the
  index saves (without it the find scans the events table).

**Off** is a floor that exists only in this benchmark: the hub's code with the part under test
taken out, i.e. writing rows as they were written before sealing existed. While an off phase runs,
``encryption_off()`` replaces the port's key lookup (``PersonalData.order_keys``: no SQL, a key
whose id is ``None``), its sealing (``seal_body``/``seal_payload`` pass through, ``seal_personal``
gives ``None``), its blind index (``index_orders``: nothing, it exists only because values are
sealed) and the order columns (``orders._columns``: the whole order JSON in ``content`` as before,
no split, ``data_key_id`` NULL). Readers then take their ``data_key_id IS NULL`` path (clear rows,
no key read). A floor whose seal is merely the identity would keep the key-table round trips and
the blind index, the larger part of the cost, and so flatter the ratio.

Printed: events/s per phase and round, the mean of each mode, the ratio on / off (target >= 0.9x),
and the CPU seconds per 1,000 events of this process and of PostgreSQL's processes (steadier on a
shared machine than wall time). ``--without-index`` adds a third mode to every round, encryption on
without the blind index, to show that index's share. ``--profile`` runs one more intake and
processing phase of on and off under cProfile and prints where the time goes.

    .venv/bin/python bench/privacy.py [--events 10000] [--rounds 4] [--batch 32] [--revisions 2]
        [--erasure-orders 1000] [--erasure-subjects 3] [--migration-events 20000]
        [--migration-batch 2000] [--without-index] [--without-key-index] [--profile]
        [--skip throughput|erasure|migration]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.synthetic import pyxis_event  # noqa: E402

ON, OFF = "on", "off"
NO_INDEX = "on, no blind index"  # --without-index: how much of the cost is the blind index


# -- the floor ----------------------------------------------------------------------------------


@contextlib.contextmanager
def encryption_off() -> Iterator[None]:
    """The hub writing and reading rows in clear, as before sealing (see the module docstring)."""
    from saleshub.store import orders
    from saleshub.store.database import EncodedJSON
    from saleshub.store.personal import DataKey, PersonalData

    real_columns = orders._columns

    def order_keys(self: PersonalData, conn: Any, pairs: Any) -> dict[Any, DataKey]:
        return {pair: DataKey(None, b"") for pair in pairs}  # type: ignore[arg-type]

    def clear_columns(item: Any, fingerprint: int, key: Any) -> dict[str, Any]:
        order = item.order
        return {
            "country_code": order.country_code,
            "bu_code": order.bu_code,
            "store_code": order.store_code,
            "sales_channel": order.sales_channel.value,
            "service_type": order.service_type.value,
            "status": order.status.value,
            "content": EncodedJSON(order.model_dump_json()),
            "personal": None,
            "data_key_id": None,
            "erased_at": None,
            "fingerprint": fingerprint,
            "source_version": order.source_version,
            "source_updated_at": order.source_updated_at,
            "mapping": item.mapping,
            "mapping_hash": item.mapping_hash,
        }

    _check_same_columns(real_columns, clear_columns)
    patches: dict[tuple[Any, str], Any] = {
        (PersonalData, "order_keys"): order_keys,
        (PersonalData, "seal_body"): staticmethod(lambda key, body, sha256: body),
        (PersonalData, "seal_personal"): staticmethod(lambda key, order_id, personal: None),
        (PersonalData, "seal_payload"): staticmethod(lambda key, payload, event_id: payload),
        (PersonalData, "index_orders"): lambda self, conn, rows: None,
        (orders, "_columns"): clear_columns,
    }
    saved = {target: target[0].__dict__[target[1]] for target in patches}
    for (owner, name), value in patches.items():
        setattr(owner, name, value)
    try:
        yield
    finally:
        for (owner, name), value in saved.items():
            setattr(owner, name, value)


_checked: list[bool] = []


def _check_same_columns(real: Callable[..., dict[str, Any]], floor: Callable[..., dict[str, Any]]) -> None:
    """The floor writes the columns the hub writes (if the hub's change, the floor must follow)."""
    if _checked:
        return
    from adapters.registry import AdapterRegistry
    from saleshub.mapping.catalog import MappingCatalog
    from saleshub.store.orders import NewOrder
    from saleshub.store.personal import DataKey

    adapter = AdapterRegistry.default().create("pyxis", MappingCatalog.load(ROOT / "mappings"))
    order = adapter.translate(pyxis_event(1)).mapped.order
    item = NewOrder(order=order, event_id=uuid.uuid4(), mapping="bench", mapping_hash="0" * 64)
    key = DataKey(uuid.uuid4(), os.urandom(32))
    if set(real(item, 0, key)) != set(floor(item, 0, key)):
        raise SystemExit("bench/privacy.py: orders._columns changed; make encryption_off()'s columns follow")
    _checked.append(True)


# -- data ---------------------------------------------------------------------------------------


def customer_body(number: int, revision: int, email: str | None = None) -> bytes:
    """A Pyxis order event of a customer of its own (``email`` shared by a subject's orders)."""
    event: dict[str, Any] = json.loads(pyxis_event(number, revision=revision))
    event["order"]["customer"].update(
        {
            "id": f"PXC-B{number}" if email is None else "PXC-SUBJECT",
            "firstName": f"Nombre{number}",
            "email": email or f"cliente{number}@bench.example",
            "phone": f"6{number % 100_000_000:08d}",
        }
    )
    event["order"]["serviceAddress"]["street"] = f"Calle Inventada {number}"
    event["order"]["notes"] = f"Llamar antes de llegar ({revision})"  # each revision a change
    return json.dumps(event, ensure_ascii=False).encode()


def bodies_for(numbers: range, revisions: int, email: str | None = None) -> list[bytes]:
    """Every order's first revision, then every order's second, …"""
    return [customer_body(n, r, email) for r in range(1, revisions + 1) for n in numbers]


# -- measuring ----------------------------------------------------------------------------------


@dataclass
class Phase:
    """One timed part: events, wall seconds, CPU seconds of this process and of PostgreSQL."""

    events: int
    seconds: float
    own_cpu: float
    db_cpu: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def cpu_per_1000(self) -> float:
        return (self.own_cpu + self.db_cpu) * 1000 / self.events


@dataclass
class Results:
    """Per mode: the intake and processing phases of every round."""

    intake: dict[str, list[Phase]] = field(default_factory=lambda: defaultdict(list))
    processing: dict[str, list[Phase]] = field(default_factory=lambda: defaultdict(list))


class Bench:
    """The hub, its database, and the order numbers used so far."""

    def __init__(self, workdir: Path) -> None:
        from saleshub.platform.settings import Settings
        from saleshub.runtime import HubRuntime, tune_collector

        self.settings = Settings(
            database={"data_dir": workdir / "hub"},
            mappings_dir=ROOT / "mappings",
        )
        self.hub = HubRuntime.open(self.settings, migrate=True)
        tune_collector()  # as `saleshub process` does
        self.adapter = self.hub.adapters["pyxis"]
        self.next_number = 10_000_000
        self.postmaster = _postmaster(workdir / "hub")

    def numbers(self, count: int) -> range:
        first = self.next_number
        self.next_number += count
        return range(first, first + count)

    def db_cpu(self) -> float:
        """CPU seconds of PostgreSQL's processes so far (its postmaster and every backend)."""
        import psutil

        if self.postmaster is None:
            return 0.0
        total = 0.0
        for process in [self.postmaster, *self.postmaster.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
        return total

    def timed(self, work: Callable[[], int]) -> Phase:
        os.sync()  # dirty pages of the phase before would be written back during this one
        db, own, started = self.db_cpu(), time.process_time(), time.perf_counter()
        events = work()
        seconds = time.perf_counter() - started
        return Phase(events, seconds, time.process_time() - own, self.db_cpu() - db)

    def record(self, bodies: Sequence[bytes], batch: int) -> int:
        from saleshub.receive.intake import InboundEvent, admit

        for start in range(0, len(bodies), batch):
            items = []
            for body in bodies[start : start + batch]:
                event = InboundEvent("pyxis", "webhook", body, "application/json")
                items.append((event, admit(event, self.adapter)))
            receipts = self.hub.recorder.record_batch(items)
            if any(r.repeated or r.refused for r in receipts):
                raise SystemExit("an event was refused or repeated: the bodies or order numbers are wrong")
        return len(bodies)

    def process(self, expected: int) -> int:
        done = self.hub.processor().drain(timeout=3600)
        if done.events != expected:
            raise SystemExit(f"the processor took {done.events:,} events, {expected:,} were recorded")
        return done.events

    def count(self, query: str) -> int:
        from sqlalchemy import text

        with self.hub.database.engine.connect() as conn:
            return int(conn.execute(text(query)).scalar_one())

    def close(self) -> None:
        self.hub.close()


def _postmaster(data_dir: Path) -> Any:
    import psutil

    pid_file = data_dir / "postgres" / "postmaster.pid"
    try:
        return psutil.Process(int(pid_file.read_text().split()[0]))
    except (OSError, ValueError, psutil.NoSuchProcess):
        return None


@contextlib.contextmanager
def without_index() -> Iterator[None]:
    """Encryption on, but no blind index written (only to show its share of the cost)."""
    from saleshub.store.personal import PersonalData

    saved = PersonalData.__dict__["index_orders"]
    setattr(PersonalData, "index_orders", lambda self, conn, orders: None)  # noqa: B010
    try:
        yield
    finally:
        setattr(PersonalData, "index_orders", saved)  # noqa: B010


def mode(name: str) -> contextlib.AbstractContextManager[None]:
    if name == NO_INDEX:
        return without_index()
    return encryption_off() if name == OFF else contextlib.nullcontext()


def phase(bench: Bench, name: str, args: argparse.Namespace, results: Results) -> None:
    """Record then process ``--events`` new events with encryption ``name``; check the rows."""
    orders = max(1, args.events // args.revisions)
    bodies = bodies_for(bench.numbers(orders), args.revisions)
    sealed_before = bench.count(SEALED_EVENTS)
    with mode(name):
        intake = bench.timed(lambda: bench.record(bodies, args.batch))
        processing = bench.timed(lambda: bench.process(len(bodies)))
    sealed = bench.count(SEALED_EVENTS) - sealed_before
    if sealed != (0 if name == OFF else len(bodies)):
        raise SystemExit(f"encryption {name}: {sealed:,} of {len(bodies):,} events sealed")
    results.intake[name].append(intake)
    results.processing[name].append(processing)
    print(
        f"  encryption {name:<18}  intake {intake.rate:>7,.0f} events/s   "
        f"processing {processing.rate:>6,.0f} events/s",
        flush=True,
    )


SEALED_EVENTS = "SELECT count(*) FROM sales_system_integration_events WHERE data_key_id IS NOT NULL"


def throughput(bench: Bench, args: argparse.Namespace) -> Results:
    results = Results()
    print(
        f"intake and processing: {args.rounds} rounds of {args.events:,} events per mode "
        f"({args.events // args.revisions:,} new orders x {args.revisions} revisions), "
        f"record batches of {args.batch}",
        flush=True,
    )
    modes = [ON, OFF, NO_INDEX] if args.without_index else [ON, OFF]
    warm = argparse.Namespace(**{**vars(args), "events": min(args.events, 1000)})
    for name in modes:  # imports, plans, caches; not counted
        phase(bench, name, warm, Results())
    print("  (the phases above warmed up and are not counted)")
    for round_no in range(args.rounds):
        print(f"round {round_no + 1}")
        first = round_no % len(modes)  # each mode goes first in turn
        for name in modes[first:] + modes[:first]:
            phase(bench, name, args, results)
    return results


def summary(label: str, phases: Mapping[str, list[Phase]], target: float, measured: str = ON) -> None:
    if measured != ON:
        label = f"{label} ({measured})"
    on = statistics.fmean(p.rate for p in phases[measured])
    off = statistics.fmean(p.rate for p in phases[OFF])
    pairs = [a.rate / b.rate for a, b in zip(phases[measured], phases[OFF], strict=True)]
    cpu_on = statistics.fmean(p.cpu_per_1000() for p in phases[measured])
    cpu_off = statistics.fmean(p.cpu_per_1000() for p in phases[OFF])
    own_on = statistics.fmean(p.own_cpu * 1000 / p.events for p in phases[measured])
    own_off = statistics.fmean(p.own_cpu * 1000 / p.events for p in phases[OFF])
    verdict = "met" if on / off >= target else "NOT met"
    print(
        f"{label:<11} on {on:>7,.0f} events/s   off {off:>7,.0f} events/s   "
        f"on / off {on / off:.2f}x (rounds {', '.join(f'{r:.2f}' for r in pairs)}, "
        f"median {statistics.median(pairs):.2f}; target >= {target}x {verdict})"
    )
    print(
        f"{'':<11} CPU per 1,000 events (hub process + PostgreSQL): on {cpu_on:.3f} s "
        f"({own_on:.3f} + {cpu_on - own_on:.3f}), "
        f"off {cpu_off:.3f} s ({own_off:.3f} + {cpu_off - own_off:.3f}); "
        f"at equal CPU on / off {cpu_off / cpu_on:.2f}x"
    )


# -- erasure ------------------------------------------------------------------------------------


def erasure(bench: Bench, args: argparse.Namespace) -> None:
    background = bench.count("SELECT count(*) FROM service_orders")
    events = bench.count("SELECT count(*) FROM sales_system_integration_events")
    print(
        f"\nerasure: {args.erasure_subjects} subjects of {args.erasure_orders:,} orders each "
        f"(one e-mail each), among {background:,} orders and {events:,} events of other customers; "
        "local master key, key cache cold (a fresh process)",
        flush=True,
    )
    if args.without_key_index:
        from sqlalchemy import text

        with bench.hub.database.engine.begin() as conn:
            conn.execute(text(f"DROP INDEX {KEY_INDEX}"))
        print("without the index on the events' data_key_id (dropped in this database only):", flush=True)
        median = erase_subjects(bench, args)
        started = time.perf_counter()
        with bench.hub.database.engine.begin() as conn:
            conn.execute(text(f"CREATE INDEX {KEY_INDEX} ON sales_system_integration_events (data_key_id)"))
            conn.execute(text("ANALYZE sales_system_integration_events"))
        print(
            f"with it again (made in {time.perf_counter() - started:.1f} s), as the schema has it:",
            flush=True,
        )
        indexed = erase_subjects(bench, args)
        print(f"erasure with the index / without: {indexed / median:.2f}x the time")
    else:
        erase_subjects(bench, args)


KEY_INDEX = "ix_sales_system_integration_events_data_key"  # the schema's (migration 0017)


def erase_subjects(bench: Bench, args: argparse.Namespace) -> float:
    """Erase ``--erasure-subjects`` new subjects, each timed; the median seconds."""
    from saleshub.actions.events import cli_actor
    from saleshub.actions.privacy import Criteria, erase
    from saleshub.store.personal import attach_personal_data, personal_data_from_settings

    engine = bench.hub.database.engine
    dry_times, times = [], []
    for subject in range(args.erasure_subjects):
        email = f"sujeto.{subject}.{uuid.uuid4().hex[:8]}@bench.example"
        bodies = bodies_for(bench.numbers(args.erasure_orders), 1, email)
        bench.record(bodies, 500)
        bench.process(len(bodies))
        criteria = Criteria(emails=(email,))
        runs: list[tuple[bool, float, Any]] = []
        for dry_run in (True, False):
            attach_personal_data(engine, lambda: personal_data_from_settings(bench.settings))
            started = time.perf_counter()
            result = erase(
                engine,
                criteria,
                actor=cli_actor(),
                reason="BENCH-1",
                dry_run=dry_run,
                outbox=bench.hub.outbox,
            )
            runs.append((dry_run, time.perf_counter() - started, result))
        (_, dry_seconds, dry), (_, seconds, done) = runs
        if len(dry.subject.orders) != args.erasure_orders or len(done.subject.orders) != args.erasure_orders:
            raise SystemExit(f"the subject has {len(done.subject.orders)} orders, not {args.erasure_orders}")
        left = bench.count(
            "SELECT count(*) FROM order_data_keys m JOIN service_orders o "
            "ON (o.source_system, o.external_order_id) = (m.source_system, m.order_key) "
            f"WHERE o.hub_order_id IN ({','.join(repr(str(o.hub_order_id)) for o in done.subject.orders)})"
        )
        if left:
            raise SystemExit(f"{left} data keys of the erased subject remain")
        dry_times.append(dry_seconds)
        times.append(seconds)
        print(
            f"  subject {subject + 1}: {len(done.subject.orders):,} orders, "
            f"{sum(done.subject.events.values()):,} events, {len(done.subject.key_ids):,} data keys: "
            f"erase {seconds * 1000:,.0f} ms (dry run, find only: {dry_seconds * 1000:,.0f} ms)",
            flush=True,
        )
    median = statistics.median(times)
    verdict = "met" if median < 1.0 else "NOT met"
    print(
        f"erasure of {args.erasure_orders:,} orders: median {median * 1000:,.0f} ms, "
        f"dry run {statistics.median(dry_times) * 1000:,.0f} ms "
        f"(target < 1 s plus the master key's round trip: {verdict}; the local key has no round trip)"
    )
    return median


# -- sealing migration --------------------------------------------------------------------------


def migration(bench: Bench, args: argparse.Namespace) -> None:
    from saleshub.store.sealing import SEALED_TABLES, clear_counts, seal_batch

    engine = bench.hub.database.engine
    count = args.migration_events
    print(f"\nsealing migration: writing {count:,} events in clear (recorded and processed) …", flush=True)
    orders = max(1, count // args.revisions)
    with encryption_off():
        written = 0
        for start in range(0, orders, 50_000):  # bodies in slices, not a million at once in memory
            numbers = bench.numbers(min(50_000, orders - start))
            bodies = bodies_for(numbers, args.revisions)
            bench.record(bodies, 500)
            bench.process(len(bodies))
            written += len(bodies)
            if count >= 100_000:
                print(f"  {written:,} written", flush=True)
    with engine.connect() as conn:
        todo = clear_counts(conn)
    print(
        "rows in clear (these events with their orders, versions and outbox rows, and the off "
        "phases' above): " + ", ".join(f"{todo[t]:,} {t}" for t in SEALED_TABLES),
        flush=True,
    )
    os.sync()
    total = 0.0
    timings = {}
    for table in SEALED_TABLES:
        sealed, started = 0, time.perf_counter()
        while True:
            with engine.begin() as conn:
                done = seal_batch(conn, table, args.migration_batch)
            if not done:
                break
            sealed += done
        seconds = time.perf_counter() - started
        timings[table] = (sealed, seconds)
        total += seconds
        print(
            f"  {table:<9} {sealed:>9,} rows in {seconds:7.1f} s   {sealed / seconds:>7,.0f} rows/s",
            flush=True,
        )
    with engine.connect() as conn:
        left = clear_counts(conn)
    if any(left.values()):
        raise SystemExit(f"rows left in clear after the migration: {left}")
    events = todo["events"]
    print(
        f"sealing migration: {events:,} events and their rows in {total:.1f} s "
        f"({events / total:,.0f} events/s with their orders, versions and outbox rows)"
    )
    if events < 1_000_000:
        print(
            f"  EXTRAPOLATED (linear, from this run of {events:,}): 1,000,000 events with their rows "
            f"~{total * 1_000_000 / events / 60:.1f} min; events alone "
            f"~{timings['events'][1] * 1_000_000 / events / 60:.1f} min "
            "(run --migration-events 1000000 for the real figure)"
        )


# -- profile ------------------------------------------------------------------------------------


def profile(bench: Bench, args: argparse.Namespace) -> None:
    """One more phase of each mode under cProfile: the functions with the most cumulative time."""
    for name in (ON, OFF):
        orders = max(1, args.events // args.revisions)
        bodies = bodies_for(bench.numbers(orders), args.revisions)
        works: list[tuple[str, Callable[[], int]]] = [
            ("intake", partial(bench.record, bodies, args.batch)),
            ("processing", partial(bench.process, len(bodies))),
        ]
        for label, work in works:
            profiler = cProfile.Profile()
            with mode(name):
                profiler.enable()
                work()
                profiler.disable()
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("cumulative").print_stats(r"saleshub|cryptography|sqlalchemy/engine", 30)
            print(f"\n--- profile: {label}, encryption {name} ---")
            print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000, help="events per mode and round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32, help="events per record transaction")
    parser.add_argument("--revisions", type=int, default=2, help="events per order")
    parser.add_argument("--erasure-orders", type=int, default=1_000)
    parser.add_argument("--erasure-subjects", type=int, default=3)
    parser.add_argument("--migration-events", type=int, default=20_000)
    parser.add_argument("--migration-batch", type=int, default=2_000, help="as `privacy encrypt --batch`")
    parser.add_argument("--skip", choices=("throughput", "erasure", "migration"), action="append", default=[])
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--without-key-index",
        action="store_true",
        help="erase first without the schema's index on the events' data_key_id, then with it",
    )
    parser.add_argument(
        "--without-index", action="store_true", help="a third mode: encryption on, no blind index"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="saleshub-bench-privacy-"))
    bench = Bench(workdir)
    try:
        print(
            "encryption off = the hub's code writing rows in clear as before sealing (no data-key SQL,\n"
            "no AES-GCM, no blind index, whole order JSON in content), patched in this benchmark only\n"
        )
        if "throughput" not in args.skip and args.rounds > 0:
            results = throughput(bench, args)
            print()
            summary("intake", results.intake, 0.9)
            summary("processing", results.processing, 0.9)
            if args.without_index:
                summary("intake", results.intake, 0.9, NO_INDEX)
                summary("processing", results.processing, 0.9, NO_INDEX)
        if args.profile:
            profile(bench, args)
        if "migration" not in args.skip:
            migration(bench, args)
        if "erasure" not in args.skip:  # last: among everything written before, sealed
            erasure(bench, args)
    finally:
        bench.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
