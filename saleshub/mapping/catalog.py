"""The mapping catalog: every mapping file under ``mappings/`` loaded, checked and compiled.

Layout: ``mappings/<system>/<name>.yaml`` (the file's ``system`` and ``name`` must match its place)
and ``mappings/crosswalks/<table>.csv``. Loading reports every problem of every file at once, each
with file, line and key, and unknown keys come with a "did you mean" suggestion.

A rule that copies personal data into a canonical field that does not hold personal data is a
problem too (``saleshub.mapping.personal``), unless the rule acknowledges it; a stored revision is
not checked again.

Each compiled mapping gets a content hash over its own bytes and the bytes of every crosswalk it
uses, so an order can always be traced to the exact mapping content that produced it.
"""

from __future__ import annotations

import difflib
import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from saleshub.errors import ConfigurationError, LoadIssue, MappingLoadError
from saleshub.mapping import spec as spec_module
from saleshub.mapping.compiler import Crosswalks, compile_mapping
from saleshub.mapping.engine import CompiledMapping, MappingIdentity
from saleshub.mapping.packaged import packaged_files
from saleshub.mapping.personal import review_personal_data
from saleshub.mapping.spec import NODE_TAGS, MappingFile
from saleshub.mapping.yaml_source import Located, dotted_key, load_located_yaml

__all__ = ["CROSSWALK_DIR", "MappingCatalog", "MappingSource"]

CROSSWALK_DIR = "crosswalks"

_KNOWN_KEYS: set[str] = set()
for _model in vars(spec_module).values():
    if isinstance(_model, type) and issubclass(_model, BaseModel) and _model is not BaseModel:
        _KNOWN_KEYS.update(info.alias or name for name, info in _model.model_fields.items())


def _data_path(data: Any, loc: tuple[str | int, ...]) -> tuple[tuple[str | int, ...], bool]:
    """The YAML path that a pydantic ``loc`` designates, and whether it exists in the data."""
    path: tuple[str | int, ...] = ()
    current = data
    for part in loc:
        # Separate branches keep mypy's narrowing of `part` per container type.
        if isinstance(current, dict) and part in current:  # noqa: SIM114
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            current = current[part]
        elif part in NODE_TAGS or part in ("function-after", "function-before"):
            continue
        else:
            return (*path, part), False
        path = (*path, part)
    return path, True


def _spec_issues(exc: ValidationError, located: Located, file: str) -> list[LoadIssue]:
    issues: list[LoadIssue] = []
    for error in exc.errors(include_url=False):
        path, exists = _data_path(located.data, tuple(error["loc"]))
        key = dotted_key(path)
        line = located.line_of(path)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            name = str(path[-1])
            close = difflib.get_close_matches(name, sorted(_KNOWN_KEYS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            message = f"unknown key {name!r}{hint}"
        elif error["type"] == "missing" and not exists:
            message = f"missing key {str(path[-1])!r}"
        elif "input" in error and not isinstance(error["input"], dict | list):
            message = f"{message} (got {error['input']!r})"
        issues.append(LoadIssue(file, line, key, message))
    return issues


class MappingSource(Protocol):
    """What an adapter needs of its mappings: the compiled mapping of a system by name.

    A ``MappingCatalog`` is one; so is the runtime's ``MappingRegistry``, which answers from the
    deployed revision and switches when a new one is deployed.
    """

    def get(self, system: str, name: str = "order") -> CompiledMapping:
        """The mapping ``name`` of ``system``."""
        ...


class MappingCatalog:
    """All compiled mappings of one ``mappings/`` directory, by system and name."""

    def __init__(self, directory: Path, mappings: dict[tuple[str, str], CompiledMapping]) -> None:
        self.directory = directory
        #: Where the mappings came from, for messages (a directory, or a deployed revision).
        self.origin = str(directory)
        self._mappings = mappings

    @classmethod
    def load(cls, directory: Path, *, revision: int | None = None, packaged: bool = True) -> MappingCatalog:
        """Load and compile everything; raises ``MappingLoadError`` listing every problem.

        ``revision`` is the deployed mapping revision the files are (it goes into every label);
        ``packaged`` adds the installed plug-ins' mapping files the directory lacks (a stored
        revision is compiled without: it maps exactly as it was deployed).
        """
        catalog, issues = cls.check(directory, revision=revision, packaged=packaged)
        if issues:
            raise MappingLoadError(issues)
        return catalog

    @classmethod
    def check(
        cls, directory: Path, *, revision: int | None = None, packaged: bool = True
    ) -> tuple[MappingCatalog, list[LoadIssue]]:
        """Load what can be loaded and return it with every problem found.

        With ``packaged``, the files of installed mapping plug-ins that ``directory`` lacks are
        loaded too (``saleshub.mapping.packaged``), from a scratch copy of the directory.
        """
        if not directory.is_dir():
            raise ConfigurationError(f"mappings directory {directory} does not exist")
        extra = (
            {p: t for p, t in packaged_files().items() if not (directory / p).exists()} if packaged else {}
        )
        if extra:
            with tempfile.TemporaryDirectory(prefix="saleshub-mappings-") as scratch:
                overlay = Path(scratch)
                shutil.copytree(directory, overlay, dirs_exist_ok=True)
                for relative, text in extra.items():
                    (overlay / relative).parent.mkdir(parents=True, exist_ok=True)
                    (overlay / relative).write_bytes(text.encode("utf-8"))
                merged, found = cls.check(overlay, revision=revision, packaged=False)
            merged.directory, merged.origin = directory, f"{directory} with plug-in mappings"
            return merged, found
        crosswalks = Crosswalks(directory / CROSSWALK_DIR)
        mappings: dict[tuple[str, str], CompiledMapping] = {}
        issues: list[LoadIssue] = []
        for path in sorted(directory.glob("*/*.yaml")) + sorted(directory.glob("*/*.yml")):
            if path.parent.name == CROSSWALK_DIR:
                continue
            compiled, file_issues = _load_file(directory, path, crosswalks, revision)
            issues += file_issues
            if compiled is not None:
                mappings[(compiled.identity.system, compiled.identity.name)] = compiled
        if revision is None:
            # A stored revision maps exactly as it was deployed: it was checked then.
            issues += review_personal_data(mappings.values()).leaks
        unique = list(dict.fromkeys(issues))  # a problem met from two places is reported once
        return cls(directory, mappings), unique

    def get(self, system: str, name: str = "order") -> CompiledMapping:
        """The mapping ``name`` of ``system``; the error lists what exists."""
        found = self._mappings.get((system, name))
        if found is None:
            known = ", ".join(f"{s}/{n}" for s, n in sorted(self._mappings)) or "none"
            raise ConfigurationError(f"no mapping {system}/{name} in {self.origin}; loaded: {known}")
        return found

    def __iter__(self) -> Iterator[CompiledMapping]:
        return iter(self._mappings.values())

    def __len__(self) -> int:
        return len(self._mappings)


def _load_file(
    directory: Path, path: Path, crosswalks: Crosswalks, revision: int | None
) -> tuple[CompiledMapping | None, list[LoadIssue]]:
    file = path.relative_to(directory).as_posix()
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [LoadIssue(file, None, "", f"is not UTF-8 (byte {exc.start}); save it as UTF-8")]
    located, issues = load_located_yaml(text, file)
    if located is None:
        return None, issues
    if not isinstance(located.data, dict):
        return None, [*issues, LoadIssue(file, 1, "", "must be a mapping of keys (version, system, …)")]
    try:
        spec = MappingFile.model_validate(located.data)
    except ValidationError as exc:
        return None, issues + _spec_issues(exc, located, file)
    if spec.system != path.parent.name:
        message = f"says system {spec.system!r} but lives in {path.parent.name}/"
        issues.append(LoadIssue(file, located.line_of(("system",)), "system", message))
    if spec.name != path.stem:
        message = f"says name {spec.name!r} but the file is {path.name}"
        issues.append(LoadIssue(file, located.line_of(("name",)), "name", message))
    tree = compile_mapping(spec, located, file, crosswalks)
    issues += tree.issues
    if tree.root is None or issues:
        return None, issues
    digest = hashlib.sha256(raw)
    for table, table_hash in sorted(tree.tables_used.items()):
        digest.update(f"\n{table}:{table_hash}".encode())
    identity = MappingIdentity(spec.system, spec.name, spec.revision, digest.hexdigest(), file, revision)
    return CompiledMapping(identity, spec.source.format, tree.root, tree.sources), issues
