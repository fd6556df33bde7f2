"""The built-in adapters pass the same contract suite a third-party adapter would."""

from __future__ import annotations

from pathlib import Path

from adapters.erp import ErpAdapter
from adapters.pyxis import PyxisAdapter
from adapters.tempo import TempoAdapter
from adapters.testing import AdapterContract

SAMPLES = Path(__file__).resolve().parents[2] / "contracts" / "samples"
MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"


class TestPyxisContract(AdapterContract):
    adapter_class = PyxisAdapter
    samples_dir = SAMPLES / "pyxis"
    mappings_dir = MAPPINGS


class TestTempoContract(AdapterContract):
    adapter_class = TempoAdapter
    samples_dir = SAMPLES / "tempo"
    mappings_dir = MAPPINGS


class TestErpContract(AdapterContract):
    adapter_class = ErpAdapter
    samples_dir = SAMPLES / "erp"
    mappings_dir = MAPPINGS
