"""Pure parts of linking across systems: normalisation, masking, the model's levels, cross-references."""

from __future__ import annotations

import pytest

from reconciliation.cross_system import category_of, key_specs
from reconciliation.crossrefs import load_cross_references
from reconciliation.linking.masking import masked_record
from reconciliation.linking.model import (
    COMPARISONS,
    GIVEN_NAMES_DIFFER,
    given_names_agree,
    level_label,
    level_weight,
    splink_settings,
)
from reconciliation.linking.normalise import customer_record, given_key, normal_name, normal_phone, street_key
from reconciliation.linking.run import Clusters, interruptible
from tests.conftest import MAPPINGS


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("José  Núñez-Gil", "jose nunez gil"),
        ("Łukasz", "lukasz"),
        ("Олександр", "oleksandr"),
        ("  ", None),
        (None, None),
    ],
)
def test_names_fold_to_lower_case_ascii(raw: str | None, expected: str | None) -> None:
    assert normal_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "country"), [("612 34 56 78", "ES"), ("+34 612-345-678", "ES"), ("0034612345678", "ES")]
)
def test_phones_in_any_format_become_e164(raw: str, country: str) -> None:
    assert normal_phone(raw, country) == "+34612345678"


def test_street_types_and_numbers() -> None:
    assert street_key("Avda. de la Paz, 12") == ("av paz", "12")
    assert street_key("Avenida Paz 12") == ("av paz", "12")
    assert street_key("12 Rue des Lilas") == ("r lilas", "12")
    assert street_key("ul. Lipowa 3") == street_key("ulica Lipowa 3")


def test_swapped_names_share_a_name_key() -> None:
    one = customer_record({"customer": {"first_name": "Ana", "last_name": "García López"}})
    two = customer_record({"customer": {"first_name": "Garcia Lopez", "last_name": "Ana"}})
    assert one.name_key == two.name_key == "ana garcia lopez"
    assert one.first_name != two.first_name


def test_a_company_without_contact_is_compared_by_its_name() -> None:
    record = customer_record({"customer": {"kind": "COMPANY", "company_name": "Construcciones Iberia SL"}})
    assert record.last_name == "construcciones iberia sl"


def test_masked_values_never_hold_the_value() -> None:
    values = {
        "first_name": "ana",
        "last_name": "garcia lopez",
        "email": "ana.garcia@example.es",
        "phone": "+34612345678",
        "postal_code": "28001",
        "street": "c mayor",
    }
    masked = masked_record(values)
    assert masked == {
        "name": "A••• G•••",
        "email": "a•••@e•••.es",
        "phone": "+34 ••• ••• •••78",
        "address": "28••• C•••",
    }
    assert masked_record({}) == {"name": None, "email": None, "phone": None, "address": None}


def test_each_level_is_told_apart_by_its_weight() -> None:
    for name, levels in COMPARISONS.items():
        weights = [level_weight(level) for level in levels]
        assert len(set(weights)) == len(weights), name
        for level in levels:
            assert level_label(name, level_weight(level)) == level.label
    family = next(level for level in COMPARISONS["name"] if level.label.startswith("family"))
    assert level_weight(family) < -9  # a shared phone and address do not outweigh another first name


def test_splink_settings_are_complete() -> None:
    settings = splink_settings()
    assert [c["output_column_name"] for c in settings["comparisons"]] == list(COMPARISONS)
    assert all(
        "m_probability" in level or level["is_null_level"]
        for comparison in settings["comparisons"]
        for level in comparison["comparison_levels"]
    )


def test_conflict_categories() -> None:
    assert category_of("totals.gross_amount") == "amount"
    assert category_of("lines[2].unit_price") == "amount"
    assert category_of("lines[2]") == "lines"
    assert category_of("lines[1].quantity") == "lines"
    assert category_of("requested_window.start") == "dates"
    assert category_of("status") == "status"


def test_the_live_cross_references_load() -> None:
    references = load_cross_references(MAPPINGS)
    specs = {(s.reference, s.system): s for s in key_specs(references)}
    erp = specs["pyxis_order", "erp"]
    assert erp.path == ("system_metadata", "source_transaction_number")
    assert erp.when_path == ("system_metadata", "source_transaction_system")
    assert specs["pyxis_order", "pyxis"].path == ("external_order_id",)


GIVEN_NAME_CASES = [  # (left (first, last), right (first, last), may be one person)
    (("lucia", "nunez sanchez"), ("alvaro", "nunez sanchez"), False),  # siblings
    (("lucia", "nunez sanchez"), ("lucai", "nunez sanchez"), True),  # one typo
    (("ana", "garcia lopez"), ("garcia lopez", "ana"), True),  # swapped
    (("ana", "garcia lopez"), ("garcia lopz", "ana"), True),  # swapped, with a typo
    (("garcia lopez", "ana"), ("pablo", "garcia lopez"), False),  # swapped sibling
    (("pepe", "ortega ruiz"), ("jose", "ortega ruiz"), True),  # a nickname
    ((None, "ortega ruiz"), ("jose", "ortega ruiz"), True),  # nothing to compare
    (("marta", "gil"), ("elena", "gil"), False),
    (("marta", None), ("gil", "marta"), False),  # no surname: nothing says the names are swapped
    (("lucia", "lzoano cstro"), ("lozano castro", "lucia"), True),  # swapped, two slips in the surname
]


@pytest.mark.parametrize(("left", "right", "agree"), GIVEN_NAME_CASES)
def test_different_given_names_veto_in_python_and_in_sql_alike(
    left: tuple[str | None, str | None], right: tuple[str | None, str | None], agree: bool
) -> None:
    import duckdb

    assert given_names_agree(left, right) is agree
    assert given_names_agree(right, left) is agree
    con = duckdb.connect()
    rows = []
    for side, (first, last) in (("l", left), ("r", right)):
        words = " ".join(sorted(f"{first or ''} {last or ''}".split()))
        rows.append((side, first, last, words, given_key(first)))
    con.execute(
        "CREATE TABLE t (side VARCHAR, first_name VARCHAR, last_name VARCHAR, name_key VARCHAR, given VARCHAR)"
    )
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", rows)
    (differ,) = con.execute(
        f"SELECT {GIVEN_NAMES_DIFFER} FROM t l, t r WHERE l.side = 'l' AND r.side = 'r'"
    ).fetchone() or (None,)
    assert bool(differ) is not agree


def test_a_cluster_does_not_grow_past_what_its_names_allow() -> None:
    clusters = Clusters()
    assert clusters.join(1, ("lucia", "nunez"), 2, (None, "nunez"))  # no first name: no veto
    assert not clusters.join(2, (None, "nunez"), 3, ("alvaro", "nunez"))  # Lucía's cluster: not Álvaro
    assert clusters.join(1, ("lucia", "nunez"), 5, ("luica", "nunez"))  # one slip
    assert clusters.join(5, ("luica", "nunez"), 6, ("lcuia", "nunez"))  # two slips from Lucía: one person
    assert clusters.join(3, ("alvaro", "nunez"), 4, ("alvaro", "nunez"))
    assert dict(clusters.moves()) == {2: 1, 4: 3, 5: 1, 6: 1}


def test_shared_values_lose_weight_through_splink_term_frequencies() -> None:
    settings = splink_settings()
    adjusted = {
        comparison["output_column_name"]: level["tf_adjustment_column"]
        for comparison in settings["comparisons"]
        for level in comparison["comparison_levels"]
        if "tf_adjustment_column" in level
    }
    assert adjusted == {"email": "email", "phone": "phone"}
    assert all(
        rule["blocking_rule"].startswith("l.open_")
        for rule in settings["blocking_rules_to_generate_predictions"]
    )


def test_a_stop_signal_interrupts_scoring_at_once() -> None:
    """SIGTERM reaches the main thread while DuckDB works; the query is interrupted, the run unwinds."""
    import os
    import signal
    import threading

    import duckdb

    from saleshub.commands.common import StopSignal, install_stop_handlers

    con = duckdb.connect()
    started = threading.Event()

    def endless(cursor: duckdb.DuckDBPyConnection) -> str:  # 10^13 rows: it never ends by itself
        started.set()
        query = "SELECT sum(a.range * b.range) FROM range(1000000) a, range(10000000) b"
        return str(cursor.execute(query).fetchone())

    previous = signal.getsignal(signal.SIGTERM)
    install_stop_handlers()
    try:
        threading.Thread(target=lambda: started.wait(60) and os.kill(os.getpid(), signal.SIGTERM)).start()
        with pytest.raises(StopSignal):
            interruptible(con, endless)
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert con.execute("SELECT 1").fetchone() == (1,)  # the connection is free again
