"""The hub's side of a reconciliation window as a compact snapshot, for a comparison outside PostgreSQL.

``copy_window`` writes, for one system and window, each order's key, source version, source
updated-at and fingerprint (the columns of ``ix_service_orders_reconcile``) as CSV without a header
(``WINDOW_COLUMNS``), sent by binary ``COPY … TO STDOUT`` in large values, one time slice of the
window at a time: PostgreSQL formats it in its own process while the caller reads the manifest.
"""

from __future__ import annotations

import itertools
import struct
from datetime import datetime
from typing import Any, BinaryIO

from psycopg import sql
from sqlalchemy import Connection, text

__all__ = ["WINDOW_COLUMNS", "copy_window", "session_time_zone"]

#: The snapshot's columns, in order, with their types.
WINDOW_COLUMNS = (
    ("key", "text"),
    ("version", "bigint"),
    ("updated_at", "timestamptz"),
    ("fingerprint", "bigint"),
)

# One CopyData message per row costs the client more than the server's scan (about a microsecond
# each in Python), so the server packs the rows into CSV text, many rows per value, by a hash of the
# key. The window is sent in time slices (each a range of ix_service_orders_reconcile) so that the
# server never holds more than a slice's text at once. The key is quoted as CSV quotes it (it may
# hold commas or quotes); a missing version or fingerprint is an empty field.
_SLICES = 16
_BUCKETS = 64
_WINDOW = """COPY (
    SELECT convert_to(string_agg(concat_ws(',',
               '"' || replace(o.external_order_id, '"', '""') || '"',
               coalesce(o.source_version::text, ''), o.source_updated_at::text,
               coalesce(o.fingerprint::text, '')), E'\\n') || E'\\n', 'UTF8')
    FROM service_orders o
    WHERE o.source_system = {system} AND o.source_updated_at >= {start} AND o.source_updated_at < {end}
    GROUP BY hashtextextended(o.external_order_id, 0) & {mask}
) TO STDOUT (FORMAT binary)"""
# Binary COPY: a signature and header, then per row a field count (2 bytes) and the value's length
# (4 bytes) before its bytes, and a trailer of two bytes.
_HEADER = 19
_FIELD = struct.Struct("!hi")


def copy_window(conn: Connection, system: str, start: datetime, end: datetime, out: BinaryIO) -> int:
    """Write the window's orders of ``system`` to ``out`` as CSV (``WINDOW_COLUMNS``); return the bytes.

    The rows come in no particular order. Times are written with their offset, so a reader needs no
    time zone to read them.
    """
    cursor: Any = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    step = (end - start) / _SLICES
    bounds = [start + step * i for i in range(_SLICES)] + [end]
    written = 0
    for low, high in itertools.pairwise(bounds):
        statement = sql.SQL(_WINDOW).format(
            system=sql.Literal(system),
            start=sql.Literal(low),
            end=sql.Literal(high),
            mask=sql.Literal(_BUCKETS - 1),
        )
        first = True
        with cursor.copy(statement) as copy:
            for message in copy:
                view = memoryview(message)
                if first:
                    view, first = view[_HEADER:], False
                if len(view) < _FIELD.size:  # the trailer
                    continue
                _count, length = _FIELD.unpack_from(view)
                if length > 0:
                    out.write(view[_FIELD.size : _FIELD.size + length])
                    written += length
    return written


def session_time_zone(conn: Connection) -> str:
    """The time zone this session reads a time without an offset in (``TimeZone``)."""
    return str(conn.execute(text("SELECT current_setting('TimeZone')")).scalar_one())
