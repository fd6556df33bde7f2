"""The ranges canonical values must lie in, so that whatever the hub accepts it can also store,
publish, fingerprint and read back.

* Whole numbers that reach the database (``source_version``; line numbers and amounts are bounded
  tighter by the model) fit a PostgreSQL ``bigint`` / Avro ``long``: ``BIGINT_MIN`` … ``BIGINT_MAX``.
* Dates and times lie in the business range ``EARLIEST_DATE`` … ``LATEST_DATE`` (1900-01-01 to
  2200-12-31), read as written, in the value's own UTC offset. Any such time converts to UTC, to
  PostgreSQL ``timestamptz`` and to Avro ``timestamp-micros`` and back without overflow; outside it,
  ``0001-01-01T00:00+05:00`` has no UTC form in Python and ``9999-12-31T23:00-05:00`` is stored by
  PostgreSQL but cannot be read back.

The ``*_problem`` functions return the reason a value is out of range (``None`` when it is fine), so
that the mapping engine and the model report the same rule in the same words.
"""

from __future__ import annotations

from datetime import date, datetime

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


def time_problem(value: datetime) -> str | None:
    """Why ``value`` lies outside the business date range, or ``None``."""
    if EARLIEST_DATE <= value.date() <= LATEST_DATE:
        return None
    return (
        f"is out of range: dates must lie between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}"
    )
