"""The hub on Vault's transit key while Vault stops answering: cached keys keep working, a key or an
order the process never had is refused as retriable (a webhook gets 503), nothing is stored in clear."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from saleshub.platform.secrets import EnvSecretStore
from saleshub.runtime import HubRuntime
from saleshub.store import queries
from tests.integration.conftest import SECRETS, LiveServer, open_hub, wait_until
from tests.integration.test_master_keys import Transit, bao
from tests.support.bao import BaoServer
from tests.support.synthetic import pyxis_event, signed_headers

__all__ = ["bao"]  # the fixture this module uses

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EMAIL = "vault.canary@example.com"


def _hub(transit: Transit, token: str, db_url: str) -> HubRuntime:
    settings = transit.settings(token, db_url)
    hub = open_hub(
        db_url,
        secrets=settings.secrets.model_dump(),
        privacy={**settings.privacy.model_dump(), "key_cache_seconds": 3600},
    )
    hub.secrets = EnvSecretStore(SECRETS)  # webhook secrets; the data keys stay with Vault's session
    return hub


def _post(url: str, number: int, revision: int = 1) -> httpx.Response:
    event: dict[str, Any] = json.loads(pyxis_event(number, revision=revision))
    event["order"]["customer"]["email"] = EMAIL
    body = json.dumps(event).encode()
    headers = signed_headers(SECRETS["SALESHUB_SECRET_WEBHOOK_PYXIS"], f"v-{number}-{revision}", body)
    return httpx.post(f"{url}/webhooks/pyxis", content=body, headers=headers, timeout=60)


def _stored(hub: HubRuntime, number: int, revision: int) -> bool:
    with hub.database.engine.connect() as conn:
        order = queries.find_order(conn, system="pyxis", external_id=f"PX-SYN-{number:09d}")
    return order is not None and order.source_version == revision


@pytest.fixture
def hubs(bao: BaoServer, db_url: str) -> Iterator[tuple[BaoServer, HubRuntime, HubRuntime]]:
    transit = Transit(bao)
    token = transit.hub_token(kv=True)
    warm, cold = _hub(transit, token, db_url), _hub(transit, token, db_url)
    try:
        yield bao, warm, cold
    finally:
        bao.resume()
        warm.close()
        cold.close()


def test_vault_down_cached_keys_work_others_get_503_and_nothing_is_clear(
    hubs: tuple[BaoServer, HubRuntime, HubRuntime],
) -> None:
    bao, warm, cold = hubs
    with LiveServer(warm) as warm_server:
        assert _post(warm_server.url, 801).status_code == 202
        wait_until(lambda: _stored(warm, 801, 1), 120, "order 801 is stored")
        bao.pause()
        try:
            # This process unwrapped the order's key and holds pre-wrapped keys: it goes on.
            assert _post(warm_server.url, 801, revision=2).status_code == 202
            assert _post(warm_server.url, 802).status_code == 202
            wait_until(lambda: _stored(warm, 801, 2) and _stored(warm, 802, 1), 120, "both stored")
            # A process that never had the key, nor a key to spare, must ask Vault: 503, retriable.
            with LiveServer(cold) as cold_server:
                refused = _post(cold_server.url, 801, revision=3)
                assert refused.status_code == 503, refused.text
                assert refused.headers.get("Retry-After")
                assert _post(cold_server.url, 803).status_code == 503
                bao.resume()
                # The sender resends until it is taken (a loaded machine's Vault may need a while).
                wait_until(
                    lambda: _post(cold_server.url, 801, revision=3).status_code == 202,
                    120,
                    "the resent update is taken once Vault answers",
                )
                wait_until(lambda: _stored(cold, 801, 3), 120, "the resent update is stored")
        finally:
            bao.resume()
    with warm.database.engine.connect() as conn:
        clear = conn.execute(
            text(
                "SELECT count(*) FROM sales_system_integration_events "
                "WHERE raw_body IS NOT NULL AND data_key_id IS NULL"
            )
        ).scalar_one()
        contents = conn.execute(text("SELECT content::text FROM service_orders")).scalars().all()
        bodies = (
            conn.execute(
                text("SELECT raw_body FROM sales_system_integration_events WHERE raw_body IS NOT NULL")
            )
            .scalars()
            .all()
        )
    assert clear == 0
    assert not any(EMAIL in content for content in contents)
    assert not any(EMAIL.encode() in bytes(body) for body in bodies)
