"""``saleshub webhooks send``: send a payload to a running hub as a signed webhook, as a sales system would.

The body is signed (Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``)
with the system's secret from the secret store the hub uses with the same settings
(``webhook/<system>``; with none configured, the local secrets file ``<data_dir>/secrets.yaml`` that
``scripts/serve.sh`` makes), posted to the hub, and the answer printed.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated

import httpx
import typer

from adapters.registry import AdapterRegistry
from saleshub.commands.common import fail
from saleshub.console import err, out
from saleshub.errors import SalesHubError
from saleshub.platform.secrets import SecretStore, secret_store_from_settings
from saleshub.platform.settings import Settings
from saleshub.receive.signatures import webhook_headers

__all__ = ["send_webhook", "webhook_url", "webhooks_app"]

webhooks_app = typer.Typer(help="Send signed webhooks to a running hub.", no_args_is_help=True)


def _keys(settings: Settings, system: str) -> tuple[list[bytes], SecretStore]:
    store = secret_store_from_settings(settings)
    return store.webhook_keys(system), store


def webhook_url(given: str, system: str) -> str:
    """The webhook URL of ``system`` from the hub's base URL or from the full webhook URL itself."""
    base = given.rstrip("/")
    path = f"/webhooks/{system}"
    return base if base.endswith(path) else base + path


@webhooks_app.command("send")
def send_webhook(
    system: Annotated[str, typer.Argument(help="sales system, e.g. pyxis")],
    file: Annotated[Path, typer.Argument(help="the payload file")],
    url: Annotated[
        str | None,
        typer.Option(
            help="the hub's base URL, or the full webhook URL ending in /webhooks/SYSTEM "
            "[default: http://SALESHUB_WEB__HOST:SALESHUB_WEB__PORT]"
        ),
    ] = None,
    webhook_id: Annotated[str | None, typer.Option("--id", help="webhook-id [default: a new one]")] = None,
    content_type: Annotated[str | None, typer.Option(help="Content-Type [default: the system's own]")] = None,
) -> None:
    """Sign FILE with SYSTEM's webhook secret, post it to the hub, and print the answer."""
    settings = Settings()
    try:
        body = file.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}") from None
    try:
        media = content_type or sorted(AdapterRegistry.default().adapter_class(system).media_types)[0]
        keys, store = _keys(settings, system)
    except SalesHubError as exc:
        raise fail(str(exc)) from None
    if not keys:
        raise fail(f"no webhook secret for {system}: set {store.where(f'webhook/{system}')}")
    message_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    headers = webhook_headers(keys[0], message_id, body, content_type=media)
    target = webhook_url(url or f"http://{settings.web.host}:{settings.web.port}", system)
    try:
        response = httpx.post(target, content=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach the hub at {target}: {exc}; is `saleshub serve` running?") from None
    colour = "green" if response.is_success else "red"
    err.print(
        f"[{colour}]{response.status_code} {response.reason_phrase}[/{colour}] "
        f"from {target} (webhook-id {message_id})"
    )
    try:
        out.print_json(json.dumps(response.json()))
    except ValueError:
        out.print(response.text, markup=False)
    if not response.is_success:
        raise typer.Exit(1)
