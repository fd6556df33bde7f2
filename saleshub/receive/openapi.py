"""The webhook endpoint's contract in the OpenAPI document: what each system sends, every answer.

The request body is described per media type from the registered adapters' ``body_schemas`` (each
system's adapter says what it posts), so an installed plug-in's system appears in the document
with no change here. Every error answer is an RFC 9457 problem document
whose schema (``Problem``) is part of the document's components, so clients and contract testers
can check the 4xx and 5xx bodies too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from adapters.base import SourceAdapter
from saleshub.receive.responses import EventReceipt, Problem

__all__ = ["PROBLEM", "WEBHOOK_RESPONSES", "install_openapi", "webhook_openapi"]

PROBLEM = "application/problem+json"
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM: {"schema": _PROBLEM_REF}}}


_SIGNATURE_HEADERS = (
    ("webhook-id", "unique message id; a repeat is answered 200 with the original event"),
    ("webhook-timestamp", "seconds since the Unix epoch; must be within the tolerance"),
    ("webhook-signature", "space-separated v1,<base64 HMAC-SHA256 of id.timestamp.body>"),
)


def webhook_openapi(adapters: Iterable[type[SourceAdapter]]) -> dict[str, Any]:
    """The webhook operation's headers and request body, built from the adapters' ``body_schemas``.

    One entry per media type some adapter describes (in media-type order); the schemas of several
    systems sharing a media type are alternatives (``oneOf``), in the order of their system codes.
    """
    by_media: dict[str, list[Mapping[str, Any]]] = {}
    senders: list[str] = []
    for adapter in sorted(adapters, key=lambda a: a.system):
        for media, schema in sorted(adapter.body_schemas.items()):
            by_media.setdefault(media, []).append(schema)
        if adapter.body_schemas:
            senders.append(f"{adapter.name} posts {', '.join(sorted(adapter.body_schemas))}")
    content = {
        media: {"schema": dict(schemas[0]) if len(schemas) == 1 else {"oneOf": [dict(s) for s in schemas]}}
        for media, schemas in sorted(by_media.items())
    }
    return {
        "parameters": [
            {
                "name": name,
                "in": "header",
                "required": False,
                "description": description,
                "schema": {"type": "string"},
            }
            for name, description in _SIGNATURE_HEADERS
        ],
        "requestBody": {
            "required": True,
            "description": "the source system's payload, exactly as it sends it: " + "; ".join(senders),
            "content": content,
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
