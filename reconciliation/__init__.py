"""Reconciliation: what each source says against what the hub holds, across systems and channels.

Reads the hub only through the store's functions (``saleshub.store.queries`` and
``saleshub.store.reconciliation``), never its tables. The parts:

* ``sources``: the ``SourceManifestReader`` seam and the file-backed reader (CSV, JSON lines);
* ``rules``: the stewards' ``mappings/reconciliation.yaml``;
* ``engine``: one run (load, check, classify, explain);
* ``fields``: field-level differences of two canonical orders under the rules;
* ``history``: listing and comparing runs;
* ``reports``: JSON, CSV and HTML from one ``ReconciliationReport``;
* ``schedule``: the nightly job for ``saleshub serve``.
"""

from reconciliation.engine import reconcile
from reconciliation.history import compare_runs, list_runs
from reconciliation.model import Finding, Kind, ReconciliationReport, RunComparison, RunSummary, Window
from reconciliation.rules import SystemRules, load_rules
from reconciliation.sources import FileManifestReader, SourceManifestReader

__all__ = [
    "FileManifestReader",
    "Finding",
    "Kind",
    "ReconciliationReport",
    "RunComparison",
    "RunSummary",
    "SourceManifestReader",
    "SystemRules",
    "Window",
    "compare_runs",
    "list_runs",
    "load_rules",
    "reconcile",
]
