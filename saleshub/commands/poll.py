"""``saleshub poll``: run a poller now, backfill a window, see how every poller stands, pause, resume.

``saleshub serve`` runs the pollers of ``SALESHUB_POLLERS__SYSTEMS`` on their schedules; these
commands act on one system by hand, from any machine with the hub's settings:

* ``serve`` runs every system's poller on its schedule until stopped, with the nightly reconciliation
  of ``pollers.reconcile_at`` (what ``saleshub serve`` runs beside its web workers, alone); several
  such processes are safe: a feed's advisory lock lets one poll it at a time and the others' runs of
  that system are skipped until it is free (a replica takes over within one interval of the holder
  ending); the nightly reconciliation is not locked, so with several set ``reconcile_at`` to ``off``
  and run ``saleshub reconcile nightly`` once a day instead;
* ``run SYSTEM`` reads the incremental feed to its end now (``--force`` also when paused; a completed
  forced run lifts the pause);
* ``backfill SYSTEM --since DATE [--until DATE]`` reads a window with a progress bar, on a cursor of
  its own (the incremental one stays where it is); stopped by Ctrl+C or a crash, the same command
  resumes where it stopped;
* ``status`` shows per system the cursor, last and next run (a run left open whose lock is free is
  shown ``interrupted``, and so are such runs among the last ten),
  lag, last error (with a ``Retry-After`` the source asked for beyond ``max_backoff_seconds``) and pause;
* ``pause SYSTEM`` / ``resume SYSTEM`` stop and restart its scheduled runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from adapters.source import Window
from saleshub.actions.events import cli_actor
from saleshub.actions.pollers import backfill_job, poller_overview, run_job
from saleshub.commands.common import StopSignal, database, fail, parse_time, wait_for_signal
from saleshub.commands.health import HealthPortOption, health_port
from saleshub.console import err, out
from saleshub.errors import SalesHubError
from saleshub.platform.logs import configure_logging
from saleshub.platform.settings import Settings
from saleshub.receive.polling import PageProgress, RunResult
from saleshub.runtime import HubRuntime
from saleshub.services import Services
from saleshub.store import polling as store
from saleshub.store.failures import database_errors

__all__ = ["System", "backfill", "pause", "poll_app", "resume", "run", "serve", "status"]

poll_app = typer.Typer(help="The pollers of source APIs (the ERP, Tempo).", no_args_is_help=True)

System = Annotated[str, typer.Argument(help="a polled system of SALESHUB_POLLERS__SYSTEMS, e.g. erp")]


def _open_hub() -> HubRuntime:
    settings = Settings()
    configure_logging(settings)
    try:
        return HubRuntime.open(settings)
    except SalesHubError as exc:
        raise fail(str(exc)) from None


def _summary(result: RunResult) -> str:
    return (
        f"{result.pages} pages, {result.orders} orders read, {result.recorded} new events, "
        f"{result.errors} refused (quarantined)"
    )


def _finish(result: RunResult) -> None:
    if result.outcome == "completed":
        out.print(f"[green]{result.system} ({result.stream}): {_summary(result)}[/green]")
        return
    if result.outcome == "skipped":
        raise fail(result.error or "skipped", 3)
    if result.outcome == "paused":
        raise fail(f"{result.system} is paused: {result.error}; `--force` runs it anyway")
    paused = f"; the poller is paused (saleshub poll resume {result.system})" if result.paused else ""
    raise fail(
        f"{result.system} ({result.stream}) {result.outcome} after {_summary(result)}: {result.error}{paused}"
    )


@poll_app.command("serve")
def serve(health: HealthPortOption = None) -> None:
    """Poll every system of SALESHUB_POLLERS__SYSTEMS on its schedule until stopped (one per feed at once)."""
    settings = Settings()
    configure_logging(settings)  # a long-running role: the format of SALESHUB_LOG_FORMAT, masked
    try:
        hub = HubRuntime.open(settings)
    except SalesHubError as exc:
        raise fail(str(exc)) from None
    try:
        if not hub.settings.pollers.systems:
            raise fail(
                'no system to poll: set SALESHUB_POLLERS__SYSTEMS=\'{"erp": {"base_url": "https://…"}}\''
            )
        try:
            services = Services.start(hub, pollers=True)
        except SalesHubError as exc:
            raise fail(str(exc)) from None
        for system, polled in sorted(hub.settings.pollers.systems.items()):
            out.print(f"polling: {system} at {polled.base_url}, {polled.trigger_description()}")
        out.print("Ctrl+C stops")
        with health_port(health, hub, services):
            wait_for_signal()
        services.stop()
    finally:
        hub.close()


@poll_app.command("run")
def run(
    system: System,
    force: Annotated[bool, typer.Option("--force", help="run even when the poller is paused")] = False,
) -> None:
    """Read SYSTEM's incremental feed to its end now (exit 1 on failure, 3 if another process polls it)."""
    hub = _open_hub()
    try:
        try:
            result = run_job(hub, system, cli_actor(), force=force)()
        except SalesHubError as exc:
            raise fail(str(exc), 2) from None
        _finish(result)
    finally:
        hub.close()


class _RateColumn(ProgressColumn):
    """Orders per second so far."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} orders/s" if speed else "… orders/s", style="progress.data.speed")


@poll_app.command("backfill")
def backfill(
    system: System,
    since: Annotated[str, typer.Option(help="first change time, ISO 8601 (UTC unless an offset is given)")],
    until: Annotated[str | None, typer.Option(help="end of the window, excluded [default: open]")] = None,
) -> None:
    """Read every order SYSTEM changed in [--since, --until); resumable; the incremental cursor stays."""
    window = Window(parse_time(since, "--since"), parse_time(until, "--until"))
    if window.since and window.until and window.until <= window.since:
        raise fail("--until must come after --since", 2)
    hub = _open_hub()
    try:
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("orders, {task.fields[pages]} pages"),
            _RateColumn(),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=out, transient=False) as progress:
            task = progress.add_task(f"backfill {system}", total=None, pages=0)

            def advance(step: PageProgress) -> None:
                total = step.feed_records + step.remaining if step.remaining is not None else None
                progress.update(task, completed=step.feed_records, total=total, pages=step.pages)

            try:
                job = backfill_job(hub, system, window, cli_actor(), on_page=advance)
            except SalesHubError as exc:
                raise fail(str(exc), 2) from None
            try:
                result = job()
            except StopSignal:
                err.print("[yellow]backfill stopped; run the same command again to resume[/yellow]")
                raise
        _finish(result)
    finally:
        hub.close()


def _age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "—"
    seconds = int((now - moment).total_seconds())
    if abs(seconds) < 120:
        return f"{seconds} s"
    if abs(seconds) < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _at(moment: datetime | None) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}" if moment else "—"


@poll_app.command("status")
def status() -> None:
    """Per polled system: cursor, last and next run, lag, last error, and whether it is paused."""
    settings = Settings()
    now = datetime.now(UTC)
    table = Table(
        "system", "schedule", "cursor", "last run", "next run", "lag", "last error", "state", title="Pollers"
    )
    with database(settings) as db, database_errors(), db.engine.connect() as conn:
        views = poller_overview(conn, list(settings.pollers.systems))
    for view in views:
        system, state, cursor, backfill_cursor, runs = (
            view.system,
            view.state,
            view.cursor,
            view.backfill,
            view.runs,
        )
        configured = settings.pollers.systems.get(system)
        run = runs[0] if runs else None
        position = "(start of the feed)"
        if cursor is not None and cursor.updated_at:
            position = cursor.updated_at + (f" after {cursor.tie}" if cursor.tie else "")
        if backfill_cursor is not None and backfill_cursor.finished_at is None:
            position += f"\nbackfill at {backfill_cursor.updated_at or 'its start'}"
        last = "never"
        if run is not None:
            died = f"{store.INTERRUPTED} (its process died; the next run closes it)"
            outcome = run.outcome or ("running" if view.running else died)
            last = f"{_at(run.started_at)} {outcome}, {run.pages} pages, {run.orders} orders"
            interrupted = [r for r in runs[1:] if r.outcome == store.INTERRUPTED]
            if interrupted:
                last += (
                    f"\n{len(interrupted)} of the {len(runs)} last runs interrupted, the latest "
                    f"started {_at(interrupted[0].started_at)} (its process died)"
                )
        lag = _age(cursor.caught_up_at, now) if cursor and cursor.caught_up_at else "never caught up"
        error = f"{state.last_error} ({_age(state.last_error_at, now)} ago)" if state.last_error else "—"
        if state.paused_at is not None:
            condition = f"[red]paused {_age(state.paused_at, now)} ago: {state.paused_reason}[/red]"
        elif configured is None:
            condition = "[yellow]not configured[/yellow]"
        elif state.failures:
            condition = f"[yellow]{state.failures} failed run(s) in a row[/yellow]"
        else:
            condition = "[green]running[/green]"
        table.add_row(
            system,
            configured.trigger_description() if configured else "—",
            position,
            last,
            _at(state.next_run_at),
            lag,
            error,
            condition,
        )
    if not views:
        out.print("no polled systems (SALESHUB_POLLERS__SYSTEMS is empty)")
        return
    out.print(table)
    out.print("lag: how long ago a run last read the source's feed to its end")


@poll_app.command("pause")
def pause(
    system: System,
    reason: Annotated[str, typer.Option(help="why, for saleshub poll status")] = "paused by an operator",
) -> None:
    """Stop SYSTEM's scheduled runs until `saleshub poll resume`."""
    from saleshub.actions.events import cli_actor
    from saleshub.actions.pollers import pause_poller

    with database() as db:
        pause_poller(db.engine, system, reason, cli_actor())
    out.print(f"{system}: paused")


@poll_app.command("resume")
def resume(system: System) -> None:
    """Restart SYSTEM's scheduled runs and forget its failures in a row."""
    from saleshub.actions.events import cli_actor
    from saleshub.actions.pollers import resume_poller

    with database() as db:
        resume_poller(db.engine, system, cli_actor())
    out.print(f"{system}: resumed")
