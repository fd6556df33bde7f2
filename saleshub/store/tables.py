"""The hub's PostgreSQL tables as SQLAlchemy Core metadata: the single description of the schema.

Alembic migrations under ``saleshub/store/migrations`` create exactly these tables; a test compares
the migrated database with this metadata, so the two cannot drift apart.

Three groups:

* reference data (``countries``, ``business_units``, ``stores``, ``sales_systems``,
  ``business_unit_sales_systems``, ``sales_channel_configurations``): a new sales system is a row;
* orders (``service_orders`` with one current row per source order, ``service_order_versions`` with
  one row per accepted change);
* the audit trail (``sales_system_integration_events``, partitioned by month on ``received_at``, and
  ``integration_event_keys``, the global idempotency index a partitioned table cannot carry itself);
* the processing queue (``event_queue``: recorded events waiting for a processor;
  ``processor_lanes``: the ``PROCESSOR_LANES`` row locks by which processors share the work while
  keeping each order's events in the order received);
* reconciliation (``reconciliation_runs``: one row per comparison of a source's manifest with the
  hub; ``reconciliation_findings``: one row per discrepancy a run found);
* linking across systems and channels (``customer_records``: one normalised customer per order,
  personal data, with its cluster; ``customer_links``: accepted links with score and evidence;
  ``cross_system_conflicts``: orders two systems report differently, per cross-system run);
* the transactional outbox (``event_outbox``: one row per canonical event to publish, written in the
  ingestion transaction; ``outbox_lanes``: the ``OUTBOX_LANES`` leases by which relay processes
  share the work while keeping each message key's events in order; ``kafka_broker_state``: one row
  saying since when the relays find the broker unreachable);
* the dead letters (``kafka_dead_letters``: one row per inbound Kafka record forwarded to the
  dead-letter topic, so that a record consumed again is not forwarded twice);
* mapping revisions (``mapping_revisions``: every deployed revision of the mapping files, whole;
  the newest is deployed; ``hub_processes``: which revision each running hub process maps with);
* the pollers (``poll_cursors``: where each polled system's incremental feed and its backfill stand,
  advanced in the transaction that records a page; ``poll_runs``: one row per run;
  ``poller_state``: a system's failures in a row, pause, last error and next scheduled run);
* the audit seals (``audit_seals``: one row per sealed hour, with the Merkle roots of the hour's
  integration events and operator actions, their ids and leaf hashes, and the chain hash linking it
  to the seal before; ``saleshub.store.seals``).

The tables every event writes (events, keys, orders, versions) carry no foreign keys (migration
0003): a check per row cost a quarter of an order's write. Their invariants hold because one code
path writes them together in one transaction, and the hub checks at start that every system it has
an adapter for is a row of ``sales_systems``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

__all__ = [
    "CUSTOMER_RECORD_COLUMNS",
    "DEAD_LETTER_FORMS",
    "EVENT_STATUSES",
    "OUTBOX_LANES",
    "POLL_STREAMS",
    "PROCESSOR_LANES",
    "RECONCILIATION_KINDS",
    "audit_seals",
    "business_unit_sales_systems",
    "business_units",
    "countries",
    "cross_system_conflicts",
    "customer_links",
    "customer_records",
    "data_keys",
    "event_outbox",
    "event_queue",
    "hub_processes",
    "integration_event_keys",
    "integration_events",
    "kafka_broker_state",
    "kafka_dead_letters",
    "mapping_drafts",
    "mapping_revisions",
    "metadata",
    "operator_actions",
    "order_data_keys",
    "outbox_lanes",
    "personal_index",
    "poll_cursors",
    "poll_runs",
    "poller_state",
    "privacy_erasures",
    "processor_lanes",
    "reconciliation_findings",
    "reconciliation_runs",
    "sales_channel_configurations",
    "sales_systems",
    "service_order_versions",
    "service_orders",
    "stores",
]

EVENT_STATUSES = ("accepted", "mapped", "duplicate", "stale", "quarantined", "failed", "dismissed")
OUTBOX_LANES = 64  # a message key always hashes to the same lane: crc32(key) % OUTBOX_LANES
POLL_STREAMS = ("incremental", "backfill")
PROCESSOR_LANES = 64  # an order's events always hash to the same lane: crc32(system:order key) % lanes
RECONCILIATION_KINDS = (
    "missing_in_hub",
    "missing_in_source",
    "hub_stale",
    "source_stale",
    "content_mismatch",
    "duplicate_in_source",
    "invalid_manifest_row",
)

metadata = MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


def _now() -> Column[object]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()"))


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


countries = Table(
    "countries",
    metadata,
    Column("code", String(2), primary_key=True, comment="ISO 3166-1 alpha-2"),
    Column("name", Text, nullable=False),
    Column("currency_code", String(3), nullable=False, comment="ISO 4217"),
    Column("timezone", Text, nullable=False, comment="IANA zone of the country's stores"),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    _now(),
)

business_units = Table(
    "business_units",
    metadata,
    Column("code", String(16), primary_key=True, comment="canonical bu_code, e.g. LM-ES"),
    Column("name", Text, nullable=False),
    Column("brand", Text, nullable=False, comment="Leroy Merlin, Brico Depot, …"),
    Column("country_code", String(2), ForeignKey("countries.code"), nullable=False),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    _now(),
)

stores = Table(
    "stores",
    metadata,
    Column("bu_code", String(16), ForeignKey("business_units.code"), nullable=False),
    Column("code", Text, nullable=False, comment="canonical store_code"),
    Column("name", Text, nullable=False),
    Column("timezone", Text, nullable=True, comment="overrides the country's zone"),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    _now(),
    PrimaryKeyConstraint("bu_code", "code"),
)

sales_systems = Table(
    "sales_systems",
    metadata,
    Column("code", String(32), primary_key=True, comment="adapter name, e.g. pyxis"),
    Column("name", Text, nullable=False),
    Column("countries", ARRAY(String(2)), nullable=False, comment="country codes served"),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column(
        "configuration",
        JSONB,
        nullable=False,
        server_default=text("'{}'::jsonb"),
        comment="transport settings (never secrets: those live in the secret store)",
    ),
    _now(),
)

business_unit_sales_systems = Table(
    "business_unit_sales_systems",
    metadata,
    Column("bu_code", String(16), ForeignKey("business_units.code"), nullable=False),
    Column("system_code", String(32), ForeignKey("sales_systems.code"), nullable=False),
    Column("is_primary", Boolean, nullable=False, server_default=text("false")),
    PrimaryKeyConstraint("bu_code", "system_code"),
    Index(
        "uq_business_unit_sales_systems_primary",
        "bu_code",
        unique=True,
        postgresql_where=text("is_primary"),
    ),
)

sales_channel_configurations = Table(
    "sales_channel_configurations",
    metadata,
    Column("bu_code", String(16), ForeignKey("business_units.code"), nullable=False),
    Column("sales_channel", String(16), nullable=False),
    Column("sla_hours", Integer, nullable=False),
    Column("auto_assignment", Boolean, nullable=False, server_default=text("false")),
    Column("rules", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    PrimaryKeyConstraint("bu_code", "sales_channel"),
    CheckConstraint("sla_hours > 0", name="sla_positive"),
)

service_orders = Table(
    "service_orders",
    metadata,
    Column("hub_order_id", UUID(as_uuid=True), primary_key=True),
    Column("source_system", String(32), nullable=False),  # a sales_systems code; see module docs
    Column("external_order_id", Text, nullable=False),
    Column("country_code", String(2), nullable=False),
    Column("bu_code", String(16), nullable=False),
    Column("store_code", Text, nullable=True),
    Column("sales_channel", String(16), nullable=False),
    Column("service_type", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("content", JSONB, nullable=False, comment="the canonical order as JSON"),
    Column("fingerprint", BigInteger, nullable=False),
    Column("source_version", BigInteger, nullable=True),
    Column("source_updated_at", DateTime(timezone=True), nullable=True),
    Column("mapping", Text, nullable=False, comment="label system/name@revision#hash"),
    Column("mapping_hash", Text, nullable=False),
    Column("version_no", Integer, nullable=False),
    Column("last_event_id", UUID(as_uuid=True), nullable=False),
    Column("personal", LargeBinary, nullable=True, comment="the personal fields, sealed with the data key"),
    Column("data_key_id", UUID(as_uuid=True), nullable=True, comment="NULL: content in clear (not migrated)"),
    Column("erased_at", DateTime(timezone=True), nullable=True, comment="its subject's data keys destroyed"),
    _now(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    UniqueConstraint("source_system", "external_order_id"),
    Index("ix_service_orders_system_updated", "source_system", "updated_at"),
    Index("ix_service_orders_updated", "updated_at", "hub_order_id"),  # keyset pages of all orders
    Index("ix_service_orders_tenancy", "country_code", "bu_code", "sales_channel"),
    # Reconciliation reads a system's orders of a time window with what it compares, index only.
    Index(
        "ix_service_orders_reconcile",
        "source_system",
        "source_updated_at",
        postgresql_include=["external_order_id", "fingerprint", "source_version"],
    ),
)

service_order_versions = Table(
    "service_order_versions",
    metadata,
    Column("hub_order_id", UUID(as_uuid=True), nullable=False),  # written with its order
    Column("version_no", Integer, nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("status", String(16), nullable=False),
    Column("content", JSONB, nullable=False),
    Column("fingerprint", BigInteger, nullable=False),
    Column("source_version", BigInteger, nullable=True),
    Column("mapping", Text, nullable=False),
    Column("personal", LargeBinary, nullable=True, comment="the personal fields, sealed with the data key"),
    Column("data_key_id", UUID(as_uuid=True), nullable=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("hub_order_id", "version_no"),
)

integration_events = Table(
    "sales_system_integration_events",
    metadata,
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("source_system", String(32), nullable=False),  # a sales_systems code; see module docs
    Column("transport", String(16), nullable=False),
    Column("event_type", String(16), nullable=True, comment="CREATED/UPDATED/CANCELLED once classified"),
    Column("content_type", Text, nullable=True),
    Column("raw_body", LargeBinary, nullable=True, comment="exact bytes received; NULL after retention"),
    Column("body_sha256", LargeBinary, nullable=False),
    Column("body_size", Integer, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("source_event_key", Text, nullable=True, comment="the source's own event id"),
    Column("order_key", Text, nullable=True, comment="the source's order reference, at intake"),
    Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("status", String(16), nullable=False),
    Column("errors", JSONB, nullable=True),
    Column("mapping", Text, nullable=True),
    Column("mapping_hash", Text, nullable=True),
    Column("hub_order_id", UUID(as_uuid=True), nullable=True),
    Column("order_version_no", Integer, nullable=True),
    Column("processing_ms", Double, nullable=True),
    Column("processed_at", DateTime(timezone=True), nullable=True, comment="when a processor finished it"),
    Column("replay_of", UUID(as_uuid=True), nullable=True, comment="the event this one re-ran"),
    Column("superseded_by", UUID(as_uuid=True), nullable=True, comment="the replay that re-ran this one"),
    Column("raw_body_purged_at", DateTime(timezone=True), nullable=True),
    Column("data_key_id", UUID(as_uuid=True), nullable=True, comment="raw_body sealed with it; NULL: clear"),
    PrimaryKeyConstraint("event_id", "received_at"),
    CheckConstraint(f"status IN ({_in(EVENT_STATUSES)})", name="status"),
    # No CHECK on transport: the list is ``canonical.enums.TRANSPORTS`` (migration 0013 dropped it).
    Index("ix_sales_system_integration_events_system_received", "source_system", "received_at"),
    Index("ix_sales_system_integration_events_order", "hub_order_id"),
    Index("ix_sales_system_integration_events_data_key", "data_key_id"),  # what an erasure destroyed
    # The newest events first, whatever their system (the console's and the API's event pages).
    Index("ix_sales_system_integration_events_received", "received_at"),
    Index(
        "ix_sales_system_integration_events_open",
        "status",
        "received_at",
        postgresql_where=text("status IN ('quarantined', 'failed') AND superseded_by IS NULL"),
    ),
    postgresql_partition_by="RANGE (received_at)",
    comment="one row per inbound event; monthly partitions sales_system_integration_events_YYYYMM",
)

integration_event_keys = Table(
    "integration_event_keys",
    metadata,
    Column("source_system", String(32), nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("source_system", "idempotency_key"),  # written with its event
)

event_outbox = Table(
    "event_outbox",
    metadata,
    Column("outbox_id", BigInteger, Identity(always=True), primary_key=True, comment="publication order"),
    Column("event_id", UUID(as_uuid=True), nullable=False, comment="the integration event; ce_id"),
    Column("kind", String(32), nullable=False, comment="order_received, order_updated, …"),
    Column("topic", Text, nullable=False),
    Column("message_key", Text, nullable=False, comment="{country}_{external order id}; no personal data"),
    Column("lane", SmallInteger, nullable=False, comment="crc32(message_key) % OUTBOX_LANES"),
    Column("source_system", String(32), nullable=False, comment="ce_source is /saleshub/{source_system}"),
    Column("subject", Text, nullable=True, comment="ce_subject: the hub order id"),
    Column("occurred_at", DateTime(timezone=True), nullable=False, comment="ce_time"),
    Column("payload", LargeBinary, nullable=False, comment="Avro binary body, without framing"),
    Column("schema_fingerprint", BigInteger, nullable=False, comment="CRC-64-AVRO of the writer schema"),
    _now(),
    Column("published_at", DateTime(timezone=True), nullable=True, comment="on the broker's acknowledgement"),
    Column("kafka_partition", Integer, nullable=True),
    Column("kafka_offset", BigInteger, nullable=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text, nullable=True),
    Column("data_key_id", UUID(as_uuid=True), nullable=True, comment="payload sealed with it; NULL: clear"),
    UniqueConstraint("event_id"),
    CheckConstraint(f"lane >= 0 AND lane < {OUTBOX_LANES}", name="lane"),
    Index(
        "ix_event_outbox_pending",
        "lane",
        "outbox_id",
        postgresql_where=text("published_at IS NULL"),
    ),
    Index("ix_event_outbox_published_at", "published_at"),
    comment="transactional outbox: canonical events waiting for (or given to) Kafka",
)

outbox_lanes = Table(
    "outbox_lanes",
    metadata,
    Column("lane", SmallInteger, primary_key=True, autoincrement=False),
    Column("leased_by", UUID(as_uuid=True), nullable=True, comment="the relay publishing this lane"),
    Column(
        "leased_until",
        DateTime(timezone=True),
        nullable=True,
        comment="the lease ends here even if its relay died",
    ),
    comment="one row per lane; a relay leases a lane while it publishes that lane's oldest events",
)

kafka_broker_state = Table(
    "kafka_broker_state",
    metadata,
    Column("singleton", Boolean, primary_key=True, server_default=text("true")),
    Column(
        "unreachable_since",
        DateTime(timezone=True),
        nullable=True,
        comment="first failed probe of the current outage; NULL while the broker answers",
    ),
    Column("last_error", Text, nullable=True),
    Column("checked_at", DateTime(timezone=True), nullable=True, comment="the last probe"),
    CheckConstraint("singleton", name="singleton"),
    comment="one row: whether the relays can reach the Kafka broker, for saleshub status",
)

DEAD_LETTER_FORMS = ("full", "reference")

kafka_dead_letters = Table(
    "kafka_dead_letters",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True, comment="the recorded event: its bytes"),
    Column("source_topic", Text, nullable=False),
    Column("source_partition", Integer, nullable=False),
    Column("source_offset", BigInteger, nullable=False),
    Column("form", String(16), nullable=False, comment="full: the record's bytes; reference: none"),
    Column("topic", Text, nullable=False, comment="the dead-letter topic"),
    Column("kafka_partition", Integer, nullable=False),
    Column("kafka_offset", BigInteger, nullable=False),
    Column("dead_lettered_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    CheckConstraint(f"form IN ({_in(DEAD_LETTER_FORMS)})", name="form"),
    comment="one row per inbound Kafka record on the dead-letter topic; one found here is not sent again",
)

event_queue = Table(
    "event_queue",
    metadata,
    Column("queue_id", BigInteger, Identity(always=True), primary_key=True, comment="processing order"),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("source_system", String(32), nullable=False),
    Column("lane", SmallInteger, nullable=False, comment="crc32(system:order key) % lanes"),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    _now(),
    CheckConstraint(f"lane >= 0 AND lane < {PROCESSOR_LANES}", name="lane"),
    Index("ix_event_queue_lane", "lane", "queue_id"),
    comment="recorded events waiting for a processor; a row goes when its event is processed",
)

processor_lanes = Table(
    "processor_lanes",
    metadata,
    Column("lane", SmallInteger, primary_key=True, autoincrement=False),
    comment="one row per lane; a processor holds a lane's row lock while it processes that lane",
)

poll_cursors = Table(
    "poll_cursors",
    metadata,
    Column("source_system", String(32), nullable=False),
    Column("stream", String(16), nullable=False, comment="incremental, or backfill (its own window)"),
    Column(
        "updated_at",
        Text,
        nullable=True,
        comment="change time of the last record read, as the source wrote it",
    ),
    Column("tie", Text, nullable=True, comment="the key ordering records of that time (ERP HeaderId)"),
    Column("token", Text, nullable=True, comment="continuation token of an unfinished listing"),
    Column("window_since", DateTime(timezone=True), nullable=True, comment="a backfill's window"),
    Column("window_until", DateTime(timezone=True), nullable=True),
    Column("pages", BigInteger, nullable=False, server_default=text("0")),
    Column("records", BigInteger, nullable=False, server_default=text("0")),
    Column(
        "caught_up_at", DateTime(timezone=True), nullable=True, comment="a run last read to the feed's end"
    ),
    Column("finished_at", DateTime(timezone=True), nullable=True, comment="a backfill read its whole window"),
    Column("advanced_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("source_system", "stream"),
    CheckConstraint(f"stream IN ({_in(POLL_STREAMS)})", name="stream"),
    comment="where each polled feed stands; moved in the transaction that records the page read",
)

poll_runs = Table(
    "poll_runs",
    metadata,
    Column("run_id", UUID(as_uuid=True), primary_key=True),
    Column("source_system", String(32), nullable=False),
    Column("stream", String(16), nullable=False),
    Column("started_by", String(16), nullable=False, comment="schedule or command"),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("pages", Integer, nullable=False, server_default=text("0")),
    Column("orders", Integer, nullable=False, server_default=text("0"), comment="records read"),
    Column("recorded", Integer, nullable=False, server_default=text("0"), comment="new events recorded"),
    Column("errors", Integer, nullable=False, server_default=text("0"), comment="records refused at intake"),
    Column(
        "outcome",
        String(16),
        nullable=True,
        comment="completed, failed, stopped or interrupted (its process died); NULL while running",
    ),
    Column("error", Text, nullable=True),
    CheckConstraint(f"stream IN ({_in(POLL_STREAMS)})", name="stream"),
    Index("ix_poll_runs_system_started", "source_system", "started_at"),
    comment="one row per poller run",
)

poller_state = Table(
    "poller_state",
    metadata,
    Column("source_system", String(32), primary_key=True),
    Column("failures", Integer, nullable=False, server_default=text("0"), comment="failed runs in a row"),
    Column("last_error", Text, nullable=True),
    Column("last_error_at", DateTime(timezone=True), nullable=True),
    Column("paused_at", DateTime(timezone=True), nullable=True, comment="NULL while the poller runs"),
    Column("paused_reason", Text, nullable=True),
    Column("next_run_at", DateTime(timezone=True), nullable=True, comment="as the scheduler last planned it"),
    comment="per polled system: failures in a row, pause, last error, next scheduled run",
)

reconciliation_runs = Table(
    "reconciliation_runs",
    metadata,
    Column("run_id", UUID(as_uuid=True), primary_key=True),
    Column("source_system", String(32), nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("grace_seconds", Integer, nullable=False),
    Column("manifest", Text, nullable=False, comment="where the source's manifest came from (no path)"),
    Column("status", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("counts", JSONB, nullable=False, server_default=text("'{}'::jsonb"), comment="findings by kind"),
    Column("stats", JSONB, nullable=False, server_default=text("'{}'::jsonb"), comment="rows read, skipped"),
    Column("error", Text, nullable=True),
    Column("figures", JSONB, nullable=True, comment="operational figures of the window (cross-system runs)"),
    CheckConstraint("status IN ('running', 'completed', 'failed')", name="status"),
    Index("ix_reconciliation_runs_system_started", "source_system", "started_at"),
    comment="one row per comparison of a source system's manifest with the hub",
)

reconciliation_findings = Table(
    "reconciliation_findings",
    metadata,
    Column("finding_id", BigInteger, Identity(always=True), primary_key=True),
    Column(
        "run_id",
        UUID(as_uuid=True),
        ForeignKey("reconciliation_runs.run_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("kind", String(24), nullable=False),
    Column("external_order_id", Text, nullable=False),
    Column("hub_order_id", UUID(as_uuid=True), nullable=True),
    Column("country_code", String(2), nullable=True),
    Column("bu_code", String(16), nullable=True),
    Column("sales_channel", String(16), nullable=True),
    Column("source_version", BigInteger, nullable=True),
    Column("hub_version", BigInteger, nullable=True),
    Column("source_updated_at", DateTime(timezone=True), nullable=True),
    Column("hub_updated_at", DateTime(timezone=True), nullable=True),
    Column("source_fingerprint", BigInteger, nullable=True),
    Column("hub_fingerprint", BigInteger, nullable=True),
    Column("field_differences", JSONB, nullable=True, comment="[{field, hub, source, rule}]"),
    Column("detail", Text, nullable=True),
    Column("first_seen_at", DateTime(timezone=True), nullable=False, comment="open since (earlier runs)"),
    CheckConstraint(f"kind IN ({_in(RECONCILIATION_KINDS)})", name="kind"),
    Index("ix_reconciliation_findings_run_id", "run_id", "kind", "external_order_id"),
    comment="one row per discrepancy found by a reconciliation run",
)

#: The normalised values of a customer record (personal data), in table order; linking reads these.
CUSTOMER_RECORD_COLUMNS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "name_key",
    "postal_code",
    "street",
    "house_number",
    "city",
)

customer_records = Table(
    "customer_records",
    metadata,
    Column("record_id", BigInteger, Identity(always=False), primary_key=True),
    Column("hub_order_id", UUID(as_uuid=True), nullable=False),
    Column("source_system", String(32), nullable=False),
    Column("external_order_id", Text, nullable=False),
    Column("sales_channel", String(16), nullable=False),
    Column("country_code", String(2), nullable=False),
    Column("bu_code", String(16), nullable=False),
    Column("order_fingerprint", BigInteger, nullable=False, comment="the order when normalised"),
    *[Column(name, Text, nullable=True) for name in CUSTOMER_RECORD_COLUMNS],
    Column("cluster_id", BigInteger, nullable=False, comment="the customer: its lowest record id"),
    Column("linked_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("hub_order_id"),
    Index("ix_customer_records_email", "email"),
    Index("ix_customer_records_phone", "phone"),
    Index("ix_customer_records_postal_code", "postal_code", "house_number"),
    Index("ix_customer_records_name_key", "name_key", "postal_code"),
    Index("ix_customer_records_cluster_id", "cluster_id"),
    comment="one normalised customer per order (personal data: never leaves the database unmasked)",
)

customer_links = Table(
    "customer_links",
    metadata,
    Column("record_l", BigInteger, nullable=False),
    Column("record_r", BigInteger, nullable=False),
    Column("match_probability", Double, nullable=False),
    Column("match_weight", Double, nullable=False),
    Column("evidence", JSONB, nullable=False, comment="{field: {level, weight}}"),
    Column("run_id", UUID(as_uuid=True), nullable=True),
    Column("linked_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("record_l", "record_r"),
    Index("ix_customer_links_run_id", "run_id"),
    comment="two customer records found to be one customer, with the score and its evidence",
)

cross_system_conflicts = Table(
    "cross_system_conflicts",
    metadata,
    Column("conflict_id", BigInteger, Identity(always=True), primary_key=True),
    Column(
        "run_id",
        UUID(as_uuid=True),
        ForeignKey("reconciliation_runs.run_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("reference", Text, nullable=False, comment="the declared cross-reference"),
    Column("reference_value", Text, nullable=False),
    Column("left_system", String(32), nullable=False),
    Column("left_external_order_id", Text, nullable=False),
    Column("left_hub_order_id", UUID(as_uuid=True), nullable=False),
    Column("right_system", String(32), nullable=False),
    Column("right_external_order_id", Text, nullable=False),
    Column("right_hub_order_id", UUID(as_uuid=True), nullable=False),
    Column("country_code", String(2), nullable=True),
    Column("bu_code", String(16), nullable=True),
    Column("sales_channel", String(16), nullable=True),
    Column("categories", ARRAY(Text), nullable=False, comment="amount, status, dates, lines, …"),
    Column("differences", JSONB, nullable=False, comment="[{field, left, right, rule}]"),
    Column("first_seen_at", DateTime(timezone=True), nullable=False, comment="open since (earlier runs)"),
    Index("ix_cross_system_conflicts_run_id", "run_id"),
    comment="one order reported by two systems that disagree, per cross-system run",
)

mapping_revisions = Table(
    "mapping_revisions",
    metadata,
    Column("revision", Integer, primary_key=True, autoincrement=False),
    Column("content_hash", Text, nullable=False, comment="sha256 over every file's path and bytes"),
    Column("files", JSONB, nullable=False, comment="relative path -> file text"),
    Column("mappings", JSONB, nullable=False, comment="system/name -> mapping label"),
    Column("message", Text, nullable=True, comment="the steward's note"),
    Column("rollback_of", Integer, nullable=True, comment="the revision this one restored"),
    Column("deployed_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    comment="every deployed revision of the mapping files; the newest is the deployed one",
)

hub_processes = Table(
    "hub_processes",
    metadata,
    Column("process", Text, primary_key=True, comment="host:pid of a running hub process"),
    Column("role", Text, nullable=False),
    Column("mapping_revision", Integer, nullable=True, comment="NULL: files on disk"),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("seen_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    comment="running hub processes and the mapping revision each maps with",
)

operator_actions = Table(
    "operator_actions",
    metadata,
    Column("action_id", BigInteger, Identity(always=True), primary_key=True),
    Column("acted_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("subject", Text, nullable=False, comment="the provider's subject (or cli:<user> for the CLI)"),
    Column("name", Text, nullable=False, comment="the person's name as the provider gave it"),
    Column("action", Text, nullable=False, comment="e.g. events.dismiss, mappings.deploy"),
    Column("object_type", Text, nullable=False, comment="event, mapping_revision, draft, poller"),
    Column("object_id", Text, nullable=False),
    Column("reason", Text, nullable=True, comment="the reason or deploy message given"),
    Column("detail", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Index("operator_actions_object", "object_type", "object_id"),
    Index("operator_actions_acted_at", "acted_at"),
    comment="every state change made by a person through the API, the console or the CLI",
)

mapping_drafts = Table(
    "mapping_drafts",
    metadata,
    Column("draft_id", UUID(as_uuid=True), primary_key=True),
    Column("base_revision", Integer, nullable=True, comment="the deployed revision it started from"),
    Column("files", JSONB, nullable=False, comment="relative path -> file text, edited"),
    Column("created_by", Text, nullable=False, comment="subject of the steward who started it"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("deployed_as", Integer, nullable=True, comment="the revision it became, once deployed"),
    comment="a steward's edits of the mapping files, previewed and checked before a deploy",
)

data_keys = Table(
    "data_keys",
    metadata,
    Column("key_id", UUID(as_uuid=True), primary_key=True),
    Column("wrapped", LargeBinary, nullable=False, comment="the data key wrapped by the master key"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    comment="one AES-256 data key per order, only wrapped; deleting one erases what it sealed",
)

order_data_keys = Table(
    "order_data_keys",
    metadata,
    Column("source_system", String(32), nullable=False),
    Column("order_key", Text, nullable=False, comment="the source's order reference (or event:<id>)"),
    Column("key_id", UUID(as_uuid=True), nullable=False),
    PrimaryKeyConstraint("source_system", "order_key"),
    Index("ix_order_data_keys_key_id", "key_id"),
    comment="which data key seals an order's events, versions and outbox payloads",
)

personal_index = Table(
    "personal_index",
    metadata,
    Column("kind", String(16), nullable=False, comment="email, phone, customer_ref"),
    Column("digest", LargeBinary, nullable=False, comment="keyed HMAC of the normalised value"),
    Column("hub_order_id", UUID(as_uuid=True), nullable=False),
    PrimaryKeyConstraint("kind", "digest", "hub_order_id"),
    Index("ix_personal_index_hub_order_id", "hub_order_id"),
    comment="blind index: finds a subject's orders by e-mail, phone or reference without clear values",
)

privacy_erasures = Table(
    "privacy_erasures",
    metadata,
    Column("erasure_id", BigInteger, Identity(always=True), primary_key=True),
    Column("erased_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("subject", Text, nullable=False, comment="who erased (the provider's subject or cli:<user>)"),
    Column("reason", Text, nullable=False, comment="the request's reference, e.g. a ticket number"),
    Column("criteria", JSONB, nullable=False, comment="the kinds searched by, never their values"),
    Column("orders", Integer, nullable=False),
    Column("events", Integer, nullable=False),
    Column("data_keys", Integer, nullable=False),
    Column("detail", JSONB, nullable=False, server_default=text("'{}'::jsonb"), comment="systems, counts"),
    comment="every erasure: who, when, why and how much, without the erased data",
)

audit_seals = Table(
    "audit_seals",
    metadata,
    Column("period_start", DateTime(timezone=True), primary_key=True, comment="start of the sealed hour"),
    Column("period_end", DateTime(timezone=True), nullable=False, comment="its end (exclusive)"),
    Column("events_count", Integer, nullable=False),
    Column("events_root", LargeBinary, nullable=False, comment="Merkle root of the events' leaves"),
    Column("events_leaves", LargeBinary, nullable=False, comment="zlib: (event id, leaf hash) by id"),
    Column("actions_count", Integer, nullable=False),
    Column("actions_root", LargeBinary, nullable=False, comment="Merkle root of the actions' leaves"),
    Column("actions_leaves", LargeBinary, nullable=False, comment="zlib: (action id, leaf hash) by id"),
    Column("root", LargeBinary, nullable=False, comment="hash of the two roots"),
    Column("previous_chain", LargeBinary, nullable=False, comment="chain hash of the seal before"),
    Column("chain", LargeBinary, nullable=False, comment="H(previous_chain, root, period, counts)"),
    Column("sealed_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    CheckConstraint("period_end > period_start", name="period"),
    UniqueConstraint("chain"),
    comment="the tamper-evident seals of the audit trail: one per ended hour, chained",
)
