"""Every error the hub raises on purpose, under one root, grouped by what the caller can do.

::

    SalesHubError
    ├── ConfigurationError          fix a file or setting, then restart / re-run
    │   ├── MappingLoadError        a mapping file or crosswalk is wrong (all issues, with file:line)
    │   ├── GoldenSamplesError      golden samples fail with the mappings about to be deployed
    │   ├── UnknownAdapterError     no adapter of that name (lists the known ones)
    │   ├── MissingSecretError      a named secret the configuration needs is not in the secret store
    │   ├── SecretStoreError        the secret store cannot be read (file gone, bad YAML, bad secret)
    │   ├── KeyServiceError         the master key cannot be used (key file unreadable, transit refused)
    │   └── SourceRefusedError      a polled source answered 4xx a retry cannot fix: fix, then resume
    ├── DataError                   this payload cannot be processed; keep it, quarantine it
    │   ├── DecodeError             the body is not well-formed JSON/XML, too big, or unsafe
    │   ├── ClassificationError     the body is well-formed but lacks what identifies the event
    │   ├── MappingError            mapping or canonical validation failed (all field errors)
    │   ├── SourcePageError         a polled page cannot be read or breaks its order (cursor stays)
    │   └── ManifestError           a source's reconciliation manifest cannot be read (file:line)
    ├── RetriableError              a dependency is down; the same call may succeed later
    │   ├── SecretStoreUnavailableError  the secret store (Vault) cannot be reached or is sealed
    │   │   └── KeyServiceUnavailableError  Vault's transit engine cannot be reached; key not cached
    │   ├── SourceUnavailableError  a polled source timed out, refused the connection, 5xx or 429
    │   └── SourceTokenExpiredError a polled source expired a listing's token (410): list again
    └── FatalError                  a bug or broken invariant; stop and page someone

Messages say what went wrong, where, and what was expected. They never contain a secret, and values of
personal-data fields are masked in ``str()`` (the structured attributes keep them for local tools).

This module is a leaf: it imports nothing of the hub's, so any part can raise these errors cheaply.

Formatting an error never raises and is cheap whatever the offending value: values are shown through
``shown()`` (at most 80 characters, an integer of any size as its digit count, any object's failing
``repr`` replaced by its type), and every text of a message is made printable (control characters,
NUL and lone surrogates escaped), so a ``FieldError.as_dict()`` or ``str(error)`` always encodes as
UTF-8 JSON and fits a PostgreSQL ``text``/``jsonb`` column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "CancelsByReferenceError",
    "ClassificationError",
    "ConfigurationError",
    "DataError",
    "DecodeError",
    "DocumentRuleError",
    "FatalError",
    "FieldError",
    "GoldenSamplesError",
    "InvalidRequestError",
    "KeyServiceError",
    "KeyServiceUnavailableError",
    "LoadIssue",
    "ManifestError",
    "MappingError",
    "MappingLoadError",
    "MissingSecretError",
    "NotFoundError",
    "RetriableError",
    "RuleViolation",
    "SalesHubError",
    "SecretStoreError",
    "SecretStoreUnavailableError",
    "SourcePageError",
    "SourceRefusedError",
    "SourceTokenExpiredError",
    "SourceUnavailableError",
    "StateConflictError",
    "UnknownAdapterError",
    "UnknownOrderError",
    "generic_target",
    "printable",
    "shown",
]

_MAX_VALUE_CHARS = 80
# An int wider than this (about 40 digits) is shown by its size, not its digits.
_MAX_INT_BITS = 133


class SalesHubError(Exception):
    """Root of every error the hub raises on purpose."""


class ConfigurationError(SalesHubError):
    """A file or setting is wrong; nothing will work until a person fixes it."""


class DataError(SalesHubError):
    """One payload cannot be processed; the payload is kept and quarantined, others go on."""


class CancelsByReferenceError(DataError):
    """A cancellation names its order by reference only: there is no order in it to map.

    Raised where a body is mapped on its own (a preview, a golden sample); the processor instead
    writes the stored order as ``CANCELLED``.
    """

    def __init__(self, system: str, external_order_id: str) -> None:
        self.system, self.external_order_id = system, external_order_id
        super().__init__(
            f"this {system} event cancels order {shown(external_order_id)} by its reference; it carries "
            "no order to map: the hub writes the stored order as a CANCELLED version when it processes it"
        )


class UnknownOrderError(DataError):
    """A cancellation by reference names an order the hub does not hold."""

    def __init__(self, system: str, external_order_id: str) -> None:
        self.system, self.external_order_id = system, external_order_id
        super().__init__(
            f"the cancellation references {system} order {shown(external_order_id)}, which the hub does "
            "not hold: check the reference with the sender; once the order has been received, replay "
            "this event to cancel it"
        )


class RetriableError(SalesHubError):
    """A dependency is unavailable; retrying later may succeed."""


class FatalError(SalesHubError):
    """A broken invariant: a bug, not bad data. Stop rather than guess."""


class NotFoundError(SalesHubError):
    """An operator asked for an event, order, revision or draft that does not exist."""


class InvalidRequestError(SalesHubError):
    """An operator's request is malformed (an id, a time, a revision number, an empty reason)."""


class StateConflictError(SalesHubError):
    """An operator's action does not apply to the object's state (dismissing a processed event)."""


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


class SecretStoreUnavailableError(RetriableError):
    """The secret store (Vault) cannot be reached, is sealed or answers with a server error.

    The message names the store's address and what was being read, never a secret's value.
    """


class KeyServiceError(ConfigurationError):
    """The master key that wraps data keys cannot be used: its file is unreadable or malformed,
    Vault's transit engine refuses the hub, or a wrapped key is not one of the master key's.

    The message names the key and the place, never a key's bytes.
    """


class KeyServiceUnavailableError(SecretStoreUnavailableError):
    """Vault's transit engine cannot be reached and the data key needed is not in the cache.

    Retriable: a webhook gets 503 with ``Retry-After``; nothing personal is stored in clear meanwhile.
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


@dataclass(frozen=True, slots=True)
class RuleViolation:
    """One rule of a document standard that a body breaks: its id, where (an XPath), and why."""

    rule: str
    location: str
    message: str
    #: ``fatal`` refuses the document; ``warning`` is reported with a refusal, never refuses alone.
    flag: str = "fatal"

    def __str__(self) -> str:
        return f"{self.rule} at {self.location}: {self.message}"


class DocumentRuleError(ClassificationError):
    """The body breaks rules of its document standard (XML Schema, Schematron), each listed."""

    def __init__(self, system: str, standard: str, violations: Sequence[RuleViolation]) -> None:
        self.standard, self.violations = standard, tuple(violations)
        count = len(self.violations)
        listed = "; ".join(str(v) for v in self.violations[:10])
        more = f"; and {count - 10} more" if count > 10 else ""
        super().__init__(system, f"{count} rule(s) of {standard} broken: {listed}{more}")


def _truncated(text: str) -> str:
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…"


def printable(text: str) -> str:
    """``text`` with NUL, other control characters and lone surrogates escaped (``\\x00``, ``\\ud800``).

    The result encodes as UTF-8 and can be stored in PostgreSQL ``text`` and ``jsonb``; ordinary text,
    accents and line breaks included, is returned unchanged (one fast check).
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() or char in "\n\t" else repr(char)[1:-1] for char in text)


def shown(value: object) -> str:
    """``value`` as it may appear in a message: printable, at most 80 characters; never raises.

    Cheap for any value: a string is cut before ``repr``, an integer of more than 40 digits is shown
    by its size (``repr`` of a big integer costs time quadratic in its length and past 4,300 digits
    raises), a list or object by its type and size, and an object whose ``repr`` fails by its type.
    """
    if isinstance(value, str):
        return _truncated(repr(value[:_MAX_VALUE_CHARS]))
    if isinstance(value, int) and abs(value).bit_length() > _MAX_INT_BITS:
        # bit_length() is O(1); log10(2) ≈ 0.30103 gives the number of digits within one.
        digits = int(abs(value).bit_length() * 0.30103) + 1
        return f"({'a negative' if value < 0 else 'an'} integer of about {digits} digits)"
    if isinstance(value, list | tuple | dict | set):
        return f"(a {type(value).__name__} of {len(value)} items)"
    try:
        text = repr(value)
    except Exception:
        return f"(a value of type {type(value).__name__} that cannot be shown)"
    return printable(_truncated(text))


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
            size = f"{len(self.value)} characters" if isinstance(self.value, str) else "not text"
            return f"(personal data, {size}, masked)"
        return shown(self.value)

    def as_dict(self) -> dict[str, str]:
        """A JSON-ready form for the audit trail, with personal values masked; always valid UTF-8."""
        return {
            "target": printable(self.target),
            "source": printable(self.source),
            "rule": printable(self.rule),
            "value": self.shown_value(),
        }

    def __str__(self) -> str:
        parts = self.as_dict()
        return f"{parts['target']} (from {parts['source']}): {parts['rule']}; value {parts['value']}"


class MappingError(DataError):
    """A payload could not be mapped to a valid canonical order; ``errors`` holds every problem."""

    def __init__(self, system: str, mapping: str, errors: Sequence[FieldError]) -> None:
        self.system, self.mapping, self.errors = system, mapping, tuple(errors)
        count = len(self.errors)
        lines = "\n".join(f"  {error}" for error in self.errors)
        super().__init__(
            f"{system} mapping {mapping}: {count} field error{'s' if count != 1 else ''}:\n{lines}"
        )


class SourceRefusedError(ConfigurationError):
    """A polled source answered a 4xx a retry cannot fix: the request or its credentials are wrong.

    Not 429 (``SourceUnavailableError``), nor the expired continuation token of a listing
    (``SourceTokenExpiredError``).

    Never retried (the same request gets the same answer); the poller pauses until an operator
    resumes it. ``status`` is the HTTP status; the message names the system and the URL path, never
    the credentials.
    """

    def __init__(self, system: str, status: int, where: str, detail: str = "") -> None:
        self.system, self.status, self.where = system, status, where
        hint = " (check the secret source/" + system + ")" if status in (401, 403) else ""
        extra = f": {detail}" if detail else ""
        super().__init__(f"{system}: {where} answered {status}{hint}{extra}")


class SourcePageError(DataError):
    """A page of a polled source cannot be used: not JSON/XML, not the documented shape, or out of order.

    The page's records are not recorded and the cursor does not move past it, so nothing is skipped.
    """

    def __init__(self, system: str, reason: str) -> None:
        self.system, self.reason = system, reason
        super().__init__(f"{system}: unusable page: {reason}")


class SourceUnavailableError(RetriableError):
    """A polled source did not answer usefully: connection error, timeout, 5xx or 429.

    ``retry_after`` is the wait in seconds the source asked for (``Retry-After``), when it did.
    """

    def __init__(
        self, system: str, reason: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.system, self.reason, self.status, self.retry_after = system, reason, status, retry_after
        super().__init__(f"{system}: source unavailable: {reason}")


class SourceTokenExpiredError(RetriableError):
    """A polled source no longer knows a listing's continuation token (410 Gone, or its equivalent).

    The normal end of a token's life, not a refusal: the poller lists again from its stored time
    cursor (with the overlap) and goes on. ``status`` is the HTTP status the source answered.
    """

    def __init__(self, system: str, status: int, where: str) -> None:
        self.system, self.status, self.where = system, status, where
        super().__init__(f"{system}: {where} answered {status}: the continuation token has expired")


class ManifestError(DataError):
    """A source's reconciliation manifest cannot be read as a whole (no header, no key column …)."""

    def __init__(self, source: str, line: int | None, reason: str) -> None:
        self.source, self.line, self.reason = source, line, reason
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {reason}")
