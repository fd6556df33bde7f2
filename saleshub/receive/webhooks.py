"""The webhook endpoint's logic: size limit, signature, recording, and the answer for each outcome.

Answers, in the order they are checked:

* 404 unknown system; 413 body over ``max_body_bytes`` (checked on Content-Length and while reading,
  so an oversize body is never buffered whole);
* 401 missing, malformed, stale or wrong Standard Webhooks signature (nothing recorded: the sender
  is not proven);
* from here the event is recorded: 415 content type the system does not send, 422 body that cannot
  be decoded or classified (both quarantined), 202 accepted (recorded; a processor maps it
  shortly), 200 the ``webhook-id`` was already received with the same body (the original event, as
  it stands now), 409 the ``webhook-id`` was already received with a *different* body (a sender
  bug: a silent 200 would hide it; nothing is written and the original event is named);
* a client that disconnects before its whole body arrived is logged in one INFO line (nothing is
  recorded, and nobody is left to answer);
* 503 with ``Retry-After`` when the database cannot commit or the secret store cannot be read:
  nothing was written, resend.

Every refused request (any 4xx or 5xx) is logged in one line, ``webhook refused``, with the status,
the system and the reason (never the body or a header value), also as the log record's ``extra``
fields ``http_status``, ``system`` and ``reason`` for a structured log handler.

Every 2xx/415/422 answer is sent only after the transaction that recorded the event committed
(``GroupCommit``: concurrent events share one transaction). Mapping happens after the answer, in
the processor, so a mapping's cost or failure never makes a webhook slow or fail.

Telemetry: a ``receive`` span around the request (a child of the web framework's span), a
``record`` span around recording whose propagation carrier is stored with the event (``headers``
→ ``trace``, where the processor continues the trace), and one ``saleshub.webhook.responses``
count per answer, by status code.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any, Protocol

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from adapters.base import SourceAdapter
from saleshub.errors import KeyServiceError, KeyServiceUnavailableError, RetriableError, SecretStoreError
from saleshub.platform.metrics import WEBHOOK_RESPONSES
from saleshub.platform.secrets import SecretStore
from saleshub.platform.settings import Settings
from saleshub.platform.telemetry import Telemetry
from saleshub.receive.batching import GroupCommit
from saleshub.receive.intake import Admission, InboundEvent, admit
from saleshub.receive.openapi import PROBLEM
from saleshub.receive.recorder import Receipt, mark_refused
from saleshub.receive.responses import EventReceipt, Problem
from saleshub.receive.signatures import SignatureError, verify
from saleshub.store.events import Stage, error_record

__all__ = ["PROBLEM", "WebhookHub", "problem", "receive", "refused"]

log = logging.getLogger(__name__)

_SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_RECORDED_HEADERS = ("webhook-id", "webhook-timestamp", "user-agent")


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """An ``application/problem+json`` response."""
    body = Problem(title=title, status=status, detail=detail, **extra).model_dump(
        mode="json", exclude_none=True
    )
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


class _TooLargeError(Exception):
    """The body passed the size limit while being read."""


class _AbandonedError(Exception):
    """The client closed the connection before sending the whole body."""

    def __init__(self, received: int) -> None:
        self.received = received
        super().__init__(f"the client disconnected after {received} bytes of the body")


#: The answer to a request whose client has gone (nginx's "client closed request"); nobody reads it,
#: but the web framework's span and the response count show what happened.
_CLIENT_GONE = 499


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLargeError(f"the body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _TooLargeError(f"the body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise _AbandonedError(size) from None
    return b"".join(chunks)


def _receipt(result: Receipt, status: int) -> JSONResponse:
    body = EventReceipt(
        event_id=result.event_id,
        status=result.status.value,
        repeated=result.repeated,
        hub_order_id=result.hub_order_id,
        order_version=result.order_version_no,
        errors=result.errors,
    ).model_dump(mode="json", exclude_none=True)
    return JSONResponse(body, status_code=status)


def refused(response: JSONResponse, system: str, reason: str) -> JSONResponse:
    """Log the refusal of a webhook in one line (status, system, reason) and return ``response``."""
    log.warning(
        "webhook refused: status=%d system=%s reason=%s",
        response.status_code,
        system,
        reason,
        extra={"http_status": response.status_code, "system": system, "reason": reason},
    )
    return response


def _answer(system: str, result: Receipt) -> JSONResponse:
    if result.conflict:
        detail = (
            f"this webhook-id was received before with a different body (event {result.event_id}); "
            "a new event needs a new webhook-id"
        )
        response = problem(409, "Webhook id reused with a different body", detail, event_id=result.event_id)
        return refused(response, system, f"webhook-id reused with a different body (event {result.event_id})")
    if result.repeated:
        return _receipt(result, 200)
    message = str((result.errors or {}).get("message", ""))
    reason = f"{(result.stage.value if result.stage else 'intake')}: {(result.errors or {}).get('error', '')}"
    if result.stage is Stage.CONTENT_TYPE:
        response = problem(
            415, "Unsupported content type", message, event_id=result.event_id, errors=result.errors
        )
        return refused(response, system, f"{reason} (event {result.event_id})")
    if result.refused:
        response = problem(422, "Unprocessable body", message, event_id=result.event_id, errors=result.errors)
        return refused(response, system, f"{reason} (event {result.event_id})")
    return _receipt(result, 202)


class WebhookHub(Protocol):
    """What the webhook endpoint needs of the running hub (``HubRuntime`` has it)."""

    settings: Settings
    adapters: dict[str, SourceAdapter]
    secrets: SecretStore
    telemetry: Telemetry


async def receive(hub: WebhookHub, writer: GroupCommit, system: str, request: Request) -> JSONResponse:
    """Handle ``POST /webhooks/{system}`` (see the module docstring for the answers)."""
    known = system if system in hub.adapters else "unknown"  # a path segment is no tag value
    with hub.telemetry.span("receive", system=known, transport="webhook") as span:
        response = await _receive(hub, writer, system, request)
        span.set_tags(status_code=response.status_code)
    hub.telemetry.count(WEBHOOK_RESPONSES, system=known, status_code=response.status_code)
    return response


async def _receive(hub: WebhookHub, writer: GroupCommit, system: str, request: Request) -> JSONResponse:
    settings = hub.settings.web
    adapter = hub.adapters.get(system)
    if adapter is None:
        known = ", ".join(sorted(hub.adapters))
        response = problem(404, "Unknown sales system", f"no sales system {system!r}; known: {known}")
        return refused(response, system[:40], "unknown sales system")
    try:
        body = await _read_body(request, settings.max_body_bytes)
    except _TooLargeError as exc:
        return refused(problem(413, "Body too large", str(exc)), system, str(exc))
    except _AbandonedError as exc:
        # A slow or cancelled sender, not a fault of the hub: one line, no trace; nothing recorded,
        # and the sender resends the webhook as it does after any answer it did not get.
        log.info("webhook from %s abandoned: %s; nothing recorded", system, exc)
        return problem(_CLIENT_GONE, "Client closed request", str(exc))
    headers = request.headers
    try:
        keys = hub.secrets.webhook_keys(system)
    except (SecretStoreError, RetriableError) as exc:
        log.error("webhook from %s not recorded, secret store unavailable: %s", system, exc)
        response = _unavailable("Secret store unavailable", settings.retry_after_seconds)
        return refused(response, system, "secret store unavailable")
    try:
        webhook_id = verify(
            keys,
            {name: headers[name] for name in _SIGNATURE_HEADERS if name in headers},
            body,
            now=time.time(),
            tolerance_seconds=settings.webhook_tolerance_seconds,
        )
    except SignatureError as exc:
        return refused(problem(401, "Invalid signature", exc.reason), system, exc.reason)
    event = InboundEvent(
        system=system,
        transport="webhook",
        body=body,
        content_type=headers.get("content-type"),
        idempotency_key=webhook_id,
        headers={name: headers[name] for name in _RECORDED_HEADERS if name in headers},
    )
    admission = admit(event, adapter)  # CPU only: content type, decode, classify
    with hub.telemetry.span("record", system=system, transport="webhook") as span:
        event = replace(event, trace=span.context())
        try:
            try:
                result = await writer.submit(event, admission)
            except (RetriableError, KeyServiceError):
                raise
            except Exception as exc:  # a bug or a value the database refuses: keep the event as failed
                result = await _record_as_failed(writer, event, exc)
        except (RetriableError, KeyServiceError) as exc:
            # Nothing is stored in clear: without its data key the event is not recorded at all, and
            # the sender resends it once the master key (Vault, the key file) answers again.
            keys_down = isinstance(exc, KeyServiceError | KeyServiceUnavailableError)
            what = "keys of personal data unavailable" if keys_down else "database unavailable"
            log.warning("webhook from %s not recorded, %s: %s", system, what, exc)
            span.set_error(exc)
            response = _unavailable(what[0].upper() + what[1:], settings.retry_after_seconds)
            return refused(response, system, what)
        span.set_tags(status=result.status.value, repeated=result.repeated, event_id=str(result.event_id))
        mark_refused(span, result)
        if admission.info is not None and admission.info.order_key:
            span.set_tags(order_key=admission.info.order_key)
    return _answer(system, result)


async def _record_as_failed(writer: GroupCommit, event: InboundEvent, exc: Exception) -> Receipt:
    """Record ``event`` as failed with ``exc`` after its normal recording failed; raises if that fails too.

    Only the exact body (bytes, always storable) and the error are kept: the headers and content
    type, which may hold what the database refused, are left out.
    """
    errors = {**error_record(Stage.INTERNAL, exc), "at_stage": "record"}
    log.error(
        "a %s webhook could not be recorded (%s: %s); recording it as failed",
        event.system,
        errors["error"],
        errors["message"],
        exc_info=exc,
    )
    kept = replace(event, headers={}, content_type=None)
    result = await writer.submit(kept, Admission(stage=Stage.INTERNAL, errors=errors))
    log.error("the %s webhook was recorded as failed event %s", event.system, result.event_id)
    return result


def _unavailable(title: str, retry_after: int) -> JSONResponse:
    response = problem(503, title, "the event was not recorded; resend it later")
    response.headers["Retry-After"] = str(retry_after)
    return response
