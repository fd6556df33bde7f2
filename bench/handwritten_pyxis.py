"""A hand-written Pyxis → canonical mapper: the baseline the declarative engine is measured against.

It does what ``mappings/pyxis/order.yaml`` says, in plain Python, with the same decoder, the same
crosswalk tables (loaded once), the same phone normalisation and the same canonical validation, so
that the benchmark compares only "interpret a compiled mapping" against "run hand-written code".
A test checks that both give the same order for every Pyxis golden sample.
"""

from __future__ import annotations

import csv
import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from adapters.decoding import decode_json
from canonical import ServiceOrder
from saleshub.mapping.coercions import to_phone

_SPACES = re.compile(r"\s+")


def _table(directory: Path, name: str, column: str, to: str = "canonical") -> dict[str, str]:
    with (directory / f"{name}.csv").open(encoding="utf-8-sig", newline="") as handle:
        return {row[column]: row[to] for row in csv.DictReader(handle) if row[column]}


class HandwrittenPyxisMapper:
    """Maps one Pyxis body to a validated ``ServiceOrder``."""

    def __init__(self, crosswalks: Path) -> None:
        self.channels = _table(crosswalks, "channels", "pyxis")
        self.units = _table(crosswalks, "units", "pyxis")
        self.products = _table(crosswalks, "products", "pyxis")
        self.service_types = _table(crosswalks, "service_types", "pyxis")
        self.statuses = _table(crosswalks, "order_statuses", "pyxis")
        self.business_units = _table(crosswalks, "business_units", "pyxis")

    @staticmethod
    def _clean(value: Any) -> str | None:
        return _SPACES.sub(" ", value).strip() if isinstance(value, str) and value.strip() else None

    @staticmethod
    def _money(cents: Any, currency: str) -> dict[str, Any] | None:
        return None if cents is None else {"amount": Decimal(cents).scaleb(-2), "currency": currency}

    def map(self, body: bytes) -> ServiceOrder:
        """Decode, map and validate one Pyxis event body."""
        event = decode_json("pyxis", body)
        order = event["order"]
        country = order["country"].strip().upper()
        currency = order["currency"].strip().upper()
        customer = order.get("customer") or {}
        address = order.get("serviceAddress") or {}
        phone = customer.get("phone")
        if phone:
            phone = to_phone(phone, country)
        slot = order.get("requestedSlot") or {}
        totals = order.get("totals") or {}
        status = (
            "CANCELLED"
            if event["eventType"] == "order.cancelled"
            else (self.statuses[order["status"].strip().upper()] if order.get("status") else "RECEIVED")
        )
        metadata: dict[str, str] = {}
        attributes = order.get("attributes") or {}
        for key, name in (
            ("loyaltyCard", "loyalty_card"),
            ("campaign", "campaign"),
            ("webSession", "web_session"),
        ):
            if attributes.get(key):
                metadata[name] = attributes[key]
        data: dict[str, Any] = {
            "source_system": "pyxis",
            "external_order_id": order["orderId"].strip(),
            "source_version": order.get("revision"),
            "source_updated_at": datetime.fromisoformat(order["updatedAt"])
            if order.get("updatedAt")
            else None,
            "sales_channel": self.channels[order["channel"].strip().upper()],
            "country_code": country,
            "bu_code": self.business_units[f"{country}-{order['banner'].strip().upper()}"],
            "store_code": order["storeId"].strip() if order.get("storeId") else None,
            "customer": {
                "kind": "COMPANY" if customer.get("companyName") else "PERSON",
                "external_customer_id": customer.get("id"),
                "first_name": self._clean(customer.get("firstName")),
                "last_name": self._clean(customer.get("lastName")),
                "company_name": self._clean(customer.get("companyName")),
                "email": customer["email"].strip().lower() if customer.get("email") else None,
                "phone": phone,
                "language": customer["language"].strip().lower() if customer.get("language") else None,
            },
            "service_address": {
                "line1": self._clean(address.get("street")),
                "line2": self._clean(address.get("streetExtra")),
                "postal_code": address["zip"].strip(),
                "city": self._clean(address.get("city")),
                "region": self._clean(address.get("province")),
                "country_code": (address.get("country") or country).strip().upper(),
            },
            "service_type": self.service_types[order["serviceType"].strip().upper()],
            "lines": [
                {
                    "line_number": item["lineNo"],
                    "product_code": self.products[item["sku"].strip().upper()],
                    "source_product_code": item["sku"].strip().upper(),
                    "description": self._clean(item.get("label")),
                    "quantity": Decimal(item["qty"]) if isinstance(item["qty"], int) else item["qty"],
                    "unit_of_measure": self.units.get(
                        item["unit"].strip().upper(), item["unit"].strip().upper()
                    ),
                    "unit_price": self._money(item["unitPriceCents"], currency),
                }
                for item in order.get("items") or []
            ],
            "totals": {
                "net_amount": self._money(totals.get("netCents"), currency),
                "tax_amount": self._money(totals.get("taxCents"), currency),
                "gross_amount": self._money(totals.get("grossCents"), currency),
            },
            "ordered_at": datetime.fromisoformat(order["createdAt"]),
            "requested_window": (
                {"start": datetime.fromisoformat(slot["from"]), "end": datetime.fromisoformat(slot["to"])}
                if slot
                else None
            ),
            "status": status,
            "cancellation_reason": (order.get("cancellation") or {}).get("reasonCode", "").strip().upper()
            or None,
            "notes": order.get("notes") or None,
            "system_metadata": metadata,
        }
        return ServiceOrder.model_validate(data)
