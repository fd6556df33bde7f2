"""Closed vocabularies of the canonical service order.

Each enum is a ``StrEnum`` so that its members serialise as their plain names in JSON, Avro and the
database. New members may be added (Avro readers get a ``default`` symbol); members are never renamed.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

__all__ = [
    "CLOSED_ORDER_STATUSES",
    "TRANSPORTS",
    "CustomerKind",
    "EventType",
    "OrderStatus",
    "SalesChannel",
    "ServiceType",
    "Transport",
]

#: How an event reached the hub: the one definition of the transport list (the event table, the
#: adapters' metadata, the ``sales_systems`` rows and the rejected-event schema all read it).
Transport = Literal["webhook", "poll", "kafka", "replay"]
TRANSPORTS: tuple[Transport, ...] = get_args(Transport)


class SalesChannel(StrEnum):
    """The channel through which the customer bought the service."""

    IN_STORE = "IN_STORE"
    ONLINE = "ONLINE"
    PHONE = "PHONE"
    MOBILE = "MOBILE"
    PARTNER = "PARTNER"
    B2B = "B2B"


class ServiceType(StrEnum):
    """What the field technician is sent to do."""

    TECHNICAL_VISIT = "TECHNICAL_VISIT"
    MEASUREMENT = "MEASUREMENT"
    INSTALLATION = "INSTALLATION"
    ASSEMBLY = "ASSEMBLY"
    REPAIR = "REPAIR"
    MAINTENANCE = "MAINTENANCE"
    WARRANTY = "WARRANTY"
    OTHER = "OTHER"


class OrderStatus(StrEnum):
    """Life-cycle state of a service order as the source system last reported it."""

    RECEIVED = "RECEIVED"
    CONFIRMED = "CONFIRMED"
    SCHEDULED = "SCHEDULED"
    IN_PROGRESS = "IN_PROGRESS"
    ON_HOLD = "ON_HOLD"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


#: The statuses after which an order changes no more: retention counts its years from the last change.
CLOSED_ORDER_STATUSES: tuple[OrderStatus, ...] = (OrderStatus.COMPLETED, OrderStatus.CANCELLED)


class CustomerKind(StrEnum):
    """Whether the customer is a private person or a company (B2B)."""

    PERSON = "PERSON"
    COMPANY = "COMPANY"


class EventType(StrEnum):
    """What an inbound event says happened to the order."""

    CREATED = "CREATED"
    UPDATED = "UPDATED"
    CANCELLED = "CANCELLED"
