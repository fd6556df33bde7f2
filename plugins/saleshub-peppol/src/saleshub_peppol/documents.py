"""The Peppol BIS Ordering 3 documents the hub takes, and what each one is to an order.

==================  ===========  ============  ===============================================
UBL 2.1 document    transaction  event         the order it belongs to
==================  ===========  ============  ================================================
Order               T01          CREATED       its own ``cbc:ID`` (version 0)
OrderChange         T114         UPDATED       ``cac:OrderReference/cbc:ID`` (version: its
                                               ``cbc:SequenceNumberID``)
OrderCancellation   T115         CANCELLED     ``cac:OrderReference/cbc:ID`` (by reference:
                                               the stored order becomes CANCELLED)
==================  ===========  ============  ================================================

Every other document (an ``OrderResponse``, an ``Invoice``, anything else) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.api import EventType

__all__ = ["CAC", "CBC", "KINDS", "UBL_PREFIX", "DocumentKind"]

UBL_PREFIX = "urn:oasis:names:specification:ubl:schema:xsd:"
CAC = f"{UBL_PREFIX}CommonAggregateComponents-2"
CBC = f"{UBL_PREFIX}CommonBasicComponents-2"


@dataclass(frozen=True, slots=True)
class DocumentKind:
    """One accepted document type: its root, event, Peppol transaction and rule files."""

    name: str
    event_type: EventType
    transaction: str
    #: The mapping file of the plug-in's ``peppol/`` directory that maps it (a cancellation is
    #: applied by reference and maps nothing).
    mapping: str
    #: Whether the order's reference is ``cac:OrderReference/cbc:ID`` (else the document's own ID).
    references_order: bool

    @property
    def root(self) -> str:
        """The root element's Clark name."""
        return f"{{{UBL_PREFIX}{self.name}-2}}{self.name}"

    @property
    def xsd(self) -> str:
        """The OASIS UBL 2.1 schema of the document (relative to ``resources/xsd``)."""
        return f"maindoc/UBL-{self.name}-2.1.xsd"

    @property
    def schematron(self) -> str:
        """The Peppol rules of the transaction (relative to ``resources/schematron``)."""
        return f"PEPPOLBIS-{self.transaction}.sch"


KINDS: dict[str, DocumentKind] = {
    kind.root: kind
    for kind in (
        DocumentKind("Order", EventType.CREATED, "T01", "order", references_order=False),
        DocumentKind("OrderChange", EventType.UPDATED, "T114", "order", references_order=True),
        DocumentKind("OrderCancellation", EventType.CANCELLED, "T115", "order", references_order=True),
    )
}
