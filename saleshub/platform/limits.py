"""Limits every part agrees on, defined once (the settings default to them, the decoders enforce them)."""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_BODY_BYTES"]

#: The largest inbound body accepted unless ``web.max_body_bytes`` says otherwise (413 above it).
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
