"""Sentences of README.md and docs/architecture.md that state a list or a message, kept equal to code."""

from __future__ import annotations

import inspect
import re

from adapters.decoding import MAX_NUMBER_CHARS
from saleshub.commands import serve
from saleshub.receive import signatures
from saleshub.store import tables
from saleshub.store.events import Status
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
ARCHITECTURE = (ROOT / "docs/architecture.md").read_text(encoding="utf-8")


def _between(text: str, marker: str) -> str:
    return text.split(f"<!-- {marker}:start -->", 1)[1].split(f"<!-- {marker}:end -->", 1)[0]


def test_the_architecture_page_lists_every_table_of_the_schema() -> None:
    listed = set(
        re.findall(
            r"`([a-z_]+)`",
            "".join(
                line.split("|")[1]
                for line in _between(ARCHITECTURE, "tables").splitlines()
                if line.startswith("| `")
            ),
        )
    )
    assert listed == set(tables.metadata.tables)


def test_a_202_says_accepted_as_the_answer_does() -> None:
    row = next(line for line in README.splitlines() if line.startswith("| 202 |"))
    assert f"`status` is `{Status.ACCEPTED.value}`" in row


def test_the_kafka_outage_line_is_quoted_as_status_prints_it() -> None:
    printed = "Kafka: broker unreachable since"
    assert printed in inspect.getsource(serve)
    quoted = re.findall(r"[`\"]([^`\"]*unreachable since) …", README)
    assert quoted and all(" ".join(q.split()) == printed for q in quoted), quoted


def test_the_sender_limits_are_the_codes() -> None:
    limits = _between(README, "sender-limits")
    assert f"at most {signatures._MAX_SIGNATURES} " in limits
    assert signatures._ID.pattern == r"^[\x21-\x7e]{1,255}$" and "1 to 255 printable ASCII" in limits
    assert f"at most {MAX_NUMBER_CHARS} characters" in limits


def test_the_transit_policy_in_operations_is_the_one_keys_policy_prints() -> None:
    from saleshub.platform.keys_vault import transit_policy
    from saleshub.platform.settings import PrivacySettings

    operations = (ROOT / "docs/operations.md").read_text(encoding="utf-8")
    block = _between(operations, "transit-policy").strip().removeprefix("```hcl").removesuffix("```")
    defaults = PrivacySettings()
    assert block.strip() == transit_policy(defaults.vault_transit_mount, defaults.vault_transit_key)
