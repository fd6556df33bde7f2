"""``saleshub process``: processors of recorded events in a process of their own.

``saleshub serve`` runs a processor beside its web workers; this command runs more (``--threads``)
in a separate process, on this or another machine, sharing the queue by lanes with every other
processor. ``--drain`` processes what is queued and exits.
"""

from __future__ import annotations

from typing import Annotated

import typer

from saleshub.commands.common import fail, wait_for_signal
from saleshub.commands.health import HealthPortOption, health_port
from saleshub.console import out
from saleshub.errors import SalesHubError
from saleshub.platform.logs import configure_logging
from saleshub.platform.settings import Settings
from saleshub.runtime import HubRuntime, tune_collector
from saleshub.services import Services

__all__ = ["process"]


def process(
    threads: Annotated[int, typer.Option(min=1, max=16, help="processor threads in this process")] = 1,
    drain: Annotated[bool, typer.Option("--drain", help="process the queued events, then exit")] = False,
    health: HealthPortOption = None,
) -> None:
    """Map recorded events into orders until stopped (several processors share the work)."""
    settings = Settings()
    configure_logging(settings)
    try:
        hub = HubRuntime.open(settings)
    except SalesHubError as exc:
        raise fail(str(exc)) from None
    tune_collector()
    try:
        if drain:
            try:
                done = hub.processor().drain(timeout=24 * 3600)
            except SalesHubError as exc:
                raise fail(f"processing stopped: {exc}. The queued events wait; run again.") from None
            counts = ", ".join(f"{status} {count}" for status, count in sorted(done.statuses.items()))
            out.print(f"processed {done.events} events{': ' + counts if counts else ''}")
            return
        hub.follow_mappings("process")
        services = Services.start(hub, processors=threads)
        out.print(f"processing recorded events with {threads} thread(s); Ctrl+C stops")
        with health_port(health, hub, services):
            wait_for_signal()
        services.stop()
    finally:
        hub.close()
