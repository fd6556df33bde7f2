"""Masked customer values for reports: enough to recognise a record, never the value itself.

``a•••@e•••.com`` for an e-mail, ``+34 ••• ••• •••78`` for a phone (country code and last two digits),
``A•••`` for a name or a street, the postcode's first two characters. The linking keeps the real
values in the database; only these leave it in a report.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DOT", "masked_record"]

DOT = "•••"


def _initial(value: str | None) -> str | None:
    return None if not value else f"{value[0].upper()}{DOT}"


def _email(value: str | None) -> str | None:
    if not value or "@" not in value:
        return _initial(value)
    local, domain = value.rsplit("@", 1)
    tld = domain.rsplit(".", 1)[-1] if "." in domain else ""
    return f"{local[:1]}{DOT}@{domain[:1]}{DOT}.{tld}" if tld else f"{local[:1]}{DOT}@{DOT}"


def _phone(value: str | None) -> str | None:
    if not value:
        return None
    digits = value.lstrip("+")
    return f"+{digits[:2]} {DOT} {DOT} {DOT}{digits[-2:]}" if len(digits) > 6 else DOT


def masked_record(values: dict[str, Any]) -> dict[str, str | None]:
    """The masked form of a customer record's normalised values."""
    postal = values.get("postal_code")
    return {
        "name": " ".join(
            part for part in (_initial(values.get("first_name")), _initial(values.get("last_name"))) if part
        )
        or None,
        "email": _email(values.get("email")),
        "phone": _phone(values.get("phone")),
        "address": " ".join(
            part
            for part in (
                None if not postal else f"{str(postal)[:2]}{DOT}",
                _initial(values.get("street")),
            )
            if part
        )
        or None,
    }
