"""The ranges canonical values must lie in, so that whatever the hub accepts it can also store,
publish, fingerprint and read back.

* Whole numbers that reach the database (``source_version``; line numbers and amounts are bounded
  tighter by the model) fit a PostgreSQL ``bigint`` / Avro ``long``: ``BIGINT_MIN`` … ``BIGINT_MAX``.
* Times are instants of the business range: in UTC, from ``EARLIEST_DATE`` 00:00 to ``LATEST_DATE``
  24:00 (1900-01-01T00:00:00Z up to 2200-12-31T23:59:59.999999Z), whatever offset they are written
  in. Any such time converts to UTC, to PostgreSQL ``timestamptz`` and to Avro ``timestamp-micros``
  and back, unchanged and without overflow; outside it, ``0001-01-01T00:00+05:00`` has no UTC form
  in Python and ``9999-12-31T23:00-05:00`` is stored by PostgreSQL but cannot be read back. The
  bound is on the instant, not the written date, so that an order read back in UTC is still valid.

The ``*_problem`` functions return the reason a value is out of range (``None`` when it is fine), so
that the mapping engine and the model report the same rule in the same words.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

__all__ = [
    "BIGINT_MAX",
    "BIGINT_MIN",
    "EARLIEST_DATE",
    "LATEST_DATE",
    "OUT_OF_BIGINT_RANGE",
    "bigint_problem",
    "time_problem",
]

BIGINT_MIN = -(2**63)
BIGINT_MAX = 2**63 - 1
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2200, 12, 31)
#: The rule a whole number out of the ``bigint`` range breaks, in words.
OUT_OF_BIGINT_RANGE = f"is out of range: a whole number must lie between {BIGINT_MIN} and {BIGINT_MAX}"


def bigint_problem(value: int) -> str | None:
    """Why ``value`` cannot be stored as a PostgreSQL ``bigint``, or ``None``."""
    return None if BIGINT_MIN <= value <= BIGINT_MAX else OUT_OF_BIGINT_RANGE


_ONE_DAY = timedelta(days=1)


def time_problem(value: datetime) -> str | None:
    """Why ``value`` lies outside the business range (in UTC; a naive time as UTC), or ``None``."""
    written = value.date()
    # Offsets are under a day: within a day of the range, the conversion to UTC cannot overflow.
    if EARLIEST_DATE - _ONE_DAY <= written <= LATEST_DATE + _ONE_DAY:
        instant = value.astimezone(UTC).date() if value.utcoffset() is not None else written
        if EARLIEST_DATE <= instant <= LATEST_DATE:
            return None
    return (
        f"is out of range: times must lie between {EARLIEST_DATE.isoformat()}T00:00:00Z "
        f"and {LATEST_DATE.isoformat()}T23:59:59.999999Z"
    )
