"""Every error the hub raises on purpose, under one root, grouped by what the caller can do.

::

    SalesHubError
    ├── ConfigurationError          fix a file or setting, then restart / re-run
    │   ├── MappingLoadError        a mapping file or crosswalk is wrong (all issues, with file:line)
    │   ├── GoldenSamplesError      golden samples fail with the mappings about to be deployed
    │   ├── UnknownAdapterError     no adapter of that name (lists the known ones)
    │   ├── MissingSecretError      a named secret the configuration needs is not in the secret store
    │   └── SecretStoreError        the secret store cannot be read (file gone, bad YAML, bad secret)
    ├── DataError                   this payload cannot be processed; keep it, quarantine it
    │   ├── DecodeError             the body is not well-formed JSON/XML, too big, or unsafe
    │   ├── ClassificationError     the body is well-formed but lacks what identifies the event
    │   └── MappingError            mapping or canonical validation failed (all field errors)
    ├── RetriableError              a dependency is down; the same call may succeed later
    └── FatalError                  a bug or broken invariant; stop and page someone

Messages say what went wrong, where, and what was expected. They never contain a secret, and values of
personal-data fields are masked in ``str()`` (the structured attributes keep them for local tools).

This module is a leaf: it imports nothing of the hub's, so any part can raise these errors cheaply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "ClassificationError",
    "ConfigurationError",
    "DataError",
    "DecodeError",
    "FatalError",
    "FieldError",
    "GoldenSamplesError",
    "LoadIssue",
    "MappingError",
    "MappingLoadError",
    "MissingSecretError",
    "RetriableError",
    "SalesHubError",
    "SecretStoreError",
    "UnknownAdapterError",
    "generic_target",
]

_MAX_VALUE_CHARS = 80


class SalesHubError(Exception):
    """Root of every error the hub raises on purpose."""


class ConfigurationError(SalesHubError):
    """A file or setting is wrong; nothing will work until a person fixes it."""


class DataError(SalesHubError):
    """One payload cannot be processed; the payload is kept and quarantined, others go on."""


class RetriableError(SalesHubError):
    """A dependency is unavailable; retrying later may succeed."""


class FatalError(SalesHubError):
    """A broken invariant: a bug, not bad data. Stop rather than guess."""


@dataclass(frozen=True, slots=True)
class LoadIssue:
    """One problem found while loading a mapping file or crosswalk."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class MappingLoadError(ConfigurationError):
    """A mapping file or its crosswalks could not be loaded; ``issues`` lists every problem."""

    def __init__(self, issues: Sequence[LoadIssue]) -> None:
        self.issues = tuple(issues)
        count = len(self.issues)
        lines = "\n".join(f"  {issue}" for issue in self.issues)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the mappings:\n{lines}")


class GoldenSamplesError(ConfigurationError):
    """Golden samples do not give their expected output with the mappings about to be deployed."""

    def __init__(self, cases: Sequence[str]) -> None:
        self.cases = tuple(cases)
        super().__init__(
            f"{len(self.cases)} golden sample(s) fail with these mappings: {', '.join(self.cases)}; "
            "nothing was deployed; `saleshub mappings test --dir DIR` shows the field-level differences"
        )


class UnknownAdapterError(ConfigurationError):
    """No source-system adapter is registered under the requested name."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name, self.known = name, tuple(known)
        super().__init__(f"no adapter for system {name!r}; known systems: {', '.join(known)}")


class MissingSecretError(ConfigurationError):
    """A named secret (``database/credentials``, ``kafka/sasl`` …) is not in the secret store."""

    def __init__(self, name: str, where: str) -> None:
        self.name = name
        super().__init__(f"secret {name!r} is not configured; set it in {where}")


class SecretStoreError(ConfigurationError):
    """The secret store cannot be read: its file is missing or malformed, or a secret is invalid.

    The message names the secret and the place, never the secret's value.
    """


class DecodeError(DataError):
    """The body could not be decoded safely: malformed, oversize, wrong encoding or unsafe XML."""

    def __init__(self, system: str, reason: str, *, position: str | None = None) -> None:
        self.system, self.reason, self.position = system, reason, position
        where = f" at {position}" if position else ""
        super().__init__(f"{system}: body rejected{where}: {reason}")


class ClassificationError(DataError):
    """The body is well-formed but does not say which event it is (id, type or version missing)."""

    def __init__(self, system: str, reason: str) -> None:
        self.system, self.reason = system, reason
        super().__init__(f"{system}: cannot classify the event: {reason}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…"


def generic_target(target: str) -> str:
    """``lines[3].unit_price`` (or ``lines[].unit_price``) as ``lines.unit_price``, index-free."""
    parts = [part.split("[", 1)[0] for part in target.split(".")]
    return ".".join(parts)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One field-level problem of one payload: where in the source, which canonical field, why."""

    target: str
    source: str
    rule: str
    value: object = field(default=None)
    has_value: bool = True
    #: The value belongs to a personal-data field (``canonical.is_personal_field``): never shown.
    personal: bool = False

    def shown_value(self) -> str:
        """The offending value as it may appear in a message (masked if personal data)."""
        if not self.has_value:
            return "(no value)"
        if self.personal and self.value is not None:
            return f"(personal data, {len(str(self.value))} characters, masked)"
        return _short(self.value)

    def as_dict(self) -> dict[str, str]:
        """A JSON-ready form for the audit trail, with personal values masked."""
        return {
            "target": self.target,
            "source": self.source,
            "rule": self.rule,
            "value": self.shown_value(),
        }

    def __str__(self) -> str:
        return f"{self.target} (from {self.source}): {self.rule}; value {self.shown_value()}"


class MappingError(DataError):
    """A payload could not be mapped to a valid canonical order; ``errors`` holds every problem."""

    def __init__(self, system: str, mapping: str, errors: Sequence[FieldError]) -> None:
        self.system, self.mapping, self.errors = system, mapping, tuple(errors)
        count = len(self.errors)
        lines = "\n".join(f"  {error}" for error in self.errors)
        super().__init__(
            f"{system} mapping {mapping}: {count} field error{'s' if count != 1 else ''}:\n{lines}"
        )
