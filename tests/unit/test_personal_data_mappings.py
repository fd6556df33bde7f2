"""A mapping cannot route personal data into a non-personal canonical field unless a rule says so.

Each test writes its own small mapping of a made-up ``shop`` system; the base mapping maps the
customer's personal fields and reads non-personal values (country, postal code, campaign) into
non-personal fields, with a condition on the company name and a phone region from the country.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from saleshub.cli import app
from saleshub.mapping.catalog import MappingCatalog
from saleshub.mapping.personal import FIX, review_personal_data
from saleshub.platform.masking import is_personal_path, source_field_name
from tests.conftest import MAPPINGS, ROOT

PEPPOL = ROOT / "plugins/saleshub-peppol/src/saleshub_peppol/mappings/peppol/order.yaml"

BASE = """\
version: 1
system: shop
name: order
revision: "1"
source:
  format: json
target:
  external_order_id: {path: order.id, required: true}
  sales_channel: {const: ONLINE}
  country_code: {path: order.country, required: true}
  bu_code: {const: ES-SHOP}
  customer:
    fields:
      kind:
        first_of:
          - {const: COMPANY, when: {path: order.buyer.companyName, exists: true}}
        default: PERSON
      external_customer_id: {path: order.buyer.ref}
      last_name: {path: order.buyer.surname}
      company_name: {path: order.buyer.companyName}
      phone: {path: order.buyer.tel, type: phone, region: {path: order.country}}
  service_address:
    fields:
      line1: {path: order.site.street, required: true}
      postal_code: {path: order.site.zip, required: true}
      city: {path: order.site.city, required: true}
      country_code: {path: order.country}
  service_type: {const: INSTALLATION}
  lines:
    each: order.items
    fields:
      line_number: {position: true, type: int}
      product_code: {path: sku, required: true}
      source_product_code: {path: sku, required: true}
      quantity: {path: qty, type: decimal, required: true}
      unit_price: {path: price, type: money, currency: {path: $.order.currency}, required: true}
#LINES
  totals:
    fields:
      gross_amount: {path: order.total, type: money, currency: {path: order.currency}, required: true}
  ordered_at: {path: order.at, type: datetime, required: true}
#TARGET
  system_metadata:
    fields:
      campaign: {path: order.campaign}
#METADATA
"""


def write(directory: Path, target: str = "", metadata: str = "", lines: str = "") -> Path:
    """The base mapping with rules added to the target, ``system_metadata`` and the order lines."""
    text = BASE.replace("#TARGET\n", target).replace("#METADATA\n", metadata).replace("#LINES\n", lines)
    (directory / "shop").mkdir(parents=True, exist_ok=True)
    (directory / "crosswalks").mkdir(exist_ok=True)
    (directory / "shop" / "order.yaml").write_text(text, encoding="utf-8")
    return directory


def issues(directory: Path, revision: int | None = None) -> list[str]:
    _, found = MappingCatalog.check(directory, revision=revision, packaged=False)
    return [str(issue) for issue in found]


def line_of(directory: Path, needle: str) -> int:
    lines = (directory / "shop" / "order.yaml").read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, start=1) if needle in line)


def leak(directory: Path, field: str, needle: str, path: str, why: str) -> str:
    line = line_of(directory, needle)
    return (
        f"shop/order.yaml:{line}: {field}: reads personal data from {path} ({why}), "
        f"but is not a personal-data field; {FIX}"
    )


NAMED = "its name says it holds personal data"


def test_non_personal_sources_into_non_personal_fields_pass(tmp_path: Path) -> None:
    # Conditions (kind on companyName) and qualifiers (the phone's region from order.country, which
    # country_code reads too) steer a value without carrying their own into it.
    assert issues(write(tmp_path)) == []


def test_a_direct_copy_of_a_personal_name_is_refused_with_file_line_field_and_fix(tmp_path: Path) -> None:
    write(tmp_path, metadata="      contact: {path: order.buyer.lastName}\n")
    assert issues(tmp_path) == [
        leak(tmp_path, "system_metadata.contact", "contact:", "order.buyer.lastName", NAMED)
    ]


def test_a_path_another_rule_maps_into_a_personal_field_is_personal(tmp_path: Path) -> None:
    # ``surname`` is no name the masking knows: it is personal because customer.last_name reads it.
    write(tmp_path, metadata="      buyer: {path: order.buyer.surname}\n")
    why = f"mapped to customer.last_name in shop/order.yaml:{line_of(tmp_path, 'last_name:')}"
    assert issues(tmp_path) == [leak(tmp_path, "system_metadata.buyer", "buyer:", "order.buyer.surname", why)]


def test_a_personal_path_of_another_mapping_of_the_system_counts(tmp_path: Path) -> None:
    write(tmp_path)
    other = BASE.replace("name: order", "name: return").replace(
        "      last_name: {path: order.buyer.surname}\n", ""
    )
    other = other.replace("#TARGET\n", "  cancellation_reason: {path: order.buyer.surname}\n")
    (tmp_path / "shop" / "return.yaml").write_text(other.replace("#METADATA\n", "").replace("#LINES\n", ""))
    found = issues(tmp_path)
    assert len(found) == 1
    assert found[0].startswith("shop/return.yaml:")
    assert "cancellation_reason: reads personal data from order.buyer.surname" in found[0]
    assert f"(mapped to customer.last_name in shop/order.yaml:{line_of(tmp_path, 'last_name:')})" in found[0]


def test_a_leak_through_an_expression_is_refused(tmp_path: Path) -> None:
    rule = (
        "  cancellation_reason:\n"
        "    expr: \"concat(code, ' by ', who)\"\n"
        "    with:\n"
        "      code: {path: order.cancel.code}\n"
        "      who: {path: order.buyer.surname, transform: [trim]}\n"
    )
    write(tmp_path, target=rule)
    found = issues(tmp_path)
    assert len(found) == 1
    assert found[0].startswith(
        f"shop/order.yaml:{line_of(tmp_path, 'cancellation_reason:')}: cancellation_reason:"
    )
    assert "reads personal data from order.buyer.surname (mapped to customer.last_name" in found[0]


def test_leaks_through_a_candidate_a_lookup_and_a_repeated_group_are_refused(tmp_path: Path) -> None:
    target = (
        "  store_code:\n"
        "    path: order.buyer.telephone\n"
        "    lookup: {table: stores, column: shop, on_missing: default, default: S1}\n"
        "  cancellation_reason:\n"
        "    first_of:\n"
        "      - {path: order.cancel.code}\n"
        "      - {path: order.buyer.emailAddress}\n"
        "    default: OTHER\n"
    )
    lines = "      description: {path: installerContactName}\n"
    write(tmp_path, target=target, lines=lines)
    (tmp_path / "crosswalks" / "stores.csv").write_text("canonical,shop\nS1,0600\n", encoding="utf-8")
    assert sorted(issues(tmp_path)) == sorted(
        [
            leak(tmp_path, "store_code", "store_code:", "order.buyer.telephone", NAMED),
            leak(tmp_path, "cancellation_reason", "cancellation_reason:", "order.buyer.emailAddress", NAMED),
            leak(tmp_path, "lines.description", "description:", "installerContactName", NAMED),
        ]
    )


def test_acknowledged_rules_pass(tmp_path: Path) -> None:
    ack = "{allowed: true, reason: the installer calls this contact}"
    metadata = (
        f"      contact: {{path: order.buyer.lastName, personal_data: {ack}}}\n"
        "      reached:\n"
        "        first_of:\n"
        "          - {path: order.buyer.surname}\n"
        "          - {path: order.buyer.mobile}\n"
        f"        personal_data: {ack}\n"
        "      label:\n"
        "        expr: \"concat(campaign, ':', who)\"\n"
        "        with:\n"
        "          campaign: {path: order.campaign}\n"
        f"          who: {{path: order.buyer.surname, personal_data: {ack}}}\n"
    )
    assert issues(write(tmp_path, metadata=metadata)) == []


def test_validate_lists_the_acknowledged_rules(tmp_path: Path) -> None:
    ack = "{allowed: true, reason: the installer calls this contact}"
    write(tmp_path, metadata=f"      contact: {{path: order.buyer.lastName, personal_data: {ack}}}\n")
    result = CliRunner().invoke(app, ["mappings", "validate", "--dir", str(tmp_path)], terminal_width=250)
    assert result.exit_code == 0, result.output
    assert "Personal data in non-personal fields (acknowledged)" in result.output
    row = next(line for line in result.output.splitlines() if "system_metadata.contact" in line)
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    line = line_of(tmp_path, "contact:")
    assert cells == [
        f"shop/order.yaml:{line}",
        "system_metadata.contact",
        "order.buyer.lastName",
        "the installer calls this contact",
    ]


def test_personal_data_into_a_personal_field_needs_no_acknowledgement(tmp_path: Path) -> None:
    # notes is personal data: free text a call centre fills with names and phone numbers.
    write(
        tmp_path,
        target="  notes: {expr: \"concat(a, ' ', b)\", with: {a: {path: order.buyer.surname}, b: {path: order.buyer.tel}}}\n",
    )
    assert issues(tmp_path) == []


@pytest.mark.parametrize(
    ("acknowledgement", "problem"),
    [
        ("{allowed: true}", "contact.personal_data.reason: missing key 'reason'"),
        ("{allowed: false, reason: contact}", "contact.personal_data.allowed: Input should be True"),
        ("{allowed: true, reason: '  '}", "contact.personal_data.reason: say why the field must carry"),
    ],
)
def test_an_acknowledgement_needs_allowed_true_and_a_reason(
    tmp_path: Path, acknowledgement: str, problem: str
) -> None:
    write(
        tmp_path,
        metadata=f"      contact: {{path: order.buyer.lastName, personal_data: {acknowledgement}}}\n",
    )
    found = "\n".join(issues(tmp_path))
    assert f"shop/order.yaml:{line_of(tmp_path, 'contact:')}" in found
    assert problem in found


def test_a_stored_revision_is_not_checked_again(tmp_path: Path) -> None:
    # It maps exactly as it was deployed (before the check existed, perhaps): the hub must start.
    write(tmp_path, metadata="      contact: {path: order.buyer.lastName}\n")
    assert issues(tmp_path, revision=4) == []


def test_mappings_validate_prints_the_leak_with_file_and_line_and_exits_1(tmp_path: Path) -> None:
    write(tmp_path, metadata="      contact: {path: order.buyer.lastName}\n")
    done = subprocess.run(
        [sys.executable, "-m", "saleshub", "mappings", "validate", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env={"COLUMNS": "300", "PATH": "/usr/bin:/bin", "SALESHUB_LOG_FORMAT": "text"},
        check=False,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    line = line_of(tmp_path, "contact:")
    assert "1 problem(s) in the mappings" in done.stderr
    assert (
        f"shop/order.yaml:{line} system_metadata.contact: reads personal data from order.buyer.lastName "
        f"({NAMED}), but is not a personal-data field; {FIX}"
    ) in done.stderr


def test_the_shipped_mappings_and_the_peppol_plug_in_s_pass(tmp_path: Path) -> None:
    mappings = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, mappings)
    (mappings / "peppol").mkdir()
    shutil.copy(PEPPOL, mappings / "peppol" / "order.yaml")
    catalog, found = MappingCatalog.check(mappings, packaged=False)
    assert found == []
    assert {m.identity.system for m in catalog} == {"erp", "peppol", "pyxis", "tempo"}
    acknowledged = review_personal_data(catalog).acknowledged
    assert [(a.file, a.target, a.path) for a in acknowledged] == [
        ("pyxis/order.yaml", "system_metadata.loyalty_card", "order.attributes.loyaltyCard")
    ]


@pytest.mark.parametrize(
    ("path", "name", "personal"),
    [
        ("order.customer.firstName", "firstName", True),
        ("shipToCustomer[0].ContactEmailAddress", "ContactEmailAddress", True),
        ("totals[?TotalCode == 'QP_TOTAL_NET_PRICE'].TotalAmount | [0]", "TotalAmount", False),
        ("t:Order/t:Customer/@id", "id", False),
        ("t:Order/t:Site/t:Street/text()", "Street", True),
        ("cac:Party/cac:Contact/cbc:Telephone", "Telephone", True),
        ("$.order.attributes.loyaltyCard", "loyaltyCard", True),
        ("order.serviceAddress.zip", "zip", False),
    ],
)
def test_the_name_a_source_path_ends_at(path: str, name: str, personal: bool) -> None:
    assert source_field_name(path) == name
    assert is_personal_path(path) is personal
