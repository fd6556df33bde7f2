"""Masking a customer's personal data in free text: log lines, span tags, error messages.

``mask(text)`` replaces, with ``***``:

* e-mail addresses;
* phone numbers: ``+`` and 7–15 digits (spaces, dots, dashes, brackets allowed between them), and
  national numbers written in groups (``612 345 678``, ``06.12.34.56.78``) of 9–15 digits;
* the value after a known personal field name, in JSON, Python or ``key=value`` form
  (``"firstName": "Ana"``, ``'last_name': 'Gil'``, ``street=Calle Mayor 1``): the canonical
  fields of ``canonical.PERSONAL_DATA_FIELDS`` and the source systems' names for them, also at
  the end of a longer name (``ContactFirstName``);
* the text of XML elements so named (``<tso:FirstName>Ana</tso:FirstName>``).

It errs on the side of masking (an IP address written in four long groups is masked too) and never
raises: what cannot be parsed is left as it is. Identifiers the hub logs (event ids, order keys,
trace ids, offsets, dates) keep their shape and are not touched.
"""

from __future__ import annotations

import re
from typing import Final

from canonical import PERSONAL_DATA_FIELDS

__all__ = ["MASK", "PERSONAL_KEYS", "mask"]

MASK: Final = "***"

# The canonical names (last part of each personal field path) and what the sources call them.
PERSONAL_KEYS: Final = frozenset(
    {path.rsplit(".", 1)[-1] for path in PERSONAL_DATA_FIELDS}
    | {
        "firstName",
        "lastName",
        "fullName",
        "full_name",
        "companyName",
        "customerName",
        "customer_name",
        "contactName",
        "contact_name",
        "mail",
        "emailAddress",
        "phoneNumber",
        "phone_number",
        "mobile",
        "telephone",
        "street",
        "streetExtra",
        "street_extra",
        "address",
        "addressLine1",
        "addressLine2",
        "address_line1",
        "address_line2",
        "Imie",
        "Nazwisko",
        "Ulica",
        "Telefon",
        "PersonFirstName",
        "PersonLastName",
        "EmailAddress",
        "PhoneNumber",
        "AddressLine1",
        "AddressLine2",
        "PartyName",
        "Building",
        "Flat",
    }
)

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z][\w-]+")  # a domain, not a revision
_INTERNATIONAL = re.compile(r"\+\d(?:[\s().-]?\d){6,14}")
_GROUPED = re.compile(r"(?<![\w.:-])\d{2,4}(?:[ .-]\d{2,4}){2,6}(?![\w.:-])")
_KEYS = "|".join(sorted((re.escape(key) for key in PERSONAL_KEYS), key=len, reverse=True))
_FIELD = re.compile(
    rf"""(?P<key>["']?\w*?(?:{_KEYS})\b["']?\s*[:=]\s*)"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|<[^>]*>"""
    r"""|[^\s,;}\]&]+(?:[ ](?![^\s=:]+[=:])[^\s,;}\]&=:]+)*)""",
    re.IGNORECASE,
)
_XML_FIELD = re.compile(rf"(?P<open><(?:\w+:)?\w*?(?:{_KEYS})\b[^>]*>)[^<]*(?P<close></)", re.IGNORECASE)


def _grouped(match: re.Match[str]) -> str:
    digits = sum(char.isdigit() for char in match.group(0))
    return MASK if 9 <= digits <= 15 else match.group(0)


def _field(match: re.Match[str]) -> str:
    value = match.group("value")
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group('key')}{quote}{MASK}{quote}"


def mask(text: str) -> str:
    """``text`` with e-mail addresses, phone numbers and personal field values replaced by ``***``."""
    if not text:
        return text
    text = _FIELD.sub(_field, text)
    text = _XML_FIELD.sub(lambda m: f"{m.group('open')}{MASK}{m.group('close')}", text)
    text = _EMAIL.sub(MASK, text)
    text = _INTERNATIONAL.sub(MASK, text)
    return _GROUPED.sub(_grouped, text)
