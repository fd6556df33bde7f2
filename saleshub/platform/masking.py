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

The same names tell ``mappings validate`` which source paths hold personal data
(``is_personal_path``): one list for masking and for the mapping check.

It errs on the side of masking (an IP address written in four long groups is masked too) and never
raises: what cannot be parsed is left as it is. Identifiers the hub logs (event ids, order keys,
trace ids, offsets, dates) keep their shape and are not touched.
"""

from __future__ import annotations

import re
from typing import Final

from canonical import PERSONAL_DATA_FIELDS

__all__ = ["MASK", "PERSONAL_KEYS", "is_personal_name", "is_personal_path", "mask", "source_field_name"]

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
        "loyaltyCard",
        "loyalty_card",
    }
)

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]++@[\w-]+(?:\.[\w-]+)*\.[A-Za-z][\w-]+")  # a domain, not a revision
_INTERNATIONAL = re.compile(r"\+\d(?:[\s().-]?\d){6,14}")
_GROUPED = re.compile(r"(?<![\w.:-])\d{2,4}(?:[ .-]\d{2,4}){2,6}(?![\w.:-])")
# A name is personal when it ends with one of the keys (``ContactFirstName``), in any case.
_PERSONAL_NAME = re.compile(
    "(?:" + "|".join(sorted((re.escape(key) for key in PERSONAL_KEYS), key=len, reverse=True)) + ")$",
    re.IGNORECASE,
)
# A name, its separator, and a value that does not open an object or a list (their members are
# matched on their own).
_FIELD = re.compile(
    r"""(?P<key>(?<!\w)["']?(?P<name>[A-Za-z_]\w*+)["']?\s*+[:=]\s*)"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'"""
    r"""|[^\s,;{}\[\]&<]+(?:[ ](?![^\s=:]+[=:])[^\s,;{}\[\]&=:<]+)*)"""
)
_XML_FIELD = re.compile(r"(?P<open><(?:\w+:)?(?P<name>\w+)\b[^<>]*>)(?P<text>[^<]*)(?P<close></)")


def is_personal_name(name: str) -> bool:
    """Whether a field or element name (``lastName``, ``tso:FirstName``) names personal data."""
    return bool(_PERSONAL_NAME.search(name))


_BRACKETS = re.compile(r"\[[^\]]*\]")
_STEP_SEPARATORS = re.compile(r"[./]")


def source_field_name(path: str) -> str:
    """The name of the field a source path ends at, without prefix, index or filter.

    ``order.customer.firstName`` → ``firstName``; ``shipToCustomer[0].ContactEmailAddress`` →
    ``ContactEmailAddress``; ``t:Order/t:Customer/@id`` → ``id``; ``t:Site/t:Street/text()`` →
    ``Street``; ``totals[?Code == 'NET'].Amount | [0]`` → ``Amount``.
    """
    text = _BRACKETS.sub("", path)
    pipes = [part.strip() for part in text.split("|") if part.strip()]
    steps = [step.strip() for step in _STEP_SEPARATORS.split(pipes[-1] if pipes else "") if step.strip()]
    steps = [step for step in steps if not step.endswith("()") and step not in ("$", "*", "@*")]
    if not steps:
        return ""
    return steps[-1].lstrip("@").rsplit(":", 1)[-1]


def is_personal_path(path: str) -> bool:
    """Whether a source path ends at a field whose name says it holds personal data."""
    name = source_field_name(path)
    return bool(name) and is_personal_name(name)


def _grouped(match: re.Match[str]) -> str:
    digits = sum(char.isdigit() for char in match.group(0))
    return MASK if 9 <= digits <= 15 else match.group(0)


def _field(match: re.Match[str]) -> str:
    if not _PERSONAL_NAME.search(match.group("name")):
        return match.group(0)
    value = match.group("value")
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group('key')}{quote}{MASK}{quote}"


def _xml_field(match: re.Match[str]) -> str:
    if not match.group("text") or not _PERSONAL_NAME.search(match.group("name")):
        return match.group(0)
    return f"{match.group('open')}{MASK}{match.group('close')}"


def mask(text: str) -> str:
    """``text`` with e-mail addresses, phone numbers and personal field values replaced by ``***``."""
    if not text:
        return text
    # Each pattern runs only where its anchor character occurs: most span tags have none.
    if ":" in text or "=" in text:
        text = _FIELD.sub(_field, text)
    if "</" in text:
        text = _XML_FIELD.sub(_xml_field, text)
    if "@" in text:
        text = _EMAIL.sub(MASK, text)
    if "+" in text:
        text = _INTERNATIONAL.sub(MASK, text)
    return _GROUPED.sub(_grouped, text)
