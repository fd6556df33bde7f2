"""The consoles: the operators' web console (this package's modules) and the command line's two.

``out`` and ``err`` here are the command line's Rich consoles: results to standard output,
diagnostics to standard error. The web console lives in ``saleshub.console.app`` (the HTTP
application with the operator API and the pages), ``.api`` (``/api/v1``), ``.pages`` (the
server-rendered pages), ``.security`` (sessions, CSRF, headers); importing this package does not
import any of them.
"""

from __future__ import annotations

from rich.console import Console

__all__ = ["err", "out"]

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
