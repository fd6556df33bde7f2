"""The hub's metric names: what each one measures, its kind and its tags (the README table's source).

A stage reports with the telemetry port, naming the metric by its constant here::

    telemetry.count(EVENTS_FINISHED, system="pyxis", transport="webhook", status="mapped")
    telemetry.gauge(POLL_LAG, 42.0, system="erp")        # a poller, after each page it reads
    telemetry.count(RECONCILE_FINDINGS, 3, finding_class="missing_in_hub", system="erp")

The Datadog dashboard and monitors (``monitoring/datadog/``) query these names, and a test checks
that every metric they use is listed in ``METRICS``. Tags are low-cardinality words, never personal
data; every metric also carries the unified service tags ``service``, ``env`` and ``version``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "EVENTS_FINISHED",
    "EVENTS_RECORDED",
    "METRICS",
    "OUTBOX_BACKLOG",
    "OUTBOX_OLDEST_AGE",
    "POLL_LAG",
    "PROCESS_LATENCY",
    "PROCESS_QUEUE_DEPTH",
    "PROCESS_QUEUE_OLDEST_AGE",
    "PUBLISH_FAILED",
    "PUBLISH_PUBLISHED",
    "RECONCILE_FINDINGS",
    "WEBHOOK_RESPONSES",
    "Metric",
    "metrics_table",
]


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric: name, DogStatsD kind, tags, what it measures, and who reports it."""

    name: str
    kind: Literal["count", "gauge", "distribution"]
    tags: tuple[str, ...]
    meaning: str
    reporter: str


EVENTS_RECORDED: Final = "saleshub.events.recorded"
EVENTS_FINISHED: Final = "saleshub.events.finished"
PROCESS_LATENCY: Final = "saleshub.process.latency"
PROCESS_QUEUE_DEPTH: Final = "saleshub.process.queue_depth"
PROCESS_QUEUE_OLDEST_AGE: Final = "saleshub.process.queue_oldest_age"
OUTBOX_BACKLOG: Final = "saleshub.outbox.backlog"
OUTBOX_OLDEST_AGE: Final = "saleshub.outbox.oldest_age"
PUBLISH_PUBLISHED: Final = "saleshub.publish.published"
PUBLISH_FAILED: Final = "saleshub.publish.failed"
WEBHOOK_RESPONSES: Final = "saleshub.webhook.responses"
POLL_LAG: Final = "saleshub.poll.lag_seconds"
RECONCILE_FINDINGS: Final = "saleshub.reconcile.findings"

METRICS: Final = (
    Metric(
        EVENTS_RECORDED,
        "count",
        ("system", "transport", "status"),
        "events recorded (status `accepted`, or `quarantined`/`failed` when intake refused the body)",
        "the recorder (every transport)",
    ),
    Metric(
        EVENTS_FINISHED,
        "count",
        ("system", "transport", "status", "channel", "country"),
        "events at their final status, once each: `mapped`, `duplicate`, `stale`, `quarantined`, "
        "`failed`; the error rate is `quarantined`+`failed` over all, the quarantine rate "
        "`quarantined` over all (channel and country only for events that mapped)",
        "the recorder (refused at intake) and the processor",
    ),
    Metric(
        PROCESS_LATENCY,
        "distribution",
        ("system", "transport", "status"),
        "seconds from receipt to the committed final status",
        "the processor",
    ),
    Metric(
        PROCESS_QUEUE_DEPTH,
        "gauge",
        (),
        "recorded events waiting for a processor (the processor backlog)",
        "`serve`, `process`, `kafka relay`, every `telemetry.vitals_interval_seconds`",
    ),
    Metric(
        PROCESS_QUEUE_OLDEST_AGE,
        "gauge",
        (),
        "seconds the oldest waiting event has been queued (0 when none waits)",
        "as above",
    ),
    Metric(
        OUTBOX_BACKLOG,
        "gauge",
        (),
        "outbox rows not yet acknowledged by Kafka",
        "as above",
    ),
    Metric(
        OUTBOX_OLDEST_AGE,
        "gauge",
        (),
        "seconds since the oldest unpublished outbox row was written (0 when none waits)",
        "as above",
    ),
    Metric(
        PUBLISH_PUBLISHED,
        "count",
        ("topic", "system"),
        "outbox events the broker acknowledged",
        "the outbox relay",
    ),
    Metric(
        PUBLISH_FAILED,
        "count",
        ("topic", "system"),
        "outbox events not acknowledged in a round (retried later)",
        "the outbox relay",
    ),
    Metric(
        WEBHOOK_RESPONSES,
        "count",
        ("system", "status_code"),
        "webhook answers by HTTP status code (`system` is `unknown` for an unknown path)",
        "the webhook endpoint",
    ),
    Metric(
        POLL_LAG,
        "gauge",
        ("system",),
        "seconds between now and the newest change a poller has read from its source "
        "(`telemetry.gauge(POLL_LAG, seconds, system=...)` after each page)",
        "the pollers",
    ),
    Metric(
        RECONCILE_FINDINGS,
        "count",
        ("finding_class", "system"),
        "reconciliation findings by class (`telemetry.count(RECONCILE_FINDINGS, n, finding_class=..., "
        "system=...)` once per run and class)",
        "reconciliation",
    ),
)


def metrics_table() -> str:
    """The README's metrics table."""
    rows = ["| metric | kind | tags | meaning | reported by |", "|---|---|---|---|---|"]
    for metric in METRICS:
        tags = ", ".join(f"`{tag}`" for tag in metric.tags) or "—"
        rows.append(f"| `{metric.name}` | {metric.kind} | {tags} | {metric.meaning} | {metric.reporter} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(metrics_table(), end="")
