"""How the commands print: aligned tables on a command's output stream."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import TextIO


def print_table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> None:
    """``header`` and ``rows`` in left-aligned columns, two spaces apart."""
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        cells = "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True))
        print(indent + cells.rstrip(), file=out)
