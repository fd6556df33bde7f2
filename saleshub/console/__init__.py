"""The consoles: the operators' web console (this package's modules) and the command line's two.

``out`` and ``err`` here are the command line's Rich consoles: results to standard output,
diagnostics to standard error. The web console lives in ``saleshub.console.app`` (the HTTP
application with the operator API and the pages), ``.api`` (``/api/v1``), ``.pages`` (the
server-rendered pages), ``.security`` (sessions, CSRF, headers); importing this package does not
import any of them.

On a terminal, output fits its width. Written to a pipe or a file it is never cut to a width (Rich
would use the terminal's, or 80 columns, and shorten table cells to ``externa…``): a table is as
wide as its content, so ``saleshub mappings explain pyxis | grep external_order_id`` finds it.
``COLUMNS`` still sets a width when given.
"""

from __future__ import annotations

from rich.console import Console, ConsoleDimensions

__all__ = ["err", "out"]

#: The width of output that goes to no terminal: wider than any table the commands print.
_UNCUT = 100_000


class _Console(Console):
    """A console that does not cut lines when its output is not a terminal."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal and "COLUMNS" not in self._environ:
            return ConsoleDimensions(_UNCUT, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


out = _Console(highlight=False)
err = _Console(stderr=True, highlight=False)
