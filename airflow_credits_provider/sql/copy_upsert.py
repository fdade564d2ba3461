"""Upserts into PostgreSQL through ``COPY``: the bulk path of the landing operators on PostgreSQL.

Each batch is one transaction on the ``PostgresHook``'s own connection: rows stream through ``COPY ...
FROM STDIN`` into a temporary staging table (``ON COMMIT DELETE ROWS``), then one ``INSERT ... SELECT ...
ON CONFLICT (key) DO UPDATE`` moves them into the table, and the transaction commits. A process killed at
any point, mid-``COPY`` included, leaves the batch uncommitted and the table as the last committed batch
left it. A key read twice within a batch (a ledger shifting under the pager) is written once, with the
last copy read.

``COPY`` turns each row into wire data in the driver's C code, where common-sql's ``insert_rows`` spends
Python work per cell and a server round trip per statement; see docs/landing.md for the measurements.
psycopg 3 (``cursor.copy``) and psycopg2 (``copy_expert``) are both supported.
"""

from __future__ import annotations

import io
from contextlib import closing
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

#: The staging table's extra column: the order rows were read in, so the last copy of a key wins.
_SEQ = "_credits_seq"


class PostgresCopyUpsert:
    """Upsert rows into one PostgreSQL table, a batch per transaction, through ``COPY`` and ``ON CONFLICT``.

    :param hook: the ``PostgresHook``
    :param table: the table's name (validated)
    :param qualified: the table's escaped, qualified name
    :param columns: the table's column names, in row order
    :param types: the columns' PostgreSQL types (``numeric``, ``timestamp``, ``text``, ...), in row order
    :param key: the primary key's column names
    :param escape: the dialect's identifier escaping
    """

    def __init__(
        self,
        hook: Any,
        table: str,
        qualified: str,
        columns: Sequence[str],
        types: Sequence[str],
        key: Sequence[str],
        escape: Callable[[str], str],
    ) -> None:
        self.hook = hook
        self._types = list(types)
        self._key_cells = [list(columns).index(k) for k in key]
        cols = ", ".join(escape(c) for c in columns)
        key_cols = ", ".join(escape(k) for k in key)
        # Created in each batch's transaction and dropped at its commit: nothing outlives a transaction,
        # so a pooler (pgbouncer) or a reused session never sees a stale staging table.
        stage = escape(f"_credits_stage_{table}"[:63])
        self._create_stage = (
            f"CREATE TEMPORARY TABLE {stage} (LIKE {qualified}, {_SEQ} BIGSERIAL) ON COMMIT DROP"
        )
        self._copy = f"COPY {stage} ({cols}) FROM STDIN"
        self._copy_binary = f"COPY {stage} ({cols}) FROM STDIN (FORMAT BINARY)"
        updates = ", ".join(f"{escape(c)} = EXCLUDED.{escape(c)}" for c in columns if c not in key)
        conflict = f"ON CONFLICT ({key_cols}) DO UPDATE SET {updates}"
        self._merge = f"INSERT INTO {qualified} ({cols}) SELECT {cols} FROM {stage} {conflict}"
        # ON CONFLICT cannot touch one row twice in a statement: a key read twice keeps its last copy.
        self._merge_latest = (
            f"INSERT INTO {qualified} ({cols}) SELECT {cols} FROM (SELECT DISTINCT ON ({key_cols}) * "
            f"FROM {stage} ORDER BY {key_cols}, {_SEQ} DESC) AS latest {conflict}"
        )

    def upsert(self, batches: Iterable[Iterable[Sequence[tuple[Any, ...]]]]) -> None:
        """Write each batch of ``batches`` (chunks of rows) in its own transaction.

        A batch's chunks are pulled while its ``COPY`` is open: their source may page a vendor's API
        meanwhile. An exception from a source or the database rolls the open batch back.
        """
        with closing(self.hook.get_conn()) as conn:
            with closing(conn.cursor()) as cur:
                psycopg2 = hasattr(cur, "copy_expert")  # psycopg 3's cursors have copy() instead
                for batch in batches:
                    rows = _KeyWatch(batch, self._key_cells)
                    try:
                        cur.execute(self._create_stage)
                        if psycopg2:
                            _copy_rows_psycopg2(cur, self._copy, rows)
                        else:
                            _copy_rows(cur, self._copy_binary, self._types, rows)
                        cur.execute(self._merge_latest if rows.repeated else self._merge)
                    except BaseException:
                        conn.rollback()
                        raise
                    conn.commit()


class _KeyWatch:
    """Pass chunks of rows through, noting whether any key came twice (``repeated``)."""

    def __init__(self, chunks: Iterable[Sequence[tuple[Any, ...]]], key_cells: list[int]) -> None:
        self._chunks = chunks
        self._key = itemgetter(*key_cells)
        self.repeated = False

    def __iter__(self) -> Iterator[Sequence[tuple[Any, ...]]]:
        seen: set[Any] = set()
        for chunk in self._chunks:
            before = len(seen)
            seen.update(map(self._key, chunk))
            if len(seen) - before != len(chunk):
                self.repeated = True
            yield chunk


def _copy_rows(cur: Any, sql: str, types: list[str], chunks: Iterable[Sequence[tuple[Any, ...]]]) -> None:
    """Stream ``rows`` through psycopg 3's binary ``cursor.copy``, adapted in the driver's C code.

    With the column types declared up front the driver skips a per-cell type look-up; the binary
    format is exact for ``numeric`` and ``timestamp`` and half the work of the text one, on both sides.
    """
    with cur.copy(sql) as copy:
        copy.set_types(types)
        write_row = copy.write_row
        for chunk in chunks:
            for row in chunk:
                write_row(row)


def _copy_rows_psycopg2(cur: Any, sql: str, chunks: Iterable[Sequence[tuple[Any, ...]]]) -> None:
    """Stream the rows of ``chunks`` as ``COPY`` text through psycopg2's ``copy_expert``."""
    cur.copy_expert(sql, _CopyText(chain.from_iterable(chunks)), size=1 << 16)


class _CopyText(io.RawIOBase):
    """A readable file of ``COPY ... FROM STDIN`` text lines, made from rows as they are read."""

    def __init__(self, rows: Iterator[tuple[Any, ...]]) -> None:
        super().__init__()
        self._rows = rows
        self._pending = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunks, length = [self._pending], len(self._pending)
        while size < 0 or length < size:
            row = next(self._rows, None)
            if row is None:
                break
            line = ("\t".join(map(_copy_cell, row)) + "\n").encode()
            chunks.append(line)
            length += len(line)
        data = b"".join(chunks)
        if size < 0:
            self._pending = b""
            return data
        self._pending = data[size:]
        return data[:size]


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_cell(cell: Any) -> str:
    """One cell in ``COPY`` text format (NULL is written as backslash-N)."""
    if cell is None:
        return "\\N"
    if isinstance(cell, str):
        return cell.translate(_COPY_ESCAPES)
    if hasattr(cell, "isoformat"):
        return str(cell.isoformat(sep=" "))
    return str(cell)
