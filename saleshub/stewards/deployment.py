"""Deploying mapping revisions: check a candidate, store it, and follow deployments in every process.

``check_candidate`` is what ``saleshub mappings deploy`` runs before anything is stored: load and
compile every file (``MappingLoadError`` lists each problem with file:line) and run every golden
sample (``GoldenSamplesError`` names the failing cases). ``deploy`` stores the checked revision
whole in PostgreSQL and notifies every hub process in the same transaction; ``rollback`` deploys an
older revision's files again as a new revision.

``RevisionFollower`` runs in every hub process (``serve``, ``process``, each web worker): a thread
that ``LISTEN``s for deployments (and looks every ``poll_seconds`` anyway), compiles a new revision
once, installs it in the process's ``MappingRegistry`` with one reference swap, and reports the
revision it runs in ``hub_processes`` for ``saleshub status``. A revision that fails to compile in
a process (it passed the checks when deployed, so this means a different hub version) is logged and
the process keeps mapping with the revision it has.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import Engine

from adapters.registry import AdapterRegistry
from saleshub.errors import ConfigurationError, GoldenSamplesError, RetriableError
from saleshub.mapping.catalog import MappingCatalog
from saleshub.mapping.engine import CompiledMapping
from saleshub.mapping.packaged import packaged_files
from saleshub.mapping.registry import MappingRegistry
from saleshub.mapping.revision import MappingFiles
from saleshub.stewards.goldens import CaseResult, discover, run_case
from saleshub.store import mapping_revisions as store
from saleshub.store.failures import database_errors
from saleshub.store.listener import Listener

__all__ = [
    "Candidate",
    "RevisionFollower",
    "check_candidate",
    "deploy",
    "deploy_packaged",
    "golden_results",
    "load_deployed",
    "process_name",
    "rollback",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Candidate:
    """Mapping files that passed the checks, with their compiled catalog and golden results."""

    files: MappingFiles
    catalog: MappingCatalog
    results: list[CaseResult]


def check_candidate(directory: Path, samples_dir: Path | None) -> Candidate:
    """Load, compile and run the golden samples of ``directory`` (``None``: no samples)."""
    files = MappingFiles.read(directory)
    catalog = MappingCatalog.load(directory)
    results = golden_results(catalog, samples_dir) if samples_dir is not None else []
    failed = [r for r in results if not r.passed and not r.missing_expected]
    if failed:
        raise GoldenSamplesError([f"{r.case.system}/{r.case.payload.name}" for r in failed])
    return Candidate(files, catalog, results)


def golden_results(catalog: MappingCatalog, samples_dir: Path) -> list[CaseResult]:
    """Every golden sample of ``catalog``'s systems under ``samples_dir``, run through it."""
    registry = AdapterRegistry.default()
    systems = {m.identity.system for m in catalog}
    return [
        run_case(case, registry.create(case.system, catalog))
        for case in discover(samples_dir)
        if case.system in systems
    ]


def _labels(catalog: Iterable[CompiledMapping], number: int) -> dict[str, str]:
    """The labels the processes will record for revision ``number`` of ``catalog``'s mappings."""
    return {
        f"{m.identity.system}/{m.identity.name}": replace(m.identity, deployment=number).label
        for m in catalog
    }


def deploy(
    engine: Engine,
    files: MappingFiles,
    catalog: MappingCatalog,
    message: str | None,
    *,
    rollback_of: int | None = None,
) -> int | None:
    """Store checked ``files`` (compiled as ``catalog``) as the deployed revision; its number.

    ``None`` when the deployed revision already has exactly these files (nothing is stored). Every
    hub process is notified when the transaction commits.
    """
    content_hash = files.content_hash
    with database_errors(), engine.begin() as conn:
        number = store.next_revision(conn)  # locks out other deployments until commit
        current = store.deployed_revision(conn)
        if current is not None and current.content_hash == content_hash and rollback_of is None:
            return None
        labels = _labels(catalog, number)
        store.add_revision(conn, number, files.files, content_hash, labels, message, rollback_of)
    return number


def deploy_packaged(engine: Engine) -> int | None:
    """Deploy the installed plug-ins' mapping files the deployed revision lacks, as a new revision.

    So installing a plug-in (``pip install``) and starting ``saleshub serve`` is all it takes for
    its system to map. The deployed revision's own files are kept as they are (a steward's copy of a
    plug-in's file wins). ``None`` when nothing is deployed yet or nothing is missing.
    """
    with database_errors(), engine.connect() as conn:
        current = store.deployed_revision(conn, with_files=True)
    if current is None:
        return None
    missing = {p: t for p, t in packaged_files().items() if p not in current.files}
    if not missing:
        return None
    files = MappingFiles(dict(sorted({**current.files, **missing}.items())))
    message = f"mappings of installed plug-ins: {', '.join(sorted(missing))}"
    number = deploy(engine, files, files.catalog(), message)
    log.info("deployed %s as revision r%s", message, number)
    return number


def rollback(engine: Engine, number: int, message: str | None) -> int:
    """Deploy revision ``number``'s files again, as a new revision; its number."""
    with database_errors(), engine.connect() as conn:
        old = store.stored_revision(conn, number)
    if old is None:
        raise ConfigurationError(f"no mapping revision r{number}; see `saleshub mappings history`")
    files = MappingFiles(old.files)
    note = message or f"rollback to r{number}"
    deployed = deploy(engine, files, files.catalog(), note, rollback_of=number)
    if deployed is None:  # a rollback is always stored (rollback_of is set)
        raise ConfigurationError(f"revision r{number} could not be deployed again")
    return deployed


def load_deployed(engine: Engine) -> tuple[MappingCatalog, int] | None:
    """The deployed revision compiled, or ``None`` if no revision was ever deployed."""
    with database_errors(), engine.connect() as conn:
        current = store.deployed_revision(conn, with_files=True)
    if current is None:
        return None
    return MappingFiles(current.files).catalog(current.revision), current.revision


def process_name() -> str:
    """This process as ``host:pid`` (what ``hub_processes`` and ``/health/ready`` show)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class RevisionFollower:
    """Keeps a process's ``MappingRegistry`` on the deployed revision (see the module docstring)."""

    def __init__(
        self, engine: Engine, registry: MappingRegistry, role: str, *, poll_seconds: float = 5.0
    ) -> None:
        self.engine, self.registry, self.role = engine, registry, role
        self.poll_seconds = poll_seconds
        self.process = process_name()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed: int | None = None

    @property
    def running(self) -> bool:
        """Whether the following thread runs."""
        return self._thread is not None

    def start(self) -> None:
        """Start following (idempotent)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="mapping-revisions", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop following and remove this process's row."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(10)
        self._thread = None
        try:
            with database_errors(), self.engine.begin() as conn:
                store.forget_process(conn, self.process)
        except RetriableError as exc:
            log.warning("could not remove this process from hub_processes: %s", exc)

    def check(self) -> bool:
        """Switch to the deployed revision if it is not the one in use; whether it switched."""
        with database_errors(), self.engine.connect() as conn:
            current = store.deployed_revision(conn)
        if current is None or current.revision in (self.registry.revision, self._failed):
            return False
        with database_errors(), self.engine.connect() as conn:
            stored = store.stored_revision(conn, current.revision)
        if stored is None:
            return False
        try:
            catalog = MappingFiles(stored.files).catalog(stored.revision)
        except ConfigurationError as exc:
            self._failed = stored.revision
            log.error(
                "mapping revision r%d cannot be used by this process; keeping r%s: %s",
                stored.revision,
                self.registry.revision,
                exc,
            )
            return False
        switched = self.registry.install(catalog, stored.revision)
        if switched:
            log.info(
                "mappings: switched to revision r%d (%s)",
                stored.revision,
                ", ".join(stored.mappings.values()),
            )
        return switched

    def report(self) -> None:
        """Record in ``hub_processes`` that this process runs, with its revision."""
        with database_errors(), self.engine.begin() as conn:
            store.report_process(conn, self.process, self.role, self.registry.revision)

    def _run(self) -> None:
        listener = Listener(self.engine, store.MAPPINGS_CHANNEL)
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    listener.listen()
                    self.check()
                    self.report()
                    failures = 0
                except RetriableError as exc:
                    failures += 1
                    if failures == 1:
                        log.warning("mapping revisions: cannot check for a new revision: %s", exc)
                    listener.close()
                except Exception:
                    failures += 1
                    log.exception("mapping revisions: checking for a new revision failed")
                listener.wait(self.poll_seconds, self._stop)
        finally:
            listener.close()
