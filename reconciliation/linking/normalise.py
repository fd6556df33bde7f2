"""A customer record as linking compares it: normalised e-mail, E.164 phone, names and postal address.

Pure functions, no I/O. Every value is folded to what two sources would agree on for the same
person: lower case ASCII (``anyascii`` transliterates accents and other scripts: ``Łukasz`` →
``lukasz``, ``Олександр`` → ``oleksandr``), punctuation and repeated spaces gone, street-type words
shortened to one form (``avenida``/``av.`` → ``av``), the phone parsed as E.164 with the order's
country for a national number. The swap-insensitive ``name_key`` (the name's words, sorted) lets a
record whose first and last names were entered the other way round meet its twin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from anyascii import anyascii

from saleshub.mapping.coercions import to_phone

__all__ = [
    "NICKNAMES",
    "CustomerRecord",
    "customer_record",
    "given_key",
    "normal_email",
    "normal_name",
    "normal_phone",
    "street_key",
]

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_NOT_WORD = re.compile(r"[^a-z0-9]+")
_NOT_NAME = re.compile(r"[^a-z]+")
_NUMBER = re.compile(r"\b(\d{1,5})[a-z]?\b")
# Street-type words of the hub's countries (ES, FR, IT, PL) and their abbreviations, to one form.
_STREET_WORDS = {
    "calle": "c",
    "c": "c",
    "cl": "c",
    "avenida": "av",
    "avda": "av",
    "av": "av",
    "avenue": "av",
    "ave": "av",
    "plaza": "pl",
    "pza": "pl",
    "place": "pl",
    "piazza": "pl",
    "plac": "pl",
    "pl": "pl",
    "paseo": "ps",
    "po": "ps",
    "rue": "r",
    "r": "r",
    "boulevard": "bd",
    "bd": "bd",
    "bvd": "bd",
    "via": "v",
    "v": "v",
    "viale": "vle",
    "corso": "cso",
    "ulica": "ul",
    "ul": "ul",
    "aleja": "al",
    "al": "al",
    "aleje": "al",
    "carrer": "c",
    "de": "",
    "del": "",
    "la": "",
    "le": "",
    "di": "",
    "della": "",
    "des": "",
    "du": "",
}

#: Everyday forms of first names in the hub's countries, to the name they stand for (normalised).
#: Two records whose first names fold to one form may be one person; other first names veto a link.
NICKNAMES = {
    "pepe": "jose",
    "paco": "francisco",
    "curro": "francisco",
    "lola": "dolores",
    "manolo": "manuel",
    "nacho": "ignacio",
    "chema": "jose maria",
    "quique": "enrique",
    "concha": "concepcion",
    "pili": "pilar",
    "maite": "maria teresa",
    "fran": "francisco",
    "javi": "javier",
    "alex": "alejandro",
    "dani": "daniel",
    "isa": "isabel",
    "bea": "beatriz",
    "gigi": "luigi",
    "beppe": "giuseppe",
    "peppe": "giuseppe",
    "pino": "giuseppe",
    "gianni": "giovanni",
    "nino": "giovanni",
    "sandro": "alessandro",
    "ale": "alessandro",
    "fede": "federica",
    "vale": "valentina",
    "kasia": "katarzyna",
    "gosia": "malgorzata",
    "basia": "barbara",
    "ola": "aleksandra",
    "tomek": "tomasz",
    "kuba": "jakub",
    "bartek": "bartlomiej",
    "wojtek": "wojciech",
    "zosia": "zofia",
    "asia": "joanna",
    "madzia": "magdalena",
    "jedrek": "jedrzej",
    "sasha": "oleksandr",
    "sacha": "alexandre",
    "manu": "emmanuel",
    "tom": "thomas",
    "nico": "nicolas",
    "max": "maxime",
    "steph": "stephanie",
}


def given_key(first_name: str | None) -> str | None:
    """A normalised first name with an everyday form folded to the name it stands for."""
    return None if first_name is None else NICKNAMES.get(first_name, first_name)


def _ascii(value: str) -> str:
    return anyascii(value).lower()


def normal_email(value: str | None) -> str | None:
    """The address in lower case without spaces, or ``None``."""
    if not value:
        return None
    text = "".join(value.split()).lower()
    return text or None


def normal_phone(value: str | None, country: str | None) -> str | None:
    """The number in E.164 (a national number read in ``country``), or its digits if it will not parse."""
    if not value:
        return None
    if _E164.fullmatch(value):  # what the canonical model holds
        return value
    try:
        return to_phone(value, country)
    except ValueError:
        digits = "".join(ch for ch in value if ch.isdigit())
        return f"+{digits}" if digits else None


def normal_name(value: str | None) -> str | None:
    """Letters only, transliterated to lower-case ASCII, words separated by one space."""
    if not value:
        return None
    text = " ".join(_NOT_NAME.sub(" ", _ascii(value)).split())
    return text or None


def street_key(line: str | None) -> tuple[str | None, str | None]:
    """``(street words, house number)`` of an address line: ``Avda. de la Paz, 12`` → ``(av paz, 12)``."""
    if not line:
        return None, None
    words = _NOT_WORD.sub(" ", _ascii(line)).split()
    number = next((m.group(1) for m in map(_NUMBER.fullmatch, words) if m), None)
    street = " ".join(w for w in (_STREET_WORDS.get(w, w) for w in words if not w.isdigit()) if w)
    return street or None, number


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """One order's customer, normalised; the values linking compares and blocks on."""

    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    name_key: str | None
    postal_code: str | None
    street: str | None
    house_number: str | None
    city: str | None


def customer_record(order: dict[str, Any]) -> CustomerRecord:
    """The normalised customer of a canonical order's JSON (``customer`` and ``service_address``).

    A company without a contact person is compared by its company name in place of a last name.
    """
    customer: dict[str, Any] = order.get("customer") or {}
    address: dict[str, Any] = order.get("service_address") or {}
    first = normal_name(customer.get("first_name"))
    last = normal_name(customer.get("last_name")) or normal_name(customer.get("company_name"))
    words = sorted(f"{first or ''} {last or ''}".split())
    postal = "".join(ch for ch in str(address.get("postal_code") or "").upper() if ch.isalnum()) or None
    street, number = street_key(address.get("line1"))
    return CustomerRecord(
        email=normal_email(customer.get("email")),
        phone=normal_phone(customer.get("phone"), order.get("country_code")),
        first_name=first,
        last_name=last,
        name_key=" ".join(words) or None,
        postal_code=postal,
        street=street,
        house_number=number,
        city=normal_name(address.get("city")),
    )
