"""Reconciliation in the store: a source's manifest loaded by COPY, classified in one statement, runs kept.

A run works in one transaction on one connection:

1. ``stage_manifest`` streams the manifest (CSV with a header, or JSON lines) into a temporary table
   with PostgreSQL's ``COPY`` — parsing, quoting and character decoding happen in the server — then
   types every row in one statement; a row whose key, version, time or fingerprint does not parse
   keeps a ``problem`` instead of failing the load. A row may also carry a ``problem`` of its own
   (a reader that could not turn a source's record into an order says why), reported the same way.
2. ``manifest_problems`` / ``duplicate_keys`` / ``drop_unusable_rows`` report invalid rows and keys
   the manifest repeats, and keep one row per key (the newest), so the comparison is one-to-one.
3. ``classify`` compares the manifest with the system's orders in one statement: a hash join of the
   manifest with the orders of the window (an index-only range scan of
   ``ix_service_orders_reconcile``), a probe of the unique key for manifest rows the window lacks,
   one class per order, and the discrepancies written as findings with since when they are open.
4. ``start_run`` / ``finish_run`` / ``fail_run`` keep the run's row; the reads of runs and findings are
   at the end of the module.

Nothing above the store sees SQLAlchemy or psycopg: rows come back as plain dataclasses or dicts.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Connection, text

from saleshub.errors import ManifestError

__all__ = [
    "ClassifyParams",
    "DuplicateKey",
    "ManifestFormat",
    "ManifestLayout",
    "ManifestProblem",
    "StagedFinding",
    "StoredRun",
    "classify",
    "drop_findings",
    "drop_unusable_rows",
    "duplicate_keys",
    "fail_run",
    "finding_counts_by",
    "findings",
    "finish_run",
    "manifest_health",
    "manifest_orders",
    "manifest_orders_without_fingerprint",
    "manifest_problems",
    "open_findings_since",
    "previous_run_id",
    "recent_runs",
    "record_findings",
    "run",
    "set_field_differences",
    "set_manifest_fingerprints",
    "stage_manifest",
    "start_run",
]

#: The classes of discrepancy the classification statement writes (the table allows two more kinds:
#: ``duplicate_in_source`` and ``invalid_manifest_row``, written by ``record_findings``).

_RAW = "reconcile_raw"
_MANIFEST = "reconcile_manifest"


class ManifestFormat(StrEnum):
    """How a manifest is written: CSV with a header row, or one JSON object per line."""

    CSV = "csv"
    JSONL = "jsonl"


@dataclass(frozen=True, slots=True)
class ManifestLayout:
    """Which columns (CSV) or keys (JSON lines) of a manifest row hold what the comparison needs.

    The order key is the hub's ``external_order_id``; a source that identifies an order by several
    columns names them in ``key_columns``, and they are joined with ``key_separator``.
    """

    key_columns: tuple[str, ...] = ("external_order_id",)
    key_separator: str = ":"
    version: str = "source_version"
    updated_at: str = "updated_at"
    fingerprint: str = "fingerprint"
    order: str = "order"


@dataclass(frozen=True, slots=True)
class ManifestProblem:
    """A manifest row that could not be used: its line in the file, its key if readable, why."""

    line: int
    key: str
    problem: str


@dataclass(frozen=True, slots=True)
class DuplicateKey:
    """A key the manifest lists more than once, with the lines where it appears."""

    key: str
    lines: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class StagedFinding:
    """A finding written by the run itself rather than by the classification (duplicates, bad rows)."""

    kind: str
    external_order_id: str
    detail: str


@dataclass(frozen=True, slots=True)
class ClassifyParams:
    """What one classification compares: the system, its window, and the times that exclude orders."""

    run_id: uuid.UUID
    system: str
    window_start: datetime
    window_end: datetime
    young_after: datetime  # orders updated at or after this (the grace period) are left out
    run_started: datetime  # orders written or updated at or after this changed during the run
    time_tolerance: timedelta
    previous_run: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class StoredRun:
    """One reconciliation run as stored."""

    run_id: uuid.UUID
    source_system: str
    window_start: datetime
    window_end: datetime
    grace_seconds: int
    manifest: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, int]
    stats: dict[str, int]
    error: str | None = field(default=None)


# --- loading a manifest ---------------------------------------------------------------------------


def _raw_copy(conn: Connection) -> Any:
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


def _peek_header(chunks: Iterator[bytes], source: str) -> tuple[list[str], bytes]:
    """The CSV header's column names, and the bytes read so far (to be sent to COPY first)."""
    head = b""
    for chunk in chunks:
        head += chunk
        if b"\n" in head:
            break
    if head.startswith(b"\xef\xbb\xbf"):  # the byte-order mark Excel writes
        head = head[3:]
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    if not first.strip():
        raise ManifestError(source, 1, "the file is empty or has no header row")
    try:
        names = next(csv.reader(io.StringIO(first.decode("utf-8"))))
    except UnicodeDecodeError:
        raise ManifestError(source, 1, "the header is not UTF-8 text") from None
    names = [name.strip() for name in names]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ManifestError(source, 1, f"column {name!r} appears twice in the header")
        seen.add(name)
    return names, head


@contextmanager
def _copy_errors(source: str) -> Iterator[None]:
    """A file COPY cannot read at all (wrong column count, invalid UTF-8) as a ``ManifestError``."""
    try:
        yield
    except psycopg.errors.DataError as exc:
        context = exc.diag.context or ""
        found = re.search(r"line (\d+)", context)
        line = int(found.group(1)) if found else None
        raise ManifestError(source, line, exc.diag.message_primary or str(exc)) from None


def _escape_text_format(chunk: bytes) -> bytes:
    # COPY's text format reads backslash escapes and splits columns on tabs; a JSON line has tabs
    # only as whitespace between tokens (inside strings they must be escaped), so a space is the same.
    return chunk.replace(b"\\", b"\\\\").replace(b"\t", b" ").replace(b"\r", b"")


#: PostgreSQL reads these words as times (``now``, ``yesterday``, ``infinity``…); a manifest's time is
#: a real date and time, so a value holding one is an unreadable row.
TIME_WORDS = ("epoch", "infinity", "now", "today", "tomorrow", "yesterday", "allballs")
TIME_WORDS_SQL = r"\m(" + "|".join(TIME_WORDS) + r")\M"
_TIME_WORDS = re.compile(rb"(?i)\b(" + "|".join(TIME_WORDS).encode() + rb")\b")

# line_no: the header is line 1, so the first row is line 2 (a value spanning lines counts as one).
_TYPED_COLUMNS = (
    "line_no bigint GENERATED ALWAYS AS IDENTITY (START WITH 2 CACHE 100000), key text, version bigint, "
    "updated_at timestamptz, fingerprint bigint, doc jsonb, country_code text, bu_code text, "
    "sales_channel text, problem text"
)


def _typed_columns(names: Sequence[str], layout: ManifestLayout) -> list[str] | None:
    """The typed table's column for each header name, or ``None`` if a name has no typed column."""
    if len(layout.key_columns) != 1:
        return None
    known = {
        layout.key_columns[0]: "key",
        layout.version: "version",
        layout.updated_at: "updated_at",
        layout.fingerprint: "fingerprint",
        layout.order: "doc",
        "country_code": "country_code",
        "bu_code": "bu_code",
        "sales_channel": "sales_channel",
    }
    columns = [known.get(name) for name in names]
    return None if None in columns else [c for c in columns if c is not None]


class _TimeWord(Exception):  # noqa: N818 - a control-flow signal, not an error
    """A word PostgreSQL reads as a time was seen in a manifest the fast path loads."""


def _stage_typed(conn: Connection, chunks: Iterable[bytes], columns: Sequence[str]) -> int | None:
    """COPY a CSV straight into the typed table; the rows loaded, or ``None`` if a value does not parse.

    The fast path: PostgreSQL parses every value while copying, with no staging table and no
    second pass. A malformed value aborts the COPY; the caller then loads the file the slow way,
    which keeps each bad row with its problem.
    """
    cursor = _raw_copy(conn)
    cursor.execute(
        sql.SQL("CREATE TEMP TABLE {} ({})").format(sql.Identifier(_MANIFEST), sql.SQL(_TYPED_COLUMNS))
    )
    cursor.execute("SAVEPOINT reconcile_typed_copy")
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER true)").format(
        sql.Identifier(_MANIFEST), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    tail, timed = b"", "updated_at" in columns
    try:
        with cursor.copy(copy_sql) as copy:
            for chunk in chunks:
                # PostgreSQL would read ``now`` or ``yesterday`` as a time: such a file takes the
                # slow path, which reports the row (a word split between chunks is seen too).
                if timed and (_TIME_WORDS.search(tail + chunk[:16]) or _TIME_WORDS.search(chunk)):
                    raise _TimeWord
                tail = chunk[-16:]
                copy.write(chunk)
    except (psycopg.errors.DataError, _TimeWord):
        cursor.execute("ROLLBACK TO SAVEPOINT reconcile_typed_copy")
        cursor.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(_MANIFEST)))
        return None
    loaded = int(cursor.rowcount)
    cursor.execute("RELEASE SAVEPOINT reconcile_typed_copy")
    cursor.execute(
        sql.SQL(
            "UPDATE {} SET problem = CASE WHEN key IS NULL THEN 'no order key' END, "
            "country_code = left(coalesce(country_code, doc ->> 'country_code'), 2), "
            "bu_code = left(coalesce(bu_code, doc ->> 'bu_code'), 16), "
            "sales_channel = left(coalesce(sales_channel, doc ->> 'sales_channel'), 16) "
            "WHERE key IS NULL OR doc IS NOT NULL"
        ).format(sql.Identifier(_MANIFEST))
    )
    return loaded


def stage_manifest(
    conn: Connection,
    fmt: ManifestFormat,
    chunks: Callable[[], Iterable[bytes]],
    layout: ManifestLayout,
    source: str,
) -> int:
    """COPY a manifest into the temporary table of this transaction; return the rows loaded.

    ``chunks`` gives the manifest's bytes; it is called a second time when the fast typed load of a
    CSV meets a malformed value. ``source`` names the manifest in errors (a file name, never a
    path). A missing key column is a ``ManifestError`` at line 1; rows whose values do not parse are
    kept with their problem (reported by ``manifest_problems``).
    """
    conn.execute(text(f"DROP TABLE IF EXISTS {_RAW}, {_MANIFEST}"))
    loaded = None
    if fmt is ManifestFormat.CSV:
        stream = iter(chunks())
        names, head = _peek_header(stream, source)
        _check_key_columns(names, layout, source)
        columns = _typed_columns(names, layout)
        if columns is not None:
            loaded = _stage_typed(conn, itertools.chain([head], stream), columns)
    if loaded is None:
        loaded = _stage_checked(conn, fmt, chunks, layout, source)
    _size_memory(conn, loaded)
    return loaded


def _size_memory(conn: Connection, rows: int) -> None:
    """Let this transaction hash the manifest and the window's orders in memory, not in batches.

    About 200 bytes per row (key, version, time, fingerprint and the hash table's overhead), at
    least 256 MB and at most 4 GB; the setting ends with the transaction.
    """
    megabytes = min(4096, max(256, rows * 200 // (1 << 20)))
    conn.execute(text(f"SET LOCAL work_mem = '{int(megabytes)}MB'"))


def _check_key_columns(names: Sequence[str], layout: ManifestLayout, source: str) -> None:
    missing = [name for name in layout.key_columns if name not in names]
    if missing:
        raise ManifestError(
            source,
            1,
            f"the header lacks the key column(s) {', '.join(missing)}; it has {', '.join(names)}",
        )


_COLUMN_COUNT = ("missing data for column", "extra data after last expected column")


def _copy_csv(cursor: Any, columns: Sequence[str], stream: Iterable[bytes], source: str) -> bool:
    """COPY a CSV into the raw table; ``False`` (nothing loaded) if a row has too few or many values."""
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER true)").format(
        sql.Identifier(_RAW), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    cursor.execute("SAVEPOINT reconcile_raw_copy")
    try:
        with _copy_errors(source), cursor.copy(copy_sql) as copy:
            for chunk in stream:
                copy.write(chunk)
    except ManifestError as exc:
        if not any(text_ in exc.reason for text_ in _COLUMN_COUNT):
            raise
        cursor.execute("ROLLBACK TO SAVEPOINT reconcile_raw_copy")
        return False
    cursor.execute("RELEASE SAVEPOINT reconcile_raw_copy")
    return True


def _copy_ragged_csv(cursor: Any, columns: Sequence[str], chunks: Iterable[bytes], source: str) -> None:
    """Load a CSV whose rows do not all have the header's number of values, row by row.

    Read with Python's ``csv`` (spooled to disk past 64 MB, so memory stays bounded); a row with too
    few or too many values is kept with its ``shape`` problem and its key if the key's position
    exists, so it becomes an ``invalid_manifest_row`` finding at its line like any unreadable row.
    """
    with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
        for chunk in chunks:
            spool.write(chunk)
        spool.seek(0)
        text_stream = io.TextIOWrapper(spool, encoding="utf-8-sig", newline="")
        copy_sql = sql.SQL("COPY {} (shape, {}) FROM STDIN").format(
            sql.Identifier(_RAW), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        try:
            with cursor.copy(copy_sql) as copy:
                rows = csv.reader(text_stream)
                next(rows, None)  # the header
                for values in rows:
                    if not values:
                        continue  # a blank line is no row
                    if len(values) == len(columns):
                        copy.write_row((None, *values))
                        continue
                    shape = f"the row has {len(values)} values, the header {len(columns)}"
                    kept = (values + [None] * len(columns))[: len(columns)]
                    copy.write_row((shape, *kept))
        except UnicodeDecodeError:
            raise ManifestError(source, None, "the file is not UTF-8 text") from None
        except csv.Error as exc:
            raise ManifestError(source, rows.line_num, f"unreadable CSV: {exc}") from None
        finally:
            text_stream.detach()


def _stage_checked(
    conn: Connection,
    fmt: ManifestFormat,
    chunks: Callable[[], Iterable[bytes]],
    layout: ManifestLayout,
    source: str,
) -> int:
    """The slow path: every value as text first, then typed row by row, a bad value kept as a problem."""
    cursor = _raw_copy(conn)
    stream = iter(chunks())
    if fmt is ManifestFormat.CSV:
        names, head = _peek_header(stream, source)
        _check_key_columns(names, layout, source)
        columns = [f"c{i}" for i in range(len(names))]
        cursor.execute(
            sql.SQL(
                "CREATE TEMP TABLE {} (line_no bigint GENERATED ALWAYS AS IDENTITY, shape text, {})"
            ).format(
                sql.Identifier(_RAW),
                sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in columns),
            )
        )
        if not _copy_csv(cursor, columns, itertools.chain([head], stream), source):
            _copy_ragged_csv(cursor, columns, chunks(), source)
        line_offset = 1  # the header is line 1
        exprs = {
            name: sql.SQL("NULLIF(r.{}, '')").format(sql.Identifier(c))
            for name, c in zip(names, columns, strict=True)
        }
        raw_from = sql.SQL("{} r").format(sql.Identifier(_RAW))
        order_expr = exprs.get(layout.order)
        order_sql = (
            sql.SQL("CASE WHEN pg_input_is_valid({0}, 'jsonb') THEN {0}::jsonb END").format(order_expr)
            if order_expr is not None
            else sql.SQL("NULL::jsonb")
        )
        bad_order = (
            sql.SQL("CASE WHEN {0} IS NOT NULL AND NOT pg_input_is_valid({0}, 'jsonb') THEN {1} END").format(
                order_expr, sql.Literal(f"{layout.order} is not JSON")
            )
            if order_expr is not None
            else sql.SQL("NULL")
        )
    else:
        cursor.execute(
            sql.SQL("CREATE TEMP TABLE {} (line_no bigint GENERATED ALWAYS AS IDENTITY, doc text)").format(
                sql.Identifier(_RAW)
            )
        )
        with (
            _copy_errors(source),
            cursor.copy(sql.SQL("COPY {} (doc) FROM STDIN").format(sql.Identifier(_RAW))) as copy,
        ):
            for chunk in stream:
                copy.write(_escape_text_format(chunk))
        cursor.execute(sql.SQL("DELETE FROM {} WHERE btrim(doc) = ''").format(sql.Identifier(_RAW)))
        line_offset = 0
        raw_from = sql.SQL(
            "(SELECT line_no, CASE WHEN pg_input_is_valid(doc, 'jsonb') THEN doc::jsonb END AS j, "
            "pg_input_is_valid(doc, 'jsonb') AS is_json FROM {}) r"
        ).format(sql.Identifier(_RAW))
        names = [*layout.key_columns, layout.version, layout.updated_at, layout.fingerprint, "country_code"]
        names += ["bu_code", "sales_channel", "problem"]
        exprs = {name: sql.SQL("NULLIF(r.j ->> {}, '')").format(sql.Literal(name)) for name in names}
        order_sql = sql.SQL("CASE WHEN jsonb_typeof(r.j -> {0}) = 'object' THEN r.j -> {0} END").format(
            sql.Literal(layout.order)
        )
        bad_order = sql.SQL("CASE WHEN NOT r.is_json THEN 'the line is not a JSON object' END")
    shape = sql.SQL("r.shape") if fmt is ManifestFormat.CSV else sql.SQL("NULL")
    null = sql.SQL("NULL")
    key_expr = (
        exprs[layout.key_columns[0]]
        if len(layout.key_columns) == 1
        else sql.SQL("NULLIF(concat_ws({}, {}), '')").format(
            sql.Literal(layout.key_separator), sql.SQL(", ").join(exprs[c] for c in layout.key_columns)
        )
    )
    key_missing = sql.SQL(" OR ").join(sql.SQL("{} IS NULL").format(exprs[c]) for c in layout.key_columns)
    version = exprs.get(layout.version, null)
    updated = exprs.get(layout.updated_at, null)
    fingerprint = exprs.get(layout.fingerprint, null)

    def valid(value: sql.Composable, kind: str) -> sql.Composable:
        check = sql.SQL("pg_input_is_valid({0}, {1})").format(value, sql.Literal(kind))
        if kind == "timestamptz":  # a real date and time, not one of PostgreSQL's words for one
            check = sql.SQL("({} AND {} !~* {})").format(check, value, sql.Literal(TIME_WORDS_SQL))
        return check

    def typed(value: sql.Composable, kind: str) -> sql.Composable:
        return sql.SQL("CASE WHEN {0} THEN {1}::{2} END").format(valid(value, kind), value, sql.SQL(kind))

    def invalid(value: sql.Composable, kind: str, what: str) -> sql.Composable:
        return sql.SQL("CASE WHEN {0} IS NOT NULL AND NOT {1} THEN {2} END").format(
            value, valid(value, kind), sql.Literal(what)
        )

    def tenancy(name: str) -> sql.Composable:
        return sql.SQL("coalesce({}, {} ->> {})").format(exprs.get(name, null), order_sql, sql.Literal(name))

    cursor.execute(
        sql.SQL(
            """CREATE TEMP TABLE {manifest} AS
            SELECT r.line_no + {offset} AS line_no, {key} AS key,
                   {version_t} AS version, {updated_t} AS updated_at, {fp_t} AS fingerprint,
                   {order} AS doc,
                   left({country}, 2) AS country_code, left({bu}, 16) AS bu_code,
                   left({channel}, 16) AS sales_channel,
                   NULLIF(concat_ws('; ', {shape}, {bad_order},
                       CASE WHEN {key_missing} THEN {key_problem} END,
                       {bad_version}, {bad_updated}, {bad_fp}, {reported}), '') AS problem
            FROM {raw}"""
        ).format(
            manifest=sql.Identifier(_MANIFEST),
            offset=sql.Literal(line_offset),
            key=key_expr,
            version_t=typed(version, "bigint"),
            updated_t=typed(updated, "timestamptz"),
            fp_t=typed(fingerprint, "bigint"),
            order=order_sql,
            country=tenancy("country_code"),
            bu=tenancy("bu_code"),
            channel=tenancy("sales_channel"),
            shape=shape,
            bad_order=bad_order,
            key_missing=key_missing,
            key_problem=sql.Literal(f"no order key ({', '.join(layout.key_columns)})"),
            bad_version=invalid(version, "bigint", f"{layout.version} is not a whole number"),
            bad_updated=invalid(updated, "timestamptz", f"{layout.updated_at} is not a date and time"),
            bad_fp=invalid(fingerprint, "bigint", f"{layout.fingerprint} is not a signed 64-bit integer"),
            reported=exprs.get("problem", null),
            raw=raw_from,
        )
    )
    cursor.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(_RAW)))
    cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(_MANIFEST)))
    (rows,) = cursor.fetchone()
    return int(rows)


def manifest_health(conn: Connection) -> tuple[int, int]:
    """``(rows with a problem, usable rows with an order but no fingerprint)``, in one scan."""
    row = conn.execute(
        text(
            "SELECT count(*) FILTER (WHERE problem IS NOT NULL), "
            "count(*) FILTER (WHERE problem IS NULL AND fingerprint IS NULL AND doc IS NOT NULL) "
            f"FROM {_MANIFEST}"
        )
    ).one()
    return int(row[0]), int(row[1])


def manifest_orders_without_fingerprint(conn: Connection) -> list[tuple[int, dict[str, Any]]]:
    """``(line, canonical order JSON)`` of usable manifest rows that carry an order but no fingerprint."""
    rows = conn.execute(
        text(
            f"SELECT line_no, doc FROM {_MANIFEST} "
            "WHERE problem IS NULL AND fingerprint IS NULL AND doc IS NOT NULL ORDER BY line_no"
        )
    )
    return [(int(line), doc) for line, doc in rows]


def set_manifest_fingerprints(conn: Connection, values: Sequence[tuple[int, int | None, str | None]]) -> None:
    """Set ``(line, fingerprint, problem)`` of manifest rows (fingerprints computed from their order)."""
    if not values:
        return
    conn.execute(
        text(
            f"UPDATE {_MANIFEST} m SET fingerprint = v.fingerprint, problem = v.problem "
            "FROM unnest(CAST(:lines AS bigint[]), CAST(:fps AS bigint[]), CAST(:problems AS text[])) "
            "AS v(line_no, fingerprint, problem) WHERE m.line_no = v.line_no"
        ),
        {
            "lines": [line for line, _, _ in values],
            "fps": [fp for _, fp, _ in values],
            "problems": [problem for _, _, problem in values],
        },
    )


def manifest_problems(conn: Connection) -> list[ManifestProblem]:
    """Every manifest row that cannot be compared, in file order."""
    rows = conn.execute(
        text(
            f"SELECT line_no, coalesce(key, ''), problem FROM {_MANIFEST} "
            "WHERE problem IS NOT NULL ORDER BY 1"
        )
    )
    return [ManifestProblem(int(line), key, problem) for line, key, problem in rows]


def duplicate_keys(conn: Connection) -> list[DuplicateKey]:
    """Keys that more than one usable manifest row carries, with their lines.

    First a hash aggregate over the keys' 64-bit hashes (narrower than the text, and no sort), then
    the lines of the few keys whose hash repeats.
    """
    hashes = (
        conn.execute(
            text(
                f"SELECT hashtextextended(key, 0) FROM {_MANIFEST} WHERE problem IS NULL "
                "GROUP BY 1 HAVING count(*) > 1"
            )
        )
        .scalars()
        .all()
    )
    if not hashes:
        return []
    rows = conn.execute(
        text(
            f"SELECT key, array_agg(line_no ORDER BY line_no) FROM {_MANIFEST} "
            "WHERE problem IS NULL AND hashtextextended(key, 0) = ANY(:hashes) "
            "GROUP BY key HAVING count(*) > 1 ORDER BY key"
        ),
        {"hashes": list(hashes)},
    )
    return [DuplicateKey(key, tuple(int(line) for line in lines)) for key, lines in rows]


def drop_unusable_rows(conn: Connection, duplicates: Sequence[DuplicateKey], *, problems: bool) -> int:
    """Delete invalid rows (if ``problems``) and all but the newest row of each duplicated key.

    The newest is the highest version, then the latest update time, then the last line. Returns the
    rows deleted.
    """
    deleted = 0
    if problems:
        deleted += conn.execute(text(f"DELETE FROM {_MANIFEST} WHERE problem IS NOT NULL")).rowcount
    if duplicates:
        deleted += conn.execute(
            text(
                f"""DELETE FROM {_MANIFEST} m USING (
                    SELECT line_no, row_number() OVER (PARTITION BY key
                        ORDER BY version DESC NULLS LAST, updated_at DESC NULLS LAST, line_no DESC) AS rank
                    FROM {_MANIFEST} WHERE key = ANY(:keys)) d
                WHERE m.line_no = d.line_no AND d.rank > 1"""
            ),
            {"keys": [duplicate.key for duplicate in duplicates]},
        ).rowcount
    return deleted


def manifest_orders(conn: Connection, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The canonical order JSON that the manifest carries for each of ``keys`` (where it has one)."""
    rows = conn.execute(
        text(f"SELECT key, doc FROM {_MANIFEST} WHERE key = ANY(:keys) AND doc IS NOT NULL"),
        {"keys": list(keys)},
    )
    return dict(rows.all())


# --- the one-pass classification -----------------------------------------------------------------

_HUB_COLUMNS = """o.external_order_id AS key, o.hub_order_id, o.source_version AS version,
    o.source_updated_at AS updated_at, o.fingerprint, o.updated_at AS written_at,
    o.country_code, o.bu_code, o.sales_channel"""

# One hash join of the manifest with the window's orders (an index-only scan: the columns compared
# are those of ix_service_orders_reconcile) keeps only the pairs that may differ: one side missing,
# versions or fingerprints unequal. Each of those few pairs then reads its order by key, which also
# finds the hub's copy of an order the window lacks (last updated before the window), and gets its
# class.
_CLASSIFY = f"""
WITH hw AS (
    SELECT o.external_order_id AS key, o.source_version AS version, o.source_updated_at AS updated_at,
           o.fingerprint
    FROM service_orders o
    WHERE o.source_system = :system AND o.source_updated_at >= :window_start
      AND o.source_updated_at < :window_end
),
differing AS MATERIALIZED (
    SELECT m.key AS m_key, m.version AS m_version, m.updated_at AS m_updated_at,
           m.fingerprint AS m_fp, m.country_code AS m_country, m.bu_code AS m_bu,
           m.sales_channel AS m_channel, hw.key AS w_key
    FROM {_MANIFEST} m
    FULL JOIN hw ON hw.key = m.key
    WHERE (hw.key IS NULL OR m.key IS NULL OR m.version IS DISTINCT FROM hw.version
           OR m.fingerprint <> hw.fingerprint
           OR (m.version IS NULL AND m.updated_at IS DISTINCT FROM hw.updated_at))
      AND (hw.key IS NOT NULL OR m.updated_at IS NULL
           OR (m.updated_at >= :window_start AND m.updated_at < :window_end))
),
pairs AS (
    SELECT d.m_key, d.m_version, d.m_updated_at, d.m_fp, d.m_country, d.m_bu, d.m_channel,
           h.key AS h_key, h.hub_order_id AS h_id, h.version AS h_version,
           h.updated_at AS h_updated_at, h.fingerprint AS h_fp, h.written_at AS h_written_at,
           h.country_code AS h_country, h.bu_code AS h_bu, h.sales_channel AS h_channel
    FROM differing d
    LEFT JOIN LATERAL (
        SELECT {_HUB_COLUMNS} FROM service_orders o
        WHERE o.source_system = :system AND o.external_order_id = coalesce(d.w_key, d.m_key)
        LIMIT 1  -- the key is unique; the limit keeps this an index probe per differing pair
    ) h ON true
),
compared AS (
    SELECT p.*,
        CASE
            WHEN p.m_version IS NOT NULL AND p.h_version IS NOT NULL THEN sign(p.m_version - p.h_version)
            WHEN p.m_updated_at IS NOT NULL AND p.h_updated_at IS NOT NULL THEN
                CASE WHEN p.m_updated_at > p.h_updated_at + :tolerance THEN 1
                     WHEN p.m_updated_at < p.h_updated_at - :tolerance THEN -1 ELSE 0 END
            ELSE 0
        END AS newer
    FROM pairs p
),
classified AS (
    SELECT c.*,
        CASE
            WHEN c.h_written_at >= :run_started OR c.m_updated_at >= :run_started THEN 'in_flight'
            WHEN greatest(c.m_updated_at, c.h_updated_at) >= :young_after THEN 'young'
            WHEN c.h_key IS NULL THEN 'missing_in_hub'
            WHEN c.m_key IS NULL THEN 'missing_in_source'
            WHEN c.newer > 0 THEN 'hub_stale'
            WHEN c.newer < 0 THEN 'source_stale'
            WHEN c.m_fp IS NOT NULL AND c.m_fp <> c.h_fp THEN 'content_mismatch'
            ELSE 'same'
        END AS kind
    FROM compared c
),
written AS (
    INSERT INTO reconciliation_findings (
        run_id, kind, external_order_id, hub_order_id, country_code, bu_code, sales_channel,
        source_version, hub_version, source_updated_at, hub_updated_at, source_fingerprint,
        hub_fingerprint, first_seen_at)
    SELECT :run_id, d.kind, coalesce(d.m_key, d.h_key), d.h_id, coalesce(d.h_country, d.m_country),
        coalesce(d.h_bu, d.m_bu), coalesce(d.h_channel, d.m_channel), d.m_version, d.h_version,
        d.m_updated_at, d.h_updated_at, d.m_fp, d.h_fp, coalesce(prev.first_seen_at, :run_started)
    FROM classified d
    LEFT JOIN reconciliation_findings prev ON prev.run_id = :previous_run AND prev.kind = d.kind
        AND prev.external_order_id = coalesce(d.m_key, d.h_key)
    WHERE d.kind IN ('missing_in_hub', 'missing_in_source', 'hub_stale', 'source_stale', 'content_mismatch')
    RETURNING 1
)
SELECT kind,
       m_key IS NOT NULL AND (m_updated_at IS NULL
           OR (m_updated_at >= :window_start AND m_updated_at < :window_end)) AS listed,
       count(*)
FROM classified GROUP BY 1, 2
"""

_LISTED = f"""SELECT count(*) FROM {_MANIFEST}
WHERE updated_at IS NULL OR (updated_at >= :window_start AND updated_at < :window_end)"""


def classify(conn: Connection, params: ClassifyParams) -> dict[str, int]:
    """Classify every order of the window in one statement; write the discrepancies; count by class.

    Besides the discrepancy kinds the counts hold ``same`` (listed by the source for the window and
    equal in the hub), ``young`` (updated within the grace period) and ``in_flight`` (changed on
    either side while the run was under way).
    """
    rows = conn.execute(
        text(_CLASSIFY),
        {
            "run_id": params.run_id,
            "system": params.system,
            "window_start": params.window_start,
            "window_end": params.window_end,
            "young_after": params.young_after,
            "run_started": params.run_started,
            "tolerance": params.time_tolerance,
            "previous_run": params.previous_run,
        },
    ).all()
    counts: dict[str, int] = {}
    listed_differing = 0
    for kind, listed, count in rows:
        counts[kind] = counts.get(kind, 0) + int(count)
        if listed and kind != "same":
            listed_differing += int(count)
    listed_total = conn.execute(
        text(_LISTED), {"window_start": params.window_start, "window_end": params.window_end}
    ).scalar_one()
    counts["same"] = int(listed_total) - listed_differing
    return counts


def record_findings(
    conn: Connection, run_id: uuid.UUID, staged: Sequence[StagedFinding], at: datetime
) -> None:
    """Write findings the run found itself (duplicated keys, unusable manifest rows)."""
    if not staged:
        return
    conn.execute(
        text(
            "INSERT INTO reconciliation_findings (run_id, kind, external_order_id, detail, first_seen_at) "
            "SELECT :run_id, k, e, d, :at FROM unnest(CAST(:kinds AS text[]), CAST(:keys AS text[]), "
            "CAST(:details AS text[])) AS t(k, e, d)"
        ),
        {
            "run_id": run_id,
            "at": at,
            "kinds": [f.kind for f in staged],
            "keys": [f.external_order_id for f in staged],
            "details": [f.detail for f in staged],
        },
    )


def set_field_differences(
    conn: Connection, run_id: uuid.UUID, differences: dict[str, list[dict[str, Any]]]
) -> None:
    """Store the field differences of the run's stale or mismatching orders, by external order id."""
    if not differences:
        return
    conn.execute(
        text(
            "UPDATE reconciliation_findings f SET field_differences = v.d::jsonb "
            "FROM unnest(CAST(:keys AS text[]), CAST(:docs AS text[])) AS v(k, d) "
            "WHERE f.run_id = :run_id AND f.external_order_id = v.k "
            "AND f.kind IN ('hub_stale', 'source_stale', 'content_mismatch')"
        ),
        {"run_id": run_id, "keys": list(differences), "docs": [json.dumps(d) for d in differences.values()]},
    )


def drop_findings(conn: Connection, run_id: uuid.UUID, kind: str, keys: Sequence[str]) -> None:
    """Delete a run's findings of ``kind`` for ``keys`` (content differences the rules tolerate)."""
    if keys:
        conn.execute(
            text(
                "DELETE FROM reconciliation_findings WHERE run_id = :run_id AND kind = :kind "
                "AND external_order_id = ANY(:keys)"
            ),
            {"run_id": run_id, "kind": kind, "keys": list(keys)},
        )


# --- runs ---------------------------------------------------------------------------------------------


def start_run(
    conn: Connection,
    *,
    run_id: uuid.UUID,
    system: str,
    window_start: datetime,
    window_end: datetime,
    grace_seconds: int,
    manifest: str,
    started_at: datetime,
) -> None:
    """Write the run's row, status ``running``."""
    conn.execute(
        text(
            "INSERT INTO reconciliation_runs (run_id, source_system, window_start, window_end, "
            "grace_seconds, manifest, status, started_at) VALUES (:run_id, :system, :window_start, "
            ":window_end, :grace, :manifest, 'running', :started_at)"
        ),
        {
            "run_id": run_id,
            "system": system,
            "window_start": window_start,
            "window_end": window_end,
            "grace": grace_seconds,
            "manifest": manifest,
            "started_at": started_at,
        },
    )


def finish_run(conn: Connection, run_id: uuid.UUID, counts: dict[str, int], stats: dict[str, int]) -> None:
    """Mark the run completed with its counts of findings by kind and its statistics."""
    conn.execute(
        text(
            "UPDATE reconciliation_runs SET status = 'completed', finished_at = clock_timestamp(), "
            "counts = CAST(:counts AS jsonb), stats = CAST(:stats AS jsonb) WHERE run_id = :run_id"
        ),
        {"run_id": run_id, "counts": json.dumps(counts), "stats": json.dumps(stats)},
    )


def fail_run(conn: Connection, *, run_id: uuid.UUID, error: str) -> None:
    """Mark the run failed with the error an operator reads (written after the run's rollback)."""
    conn.execute(
        text(
            "UPDATE reconciliation_runs SET status = 'failed', finished_at = clock_timestamp(), "
            "error = :error WHERE run_id = :run_id"
        ),
        {"run_id": run_id, "error": error},
    )


_RUN_COLUMNS = (
    "run_id, source_system, window_start, window_end, grace_seconds, manifest, status, started_at, "
    "finished_at, counts, stats, error"
)


def _stored(row: Any) -> StoredRun:
    return StoredRun(*row)


def run(conn: Connection, run_id: uuid.UUID) -> StoredRun | None:
    """One run by id."""
    row = conn.execute(
        text(f"SELECT {_RUN_COLUMNS} FROM reconciliation_runs WHERE run_id = :run_id"), {"run_id": run_id}
    ).first()
    return None if row is None else _stored(row)


def recent_runs(conn: Connection, *, system: str | None = None, limit: int = 20) -> list[StoredRun]:
    """The newest runs, newest first, of one system or of all."""
    rows = conn.execute(
        text(
            f"SELECT {_RUN_COLUMNS} FROM reconciliation_runs "
            "WHERE CAST(:system AS text) IS NULL OR source_system = :system "
            "ORDER BY started_at DESC LIMIT :limit"
        ),
        {"system": system, "limit": limit},
    )
    return [_stored(row) for row in rows]


def previous_run_id(conn: Connection, system: str, before: datetime) -> uuid.UUID | None:
    """The system's last completed run started before ``before`` (its findings give ``first_seen_at``)."""
    value = conn.execute(
        text(
            "SELECT run_id FROM reconciliation_runs WHERE source_system = :system AND status = 'completed' "
            "AND started_at < :before ORDER BY started_at DESC LIMIT 1"
        ),
        {"system": system, "before": before},
    ).scalar_one_or_none()
    return value if isinstance(value, uuid.UUID) else None


def findings(conn: Connection, run_id: uuid.UUID, *, limit: int | None = None) -> list[dict[str, Any]]:
    """A run's findings as dicts (column → value), content mismatches with field differences first."""
    rows = conn.execute(
        text(
            "SELECT kind, external_order_id, hub_order_id, country_code, bu_code, sales_channel, "
            "source_version, hub_version, source_updated_at, hub_updated_at, source_fingerprint, "
            "hub_fingerprint, field_differences, detail, first_seen_at FROM reconciliation_findings "
            "WHERE run_id = :run_id ORDER BY first_seen_at, kind, external_order_id "
            "LIMIT CAST(:limit AS bigint)"
        ),
        {"run_id": run_id, "limit": limit},
    )
    return [dict(row._mapping) for row in rows]


def finding_counts_by(conn: Connection, run_id: uuid.UUID, dimension: str) -> dict[tuple[str, str], int]:
    """``{(value, kind): count}`` of a run's findings by a tenancy column.

    ``dimension`` is ``country_code``, ``bu_code`` or ``sales_channel``; a finding without it counts
    as ``unknown``.
    """
    if dimension not in ("country_code", "bu_code", "sales_channel"):
        raise ValueError(f"cannot count findings by {dimension!r}")
    rows = conn.execute(
        text(
            f"SELECT coalesce({dimension}, 'unknown'), kind, count(*) FROM reconciliation_findings "
            "WHERE run_id = :run_id GROUP BY 1, 2"
        ),
        {"run_id": run_id},
    )
    return {(value, kind): int(count) for value, kind, count in rows}


def open_findings_since(
    conn: Connection, run_a: uuid.UUID, run_b: uuid.UUID
) -> dict[str, list[dict[str, Any]]]:
    """Run B against run A: findings ``new`` in B, ``resolved`` since A, and ``open`` in both."""
    query = text(
        """SELECT CASE WHEN a.finding_id IS NULL THEN 'new' WHEN b.finding_id IS NULL THEN 'resolved'
                       ELSE 'open' END AS change,
                  coalesce(b.kind, a.kind) AS kind,
                  coalesce(b.external_order_id, a.external_order_id) AS external_order_id,
                  coalesce(b.country_code, a.country_code) AS country_code,
                  coalesce(b.first_seen_at, a.first_seen_at) AS first_seen_at
           FROM (SELECT * FROM reconciliation_findings WHERE run_id = :a) a
           FULL JOIN (SELECT * FROM reconciliation_findings WHERE run_id = :b) b
             ON a.kind = b.kind AND a.external_order_id = b.external_order_id
           ORDER BY first_seen_at, kind, external_order_id"""
    )
    result: dict[str, list[dict[str, Any]]] = {"new": [], "resolved": [], "open": []}
    for row in conn.execute(query, {"a": run_a, "b": run_b}):
        mapping = dict(row._mapping)
        result[mapping.pop("change")].append(mapping)
    return result
