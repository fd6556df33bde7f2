"""Validating a Peppol order document: the OASIS UBL 2.1 schema, then the Peppol BIS 3 Schematron rules.

* **XML Schema**: the OASIS UBL 2.1 runtime schemas (``resources/xsd``, as published, notices kept)
  checked with lxml (libxml2). A violation's rule id is ``UBL-XSD-`` and libxml2's error type, its
  location the XPath of the element as libxml2 writes it (``/*/cac:OrderLine[2]/cbc:Note``).
* **Schematron**: OpenPeppol's rules of each transaction (``resources/schematron``: the
  ``PEPPOLBIS-T*.sch`` entry files with their ``parts/``), compiled to XSLT once per process by SchXslt
  (``resources/schxslt``) and run by Saxon (``saxonche``, XSLT 3.0 / XPath 3.1). A violation is
  a ``failed-assert`` of the SVRL report: the rule's id (``PEPPOL-T01-R003``), the XPath of the
  node it fired on (``/ubl:Order[1]/cac:AllowanceCharge[1]/cbc:Amount[1]``), and the rule's
  text. Only ``fatal`` asserts refuse a document; ``warning`` ones are listed with a refusal.

The entry files also include rules that OpenPeppol's build generates from its structure
definitions (``target/generated/T01-basic.sch``: cardinalities and code lists of each element);
they are not in the rules' source repository, so they are left out here, and the two code lists the
hand-written rules use (``UNCL5189``, ``UNCL7161``) are declared from ``schematron/codelist/``.

Saxon's processor is shared by the process and not documented as safe for concurrent use, so one
lock serialises the Schematron runs (a few milliseconds each); the schemas are checked under it too.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path
from typing import Any, cast

from lxml import etree

from adapters.api import RuleViolation
from saleshub_peppol.documents import CAC, CBC, DocumentKind

__all__ = ["RESOURCES", "PeppolValidator"]

RESOURCES = Path(str(files("saleshub_peppol") / "resources"))
_SCH = "http://purl.oclc.org/dsdl/schematron"
_SVRL = "http://purl.oclc.org/dsdl/svrl"
_CODELIST = "urn:fdc:difi.no:2017:vefa:structure:CodeList-1"
_CODE_LISTS = ("UNCL5189", "UNCL7161")
_SAFE = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _prefixed(location: str) -> str:
    """An SVRL location (``/Q{…}Order[1]/Q{…}Note[1]``) with UBL prefixes (``/ubl:Order[1]/cbc:Note[1]``)."""
    for namespace, prefix in ((CAC, "cac"), (CBC, "cbc")):
        location = location.replace(f"Q{{{namespace}}}", f"{prefix}:")
    return re.sub(r"Q\{urn:oasis:names:specification:ubl:schema:xsd:[A-Za-z]+-2\}", "ubl:", location)


def _codes(name: str) -> str:
    tree = etree.parse(str(RESOURCES / "schematron" / "codelist" / f"{name}.xml"), _SAFE)
    return " ".join((e.text or "").strip() for e in tree.iter(f"{{{_CODELIST}}}Id"))


def composed_schematron(entry: str) -> str:
    """The entry file with its functions and parts in place, generated parts out, code lists in."""
    directory = RESOURCES / "schematron"
    tree = etree.parse(str(directory / entry), _SAFE)
    tree.xinclude()  # the XSLT functions (parts/function/*.xml)
    root = tree.getroot()
    for include in root.findall(f"{{{_SCH}}}include"):
        href = include.get("href") or ""
        if "target/generated" in href:
            root.remove(include)  # built by OpenPeppol's tooling; see the module docstring
            continue
        part = etree.parse(str(directory / href), _SAFE).getroot()
        include.addprevious(part)
        root.remove(include)
    first = root.find(f"{{{_SCH}}}pattern")
    for name in _CODE_LISTS:
        let = etree.Element(f"{{{_SCH}}}let", name=f"cl{name}", value=f"tokenize('{_codes(name)}', '\\s+')")
        if first is not None:
            first.addprevious(let)
    return etree.tostring(tree, encoding="unicode")


class PeppolValidator:
    """Checks a document against its kind's XML Schema and Schematron rules (see the module)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._schemas: dict[str, etree.XMLSchema] = {}
        self._rules: dict[str, Any] = {}
        self._saxon: Any = None
        self._xslt: Any = None

    def violations(self, kind: DocumentKind, document: etree._Element) -> list[RuleViolation]:
        """Every schema error, else every Schematron assert that fails (fatal and warning)."""
        with self._lock:
            schema = self._schema(kind)
            if not schema.validate(document):
                return [
                    RuleViolation(
                        f"UBL-XSD-{entry.type_name}", entry.path or f"line {entry.line}", entry.message
                    )
                    for entry in cast("Iterable[etree._LogEntry]", schema.error_log)  # stubs: no __iter__
                ]
            return self._schematron(kind, document)

    def _schema(self, kind: DocumentKind) -> etree.XMLSchema:
        found = self._schemas.get(kind.xsd)
        if found is None:
            parsed = etree.parse(str(RESOURCES / "xsd" / kind.xsd), _SAFE)
            found = self._schemas[kind.xsd] = etree.XMLSchema(parsed)
        return found

    def _compiled(self, kind: DocumentKind) -> Any:
        found = self._rules.get(kind.schematron)
        if found is None:
            from saxonche import PySaxonProcessor  # a heavy import: only once a document arrives

            if self._saxon is None:
                self._saxon = PySaxonProcessor(license=False)
                self._xslt = self._saxon.new_xslt30_processor()
            pipeline = self._xslt.compile_stylesheet(
                stylesheet_file=str(RESOURCES / "schxslt" / "pipeline-for-svrl.xsl")
            )
            schema = self._saxon.parse_xml(xml_text=composed_schematron(kind.schematron))
            stylesheet = pipeline.transform_to_string(xdm_node=schema)
            found = self._rules[kind.schematron] = self._xslt.compile_stylesheet(stylesheet_text=stylesheet)
        return found

    def _schematron(self, kind: DocumentKind, document: etree._Element) -> list[RuleViolation]:
        rules = self._compiled(kind)
        source = self._saxon.parse_xml(xml_text=etree.tostring(document, encoding="unicode"))
        report = etree.fromstring(rules.transform_to_string(xdm_node=source).encode("utf-8"), _SAFE)
        return [
            RuleViolation(
                failed.get("id") or "(rule without id)",
                _prefixed(failed.get("location") or ""),
                " ".join((failed.findtext(f"{{{_SVRL}}}text") or "").split()),
                failed.get("flag") or "fatal",
            )
            for failed in report.iter(f"{{{_SVRL}}}failed-assert")
        ]
