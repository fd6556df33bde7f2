"""A batch of rows sent as parallel arrays and read back as a table: ``unnest(:a, :b) AS t(a, b)``.

Statements over a batch join this table instead of testing ``(a, b) IN (…)`` with a parameter per
value, or running one statement per row: one short statement whatever the batch size (psycopg
parses a query's text on the client, so thousands of placeholders cost more than the work), and
each row of the table one index probe. Column ``c`` is bound to the array parameter ``c_array``
(a parameter named like a column is reserved by INSERT and UPDATE statements).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import TypeEngine

__all__ = ["array_rows"]


def array_rows(*columns: tuple[str, TypeEngine[Any]]) -> Any:
    """The table of the ``(name, type)`` columns, each bound to the array parameter ``name_array``."""
    arrays = [bindparam(f"{name}_array", type_=ARRAY(kind)) for name, kind in columns]
    return func.unnest(*arrays).table_valued(*(name for name, _ in columns)).render_derived()
