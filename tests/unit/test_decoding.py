"""Hostile bodies are refused cleanly: no file read, no network touched, no memory blow-up."""

from __future__ import annotations

import socket
import time
import tracemalloc
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from adapters.decoding import _parser, decode_json, decode_xml
from saleshub.errors import DecodeError
from tests.support.machine import machine_slowness

SECRET = "TOP-SECRET-7f3a9c"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET, encoding="utf-8")
    return path


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback TCP listener: any connection attempt from the parser would land here."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.3)
    yield server
    server.close()


def assert_no_connection(server: socket.socket) -> None:
    with pytest.raises(TimeoutError):
        server.accept()


def attacks(secret: Path, port: int) -> dict[str, bytes]:
    url = f"http://127.0.0.1:{port}"
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    return {
        "external-entity": f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]><r>&x;</r>'.encode(),
        "external-dtd": f'<?xml version="1.0"?><!DOCTYPE r SYSTEM "{url}/evil.dtd"><r>&x;</r>'.encode(),
        "parameter-entity": f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{url}/p.ent"> %p;]><r/>'.encode(),
        "network-entity": f'<!DOCTYPE r [<!ENTITY x SYSTEM "{url}/x">]><r>&x;</r>'.encode(),
        "billion-laughs": f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY l0 "ha">{laughs}]><r>&l9;</r>'.encode(),
        "utf16-doctype": f'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]><r>&x;</r>'.encode(
            "utf-16"
        ),
    }


@pytest.mark.parametrize(
    "name",
    [
        "external-entity",
        "external-dtd",
        "parameter-entity",
        "network-entity",
        "billion-laughs",
        "utf16-doctype",
    ],
)
def test_xml_attacks_are_rejected_without_side_effects(
    name: str, secret_file: Path, listener: socket.socket
) -> None:
    body = attacks(secret_file, listener.getsockname()[1])[name]
    tracemalloc.start()
    started = time.thread_time()
    with pytest.raises(DecodeError, match="DOCTYPE") as info:
        decode_xml("tempo", body)
    cpu_seconds = time.thread_time() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert SECRET not in str(info.value)
    assert cpu_seconds < 0.5 * machine_slowness()  # an expansion would take seconds, and memory
    assert peak < 5 * 1024 * 1024
    assert_no_connection(listener)


@pytest.mark.parametrize(
    "name", ["external-entity", "external-dtd", "parameter-entity", "network-entity", "billion-laughs"]
)
def test_the_parser_itself_is_hardened_even_without_the_doctype_check(
    name: str, secret_file: Path, listener: socket.socket
) -> None:
    """Defence in depth: the parser resolves nothing even if a DOCTYPE got through."""
    body = attacks(secret_file, listener.getsockname()[1])[name]
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError:
        pass
    else:
        text = etree.tostring(root, encoding="unicode")
        assert SECRET not in text
        assert len(text) < 10_000
    assert_no_connection(listener)


def test_declared_latin_encodings_are_honoured() -> None:
    body = '<?xml version="1.0" encoding="ISO-8859-1"?><r>Crème brûlée à Noël</r>'.encode("iso-8859-1")
    assert decode_xml("tempo", body).text == "Crème brûlée à Noël"
    body = '<?xml version="1.0" encoding="ISO-8859-2"?><r>Wójcik-Łęcka</r>'.encode("iso-8859-2")
    assert decode_xml("tempo", body).text == "Wójcik-Łęcka"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": -Infinity}', "Infinity"),
        (b'{"a": 1, "a": 2}', "appears twice"),
        (b'{"a": ' + b"9" * 5000 + b"}", "a number has 5000 characters; at most 100"),
        (b"[" * 10_000 + b"]" * 10_000, "nested too deeply"),
        (b'{"a": "\xff\xfe"}', "UTF-8"),
        (b'{"a": 1', "line 1 column 8"),
    ],
    ids=[
        "empty",
        "blank",
        "nan",
        "infinity",
        "duplicate-key",
        "huge-number",
        "deep",
        "bad-utf8",
        "truncated",
    ],
)
def test_bad_json_is_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_json("pyxis", body)


def test_json_numbers_are_exact_decimals_never_floats() -> None:
    decoded = decode_json("pyxis", b'{"price": 0.1, "qty": 3, "big": 1e2}')
    assert decoded == {"price": Decimal("0.1"), "qty": 3, "big": Decimal("1e2")}
    assert not any(isinstance(v, float) for v in decoded.values())


def test_size_limit_applies_before_parsing() -> None:
    with pytest.raises(DecodeError, match="limit is 10"):
        decode_json("pyxis", b'{"a": "0123456789"}', max_bytes=10)
    with pytest.raises(DecodeError, match="limit is 10"):
        decode_xml("tempo", b"<r>0123456789</r>", max_bytes=10)


def test_malformed_xml_names_line_and_column() -> None:
    with pytest.raises(DecodeError, match="line 2 column"):
        decode_xml("tempo", b"<r>\n<a></b></r>")


def test_long_number_literals_are_refused_at_their_position() -> None:
    body = b'{"a": 1,\n "b": 0.' + b"1" * 200 + b"}"
    with pytest.raises(DecodeError, match="a number has 202 characters") as info:
        decode_json("pyxis", body)
    assert info.value.position == "line 2 column 7"
    assert decode_json("pyxis", b'{"a": 1e999999999}') == {"a": Decimal("1e999999999")}


@pytest.mark.parametrize(
    ("body", "position"),
    [
        (b'{"notes": "a\\u0000b"}', "JSON path notes"),
        (b'{"a": {"b": ["ok", "\\ud800"]}}', "JSON path a.b[1]"),
        (b'{"a": "\\udc00\\ud800"}', "JSON path a"),
        (b'{"k\\u0000": 1}', "JSON path k\\x00 (its name)"),
        (b'"\\u0000"', "JSON path (the whole body)"),
    ],
    ids=["nul", "lone-high-surrogate", "reversed-pair", "nul-in-key", "top-level"],
)
def test_json_text_the_hub_cannot_store_is_refused_with_its_path(body: bytes, position: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_json("pyxis", body)
    assert info.value.position == position
    str(info.value).encode("utf-8")  # the message itself holds no surrogate
    assert "\x00" not in str(info.value)


XML_UNSTORABLE = {
    "nul-reference": b"<r>a&#0;b</r>",
    "nul-hex-reference-in-attribute": b'<r a="&#x0;"/>',
    "surrogate-reference": b"<r>&#xD800;</r>",
    "surrogate-decimal-reference": b"<r>&#55296;</r>",
    "control-reference": b"<r>&#1;</r>",
    "xml-1.1-control-reference": b'<?xml version="1.1"?><r>&#1;</r>',
    "raw-nul": b"<r>a\x00b</r>",
    "latin1-raw-nul": b'<?xml version="1.0" encoding="ISO-8859-1"?><r>a\x00</r>',
    "utf8-encoded-surrogate": b"<r>\xed\xa0\x80</r>",
    "utf16-lone-surrogate": "\ufeff<r>".encode("utf-16-le") + b"\x00\xd8" + "</r>".encode("utf-16-le"),
    "noncharacter-reference": b"<r>&#xFFFE;</r>",
    "nested-300-deep": b"<r>" * 300 + b"</r>" * 300,
}


@pytest.mark.parametrize("body", XML_UNSTORABLE.values(), ids=XML_UNSTORABLE.keys())
def test_xml_never_yields_nul_surrogates_or_absurd_depth(body: bytes) -> None:
    started = time.thread_time()
    with pytest.raises(DecodeError, match="not well-formed XML"):
        decode_xml("tempo", body)
    assert time.thread_time() - started < 0.05
