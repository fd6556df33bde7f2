"""The command line's two Rich consoles: results to standard output, diagnostics to standard error."""

from __future__ import annotations

from rich.console import Console

__all__ = ["err", "out"]

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
