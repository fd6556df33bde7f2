"""The linking model: Splink (DuckDB backend) settings built in code, with fixed m and u probabilities.

Four comparisons, each with levels from strongest to weakest agreement; a level's weight is
``log2(m / u)``: how much more often it occurs between two records of one person (m) than between
two records of different people (u). The numbers are set here rather than trained, so a nightly
run of a few hundred new records scores exactly like the first run over millions, and they were
chosen so that:

* one e-mail, or one phone with a matching name, is enough; a name alone is not;
* a phone, address and surname shared by a family are household evidence: with another first name
  (the ``family`` level, strongly negative) they do not make one customer;
* swapped first and last names, one typo in a name or e-mail, missing accents and transliterated
  Cyrillic (already folded by ``normalise``) still agree.

Two rules stand above the weights:

* **different given names veto a link** (``GIVEN_NAMES_DIFFER``, and ``given_names_agree`` for the
  clustering): two records whose first names are both known and neither equal, one typo apart, a
  known nickname of each other, nor the other record's names swapped are two people, whatever
  e-mail, phone and address they share (a household does). The canonical order has no date of
  birth, so no date can veto or support a link;
* **a value shared by many records loses its weight** (Splink's term-frequency adjustment on the
  exact e-mail and phone levels): an exact agreement on a value that ``k`` differently named records
  hold weighs ``log2(k)`` less (its u probability is ``k`` times the level's), and a value held by
  more than ``BLOCK_LIMIT`` distinct records (a store terminal's ``noemail@…`` or ``000000000``) is
  neither a blocking key nor evidence at all: the run treats it as missing.

Candidate pairs come from ``BLOCKING_KEYS`` (the same keys pick a nightly run's candidates among
known records in PostgreSQL). No dataset or network is used: the settings are code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from reconciliation.linking.normalise import given_key
from saleshub.store.linking import RECORD_COLUMNS

__all__ = [
    "BLOCKING_KEYS",
    "BLOCK_LIMIT",
    "COLUMNS",
    "COMPARISONS",
    "GIVEN_NAMES_DIFFER",
    "MATCH_THRESHOLD",
    "PRIOR",
    "TF_COLUMNS",
    "Level",
    "given_names_agree",
    "level_label",
    "level_weight",
    "splink_settings",
]

#: The normalised columns a record carries into the model (besides its id): the stored record's,
#: but the city (the postcode says it), and ``given`` (the first name with nicknames folded).
COLUMNS = (*(c for c in RECORD_COLUMNS if c != "city"), "given")

#: Two records are compared when they agree on every column of one of these keys.
BLOCKING_KEYS: tuple[tuple[str, ...], ...] = (
    ("email",),
    ("phone",),
    ("postal_code", "house_number"),
    ("name_key", "postal_code"),
)

#: A blocking-key value shared by more distinct records than this is no key and no evidence.
BLOCK_LIMIT = 100
#: The columns whose exact agreement is adjusted by how many differently named records share it.
TF_COLUMNS = ("email", "phone")

#: The match probability at or above which two records are one customer.
MATCH_THRESHOLD = 0.95
#: The prior: the chance that two records picked at random are the same customer.
PRIOR = 1e-6


@dataclass(frozen=True, slots=True)
class Level:
    """One agreement level of a comparison: its SQL condition, label, and m and u probabilities."""

    label: str
    sql: str | None  # None: the "else" level
    m: float
    u: float
    null: bool = False
    tf: str | None = None  # the column whose term frequency adjusts an agreement on this level


_JW = "jaro_winkler_similarity"


def _close(left: str, right: str) -> str:
    """One typo apart, or close on Jaro-Winkler (long names with more than one slip)."""
    return f"({_JW}({left}_l, {right}_r) >= 0.9 OR damerau_levenshtein({left}_l, {right}_r) <= 1)"


_DL = "damerau_levenshtein"

#: Both first names known and not one person's: not equal (nicknames folded in ``given``), not one
#: typo apart, not the same words, and not the other record's names swapped (the given name within
#: one typo, the surname within two). Mirrors ``given_names_agree`` with ``slack=1``.
GIVEN_NAMES_DIFFER = (
    "(l.first_name IS NOT NULL AND r.first_name IS NOT NULL AND l.given <> r.given "
    f"AND {_DL}(l.first_name, r.first_name) > 1 AND l.name_key IS DISTINCT FROM r.name_key "
    "AND NOT coalesce(l.last_name IS NOT NULL AND r.last_name IS NOT NULL "
    f"AND least({_DL}(l.first_name, r.last_name), {_DL}(l.last_name, r.first_name)) <= 1 "
    f"AND greatest({_DL}(l.first_name, r.last_name), {_DL}(l.last_name, r.first_name)) <= 2, false))"
)


def _osa(a: str, b: str) -> int:
    """Optimal string alignment distance (DuckDB's ``damerau_levenshtein``)."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


_Name = tuple[str | None, str | None]


def given_names_agree(left: _Name, right: _Name, *, slack: int = 1) -> bool:
    """Whether two ``(first name, last name)`` may be one person.

    With ``slack=1`` the negation of ``GIVEN_NAMES_DIFFER`` (a pair of records). The clustering
    asks with ``slack=2`` of every two records of two clusters it would join: two records each one
    typo off a third are two typos apart, and still one person.
    """
    (first_l, last_l), (first_r, last_r) = left, right
    if first_l is None or first_r is None:
        return True
    if given_key(first_l) == given_key(first_r) or _osa(first_l, first_r) <= slack:
        return True
    if sorted(f"{first_l} {last_l or ''}".split()) == sorted(f"{first_r} {last_r or ''}".split()):
        return True
    if last_l is None or last_r is None:
        return False
    swapped = sorted((_osa(first_l, last_r), _osa(last_l, first_r)))
    return swapped[0] <= slack and swapped[1] <= slack + 1


_NAME_SAME = f"({_close('first_name', 'first_name')} AND {_close('last_name', 'last_name')})"
_NAME_SWAPPED = f"({_close('first_name', 'last_name')} AND {_close('last_name', 'first_name')})"

#: ``{comparison: levels}``, strongest first; a null level first where values may be missing.
COMPARISONS: dict[str, tuple[Level, ...]] = {
    "email": (
        Level("missing", "email_l IS NULL OR email_r IS NULL", 1, 1, null=True),
        Level("exact", "email_l = email_r", 0.8, 2e-6, tf="email"),
        Level("one or two typos", "damerau_levenshtein(email_l, email_r) <= 2", 0.08, 2e-5),
        Level("different", None, 0.12, 0.99998),
    ),
    "phone": (
        Level("missing", "phone_l IS NULL OR phone_r IS NULL", 1, 1, null=True),
        Level("exact", "phone_l = phone_r", 0.8, 4e-5, tf="phone"),
        Level("different", None, 0.2, 0.99996),
    ),
    "name": (
        Level("missing", "last_name_l IS NULL OR last_name_r IS NULL", 1, 1, null=True),
        Level("exact", "first_name_l = first_name_r AND last_name_l = last_name_r", 0.7, 1e-5),
        Level("swapped", "first_name_l = last_name_r AND last_name_l = first_name_r", 0.06, 1e-7),
        Level("same words", "name_key_l = name_key_r", 0.02, 1e-6),
        Level("close (typos)", f"{_NAME_SAME} OR {_NAME_SWAPPED}", 0.2, 5e-6),
        Level(
            "family (surname agrees, first name does not)",
            f"{_close('last_name', 'last_name')} AND NOT {_close('first_name', 'first_name')}",
            2e-6,
            0.002,
        ),
        Level("different", None, 0.004, 0.99797),
    ),
    "address": (
        Level("missing", "postal_code_l IS NULL OR postal_code_r IS NULL", 1, 1, null=True),
        Level(
            "same street, number and postcode",
            "postal_code_l = postal_code_r AND house_number_l = house_number_r "
            f"AND {_JW}(street_l, street_r) >= 0.85",
            0.7,
            2e-5,
        ),
        Level(
            "same postcode and number",
            "postal_code_l = postal_code_r AND house_number_l = house_number_r",
            0.1,
            4e-5,
        ),
        Level("same postcode", "postal_code_l = postal_code_r", 0.1, 1e-3),
        Level("different", None, 0.1, 0.998989),
    ),
}


def level_weight(level: Level) -> float:
    """The level's match weight, ``log2(m / u)`` (0 for the null level: no evidence either way)."""
    return 0.0 if level.null else math.log2(level.m / level.u)


def level_label(comparison: str, weight: float) -> str:
    """The label of the level of ``comparison`` whose weight Splink reported (``mw_<comparison>``)."""
    return min(COMPARISONS[comparison], key=lambda level: abs(level_weight(level) - weight)).label


def _level(level: Level) -> dict[str, Any]:
    return {
        "sql_condition": "ELSE" if level.sql is None else f"({level.sql})",
        "label_for_charts": level.label,
        "is_null_level": level.null,
        **({} if level.null else {"m_probability": level.m, "u_probability": level.u}),
        **({"tf_adjustment_column": level.tf, "tf_adjustment_weight": 1.0} if level.tf else {}),
    }


def splink_settings() -> dict[str, Any]:
    """The Splink settings dictionary: deduplication over ``unique_id``, no training needed."""
    return {
        "link_type": "dedupe_only",
        "unique_id_column_name": "unique_id",
        "probability_two_random_records_match": PRIOR,
        "retain_matching_columns": False,
        "retain_intermediate_calculation_columns": True,
        "blocking_rules_to_generate_predictions": [
            # ``open_<i>``: the record's value of key i is no large block (see ``BLOCK_LIMIT``).
            {"blocking_rule": " AND ".join([f"l.open_{i}", f"r.open_{i}", *(f"l.{c} = r.{c}" for c in key)])}
            for i, key in enumerate(BLOCKING_KEYS)
        ],
        "comparisons": [
            {
                "output_column_name": name,
                "comparison_description": name,
                "comparison_levels": [_level(level) for level in levels],
            }
            for name, levels in COMPARISONS.items()
        ],
    }
