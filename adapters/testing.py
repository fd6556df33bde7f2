"""A contract test suite that every adapter, ours or a third party's, must pass.

Use it in three lines (pytest collects the inherited tests)::

    from adapters.testing import AdapterContract

    class TestAcmeContract(AdapterContract):
        adapter_class = AcmeAdapter
        samples_dir = Path("contracts/samples/acme")   # golden samples of the system
        mappings_dir = Path("mappings")                # optional, this is the default
        plugin_mappings = Path("src/acme/mappings")    # a plug-in's own mapping directory, if any

What it checks: the class is well-formed and registrable; every golden sample decodes, classifies
and maps to exactly its expected output; a cancellation maps to a CANCELLED order; the order names
its system and mapping; bad bodies (empty, oversize, truncated, binary garbage) fail with a
``DataError`` and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest

from adapters.base import SourceAdapter
from adapters.registry import AdapterRegistry
from canonical.enums import EventType, OrderStatus
from saleshub.errors import DataError, DecodeError
from saleshub.mapping.catalog import MappingCatalog
from saleshub.mapping.packaged import read_directory
from saleshub.mapping.revision import MappingFiles
from saleshub.stewards.goldens import GoldenCase, discover, run_case

__all__ = ["AdapterContract"]


class AdapterContract:
    """Base class of an adapter's contract tests; set ``adapter_class`` and ``samples_dir``."""

    adapter_class: ClassVar[type[SourceAdapter]]
    samples_dir: ClassVar[Path]
    mappings_dir: ClassVar[Path] = Path("mappings")
    #: A plug-in's mapping directory, loaded over ``mappings_dir`` as the hub loads it once the
    #: plug-in is installed (``saleshub.mapping.packaged``): files ``mappings_dir`` has win.
    plugin_mappings: ClassVar[Path | None] = None
    minimum_samples: ClassVar[int] = 8

    @classmethod
    def make_adapter(cls) -> SourceAdapter:
        """An adapter instance over the mappings (for a plug-in's other tests too)."""
        if cls.plugin_mappings is None:
            return cls.adapter_class(MappingCatalog.load(cls.mappings_dir))
        files = read_directory(cls.plugin_mappings) | read_directory(cls.mappings_dir)
        return cls.adapter_class(MappingFiles(files).catalog())

    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls) -> SourceAdapter:
        """An adapter instance over the loaded mapping catalog."""
        return cls.make_adapter()

    def cases(self) -> list[GoldenCase]:
        """The golden cases of this adapter's system."""
        return list(discover(self.samples_dir.parent, [self.samples_dir.name]))

    def test_class_is_well_formed_and_registrable(self) -> None:
        """The class defines ``system`` and ``media_types`` and a registry accepts it."""
        self.adapter_class.check_definition()
        registry = AdapterRegistry()
        registry.register(self.adapter_class)
        assert registry.adapter_class(self.adapter_class.system) is self.adapter_class

    def test_has_enough_golden_samples(self) -> None:
        """The system ships enough golden samples, each with its expected output."""
        cases = self.cases()
        assert len(cases) >= self.minimum_samples, f"only {len(cases)} samples in {self.samples_dir}"
        missing = [c.payload.name for c in cases if not c.expected.is_file()]
        assert not missing, f"samples without expected output: {missing}"

    def test_golden_samples_map_to_expected_output(self, adapter: SourceAdapter) -> None:
        """Every golden sample produces exactly its reviewed expected output."""
        failures = {}
        for case in self.cases():
            result = run_case(case, adapter)
            if not result.passed:
                failures[case.name] = [str(d) for d in result.differences][:5]
        assert not failures, json.dumps(failures, indent=2, ensure_ascii=False)

    def test_cancellations_yield_cancelled_orders(self, adapter: SourceAdapter) -> None:
        """A cancellation event always maps to an order in status CANCELLED."""
        for case in self.cases():
            expected = json.loads(case.expected.read_text(encoding="utf-8"))
            if "order" not in expected:
                continue
            translation = adapter.translate(case.payload.read_bytes())
            if translation.event.event_type is EventType.CANCELLED:
                assert translation.mapped.order.status is OrderStatus.CANCELLED, case.name

    def test_orders_name_their_system_and_mapping(self, adapter: SourceAdapter) -> None:
        """Mapped orders carry the adapter's system and the mapping's identity."""
        for case in self.cases():
            expected = json.loads(case.expected.read_text(encoding="utf-8"))
            if "order" not in expected:
                continue
            mapped = adapter.translate(case.payload.read_bytes()).mapped
            assert mapped.order.source_system == self.adapter_class.system
            assert mapped.mapping.system == self.adapter_class.system
            assert len(mapped.mapping.content_hash) == 64

    @pytest.mark.parametrize(
        "body",
        [b"", b"   \n", b"\x00\xff\xfe garbage", b"{", b"<", b"[1, 2, 3]", b"null"],
        ids=["empty", "blank", "binary", "truncated-json", "truncated-xml", "json-list", "json-null"],
    )
    def test_bad_bodies_raise_data_errors_only(self, adapter: SourceAdapter, body: bytes) -> None:
        """Malformed bodies fail with a ``DataError`` (never another exception)."""
        with pytest.raises(DataError):
            adapter.translate(body)

    def test_oversize_body_is_refused(self, adapter: SourceAdapter) -> None:
        """A body over the adapter's size limit is refused before parsing."""
        with pytest.raises(DecodeError, match="limit"):
            adapter.translate(b" " * (adapter.max_body_bytes + 1))
