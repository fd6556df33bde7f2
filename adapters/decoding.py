r"""Hardened decoders for inbound bodies: exact-decimal JSON and attack-proof XML.

JSON: UTF-8 only; duplicate keys, ``NaN``/``Infinity``, number literals of more than 100 characters
and absurd nesting are refused; numbers with a fraction or exponent become ``Decimal`` (never
``float``). A short literal may still stand for a huge value (``1e999999999``): building the
``Decimal`` is cheap, and the mapping's coercions bound its exponent before converting it.

Text the hub cannot keep is refused here, once, for every transport: a string or key holding NUL
(``\u0000``: PostgreSQL ``text`` and ``jsonb`` cannot hold it) or a lone surrogate (``\ud800`` without
its pair: it has no UTF-8 form, so the order could be neither stored, published nor fingerprinted)
makes the whole body a ``DecodeError`` naming the JSON path, e.g. ``order.customer.lastName``; at the
webhook that is a 422. Both can only arrive as ``\u`` escapes (raw NUL is a control character JSON
refuses, raw surrogates are not UTF-8), so bodies without such an escape are not searched. Other
control characters are kept: PostgreSQL stores them and JSON escapes them.

XML (lxml ≥ 6.1): any ``DOCTYPE`` is refused before and after parsing, entity resolution, DTD loading
and network access are off, and the size is bounded, so external entities, external DTDs, parameter
entities and entity-expansion bombs are rejected without reading a file, touching the network or
growing memory; libxml2's own limits (depth 256, no huge trees) bound the rest. The declared
encoding (``ISO-8859-1`` …) is honoured. XML 1.0 itself forbids NUL and surrogates, as characters
and as character references (``&#0;``, ``&#xD800;``): libxml2 refuses such a document as not
well-formed, so an XML document never yields them either.

The raw body is kept as it came by the store; these rules decide only what can be mapped.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any, NoReturn

from lxml import etree

from saleshub.errors import DecodeError, printable
from saleshub.platform.limits import DEFAULT_MAX_BODY_BYTES

__all__ = ["MAX_NUMBER_CHARS", "decode_json", "decode_xml", "refuse_repeated_elements", "split_json_page"]

#: The longest JSON number literal accepted. Parsing an integer costs time quadratic in its digits
#: (Python stops at 4,300); no amount, quantity, version or id needs more than a few dozen.
MAX_NUMBER_CHARS = 100

# A \u escape that may stand for NUL or a surrogate; only bodies with one are searched (see above).
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


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


class _LongNumberError(ValueError):
    def __init__(self, literal: str) -> None:
        self.literal = literal
        super().__init__(f"a number has {len(literal)} characters; at most {MAX_NUMBER_CHARS} are accepted")


def _integer(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _LongNumberError(literal)
    return int(literal)


def _decimal(literal: str) -> Decimal:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _LongNumberError(literal)
    return Decimal(literal)


def _line_column(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    column = index - text.rfind("\n", 0, index)
    return f"line {line} column {column}"


def _strings(document: Any) -> Iterator[tuple[str, str]]:
    """Every key and string of ``document`` with its path (``order.items[0].label``), depth-first."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            yield path or "(the whole body)", value
        elif isinstance(value, dict):
            for key, child in value.items():
                child_path = f"{path}.{printable(key)}" if path else printable(key)
                yield f"{child_path} (its name)", key
                stack.append((child_path, child))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", child) for index, child in enumerate(value))


def _refuse_unstorable_text(system: str, text: str, document: Any) -> None:
    if _SUSPECT_ESCAPE.search(text) is None:
        return
    for path, string in _strings(document):
        found = _UNSTORABLE.search(string)
        if found is None:
            continue
        if found.group() == "\x00":
            reason = "text holds a NUL character (\\u0000), which the hub cannot store"
        else:
            reason = f"text holds a lone surrogate ({printable(found.group())}), which is not Unicode text"
        raise DecodeError(system, reason, position=f"JSON path {path}")


def decode_json(system: str, body: bytes, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Any:
    """Decode a JSON body strictly; raises ``DecodeError`` saying what and where."""
    _check_size(system, body, max_bytes)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(system, "body is not valid UTF-8", position=f"byte {exc.start}") from None
    try:
        document = json.loads(
            text,
            parse_int=_integer,
            parse_float=_decimal,
            parse_constant=_refuse_constant,
            object_pairs_hook=_object_without_duplicates,
        )
    except json.JSONDecodeError as exc:
        position = f"line {exc.lineno} column {exc.colno}"
        raise DecodeError(system, f"not valid JSON: {exc.msg}", position=position) from None
    except RecursionError:
        raise DecodeError(system, "JSON is nested too deeply") from None
    except _DuplicateKeyError as exc:
        raise DecodeError(system, printable(str(exc))) from None
    except _LongNumberError as exc:
        position = _line_column(text, text.find(exc.literal))
        raise DecodeError(system, str(exc), position=position) from None
    except ValueError as exc:
        # _refuse_constant refuses NaN/Infinity.
        raise DecodeError(system, f"not acceptable JSON: {exc}") from None
    _refuse_unstorable_text(system, text, document)
    return document


_DECODER = json.JSONDecoder(
    parse_float=Decimal, parse_constant=_refuse_constant, object_pairs_hook=_object_without_duplicates
)
# Page items are only split and peeked at here (their keys for the cursor); each item's exact bytes
# then go through the adapter's strict ``decode`` at intake, like any body. So the C scanner, without
# the Python hooks that cost most of a strict decode, is enough for them.
_ITEM_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_SPACE = re.compile(r"[ \t\n\r]*")


def _skip(text: str, position: int) -> int:
    found = _SPACE.match(text, position)
    return found.end() if found else position


def _expect(system: str, text: str, position: int, char: str) -> int:
    if text[position : position + 1] != char:
        got = repr(text[position]) if position < len(text) else "the end"
        raise DecodeError(system, f"expected {char!r}, found {got}", position=f"character {position}")
    return _skip(text, position + 1)


def _split_items(system: str, text: str, position: int) -> tuple[list[tuple[bytes, Any]], int]:
    items: list[tuple[bytes, Any]] = []
    position = _expect(system, text, position, "[")
    if text[position : position + 1] == "]":
        return items, position + 1
    while True:
        value, end = _ITEM_DECODER.raw_decode(text, position)
        items.append((text[position:end].encode("utf-8"), value))
        position = _skip(text, end)
        if text[position : position + 1] != ",":
            return items, _expect(system, text, position, "]")
        position = _skip(text, position + 1)


def split_json_page(
    system: str, body: bytes, member: str, max_bytes: int
) -> tuple[dict[str, Any], list[tuple[bytes, Any]]]:
    """A JSON page object: its members, and each element of the array ``member`` with its exact bytes.

    The page's own members are decoded as strictly as ``decode_json``; the elements only as far as
    splitting them and reading them needs (numbers with a fraction as ``float``, duplicate keys not
    refused): each element's bytes, exactly what the source sent for it, are the body of one event,
    which intake decodes strictly like any other.
    """
    _check_size(system, body, max_bytes)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(system, "page is not valid UTF-8", position=f"byte {exc.start}") from None
    members: dict[str, Any] = {}
    items: list[tuple[bytes, Any]] | None = None
    try:
        position = _expect(system, text, _skip(text, 0), "{")
        while text[position : position + 1] != "}":
            key, position = _DECODER.raw_decode(text, position)
            if not isinstance(key, str) or key in members or (key == member and items is not None):
                raise DecodeError(
                    system, f"member {key!r} is not a new name", position=f"character {position}"
                )
            position = _expect(system, text, _skip(text, position), ":")
            if key == member:
                items, position = _split_items(system, text, position)
            else:
                members[key], position = _DECODER.raw_decode(text, position)
            position = _skip(text, position)
            if text[position : position + 1] != ",":
                break
            position = _skip(text, position + 1)
        position = _expect(system, text, position, "}")
    except json.JSONDecodeError as exc:
        raise DecodeError(
            system, f"not valid JSON: {exc.msg}", position=f"line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise DecodeError(system, "JSON is nested too deeply") from None
    except _DuplicateKeyError as exc:
        raise DecodeError(system, str(exc)) from None
    except ValueError as exc:
        raise DecodeError(system, f"not acceptable JSON: {exc}") from None
    if position != len(text):
        raise DecodeError(system, "extra data after the page object", position=f"character {position}")
    if items is None:
        raise DecodeError(system, f"the page has no {member!r} array")
    return members, items


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


def refuse_repeated_elements(
    system: str, root: etree._Element, namespace: str, single: Mapping[str, frozenset[str]]
) -> None:
    """Refuse a child element that appears more than once where the schema allows one.

    ``single`` maps an element's local name (in ``namespace``) to the children it may hold at most
    once. The first repetition in document order is named with its parent and line, e.g.
    ``element Order/OrderNumber appears 2 times; the schema allows one``: like a duplicate JSON key, a
    second value is never silently dropped.
    """
    prefix = f"{{{namespace}}}"
    for element in root.iter(f"{prefix}*"):
        name = element.tag[len(prefix) :]
        once = single.get(name)
        if not once:
            continue
        seen: dict[str, list[etree._Element]] = {}
        for child in element.iterchildren(f"{prefix}*"):
            child_name = child.tag[len(prefix) :]
            if child_name in once:
                seen.setdefault(child_name, []).append(child)
        for child_name, children in seen.items():
            if len(children) > 1:
                raise DecodeError(
                    system,
                    f"element {name}/{child_name} appears {len(children)} times; the schema allows one",
                    position=f"line {children[1].sourceline}",
                )
