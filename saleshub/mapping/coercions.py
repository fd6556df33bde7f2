"""Value coercions and text transforms applied by value nodes, each failing with a plain reason.

Every coercion takes the raw value a path produced (text from XML; text, int, ``Decimal``, bool from
JSON, which the adapters decode with exact decimals) and returns the canonical Python value or raises
``CoercionError`` saying what was expected. Money and decimals never pass through ``float``.

Hostile values cost no more than ordinary ones: every number is bounded by its exponent and digit
count *before* it is converted or quantized (``int(Decimal("1e999999"))`` alone takes half a minute),
whole numbers must fit a PostgreSQL ``bigint``, times must lie in the business range of
``canonical.limits``, and phone numbers longer than any real one are refused before libphonenumber
(and its cache) sees them.
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
from canonical.limits import OUT_OF_BIGINT_RANGE, bigint_problem, time_problem

__all__ = [
    "TRANSFORMS",
    "CoercionError",
    "bounded_decimal",
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
_DECIMAL_TEXT = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$")
_INTEGER_TEXT = re.compile(r"^[+-]?[0-9]{1,19}$")
_MAX_NUMBER_CHARS = 40
# A decimal number has at most this many digits before and after its decimal point: far beyond any
# amount or quantity (the model allows 15 and 12), small enough that every operation on it is cheap.
_MAX_INTEGER_DIGITS = 18
_MAX_FRACTION_DIGITS = 20
# No phone number has more characters than this, spaces and punctuation included (E.164: 15 digits).
_MAX_PHONE_CHARS = 64


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


def _bigint(number: int) -> int:
    problem = bigint_problem(number)
    if problem is not None:
        raise CoercionError(problem)
    return number


def to_int(value: Any) -> int:
    """A whole number that fits a PostgreSQL ``bigint``, from an integer, an integral decimal or digits."""
    if isinstance(value, bool):
        raise CoercionError("expected a whole number, got true/false")
    if isinstance(value, int):
        return _bigint(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise CoercionError("expected a whole number, got a number that is not finite")
        if value.is_zero():
            return 0
        # Look at the exponent before converting: int(Decimal("1e999999")) takes half a minute.
        if value.adjusted() > _MAX_INTEGER_DIGITS:
            raise CoercionError(OUT_OF_BIGINT_RANGE)
        if value == value.to_integral_value():
            return _bigint(int(value))
        raise CoercionError("expected a whole number, got a fraction")
    if isinstance(value, str) and _INTEGER_TEXT.match(text := value.strip()):
        return _bigint(int(text))
    raise CoercionError("expected a whole number")


def bounded_decimal(number: Decimal) -> Decimal:
    """``number`` if it is finite with at most 18 digits before its point and 20 after; any zero as 0.

    Looks only at the exponent and digits, so it is cheap whatever the number (``1E+999999999``
    included); every later operation on the result (quantize, compare, convert) is then cheap too.
    """
    if not number.is_finite():
        raise CoercionError("expected a finite number")
    if number.is_zero():
        return Decimal(0)  # -0 and 0E+999999999 are zero
    if number.adjusted() >= _MAX_INTEGER_DIGITS:
        raise CoercionError(f"is too large: at most {_MAX_INTEGER_DIGITS} digits before the decimal point")
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -_MAX_FRACTION_DIGITS:
        raise CoercionError(f"has too many decimal places: at most {_MAX_FRACTION_DIGITS}")
    return number


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
    number = bounded_decimal(number)
    if scale is not None:
        try:  # 18 integer digits and 12 places exceed the default context's 28 digits
            quantized = number.quantize(Decimal(1).scaleb(-scale))
        except InvalidOperation:
            raise CoercionError(f"has too many digits to keep {scale} decimal places") from None
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
    problem = time_problem(parsed)
    if problem is not None:
        raise CoercionError(problem)
    return parsed


def to_phone(value: Any, region: str | None) -> str:
    """An E.164 phone number; local numbers are read as numbers of ``region`` (ISO country)."""
    text = to_text(value).strip()
    if len(text) > _MAX_PHONE_CHARS:
        # Refused before the cache: a megabyte-long "number" must not occupy one of its entries.
        raise CoercionError(f"is not a phone number (longer than {_MAX_PHONE_CHARS} characters)")
    e164, problem = _e164(text, region)
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
