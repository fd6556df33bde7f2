"""Staging a source's manifest: streamed into a temporary table by COPY, every row typed.

``stage_manifest`` streams the manifest (CSV with a header, or JSON lines) into a temporary table
(``MANIFEST_TABLE``) with PostgreSQL's ``COPY`` — parsing, quoting and character decoding happen in
the server — and types every row; a row whose key, version, time or fingerprint does not parse, or
a CSV row with too few or too many values, keeps a ``problem`` instead of failing the load. A row
may also carry a ``problem`` of its own (a reader that could not turn a source's record into an
order says why), reported the same way. Only real dates and times are read: the words PostgreSQL
takes for a time (``TIME_WORDS``) make a row unreadable. ``saleshub.store.manifest_checks`` reads
the staged rows back; ``saleshub.store.classification`` compares them with the hub.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Connection, text

from saleshub.errors import ManifestError

__all__ = ["MANIFEST_TABLE", "TIME_WORDS", "ManifestFormat", "ManifestLayout", "stage_manifest"]

_RAW = "reconcile_raw"
#: The temporary table a run's manifest is staged in (one per transaction).
MANIFEST_TABLE = "reconcile_manifest"


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
_TIME_WORDS_SQL = r"\m(" + "|".join(TIME_WORDS) + r")\M"
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
        sql.SQL("CREATE TEMP TABLE {} ({})").format(sql.Identifier(MANIFEST_TABLE), sql.SQL(_TYPED_COLUMNS))
    )
    cursor.execute("SAVEPOINT reconcile_typed_copy")
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER true)").format(
        sql.Identifier(MANIFEST_TABLE), sql.SQL(", ").join(map(sql.Identifier, columns))
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
        cursor.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(MANIFEST_TABLE)))
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
        ).format(sql.Identifier(MANIFEST_TABLE))
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
    conn.execute(text(f"DROP TABLE IF EXISTS {_RAW}, {MANIFEST_TABLE}"))
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
        # The failed COPY used up line numbers (a sequence does not roll back): start again at 1.
        cursor.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN line_no RESTART").format(sql.Identifier(_RAW)))
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
            check = sql.SQL("({} AND {} !~* {})").format(check, value, sql.Literal(_TIME_WORDS_SQL))
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
            manifest=sql.Identifier(MANIFEST_TABLE),
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
    cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(MANIFEST_TABLE)))
    (rows,) = cursor.fetchone()
    return int(rows)
