"""Hostile XML sent as a Peppol document is refused cleanly at every step the plug-in adds.

Like the hub's decoding suite (``tests/unit/test_decoding.py``), but through the whole adapter
(decode, the UBL schema, Saxon's Schematron run, the mapping): entity and DTD attacks are refused
before parsing; XInclude, ``xsi:schemaLocation`` and processing instructions inside a well-formed
UBL root resolve nothing (no file read, no connection) and end in a ``DataError``.
"""

from __future__ import annotations

import socket
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_peppol_contract import TestPeppolContract

from adapters.api import DataError, DecodeError, DocumentRuleError, SourceAdapter
from tests.support.machine import machine_slowness

SECRET = "TOP-SECRET-PEPPOL-41c2"
HERE = Path(__file__).resolve().parent
ORDER = (HERE / "official" / "Order_Example.xml").read_bytes()
UBL = 'xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"'


@pytest.fixture(scope="module")
def adapter() -> SourceAdapter:
    return TestPeppolContract.make_adapter()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET, encoding="utf-8")
    return path


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback TCP listener: any connection attempt from a parser or Saxon would land here."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.3)
    yield server
    server.close()


def entity_attacks(secret: Path, url: str) -> dict[str, str]:
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    return {
        "external-entity": f'<!DOCTYPE Order [<!ENTITY x SYSTEM "file://{secret}">]><Order {UBL}>&x;</Order>',
        "external-dtd": f'<!DOCTYPE Order SYSTEM "{url}/evil.dtd"><Order {UBL}/>',
        "parameter-entity": f'<!DOCTYPE Order [<!ENTITY % p SYSTEM "{url}/p.ent"> %p;]><Order {UBL}/>',
        "network-entity": f'<!DOCTYPE Order [<!ENTITY x SYSTEM "{url}/x">]><Order {UBL}>&x;</Order>',
        "billion-laughs": f'<!DOCTYPE Order [<!ENTITY l0 "ha">{laughs}]><Order {UBL}>&l9;</Order>',
    }


def inline_attacks(secret: Path, url: str) -> dict[str, bytes]:
    """Well-formed UBL orders carrying references a careless processor would follow."""
    text = ORDER.decode("utf-8")
    include = (
        '<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
        f'href="file://{secret}" parse="text"/><cbc:Note>'
    )
    return {
        "xinclude": text.replace("<cbc:Note>", include, 1).encode(),
        "schema-location": text.replace(
            "<Order ",
            f'<Order xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:schemaLocation="urn:oasis:names:specification:ubl:schema:xsd:Order-2 {url}/evil.xsd" ',
            1,
        ).encode(),
        "stylesheet-pi": text.replace(
            "<Order ", f'<?xml-stylesheet type="text/xsl" href="{url}/evil.xsl"?>\n<Order ', 1
        ).encode(),
        "document-uri-in-data": text.replace("<cbc:Note>", f"<cbc:Note>{url}/doc.xml ", 1).encode(),
    }


@pytest.mark.parametrize(
    "name", ["external-entity", "external-dtd", "parameter-entity", "network-entity", "billion-laughs"]
)
def test_entity_attacks_are_refused_before_parsing(
    adapter: SourceAdapter, name: str, secret_file: Path, listener: socket.socket
) -> None:
    body = entity_attacks(secret_file, f"http://127.0.0.1:{listener.getsockname()[1]}")[name].encode()
    tracemalloc.start()
    with pytest.raises(DecodeError, match="DOCTYPE") as info:
        adapter.translate(body)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert SECRET not in str(info.value)
    assert peak < 5 * 1024 * 1024 * machine_slowness()
    with pytest.raises(TimeoutError):
        listener.accept()


@pytest.mark.parametrize("name", ["xinclude", "schema-location", "stylesheet-pi", "document-uri-in-data"])
def test_references_inside_a_ubl_order_resolve_nothing(
    adapter: SourceAdapter, name: str, secret_file: Path, listener: socket.socket
) -> None:
    body = inline_attacks(secret_file, f"http://127.0.0.1:{listener.getsockname()[1]}")[name]
    try:
        translation = adapter.translate(body)
    except DataError as exc:
        assert SECRET not in str(exc)
        if name == "xinclude":  # an element the UBL schema does not allow there
            assert isinstance(exc, DocumentRuleError)
            assert exc.violations[0].rule.startswith("UBL-XSD-")
    else:
        assert SECRET not in translation.mapped.order.model_dump_json()
    with pytest.raises(TimeoutError):
        listener.accept()
