"""The canonical service-order model shared by every part of the hub. Pure: no I/O.

Import the public names from here; ``canonical.avro`` and ``canonical.fingerprint`` hold the Avro
derivation and the content fingerprint.
"""

from canonical.enums import CustomerKind, EventType, OrderStatus, SalesChannel, ServiceType
from canonical.model import (
    PERSONAL_DATA_FIELDS,
    Address,
    Customer,
    Money,
    OrderLine,
    ServiceOrder,
    ServiceWindow,
    Totals,
    hub_order_id_for,
    is_personal_field,
)

__all__ = [
    "PERSONAL_DATA_FIELDS",
    "Address",
    "Customer",
    "CustomerKind",
    "EventType",
    "Money",
    "OrderLine",
    "OrderStatus",
    "SalesChannel",
    "ServiceOrder",
    "ServiceType",
    "ServiceWindow",
    "Totals",
    "hub_order_id_for",
    "is_personal_field",
]
