"""What ``contracts/xsd/tempo-serviceorder-2.xsd`` allows once: the child elements of each element.

libxml2 parses a document without its schema (validating every body against the XSD would cost more
than mapping it), so a repeated element would otherwise be read "first one wins" while the JSON
equivalent, a duplicate key, is refused. ``SINGLE_CHILDREN`` lists, per element (local name in the
Tempo namespace), the children the schema allows at most once; a test keeps it equal to the XSD.
"""

from __future__ import annotations

from typing import Final

__all__ = ["SINGLE_CHILDREN"]

SINGLE_CHILDREN: Final[dict[str, frozenset[str]]] = {
    "ServiceOrderMessage": frozenset({"Order"}),
    "Order": frozenset(
        {
            "OrderNumber",
            "Channel",
            "Market",
            "Brand",
            "Store",
            "ServiceKind",
            "State",
            "OrderDate",
            "ModifiedAt",
            "Customer",
            "Site",
            "Appointment",
            "Lines",
            "Totals",
            "PaymentMethod",
            "InvoiceRequested",
            "CancelReason",
            "Remarks",
        }
    ),
    "Customer": frozenset({"FirstName", "LastName", "CompanyName", "TaxId", "Email", "Phone", "Language"}),
    "Site": frozenset({"Street", "Building", "Flat", "PostCode", "City", "Voivodeship"}),
    "Appointment": frozenset({"From", "To"}),
    "Line": frozenset({"Article", "Name", "Quantity", "Unit", "UnitPrice"}),
    "Totals": frozenset({"Net", "Vat", "Gross"}),
}
