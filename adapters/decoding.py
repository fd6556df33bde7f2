"""Hardened decoders for inbound bodies: exact-decimal JSON and attack-proof XML.

JSON: UTF-8 only; duplicate keys, ``NaN``/``Infinity``, numbers with thousands of digits and absurd
nesting are refused; numbers with a fraction or exponent become ``Decimal`` (never ``float``).

XML (lxml ≥ 6.1): any ``DOCTYPE`` is refused before and after parsing, entity resolution, DTD loading
and network access are off, and the size is bounded, so external entities, external DTDs, parameter
entities and entity-expansion bombs are rejected without reading a file, touching the network or
growing memory; libxml2's own limits (depth 256, no huge trees) bound the rest. The declared
encoding (``ISO-8859-1`` …) is honoured.
"""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from typing import Any, NoReturn

from lxml import etree

from saleshub.errors import DecodeError
from saleshub.platform.limits import DEFAULT_MAX_BODY_BYTES

__all__ = ["decode_json", "decode_xml"]

#: The one default of the body-size limit; the hub passes its configured ``web.max_body_bytes``
#: to every adapter, which passes it here.


def _check_size(system: str, body: bytes, max_bytes: int) -> None:
    if len(body) > max_bytes:
        raise DecodeError(system, f"body is {len(body)} bytes; the limit is {max_bytes}")
    if not body.strip():
        raise DecodeError(system, "body is empty")


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number JSON allows")


class _DuplicateKeyError(ValueError):
    pass


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKeyError(f"key {key!r} appears twice in one object")
            seen.add(key)
    return result


def decode_json(system: str, body: bytes, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Any:
    """Decode a JSON body strictly; raises ``DecodeError`` saying what and where."""
    _check_size(system, body, max_bytes)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(system, "body is not valid UTF-8", position=f"byte {exc.start}") from None
    try:
        return json.loads(
            text,
            parse_float=Decimal,
            parse_constant=_refuse_constant,
            object_pairs_hook=_object_without_duplicates,
        )
    except json.JSONDecodeError as exc:
        position = f"line {exc.lineno} column {exc.colno}"
        raise DecodeError(system, f"not valid JSON: {exc.msg}", position=position) from None
    except RecursionError:
        raise DecodeError(system, "JSON is nested too deeply") from None
    except _DuplicateKeyError as exc:
        raise DecodeError(system, str(exc)) from None
    except ValueError as exc:
        # int() refuses numbers over 4,300 digits; _refuse_constant refuses NaN/Infinity.
        raise DecodeError(system, f"not acceptable JSON: {exc}") from None


_local = threading.local()


def _parser() -> etree.XMLParser:
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            load_dtd=False,
            dtd_validation=False,
            no_network=True,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
        )
        _local.parser = parser
    return parser


def _has_doctype(body: bytes) -> bool:
    head = body[:4]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or head[:2] in (b"<\x00", b"\x00<"):
        return b"D\x00O\x00C\x00T\x00Y\x00P\x00E" in body or b"\x00D\x00O\x00C\x00T\x00Y\x00P\x00E" in body
    return b"<!DOCTYPE" in body


def decode_xml(system: str, body: bytes, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> etree._Element:
    """Parse an XML body safely; raises ``DecodeError`` for malformed or unsafe documents."""
    _check_size(system, body, max_bytes)
    if _has_doctype(body):
        raise DecodeError(system, "XML with a DOCTYPE is not accepted (entities and DTDs are unsafe)")
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as exc:
        line, column = exc.position
        raise DecodeError(
            system, f"not well-formed XML: {exc.msg}", position=f"line {line} column {column}"
        ) from None
    except (ValueError, LookupError) as exc:
        raise DecodeError(system, f"XML cannot be decoded: {exc}") from None
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise DecodeError(system, "XML with a DOCTYPE is not accepted (entities and DTDs are unsafe)")
    return root
