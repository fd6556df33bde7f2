"""The comparison engine: a manifest file against the hub's window, joined in DuckDB.

DuckDB reads the manifest straight from its file (in parallel, every value typed) while PostgreSQL
writes the hub's side of the window as a compact snapshot (``saleshub.store.snapshot``); one full
join in DuckDB keeps only the pairs that may differ, and only those go back to the store, which
classifies them and writes the findings. Repeated keys are found and resolved here too (the newest
row of a key is kept, as the store does).

The engine takes a manifest only when every row is plainly readable: a CSV file whose header names
only columns it knows (one key column, no ``order`` column), with every key present, every number a
plain whole number and every time a real date and time. Anything else — a bad value, a ragged row,
a time word, a JSON-lines manifest, a manifest that carries orders, a reader that is not a file —
returns ``None``, and the run stages the manifest in PostgreSQL instead, which reports each bad row
by its line (``saleshub.store.manifest``). Both ways give the same findings.

DuckDB keeps its tables in memory up to its memory limit (80 % of the machine's memory by default)
and spills what does not fit to a temporary directory beside the snapshot, so a window larger than
memory still completes, more slowly.
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, BinaryIO

import duckdb

from reconciliation.model import Window
from reconciliation.sources import FileManifestReader, SourceManifestReader
from saleshub.store.manifest import ManifestFormat, ManifestLayout

__all__ = ["Compared", "DuplicateRows", "Snapshot", "compare"]

#: Writes the hub's window as headerless CSV (key, version, updated-at, fingerprint) to a file.
Snapshot = Callable[[BinaryIO], object]

# A whole number as PostgreSQL's bigint input reads it (DuckDB's cast would also take 1.5, 1e3, 0x10).
_WHOLE = r"\s*[+-]?[0-9]+\s*"
_TENANCY = {"country_code": 2, "bu_code": 16, "sales_channel": 16}


@dataclass(frozen=True, slots=True)
class DuplicateRows:
    """A key the manifest lists more than once, with the lines where it appears."""

    key: str
    lines: tuple[int, ...]


@dataclass(slots=True)
class Compared:
    """What the comparison found: the manifest's rows, its repeated keys and the differing pairs."""

    loaded: int  # manifest rows read
    compared: int  # rows left once each repeated key keeps its newest row
    listed: int  # rows of the window (updated-at in it, or none)
    duplicates: list[DuplicateRows] = field(default_factory=list)
    #: One tuple per pair (``saleshub.store.classification.DIFFERING_COLUMNS``).
    differing: list[tuple[Any, ...]] = field(default_factory=list)


def _header(path: Path) -> list[str] | None:
    with path.open("rb") as handle:
        first = handle.readline()
    try:
        names = next(csv.reader(io.StringIO(first.decode("utf-8-sig"))), None)
    except UnicodeDecodeError:
        return None
    if not names:
        return None
    names = [name.strip() for name in names]
    return names if len(set(names)) == len(names) else None


def _columns(names: list[str], layout: ManifestLayout) -> dict[str, str] | None:
    """Our name for each header column, or ``None`` if the header holds a column the engine does not take."""
    if len(layout.key_columns) != 1 or layout.key_columns[0] not in names:
        return None
    known = {
        layout.key_columns[0]: "key",
        layout.version: "version",
        layout.updated_at: "updated_at",
        layout.fingerprint: "fingerprint",
        **{name: name for name in _TENANCY},
    }
    if any(name not in known for name in names):
        return None
    return {name: known[name] for name in names}


def _read_manifest(db: duckdb.DuckDBPyConnection, path: Path, columns: dict[str, str]) -> bool:
    """Load the manifest into table ``m`` (lines from 2); ``False`` if a row is not plainly readable."""
    raw = {f"c{i}": "VARCHAR" for i in range(len(columns))}
    for i, ours in enumerate(columns.values()):
        if ours == "updated_at":
            raw[f"c{i}"] = "TIMESTAMPTZ"
    by_name = {ours: f"c{i}" for i, ours in enumerate(columns.values())}

    def whole(name: str) -> str:
        # Only a plain whole number is cast (DuckDB's cast would round 1.5); the row is unreadable otherwise.
        column = by_name.get(name)
        if column is None:
            return "CAST(NULL AS BIGINT)"
        return f"CASE WHEN regexp_full_match({column}, '{_WHOLE}') THEN CAST({column} AS BIGINT) END"

    def text(name: str) -> str:
        column = by_name.get(name)
        size = _TENANCY.get(name)
        if column is None:
            return "CAST(NULL AS VARCHAR)"
        return f"left({column}, {size})" if size else column

    checks = [f"{by_name['key']} IS NULL"]
    checks += [
        f"({by_name[n]} IS NOT NULL AND NOT regexp_full_match({by_name[n]}, '{_WHOLE}'))"
        for n in ("version", "fingerprint")
        if n in by_name
    ]
    if "updated_at" in by_name:
        # PostgreSQL's time words (epoch, infinity) make a row unreadable there; such a file goes there.
        column = by_name["updated_at"]
        checks.append(f"(NOT isfinite({column}) OR {column} = TIMESTAMPTZ '1970-01-01 00:00:00+00')")
    options = (
        "header = true, auto_detect = false, delim = ',', quote = '\"', escape = '\"', columns = $columns"
    )
    try:
        # One parallel pass, every value typed, the file's row order kept (a row's line is its rowid
        # + 2: the header is line 1, and a value spanning lines counts as one, as in the store).
        db.execute(
            f"CREATE TABLE m AS SELECT {by_name['key']} AS key, {whole('version')} AS version, "
            f"{by_name.get('updated_at', 'CAST(NULL AS TIMESTAMPTZ)')} AS updated_at, "
            f"{whole('fingerprint')} AS fingerprint, {text('country_code')} AS country_code, "
            f"{text('bu_code')} AS bu_code, {text('sales_channel')} AS sales_channel, "
            f"{' OR '.join(checks)} AS unreadable FROM read_csv($path, {options})",
            {"path": str(path), "columns": raw},
        )
        unreadable = db.execute("SELECT count(*) FILTER (WHERE unreadable) FROM m").fetchone()
    except duckdb.Error:
        # A value DuckDB cannot read (a ragged row, a time it does not parse, text that is not
        # UTF-8): the store's path reads the file again and reports the row by its line.
        return False
    return unreadable is not None and unreadable[0] == 0


def _drop_duplicates(db: duckdb.DuckDBPyConnection) -> list[DuplicateRows]:
    """Report repeated keys and keep the newest row of each (version, then update time, then line)."""
    # First the keys' 64-bit hashes (narrower than the text: a third of the time), then the lines
    # of the few keys whose hash repeats.
    db.execute("CREATE TEMP TABLE repeated AS SELECT hash(key) AS h FROM m GROUP BY 1 HAVING count(*) > 1")
    rows = db.execute(
        "SELECT key, list(rowid + 2 ORDER BY rowid) FROM m WHERE hash(key) IN (SELECT h FROM repeated) "
        "GROUP BY key HAVING count(*) > 1 ORDER BY key"
    ).fetchall()
    if rows:
        db.execute(
            """DELETE FROM m WHERE rowid IN (
                SELECT line FROM (
                    SELECT rowid AS line, row_number() OVER (PARTITION BY key
                        ORDER BY version DESC NULLS LAST, updated_at DESC NULLS LAST, rowid DESC) AS rank
                    FROM m WHERE hash(key) IN (SELECT h FROM repeated))
                WHERE rank > 1)"""
        )
    return [DuplicateRows(key, tuple(int(line) for line in lines)) for key, lines in rows]


# The same pairs as the store's ``differing`` step: one side missing, versions or fingerprints
# unequal, or (without versions) times unequal; a manifest row the hub's window lacks only if the
# row belongs to the window.
_DIFFERING = """
SELECT m.key, m.version, m.updated_at, m.fingerprint, m.country_code, m.bu_code, m.sales_channel, h.key
FROM m FULL JOIN (
    SELECT * FROM read_csv($path, header = false, auto_detect = false, delim = ',', quote = '"',
        escape = '"', columns = {'key': 'VARCHAR', 'version': 'BIGINT', 'updated_at': 'TIMESTAMPTZ',
        'fingerprint': 'BIGINT'})
) h ON h.key = m.key
WHERE (h.key IS NULL OR m.key IS NULL OR m.version IS DISTINCT FROM h.version
       OR m.fingerprint <> h.fingerprint
       OR (m.version IS NULL AND m.updated_at IS DISTINCT FROM h.updated_at))
  AND (h.key IS NOT NULL OR m.updated_at IS NULL
       OR (m.updated_at >= $start AND m.updated_at < $end))
"""
_LISTED = "SELECT count(*) FROM m WHERE updated_at IS NULL OR (updated_at >= $start AND updated_at < $end)"


def compare(
    reader: SourceManifestReader,
    layout: ManifestLayout,
    window: Window,
    *,
    timezone: str,
    snapshot: Snapshot,
    progress: Callable[[str], None],
) -> Compared | None:
    """Compare the reader's manifest with the hub's window, or ``None`` if the store must stage it.

    ``timezone`` is the zone a manifest time without an offset is read in (the database session's,
    as the store would read it); ``snapshot`` writes the hub's window, and runs in a thread while
    DuckDB reads the manifest.
    """
    # Exactly a file reader: a subclass may change the bytes it gives, which DuckDB would not see.
    if type(reader) is not FileManifestReader or reader.format is not ManifestFormat.CSV:
        return None
    names = _header(reader.path)
    columns = None if names is None else _columns(names, layout)
    if columns is None:
        return None
    with TemporaryDirectory(prefix="saleshub-reconcile-") as tmp:
        hub_file = Path(tmp) / "hub.csv"
        failure: list[BaseException] = []

        def write_snapshot() -> None:
            try:
                with hub_file.open("wb") as out:
                    snapshot(out)
            except BaseException as exc:  # raised again in the run's thread below
                failure.append(exc)

        writer = threading.Thread(target=write_snapshot, name="reconcile-snapshot")
        writer.start()
        try:
            with duckdb.connect(config={"temp_directory": str(Path(tmp) / "spill")}) as db:
                try:
                    db.execute("SET TimeZone = $zone", {"zone": timezone})
                except duckdb.Error:  # a zone DuckDB does not know: the store reads times as set
                    return None
                readable = _read_manifest(db, reader.path, columns)
                if not readable:
                    return None
                progress("check manifest")
                loaded = int(db.execute("SELECT count(*) FROM m").fetchone()[0])  # type: ignore[index]
                duplicates = _drop_duplicates(db)
                writer.join()
                if failure:
                    raise failure[0]
                progress("classify")
                bounds = {"start": window.start, "end": window.end}
                # The snapshot is read once, streamed into the join.
                found = db.execute(_DIFFERING, {**bounds, "path": str(hub_file)}).fetchall()
                differing = [tuple(row) for row in found]
                listed = int(db.execute(_LISTED, bounds).fetchone()[0])  # type: ignore[index]
        finally:
            writer.join()
            if failure:  # the snapshot failed: the run's transaction is broken, whatever the manifest
                raise failure[0]
    return Compared(
        loaded=loaded,
        compared=loaded - sum(len(d.lines) - 1 for d in duplicates),
        listed=listed,
        duplicates=duplicates,
        differing=differing,
    )
