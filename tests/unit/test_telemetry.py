"""The telemetry port's contract, personal-data masking, JSON log lines, the metric catalogue and
the Datadog dashboard/monitors in the repository. No network: the Datadog backend itself runs in
``tests/integration/test_datadog.py`` against Datadog's test agent."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from saleshub.platform.logs import JsonFormatter, MaskingFormatter, TelemetryClientThrottle
from saleshub.platform.masking import mask
from saleshub.platform.metrics import METRICS, metrics_table
from saleshub.platform.telemetry import NO_SPAN, NoTelemetry, RecordingTelemetry

ROOT = Path(__file__).resolve().parents[2]


def test_recording_spans_follow_a_stored_carrier_and_the_active_span() -> None:
    telemetry = RecordingTelemetry()
    with telemetry.span("receive", system="pyxis") as receive, telemetry.span("record") as record:
        carrier = record.context()
    process = telemetry.start_span("process", parent=carrier, system="pyxis")
    process.set_tags(status="mapped")
    process.finish()
    process.finish()  # once only
    stages = {span.stage: span for span in telemetry.spans}
    assert stages["record"].parent_id == stages["receive"].span_id
    assert stages["process"].parent_id == stages["record"].span_id
    assert stages["process"].tags == {"system": "pyxis", "status": "mapped"}
    assert len(telemetry.spans) == 3 and receive is not record


def test_no_telemetry_is_disabled_and_keeps_nothing() -> None:
    telemetry = NoTelemetry()
    assert not telemetry.enabled and telemetry.log_context() == {}
    with telemetry.span("receive", parent={"x-datadog-trace-id": "1"}, system="pyxis") as span:
        assert span is NO_SPAN and span.context() == {}
    assert telemetry.start_span("process") is NO_SPAN


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        (
            '{"firstName": "Lucía", "lastName": "Moreno Gil", "zip": "28009"}',
            ["firstName", "28009"],
            ["Lucía", "Moreno"],
        ),
        ("{'first_name': 'Ana', 'email': 'ana@example.com'}", ["first_name"], ["Ana'", "ana@example.com"]),
        ("customer lucia.moreno@example.com wrote", ["customer", "wrote"], ["lucia.moreno"]),
        ("call +34 612 345 678 or 06.12.34.56.78 or 612 345 678", ["call"], ["612 345", "06.12", "345 678"]),
        ("street=Calle de Alcalá 123 system=pyxis", ["system=pyxis"], ["Alcalá"]),
        (
            "<tso:FirstName>Katarzyna</tso:FirstName><tso:Phone>501 234 567</tso:Phone>",
            ["tso:FirstName"],
            ["Katarzyna", "501"],
        ),
        (
            "ContactFirstName: Sergio, PartyName=Construcciones Iberia Norte SL;",
            ["ContactFirstName"],
            ["Sergio", "Iberia"],
        ),
    ],
)
def test_mask_hides_personal_data(text: str, kept: list[str], gone: list[str]) -> None:
    masked = mask(text)
    assert "***" in masked
    for word in kept:
        assert word in masked
    for word in gone:
        assert word not in masked


def test_mask_keeps_what_the_hub_logs_about_events() -> None:
    text = (
        "event 6f1c3a52-8d7e-4b0a-9c1e-2f4d5e6a7b80 of order ES_PX-ES-2026-000123 at 2026-11-20T09:15:02+01:00, "
        "mapping pyxis/order@2026.11.1#3fa2c1d09b7e, offset 12345678901, trace 1234567890123456789, lane 12"
    )
    assert mask(text) == text


def _record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("saleshub.test", logging.ERROR, __file__, 1, message, args, exc_info)


def test_json_lines_carry_the_span_ids_and_mask_messages_and_tracebacks() -> None:
    try:
        raise ValueError("customer email ana@example.com refused")
    except ValueError as exc:
        error = exc
    context = {"dd.trace_id": "42", "dd.span_id": "7", "dd.service": "saleshub"}
    line = json.loads(JsonFormatter(lambda: context).format(_record("for %s", "+48 501 234 567", exc=error)))
    assert line["message"] == "for ***" and line["status"] == "ERROR"
    assert line["dd.trace_id"] == "42" and line["dd.span_id"] == "7" and line["dd.service"] == "saleshub"
    assert line["error.kind"] == "ValueError" and "ana@example.com" not in json.dumps(line)
    assert "***" in line["error.stack"]
    text = MaskingFormatter("%(message)s").format(_record("phone %s", "612 345 678", exc=error))
    assert "612 345 678" not in text and "ana@example.com" not in text


def test_telemetry_clients_are_throttled_to_a_warning_every_ten_minutes() -> None:
    throttle = TelemetryClientThrottle()
    agent = logging.LogRecord(
        "ddtrace.internal.writer", logging.ERROR, __file__, 1, "failed to send", (), None
    )
    assert throttle.filter(agent) and agent.levelname == "WARNING"
    assert not throttle.filter(logging.makeLogRecord({"name": "ddtrace.internal.writer", "msg": "again"}))
    assert throttle.filter(logging.makeLogRecord({"name": "saleshub.relay", "msg": "not a client"}))


def test_mode_off_never_imports_ddtrace() -> None:
    script = (
        "import sys\n"
        "from saleshub.cli import app\n"
        "from saleshub.platform.settings import Settings\n"
        "from saleshub.platform.logs import configure_logging\n"
        "from saleshub.platform.telemetry import telemetry_from_settings\n"
        "from saleshub.receive.app import create_app\n"
        "settings = Settings(log_format='json')\n"
        "configure_logging(settings)\n"
        "telemetry_from_settings(settings)\n"
        "create_app(settings=settings)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('ddtrace', 'datadog'))\n"
        "assert not loaded, loaded\n"
    )
    env = {"PATH": "/usr/bin:/bin", "SALESHUB_TELEMETRY__MODE": "off"}
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_readme_lists_every_metric() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- metrics-table:start -->\n", "<!-- metrics-table:end -->"
    assert readme[readme.index(start) + len(start) : readme.index(end)] == metrics_table()


def test_dashboard_and_monitors_use_only_documented_metrics() -> None:
    documented = {metric.name for metric in METRICS}
    folder = ROOT / "monitoring" / "datadog"
    monitors = json.loads((folder / "monitors.json").read_text(encoding="utf-8"))
    dashboard = json.loads((folder / "dashboard.json").read_text(encoding="utf-8"))
    used = set(re.findall(r"saleshub\.[a-z_]+\.[a-z_]+", json.dumps([monitors, dashboard])))
    used -= {"saleshub.process"}  # the stage span's name in the trace widget
    assert used and used <= documented, sorted(used - documented)
    names = " ".join(monitor["name"] for monitor in monitors)
    for wanted in ("error rate above 1%", "outbox", "processor backlog", "poll lag", "5xx"):
        assert wanted in names
    assert all(monitor["type"] == "query alert" and monitor["query"] for monitor in monitors)
    assert dashboard["layout_type"] == "ordered" and dashboard["widgets"]
