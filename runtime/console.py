"""The console every command prints its tables on.

Contract: `make_console()` returns a rich Console at the terminal's own width when the output
is a terminal, and, when it is piped or redirected, at a width no table reaches with soft
wrapping, so a log or a file holds whole rows: cells are never cut short ("tem…").
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console

PIPED_WIDTH = 100_000  # wider than any row: piped output is never cut or wrapped


def make_console(*, file: TextIO | None = None) -> Console:
    """The console to print tables on (see the module docstring)."""
    stream = file if file is not None else sys.stdout
    if stream.isatty():
        return Console(file=file)
    return Console(file=file, width=PIPED_WIDTH, soft_wrap=True)
