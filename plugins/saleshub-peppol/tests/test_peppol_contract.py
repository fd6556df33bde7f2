"""The Peppol plug-in passes the hub's adapter contract (``adapters.testing``) with its golden samples.

The samples are OpenPeppol's official examples of BIS Ordering 3 (``official/``, see NOTICE.md) and
three derived from them to show refusals. They map with the plug-in's mapping over ``mappings/``
here: a test hub's crosswalks whose ``business_units.csv`` names the official examples' sellers.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from saleshub_peppol import PeppolAdapter

from adapters.api import SourceAdapter
from adapters.testing import AdapterContract

HERE = Path(__file__).resolve().parent


class TestPeppolContract(AdapterContract):
    adapter_class: ClassVar[type[SourceAdapter]] = PeppolAdapter
    samples_dir: ClassVar[Path] = HERE / "samples" / "peppol"
    mappings_dir: ClassVar[Path] = HERE / "mappings"
    plugin_mappings: ClassVar[Path | None] = HERE.parent / "src" / "saleshub_peppol" / "mappings"
