"""Reconciliation: what each source says against what the hub holds, across systems and channels.

Reads the hub only through the store's functions (``saleshub.store.queries``, ``manifest``,
``manifest_checks``, ``classification``, ``snapshot``, ``findings``, ``runs``, ``cross_system``,
``linking``), never its tables. The parts:

* ``sources``: the ``SourceManifestReader`` seam and the file-backed reader (CSV, JSON lines);
* ``api``: the reader of a polled system's manifest from its API (the pollers' client);
* ``heal``: recording again, from the source, what a run found missing in or stale in the hub;
* ``rules``: the stewards' ``mappings/reconciliation.yaml`` (``crossrefs``: ``cross_references.yaml``;
  both loaded by ``steward_files``);
* ``engine``: one run (load, check, classify, explain); ``recorded``: a run's row around its work;
* ``comparison``: the comparison engine (DuckDB) for a plainly readable CSV manifest file;
* ``across``: the cross-system run; ``linking``: one customer across systems and channels;
* ``fields``: field-level differences of two canonical orders under the rules;
* ``history``: listing and comparing runs;
* ``reports``: JSON, CSV and HTML from one ``ReconciliationReport``;
* ``schedule``: the nightly job for ``saleshub serve`` (``schedule_api_nightly``).
"""

from reconciliation.api import ApiManifestReader
from reconciliation.engine import reconcile
from reconciliation.heal import HealResult, heal
from reconciliation.history import compare_runs, list_runs
from reconciliation.model import Finding, Kind, ReconciliationReport, RunComparison, RunSummary, Window
from reconciliation.rules import SystemRules, load_rules
from reconciliation.sources import FileManifestReader, SourceManifestReader

__all__ = [
    "ApiManifestReader",
    "FileManifestReader",
    "Finding",
    "HealResult",
    "Kind",
    "ReconciliationReport",
    "RunComparison",
    "RunSummary",
    "SourceManifestReader",
    "SystemRules",
    "Window",
    "compare_runs",
    "heal",
    "list_runs",
    "load_rules",
    "reconcile",
]
