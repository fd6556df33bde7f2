"""What any body may lead to: a canonical order the hub can keep and publish, or a clean DataError.

Shared by the property tests. ``check_outcome`` runs an adapter's whole chain on a body and asserts:
only ``DataError`` subclasses are raised, within a CPU budget linear in the body's size (decoding is
linear; anything worse, like the half-minute ``int(Decimal("1e999999"))``, blows it; the budget scales
with this machine's measured speed (``machine_slowness``); a body over
budget is translated once more, with the garbage collector off, and fails only if it is over again,
so a collection or a cold cache on a busy machine is not taken for a slow input); an order can
be dumped as JSON, fingerprinted, written as Avro and read back; every error message and error
record is UTF-8 JSON without NUL (what PostgreSQL ``text``/``jsonb`` can hold).
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import re
import time
from decimal import Decimal
from functools import cache
from typing import Any

import fastavro

from adapters.base import SourceAdapter
from canonical.avro import order_from_avro, order_to_avro, service_order_schema
from saleshub.errors import DataError, FieldError, MappingError
from tests.support.machine import machine_slowness

#: The CPU one call of ``translate`` may take on a machine as fast as the one these figures were
#: measured on: a fixed part plus a part per megabyte of body (JSON decoding of a megabyte of tiny
#: containers alone takes ~100 ms there). A slower machine scales both (``machine_slowness``).
BASE_CPU_SECONDS = 0.1
CPU_SECONDS_PER_MB = 0.5


@cache
def _avro_schema() -> Any:
    return fastavro.parse_schema(service_order_schema())


_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")  # \u0000 not itself escaped as \\u0000


def _storable(text: str) -> None:
    """A message holds no NUL and is UTF-8 (what a PostgreSQL ``text`` column can hold)."""
    encoded = text.encode("utf-8")  # raises on a lone surrogate
    assert b"\x00" not in encoded, f"NUL in {text[:80]!r}"


def _storable_json(text: str) -> None:
    """JSON for a ``jsonb`` column: UTF-8, and no NUL, neither raw nor as a ``\\u0000`` escape."""
    _storable(text)
    assert _ESCAPED_NUL.search(text) is None, f"escaped NUL in {text[:80]!r}"


def check_outcome(adapter: SourceAdapter, body: bytes) -> None:
    """Translate ``body`` and check the result as the module docstring says."""
    started = time.thread_time()
    try:
        translation = adapter.translate(body)
    except MappingError as exc:
        assert exc.errors, "a MappingError must list at least one field error"
        for error in exc.errors:
            assert isinstance(error, FieldError) and error.target and error.rule
            _storable_json(json.dumps(error.as_dict(), ensure_ascii=False))
        _storable(str(exc))
    except DataError as exc:
        assert str(exc)
        _storable(str(exc))
    else:
        order = translation.mapped.order
        assert order.source_system == adapter.system
        _storable_json(order.model_dump_json())
        assert -(2**63) <= order.fingerprint() < 2**63
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, _avro_schema(), order_to_avro(order), strict=True)
        buffer.seek(0)
        assert order_from_avro(fastavro.schemaless_reader(buffer, _avro_schema())) == order
        amounts = [line.unit_price.amount for line in order.lines] + [order.totals.gross_amount.amount]
        assert all(type(amount) is Decimal for amount in amounts)
    _check_cpu_time(adapter, body, time.thread_time() - started)


def _translate_cpu_seconds(adapter: SourceAdapter, body: bytes) -> float:
    started = time.thread_time()
    with contextlib.suppress(DataError):  # the outcome is checked by check_outcome; here only the time counts
        adapter.translate(body)
    return time.thread_time() - started


def _check_cpu_time(adapter: SourceAdapter, body: bytes, elapsed: float) -> None:
    budget = (BASE_CPU_SECONDS + CPU_SECONDS_PER_MB * len(body) / 1_000_000) * machine_slowness()
    if elapsed >= budget:
        gc.disable()
        try:
            elapsed = _translate_cpu_seconds(adapter, body)
        finally:
            gc.enable()
    assert elapsed < budget, f"{adapter.system}: {elapsed * 1000:.0f} ms of CPU for {len(body)} bytes"
