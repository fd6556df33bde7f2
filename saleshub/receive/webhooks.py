"""The webhook endpoint's logic: size limit, signature, recording, and the answer for each outcome.

Answers, in the order they are checked:

* 404 unknown system; 413 body over ``max_body_bytes`` (checked on Content-Length and while reading,
  so an oversize body is never buffered whole);
* 401 missing, malformed, stale or wrong Standard Webhooks signature (nothing recorded: the sender
  is not proven);
* from here the event is recorded: 415 content type the system does not send, 422 body that cannot
  be decoded or classified (both quarantined), 202 accepted (mapped, duplicate content, stale, or
  quarantined by the mapping), 200 the ``webhook-id`` was already received (the original event id);
* 503 with ``Retry-After`` when the database cannot commit or the secret store cannot be read:
  nothing was written, resend.

Every 2xx/415/422 answer is sent only after the transaction that recorded the event committed
(``BatchWriter``: concurrent events share one transaction, group commit).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from saleshub.errors import RetriableError, SecretStoreError
from saleshub.process.pipeline import InboundEvent, IngestResult, Stage
from saleshub.receive.batching import BatchWriter
from saleshub.receive.responses import EventReceipt, Problem
from saleshub.receive.signatures import SignatureError, verify
from saleshub.runtime import HubRuntime

__all__ = ["PROBLEM", "WEBHOOK_OPENAPI", "WEBHOOK_RESPONSES", "problem", "receive"]

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"
_SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_RECORDED_HEADERS = ("webhook-id", "webhook-timestamp", "user-agent")


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """An ``application/problem+json`` response."""
    body = Problem(title=title, status=status, detail=detail, **extra).model_dump(
        mode="json", exclude_none=True
    )
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def _problem_schema(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
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
            ("webhook-id", "unique message id; a repeat is answered 200 with the original event id"),
            ("webhook-timestamp", "seconds since the Unix epoch; must be within the tolerance"),
            ("webhook-signature", "space-separated v1,<base64 HMAC-SHA256 of id.timestamp.body>"),
        )
    ],
    "requestBody": {
        "required": True,
        "description": "the source system's payload, exactly as it sends it",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/xml": {"schema": {"type": "string"}},
        },
    },
}

WEBHOOK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": EventReceipt, "description": "this webhook-id was received before; nothing written"},
    202: {"model": EventReceipt, "description": "recorded and processed (see status)"},
    401: _problem_schema("signature headers missing, malformed, out of tolerance or not matching"),
    404: _problem_schema("unknown sales system"),
    413: _problem_schema("body larger than the configured limit"),
    415: _problem_schema("content type not sent by this system (recorded, quarantined)"),
    422: _problem_schema("body cannot be decoded or classified (recorded, quarantined)"),
    503: {
        **_problem_schema(
            "the database or the secret store is unavailable; nothing was written; resend later"
        ),
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
    },
}


class _TooLargeError(Exception):
    """The body passed the size limit while being read."""


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLargeError(f"the body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLargeError(f"the body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _receipt(result: IngestResult, status: int) -> JSONResponse:
    body = EventReceipt(
        event_id=result.event_id,
        status=result.status.value,
        repeated=result.repeated,
        hub_order_id=result.hub_order_id,
        order_version=result.order_version_no,
        errors=result.errors,
    ).model_dump(mode="json", exclude_none=True)
    return JSONResponse(body, status_code=status)


def _answer(result: IngestResult) -> JSONResponse:
    if result.repeated:
        return _receipt(result, 200)
    message = str((result.errors or {}).get("message", ""))
    if result.stage is Stage.CONTENT_TYPE:
        return problem(
            415, "Unsupported content type", message, event_id=result.event_id, errors=result.errors
        )
    if result.rejected_input:
        return problem(422, "Unprocessable body", message, event_id=result.event_id, errors=result.errors)
    return _receipt(result, 202)


async def receive(hub: HubRuntime, writer: BatchWriter, system: str, request: Request) -> JSONResponse:
    """Handle ``POST /webhooks/{system}`` (see the module docstring for the answers)."""
    settings = hub.settings.web
    adapter = hub.pipeline.adapter(system)
    if adapter is None:
        known = ", ".join(sorted(hub.adapters))
        return problem(404, "Unknown sales system", f"no sales system {system!r}; known: {known}")
    try:
        body = await _read_body(request, settings.max_body_bytes)
    except _TooLargeError as exc:
        return problem(413, "Body too large", str(exc))
    headers = request.headers
    try:
        keys = hub.secrets.webhook_keys(system)
    except SecretStoreError as exc:
        log.error("webhook from %s not recorded, secret store unavailable: %s", system, exc)
        return _unavailable("Secret store unavailable", settings.retry_after_seconds)
    try:
        webhook_id = verify(
            keys,
            {name: headers[name] for name in _SIGNATURE_HEADERS if name in headers},
            body,
            now=time.time(),
            tolerance_seconds=settings.webhook_tolerance_seconds,
        )
    except SignatureError as exc:
        return problem(401, "Invalid signature", exc.reason)
    event = InboundEvent(
        system=system,
        transport="webhook",
        body=body,
        content_type=headers.get("content-type"),
        idempotency_key=webhook_id,
        headers={name: headers[name] for name in _RECORDED_HEADERS if name in headers},
    )
    started = time.perf_counter()
    processed = hub.pipeline.process(event, adapter)  # CPU only: decode, classify, map
    try:
        result = await writer.submit(event, processed, started)
    except RetriableError as exc:
        log.warning("webhook from %s not recorded, database unavailable: %s", system, exc)
        return _unavailable("Database unavailable", settings.retry_after_seconds)
    return _answer(result)


def _unavailable(title: str, retry_after: int) -> JSONResponse:
    response = problem(503, title, "the event was not recorded; resend it later")
    response.headers["Retry-After"] = str(retry_after)
    return response
