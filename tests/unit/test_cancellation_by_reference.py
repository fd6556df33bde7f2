"""A cancellation by reference: the contract's invariant, and what mapping it alone says."""

from __future__ import annotations

import pytest

from adapters.api import Cancellation, EventInfo, EventType
from saleshub.errors import CancelsByReferenceError, DataError, UnknownOrderError


def test_only_a_cancelled_event_naming_its_order_cancels_by_reference() -> None:
    EventInfo(EventType.CANCELLED, "k", None, order_key="Order-1", cancels=Cancellation("why"))
    with pytest.raises(ValueError, match="order_key"):
        EventInfo(EventType.CANCELLED, "k", None, cancels=Cancellation())
    with pytest.raises(ValueError, match="CANCELLED"):
        EventInfo(EventType.UPDATED, "k", None, order_key="Order-1", cancels=Cancellation())


def test_the_errors_name_the_reference_and_what_to_do() -> None:
    nothing_to_map = CancelsByReferenceError("peppol", "Order-1")
    unknown = UnknownOrderError("peppol", "Order-1")
    assert isinstance(nothing_to_map, DataError)
    assert isinstance(unknown, DataError)
    assert "'Order-1'" in str(nothing_to_map)
    assert "stored order" in str(nothing_to_map)
    assert "'Order-1'" in str(unknown)
    assert "replay this event" in str(unknown)
