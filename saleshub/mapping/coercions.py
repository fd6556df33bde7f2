"""Value coercions and text transforms applied by value nodes, each failing with a plain reason.

Every coercion takes the raw value a path produced (text from XML; text, int, ``Decimal``, bool from
JSON, which the adapters decode with exact decimals) and returns the canonical Python value or raises
``CoercionError`` saying what was expected. Money and decimals never pass through ``float``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from canonical.codes import CURRENCY_CODES, currency_minor_digits

__all__ = [
    "TRANSFORMS",
    "CoercionError",
    "to_bool",
    "to_datetime",
    "to_decimal",
    "to_int",
    "to_minor_money",
    "to_phone",
    "to_text",
    "zone",
]

_SPACES = re.compile(r"\s+")
_DECIMAL_TEXT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_MAX_NUMBER_CHARS = 40


class CoercionError(ValueError):
    """A source value cannot be turned into the requested type; the message says why."""


def to_text(value: Any) -> str:
    """Text as is; numbers and booleans spelled the JSON way."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    raise CoercionError(f"expected text, got {type(value).__name__}")


def to_int(value: Any) -> int:
    """A whole number from an integer, an integral decimal or digits."""
    if isinstance(value, bool):
        raise CoercionError("expected a whole number, got true/false")
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit() and len(value) <= 19:
        return int(value.strip())
    raise CoercionError("expected a whole number")


def to_decimal(value: Any, separator: str = ".", scale: int | None = None) -> Decimal:
    """An exact decimal from digits (with the given decimal separator) or a JSON number."""
    if isinstance(value, bool | float):
        raise CoercionError(f"expected a decimal number, got {type(value).__name__}")
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, str):
        text = value.strip().replace(" ", "").replace("\u00a0", "")
        if separator == ",":
            text = text.replace(".", "").replace(",", ".")
        if len(text) > _MAX_NUMBER_CHARS or not _DECIMAL_TEXT.match(text):
            expected = "digits with ',' for decimals" if separator == "," else "digits with '.'"
            raise CoercionError(f"expected a decimal number ({expected})")
        number = Decimal(text)
    else:
        raise CoercionError(f"expected a decimal number, got {type(value).__name__}")
    if not number.is_finite():
        raise CoercionError("expected a finite number")
    if scale is not None:
        try:
            quantized = number.quantize(Decimal(1).scaleb(-scale))
        except InvalidOperation:
            raise CoercionError("number too large") from None
        if quantized != number:
            raise CoercionError(f"has more than {scale} decimal places")
        number = quantized
    return number


def to_minor_money(value: Any, currency: str) -> Decimal:
    """An amount given as an integer count of minor units (cents) as a decimal amount."""
    if currency not in CURRENCY_CODES:
        raise CoercionError(f"currency {currency!r} is not an ISO 4217 code")
    return Decimal(to_int(value)).scaleb(-currency_minor_digits(currency))


def to_bool(value: Any) -> bool:
    """A boolean from true/false, Y/N, yes/no, 1/0 (any case)."""
    if isinstance(value, bool):
        return value
    text = to_text(value).strip().lower()
    if text in {"true", "y", "yes", "1"}:
        return True
    if text in {"false", "n", "no", "0"}:
        return False
    raise CoercionError("expected true/false, Y/N or 1/0")


def zone(name: str) -> tzinfo:
    """The IANA time zone ``name``; raises ``CoercionError`` for an unknown zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CoercionError(f"{name!r} is not an IANA time zone (e.g. Europe/Madrid)") from None


def to_datetime(value: Any, source_zone: tzinfo | None, fmt: str | None) -> datetime:
    """A timezone-aware time: ISO 8601 (or ``fmt``); naive times are read in ``source_zone``."""
    if not isinstance(value, str):
        raise CoercionError("expected a date-time as text")
    text = value.strip()
    try:
        parsed = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text)
    except ValueError:
        expected = f"the format {fmt}" if fmt else "ISO 8601, e.g. 2026-11-23T10:30:00+01:00"
        raise CoercionError(f"expected a date-time in {expected}") from None
    if parsed.tzinfo is None:
        if source_zone is None:
            raise CoercionError("has no time zone and the mapping declares no `timezone`")
        parsed = parsed.replace(tzinfo=source_zone)
    return parsed


def to_phone(value: Any, region: str | None) -> str:
    """An E.164 phone number; local numbers are read as numbers of ``region`` (ISO country)."""
    e164, problem = _e164(to_text(value).strip(), region)
    if problem is not None:
        raise CoercionError(problem)
    return e164


@lru_cache(maxsize=16_384)
def _e164(text: str, region: str | None) -> tuple[str, str | None]:
    # libphonenumber's checks cost ~40 µs, most of a Pyxis order's mapping time, and a phone comes
    # back with each update and cancellation of its order and with the customer's next order.
    # Bounded: a few MB at most. Failures are cached as their reason.
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return "", f"is not a phone number (read as a number of {region or 'no country'})"
    if not phonenumbers.is_valid_number(number):
        return "", f"is not a valid phone number for {region or 'its country code'}"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


def _strip_leading_zeros(text: str) -> str:
    return text.lstrip("0") or ("0" if text else text)


#: Text transforms, applied in the order the mapping lists them, before lookup and coercion.
TRANSFORMS: dict[str, Callable[[str], str]] = {
    "trim": str.strip,
    "upper": str.upper,
    "lower": str.lower,
    "collapse_spaces": lambda text: _SPACES.sub(" ", text).strip(),
    "strip_leading_zeros": _strip_leading_zeros,
}
