"""The canonical service order: the one shape every source system's order is mapped into.

Validation is strict and explains itself: every rule failure names the field (pydantic's ``loc``) and
the rule in words a data steward can act on. Amounts are ``Decimal`` (a float is refused outright),
times are timezone-aware, codes are ISO (country 3166-1 alpha-2, currency 4217, language 639-1).
The model is pure: no I/O, no clock, no randomness; ``hub_order_id`` is derived from the order's
identity so that replaying an event always yields the same id.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)

from canonical.codes import COUNTRY_CODES, CURRENCY_CODES, LANGUAGE_CODES, currency_minor_digits
from canonical.enums import CustomerKind, OrderStatus, SalesChannel, ServiceType
from canonical.limits import BIGINT_MAX, time_problem

__all__ = [
    "AVRO_CONTEXT",
    "HUB_ORDER_NAMESPACE",
    "PERSONAL_DATA_FIELDS",
    "Address",
    "BusinessTime",
    "Code",
    "CountryCode",
    "Customer",
    "ExactDecimal",
    "Money",
    "OrderLine",
    "ServiceOrder",
    "ServiceWindow",
    "Text",
    "Totals",
    "hub_order_id_for",
    "is_personal_field",
]

#: Namespace of the deterministic hub order ids (UUIDv5 of ``"{source_system}:{external_order_id}"``).
HUB_ORDER_NAMESPACE = uuid.UUID("6f1c3a52-8d7e-4b0a-9c1e-2f4d5e6a7b80")

#: Canonical fields that hold a customer's personal data; error messages and logs mask their values.
#: The one definition of the list (docs/privacy.md explains each entry and what is left out, and a
#: test keeps that page equal to this set). ``notes`` is free text a call centre fills with names and
#: phone numbers, so it counts as a whole. Postal code, city, region and country are not here: they
#: locate thousands of people, and reconciliation and reports compare and group by them.
PERSONAL_DATA_FIELDS: frozenset[str] = frozenset(
    {
        "customer.first_name",
        "customer.last_name",
        "customer.company_name",
        "customer.email",
        "customer.phone",
        "customer.external_customer_id",
        "service_address.line1",
        "service_address.line2",
        "notes",
    }
)


def is_personal_field(target: str) -> bool:
    """Whether a canonical field path (``customer.email``, ``lines[2].notes``) holds personal data."""
    return ".".join(part.split("[", 1)[0] for part in target.split(".")) in PERSONAL_DATA_FIELDS


_MAX_AMOUNT_DIGITS = 15  # integer digits of an amount: below 10**15, so minor units fit a bigint
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
# Shape check only: deliverability is the source system's business, and a full RFC 5322 parser
# would cost more per order than the rest of validation together.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _refuse_float(value: object) -> object:
    if isinstance(value, float):
        raise ValueError(
            f"got the binary float {value!r}; amounts and quantities must be exact decimals "
            "(a string or a Decimal), never floats"
        )
    return value


def _check_time(value: datetime) -> datetime:
    problem = time_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


ExactDecimal = Annotated[Decimal, BeforeValidator(_refuse_float)]
#: A timezone-aware time within the business range of ``canonical.limits`` (1900 … 2200).
BusinessTime = Annotated[AwareDatetime, AfterValidator(_check_time)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Code = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^\S(.*\S)?$")]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


def _check_country(value: str) -> str:
    if value not in COUNTRY_CODES:
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return value


def hub_order_id_for(source_system: str, external_order_id: str) -> uuid.UUID:
    """The hub's stable id of an order: the same source order always gets the same id."""
    return uuid.uuid5(HUB_ORDER_NAMESPACE, f"{source_system}:{external_order_id}")


AVRO_CONTEXT: dict[str, bool] = {"avro": True}  # pass as context= to dump in the Avro record form


class _Canonical(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


class Money(_Canonical):
    """An exact amount in one ISO 4217 currency, with no more decimals than the currency has."""

    amount: ExactDecimal
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]

    @model_validator(mode="after")
    def _check_currency_and_scale(self) -> Self:
        if self.currency not in CURRENCY_CODES:
            raise ValueError(f"currency {self.currency!r} is not an ISO 4217 code")
        digits = currency_minor_digits(self.currency)
        amount = self.amount
        # Fast path, taken by nearly every amount: finite (an int exponent), already at the
        # currency's scale, within range. Anything else gets the full checks below, which look at
        # the exponent (``adjusted``) before any arithmetic: ``abs()`` or ``quantize`` of 1E+999999999
        # overflows, and converting it would take minutes.
        if amount.as_tuple().exponent == -digits and amount.adjusted() < _MAX_AMOUNT_DIGITS:
            return self
        if not amount.is_finite():
            raise ValueError(f"amount {amount} is not a finite number")
        if amount.is_zero():
            amount = Decimal(0)  # 0E+999999999 and -0 are zero
        elif amount.adjusted() >= _MAX_AMOUNT_DIGITS:
            raise ValueError(f"amount {amount} is out of range (at most 15 integer digits)")
        quantized = amount.quantize(Decimal(1).scaleb(-digits))
        if amount != quantized:
            raise ValueError(
                f"amount {amount} has more decimal places than {self.currency} allows ({digits})"
            )
        # Same value, currency's own scale: 75.5 EUR is stored and published as 75.50.
        object.__setattr__(self, "amount", quantized)
        return self

    @property
    def minor_units(self) -> int:
        """The amount as an integer count of the currency's minor unit (cents, grosze)."""
        return int(self.amount.scaleb(currency_minor_digits(self.currency)))

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        # The Avro form (``model_dump(context=AVRO_CONTEXT)``) carries integer minor units, never a
        # decimal; every other dump is the plain field form.
        if info.context is AVRO_CONTEXT:
            return {"amount_minor": self.minor_units, "currency": self.currency}
        return handler(self)


class Customer(_Canonical):
    """Who ordered the service: a person or a company, with how to reach them."""

    kind: CustomerKind = CustomerKind.PERSON
    external_customer_id: Code | None = None
    first_name: Text | None = None
    last_name: Text | None = None
    company_name: Text | None = None
    email: Annotated[str, StringConstraints(max_length=254)] | None = None
    phone: str | None = Field(default=None, description="E.164, e.g. +34612345678")
    language: str | None = Field(default=None, description="ISO 639-1, lower case, e.g. 'es'")

    @field_validator("email")
    @classmethod
    def _check_email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError("is not an e-mail address (expected name@domain.tld)")
        return value

    @field_validator("phone")
    @classmethod
    def _check_phone(cls, value: str | None) -> str | None:
        if value is not None and not _E164.match(value):
            raise ValueError("is not an E.164 phone number (expected + and 7 to 15 digits)")
        return value

    @field_validator("language")
    @classmethod
    def _check_language(cls, value: str | None) -> str | None:
        if value is not None and value not in LANGUAGE_CODES:
            raise ValueError(f"{value!r} is not an ISO 639-1 language code (e.g. 'es', 'pl')")
        return value

    @model_validator(mode="after")
    def _check_name(self) -> Self:
        if self.kind is CustomerKind.COMPANY and self.company_name is None:
            raise ValueError("a COMPANY customer needs company_name")
        if self.kind is CustomerKind.PERSON and self.last_name is None:
            raise ValueError("a PERSON customer needs last_name")
        return self


class Address(_Canonical):
    """Where the service is carried out."""

    line1: Text
    line2: Text | None = None
    postal_code: Annotated[str, StringConstraints(min_length=2, max_length=12)]
    city: Text
    region: Text | None = None
    country_code: CountryCode

    _country = field_validator("country_code")(_check_country)


class OrderLine(_Canonical):
    """One product or service on the order, with the canonical code and the source's own code."""

    line_number: Annotated[int, Field(ge=1, le=9999)]
    product_code: Code
    source_product_code: Code
    description: Text | None = None
    # The constraints come before the float check: so pydantic-core applies them natively on the
    # decimal; wrapped around a Python validator they would run as three Python calls (~4 µs a line).
    quantity: Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=3), BeforeValidator(_refuse_float)]
    unit_of_measure: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{1,8}$")] = "EA"
    unit_price: Money


class Totals(_Canonical):
    """Order totals as the source computed them; all in the order's currency."""

    net_amount: Money | None = None
    tax_amount: Money | None = None
    gross_amount: Money


class ServiceWindow(_Canonical):
    """The time span in which the customer asked for the service."""

    start: BusinessTime
    end: BusinessTime

    @model_validator(mode="after")
    def _check_order(self) -> Self:
        if self.end < self.start:
            raise ValueError(f"window ends ({self.end.isoformat()}) before it starts")
        return self


class ServiceOrder(_Canonical):
    """A retail service order in the hub's canonical form, whatever system it came from."""

    hub_order_id: uuid.UUID = Field(description="uuid5 of source_system:external_order_id")
    source_system: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,31}$")]
    external_order_id: Code
    source_version: Annotated[int, Field(ge=0, le=BIGINT_MAX)] | None = None
    source_updated_at: BusinessTime | None = None
    sales_channel: SalesChannel
    country_code: CountryCode
    bu_code: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9_-]{1,15}$")]
    store_code: Code | None = None
    customer: Customer
    service_address: Address
    service_type: ServiceType
    lines: list[OrderLine] = Field(default_factory=list, max_length=500)
    totals: Totals
    ordered_at: BusinessTime
    requested_window: ServiceWindow | None = None
    status: OrderStatus = OrderStatus.RECEIVED
    cancellation_reason: Text | None = None
    notes: Annotated[str, StringConstraints(max_length=4000)] | None = None
    system_metadata: dict[str, str] = Field(default_factory=dict)

    _country = field_validator("country_code")(_check_country)

    @model_validator(mode="before")
    @classmethod
    def _derive_hub_order_id(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        system, external_id = data.get("source_system"), data.get("external_order_id")
        if not (isinstance(system, str) and isinstance(external_id, str)):
            return data  # field validation reports what is wrong with the identity
        expected = hub_order_id_for(system, external_id)
        given = data.get("hub_order_id")
        if given is not None and str(given) != str(expected):
            raise ValueError(f"hub_order_id must be {expected} for this source order")
        return {**data, "hub_order_id": expected}

    @model_validator(mode="after")
    def _check_order_rules(self) -> Self:
        if not self.lines and self.status is not OrderStatus.CANCELLED:
            raise ValueError("an order needs at least one line unless it is CANCELLED")
        numbers = {line.line_number for line in self.lines}
        if len(numbers) != len(self.lines):
            raise ValueError(f"line numbers repeat: {sorted(line.line_number for line in self.lines)}")
        currency = self.totals.gross_amount.currency
        # One set of the currencies first: naming each amount is only needed to explain a mismatch.
        totals = self.totals
        currencies = {line.unit_price.currency for line in self.lines}
        currencies.update(m.currency for m in (totals.net_amount, totals.tax_amount) if m is not None)
        if currencies - {currency}:
            for money_name, money in self._money_fields():
                if money.currency != currency:
                    raise ValueError(
                        f"{money_name} is in {money.currency} but the order total is in {currency}"
                    )
        return self

    def _money_fields(self) -> list[tuple[str, Money]]:
        found: list[tuple[str, Money]] = [
            (f"totals.{name}", money)
            for name in ("net_amount", "tax_amount")
            if (money := getattr(self.totals, name)) is not None
        ]
        found += [(f"lines[{i}].unit_price", ln.unit_price) for i, ln in enumerate(self.lines)]
        return found

    @property
    def currency(self) -> str:
        """The order's currency (that of its gross total)."""
        return self.totals.gross_amount.currency

    def fingerprint(self) -> int:
        """Stable signed 64-bit fingerprint of the order's content; see ``canonical.fingerprint``."""
        from canonical.fingerprint import order_fingerprint

        return order_fingerprint(self)
