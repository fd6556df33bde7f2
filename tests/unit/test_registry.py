from __future__ import annotations

from typing import Any, ClassVar

import pytest

from adapters.base import EventInfo, SourceAdapter
from adapters.pyxis import PyxisAdapter
from adapters.registry import AdapterRegistry
from saleshub.errors import ConfigurationError, UnknownAdapterError


def test_unknown_system_lists_the_known_ones() -> None:
    registry = AdapterRegistry.default()
    with pytest.raises(UnknownAdapterError) as info:
        registry.adapter_class("acme")
    assert "erp, pyxis, tempo" in str(info.value)


def test_a_plugin_registers_under_its_system_code() -> None:
    class AcmeAdapter(PyxisAdapter):
        system: ClassVar[str] = "acme"

    registry = AdapterRegistry.default()
    registry.register(AcmeAdapter, "acme")
    assert registry.adapter_class("acme") is AcmeAdapter
    assert "acme" in registry.names()


def test_two_classes_cannot_claim_one_system() -> None:
    class OtherPyxis(PyxisAdapter):
        pass

    registry = AdapterRegistry.default()
    with pytest.raises(ConfigurationError, match="claimed by both"):
        registry.register(OtherPyxis)


def test_entry_point_name_must_match_the_system() -> None:
    registry = AdapterRegistry()
    with pytest.raises(ConfigurationError, match="whose system is 'pyxis'"):
        registry.register(PyxisAdapter, "pyx")


def test_malformed_adapters_are_refused() -> None:
    class Nameless(SourceAdapter):
        media_types: ClassVar[frozenset[str]] = frozenset({"application/json"})

        def decode(self, body: bytes) -> Any:
            return body

        def classify(self, document: Any) -> EventInfo:
            raise NotImplementedError

    with pytest.raises(ConfigurationError, match="system must be"):
        AdapterRegistry().register(Nameless)
    with pytest.raises(ConfigurationError, match="not a SourceAdapter"):
        AdapterRegistry().register(dict)  # type: ignore[arg-type]


def test_content_types_are_matched_without_parameters(adapters: dict[str, SourceAdapter]) -> None:
    assert adapters["pyxis"].accepts("application/json; charset=utf-8")
    assert adapters["tempo"].accepts("text/xml")
    assert not adapters["tempo"].accepts("application/json")
    assert not adapters["pyxis"].accepts(None)


@pytest.mark.parametrize(
    ("attribute", "value", "message"),
    [
        ("name", "", "name must be"),
        ("channels", frozenset({"SHOP"}), "channels must be"),
        ("countries", frozenset({"Spain"}), "countries must be"),
        ("transports", frozenset({"replay"}), "transports must be"),
        ("transports", frozenset({"webhook", "poll"}), "'poll' and a source API go together"),
        ("body_schemas", {"text/csv": {}}, "body_schemas must map"),
    ],
)
def test_adapter_metadata_is_checked(attribute: str, value: object, message: str) -> None:
    """The metadata the hub writes rows, routes and documents from is checked at registration."""
    bad = type("BadPyxis", (PyxisAdapter,), {attribute: value})
    with pytest.raises(ConfigurationError, match=message):
        AdapterRegistry().register(bad)
