"""The webhook endpoint's contract in the OpenAPI document: what each system sends, every answer.

The request body is described per media type as each built-in system really sends it: Pyxis and
the ERP post JSON (an event envelope, a sales order), Tempo posts namespaced XML (its schema is
``contracts/xsd/tempo-serviceorder-2.xsd``). Every error answer is an RFC 9457 problem document
whose schema (``Problem``) is part of the document's components, so clients and contract testers
can check the 4xx and 5xx bodies too.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from saleshub.receive.responses import EventReceipt, Problem

__all__ = ["ERP_ORDER", "PROBLEM", "PYXIS_EVENT", "WEBHOOK_OPENAPI", "WEBHOOK_RESPONSES", "install_openapi"]

PROBLEM = "application/problem+json"
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM: {"schema": _PROBLEM_REF}}}


_TEXT_ID = {"type": "string", "minLength": 1, "maxLength": 128}

#: A Pyxis order event (webhook or Kafka record); the order's fields are mapped by mappings/pyxis.
PYXIS_EVENT: dict[str, Any] = {
    "title": "PyxisOrderEvent",
    "type": "object",
    "required": ["eventId", "eventType", "order"],
    "properties": {
        "eventId": {**_TEXT_ID, "description": "the idempotency key when no webhook-id is sent"},
        "eventType": {"type": "string", "enum": ["order.created", "order.updated", "order.cancelled"]},
        "occurredAt": {"type": "string", "format": "date-time"},
        "order": {
            "type": "object",
            "required": ["orderId"],
            "properties": {
                "orderId": _TEXT_ID,
                "revision": {"type": "integer", "minimum": 0, "maximum": 9_223_372_036_854_775_807},
            },
            "additionalProperties": True,
        },
    },
    "additionalProperties": True,
}

#: One Oracle Fusion sales order (an item of the Order Hub REST resource).
ERP_ORDER: dict[str, Any] = {
    "title": "ErpSalesOrder",
    "type": "object",
    "required": ["OrderNumber", "LastUpdateDate"],
    "properties": {
        "OrderNumber": _TEXT_ID,
        "OrderKey": _TEXT_ID,
        "LastUpdateDate": {"type": "string", "format": "date-time"},
        "SourceTransactionRevisionNumber": {"type": "integer", "minimum": 0},
        "StatusCode": {"type": "string"},
    },
    "additionalProperties": True,
}

WEBHOOK_OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": name,
            "in": "header",
            "required": False,
            "description": description,
            "schema": {"type": "string"},
        }
        for name, description in (
            ("webhook-id", "unique message id; a repeat is answered 200 with the original event"),
            ("webhook-timestamp", "seconds since the Unix epoch; must be within the tolerance"),
            ("webhook-signature", "space-separated v1,<base64 HMAC-SHA256 of id.timestamp.body>"),
        )
    ],
    "requestBody": {
        "required": True,
        "description": "the source system's payload, exactly as it sends it: Pyxis and the ERP post "
        "JSON, Tempo posts XML (schema: contracts/xsd/tempo-serviceorder-2.xsd)",
        "content": {
            "application/json": {"schema": {"oneOf": [PYXIS_EVENT, ERP_ORDER]}},
            "application/xml": {
                "schema": {
                    "type": "string",
                    "description": "a tso:ServiceOrderMessage in namespace urn:tempo:serviceorder:2",
                }
            },
        },
    },
}

WEBHOOK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": EventReceipt,
        "description": "this webhook-id was received before with the same body; nothing written",
    },
    202: {"model": EventReceipt, "description": "recorded; the processor maps it shortly"},
    401: _problem("signature headers missing, malformed, out of tolerance or not matching"),
    404: _problem("unknown sales system"),
    409: _problem("this webhook-id was received before with a different body; nothing written"),
    413: _problem("body larger than the configured limit"),
    415: _problem("content type not sent by this system (recorded, quarantined)"),
    422: _problem("body cannot be decoded or classified (recorded, quarantined)"),
    500: _problem("an error of the hub itself; the event was recorded as failed when it could be"),
    503: {
        **_problem("the database or the secret store is unavailable; nothing was written; resend later"),
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
    },
}


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` include the ``Problem`` schema its error answers refer to."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
