"""The ``sales_systems`` rows and their business-unit links, written from the adapters' metadata.

A sales system is known to the hub by its adapter (built in, or a plug-in installed with pip); its
row is written here when the hub starts with ``migrate``, so adding a system needs no migration.
``sync_systems`` inserts a missing row and brings an existing one in line with the adapter (name,
countries, and the ``transports``/``channels``/``media_types`` keys of its configuration; other keys
an operator set stay), then links the system to every business unit of the countries it serves.
A new link is never primary: which system is a business unit's primary one is an operator's choice.
A row is never deleted: events and orders keep naming a system whose adapter is gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, cast, select
from sqlalchemy.dialects.postgresql import JSONB, insert

from saleshub.store.tables import business_unit_sales_systems, business_units, sales_systems

__all__ = ["SystemRow", "sync_systems"]


@dataclass(frozen=True, slots=True)
class SystemRow:
    """What the hub knows of one sales system from its adapter."""

    code: str
    name: str
    countries: tuple[str, ...]
    configuration: dict[str, Any]


def sync_systems(conn: Connection, systems: Sequence[SystemRow]) -> list[str]:
    """Upsert each system's row and its business-unit links; returns the codes that were new."""
    known = set(conn.execute(select(sales_systems.c.code)).scalars())
    for system in systems:
        statement = insert(sales_systems).values(
            code=system.code,
            name=system.name,
            countries=list(system.countries),
            configuration=system.configuration,
        )
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[sales_systems.c.code],
                set_={
                    "name": statement.excluded.name,
                    "countries": statement.excluded.countries,
                    # the adapter's keys win; keys an operator added stay
                    "configuration": sales_systems.c.configuration.op("||")(
                        cast(statement.excluded.configuration, JSONB)
                    ),
                },
            )
        )
        units = select(business_units.c.code).where(business_units.c.country_code.in_(system.countries))
        links = [
            {"bu_code": bu, "system_code": system.code, "is_primary": False}
            for bu in conn.execute(units).scalars()
        ]
        if links:
            conn.execute(insert(business_unit_sales_systems).values(links).on_conflict_do_nothing())
    return sorted({s.code for s in systems} - known)
