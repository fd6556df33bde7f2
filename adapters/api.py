"""The adapter API: everything a source-system adapter may import from the hub, and nothing more.

A plug-in adapter (its own package, installed with pip, registered through the ``saleshub.adapters``
entry point) imports only this module, and so do the built-in adapters (``pyxis``, ``tempo``,
``erp``); an import-linter contract in ``pyproject.toml`` keeps them and the plug-ins under
``plugins/`` to it. What it offers:

* the contract: ``SourceAdapter`` (with its metadata), ``EventInfo`` (with ``Cancellation`` for a
  cancellation naming its order by reference alone), ``Translation``,
  ``SOURCE_TRANSPORTS``, and for a polled system ``SourceApi`` with its cursor and page types;
* safe decoding: ``decode_json``, ``decode_xml`` (size limit, no entities, no network) and
  ``split_json_page`` (a polled page's records, each as its own bytes);
* the vocabularies: ``EventType``, ``SalesChannel``, ``Transport``, and ``BIGINT_MAX`` (the
  largest source version the hub stores);
* the errors an adapter raises for bad input (each a ``DataError``): ``DecodeError``,
  ``ClassificationError``, ``DocumentRuleError`` with its ``RuleViolation``\\ s, ``SourcePageError``;
  and ``shown`` to quote a value in a message safely;
* ``MappingSource``, the type of the mappings an adapter is constructed with.

The test kit for an adapter's contract suite is ``adapters.testing`` (``AdapterContract``); a
plug-in's tests may import it too.
"""

from __future__ import annotations

from adapters.base import SOURCE_TRANSPORTS, Cancellation, EventInfo, SourceAdapter, Translation
from adapters.decoding import decode_json, decode_xml, refuse_repeated_elements, split_json_page
from adapters.source import Cursor, Page, PageRequest, SourceApi, SourceRecord, Window
from canonical.enums import EventType, SalesChannel, Transport
from canonical.limits import BIGINT_MAX
from saleshub.errors import (
    ClassificationError,
    DataError,
    DecodeError,
    DocumentRuleError,
    RuleViolation,
    SourcePageError,
    shown,
)
from saleshub.mapping.catalog import MappingSource

__all__ = [
    "BIGINT_MAX",
    "SOURCE_TRANSPORTS",
    "Cancellation",
    "ClassificationError",
    "Cursor",
    "DataError",
    "DecodeError",
    "DocumentRuleError",
    "EventInfo",
    "EventType",
    "MappingSource",
    "Page",
    "PageRequest",
    "RuleViolation",
    "SalesChannel",
    "SourceAdapter",
    "SourceApi",
    "SourcePageError",
    "SourceRecord",
    "Translation",
    "Transport",
    "Window",
    "decode_json",
    "decode_xml",
    "refuse_repeated_elements",
    "shown",
    "split_json_page",
]
