"""ISO code lists the canonical model validates against, loaded once from their libraries.

Countries and languages come from ``pycountry`` (ISO 3166-1, ISO 639-1); currencies and their number of
minor-unit digits from ``babel`` (CLDR, which follows ISO 4217).
"""

from __future__ import annotations

from functools import cache

import pycountry
from babel.numbers import get_currency_precision, list_currencies

__all__ = ["COUNTRY_CODES", "CURRENCY_CODES", "LANGUAGE_CODES", "currency_minor_digits"]

COUNTRY_CODES: frozenset[str] = frozenset(c.alpha_2 for c in pycountry.countries)
LANGUAGE_CODES: frozenset[str] = frozenset(
    lang.alpha_2 for lang in pycountry.languages if hasattr(lang, "alpha_2")
)
CURRENCY_CODES: frozenset[str] = frozenset(list_currencies())


@cache
def currency_minor_digits(currency: str) -> int:
    """Number of decimal places a currency's amounts carry (EUR and PLN: 2, JPY: 0)."""
    return int(get_currency_precision(currency))
