"""Property tests: structure-aware hostile mutations of the golden samples, through each adapter's chain.

The mutations are ``tests.support.mutations``; ``check_outcome`` asserts what the hub promises for
any body (see ``tests.property.outcomes``): only DataErrors, bounded CPU, and orders and error records
that can be stored and published.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from adapters.base import SourceAdapter
from tests.property.outcomes import check_outcome
from tests.support.mutations import mutated_json, mutated_xml

PROFILE = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROFILE
@given(body=mutated_json("pyxis"))
def test_hostile_pyxis_mutations(adapters: dict[str, SourceAdapter], body: bytes) -> None:
    check_outcome(adapters["pyxis"], body)


@PROFILE
@given(body=mutated_json("erp"))
def test_hostile_erp_mutations(adapters: dict[str, SourceAdapter], body: bytes) -> None:
    check_outcome(adapters["erp"], body)


@PROFILE
@given(body=mutated_xml())
def test_hostile_tempo_mutations(adapters: dict[str, SourceAdapter], body: bytes) -> None:
    check_outcome(adapters["tempo"], body)
