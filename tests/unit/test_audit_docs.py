"""The README's list of sealed columns is the code's (``saleshub.store.seals``)."""

from __future__ import annotations

import re

from saleshub.actions.audit_trail import GRACE, SEALING_OVERDUE
from saleshub.store.seals import SEALED_ACTION_COLUMNS, SEALED_EVENT_COLUMNS
from saleshub.store.tables import integration_events, operator_actions
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _listed(prefix: str) -> list[str]:
    block = README.split("<!-- sealed-columns:start -->", 1)[1].split("<!-- sealed-columns:end -->", 1)[0]
    line = next(line for line in block.splitlines() if line.startswith(f"- {prefix}:"))
    return re.findall(r"`([a-z_0-9]+)`", line)


def test_the_readme_lists_the_sealed_columns_of_the_code() -> None:
    assert _listed("events") == list(SEALED_EVENT_COLUMNS)
    assert _listed("operator actions") == list(SEALED_ACTION_COLUMNS)


def test_the_sealed_columns_are_columns_and_never_the_raw_body_or_the_state() -> None:
    assert set(SEALED_EVENT_COLUMNS) <= set(integration_events.c.keys())
    assert set(SEALED_ACTION_COLUMNS) == set(operator_actions.c.keys())  # an action never changes
    changing = {"raw_body", "raw_body_purged_at", "status", "errors", "mapping", "hub_order_id"}
    changing |= {"processed_at", "superseded_by", "processing_ms", "order_version_no", "event_type"}
    assert not changing & set(SEALED_EVENT_COLUMNS)


def test_the_readme_says_when_an_unsealed_hour_becomes_a_finding() -> None:
    hours, rest = divmod(int((GRACE + SEALING_OVERDUE).total_seconds()) // 60, 60)
    said = " ".join(README.split("## Tamper-evident audit trail", 1)[1].split())
    assert f"once it ended more than {hours} hours {rest} minutes ago" in said
    assert (
        f"the {int(GRACE.total_seconds()) // 60}-minute grace plus {SEALING_OVERDUE.seconds // 3600} hours"
        in said
    )
