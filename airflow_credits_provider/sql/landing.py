"""The landing tables: transactions with their cursor table, and balance snapshots."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.sql.tables import (
    CURSOR_COLUMNS,
    CURSOR_KEY,
    CURSOR_SUFFIX,
    SNAPSHOT_COLUMNS,
    SNAPSHOT_KEY,
    TRANSACTION_COLUMNS,
    TRANSACTION_KEY,
    WarehouseTable,
    check_transactions_table,
    parse_stored_time,
    to_naive_utc,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    from pendulum import DateTime


class LandingTarget:
    """A landing table plus, for incremental landing, its cursor table ``<table>_cursor``."""

    def __init__(self, data: WarehouseTable, cursor: WarehouseTable | None = None) -> None:
        self.data = data
        self.cursor = cursor

    @classmethod
    def transactions(cls, hook: Any, table: str, schema: str | None) -> LandingTarget:
        """The transactions table and its cursor table."""
        check_transactions_table(table)
        return cls(
            WarehouseTable(hook, table, schema, TRANSACTION_COLUMNS, TRANSACTION_KEY),
            WarehouseTable(hook, f"{table}{CURSOR_SUFFIX}", schema, CURSOR_COLUMNS, CURSOR_KEY),
        )

    @classmethod
    def snapshots(cls, hook: Any, table: str, schema: str | None) -> LandingTarget:
        """The balance snapshots table."""
        return cls(WarehouseTable(hook, table, schema, SNAPSHOT_COLUMNS, SNAPSHOT_KEY))

    def create(self) -> None:
        """Create missing tables."""
        self.data.create()
        if self.cursor is not None:
            self.cursor.create()

    def prepare(self, vendor: str, account: str, *, create: bool, read_cursor: bool) -> DateTime | None:
        """Check that the tables are there and read the cursor, in one transaction; create them if not.

        When both tables exist with every column, this is one connection and two ``SELECT`` statements
        (no DDL round trips: ``CREATE TABLE IF NOT EXISTS`` and the column check cost a connection each).
        A table missing, or made by an earlier release without a newer column, takes the
        :meth:`create` path (with ``create``; without it, the database's error is raised).

        :param create: create missing tables (and add missing nullable columns)
        :param read_cursor: return the cursor of ``vendor`` and ``account`` (else ``None``)
        """
        assert self.cursor is not None
        from contextlib import closing

        data, cursor = self.data, self.cursor
        try:
            with closing(data.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
                try:
                    cur.execute(f"SELECT * FROM {data.qualified} WHERE 1 = 0")
                    have = {str(d[0]).lower() for d in cur.description or ()}
                    cur.fetchall()
                    cur.execute(
                        f"SELECT * FROM {cursor.qualified} WHERE {cursor.where_key(CURSOR_KEY)}",
                        cursor.adapt((vendor, account)),
                    )
                    names = [str(d[0]).lower() for d in cur.description or ()]
                    row = cur.fetchone()
                    cur.fetchall()
                finally:
                    conn.rollback()
        except Exception:
            if not create:
                raise
            have, names, row = set(), [], None
        complete = all(c.name in have for c in data.columns) and all(c.name in names for c in cursor.columns)
        if not complete:
            if create:
                self.create()
            return self.read_cursor(vendor, account) if read_cursor else None
        return parse_stored_time(row[names.index("cursor_at")]) if read_cursor and row else None

    @contextlib.contextmanager
    def one_connection(self) -> Iterator[None]:
        """Make every statement of the block on PostgreSQL go over one connection, opened at first use.

        A landing otherwise opens one per step (check, batches, cursor), each a TCP and authentication
        handshake. Each step still commits or rolls back its own transaction, so a process killed at any
        point leaves what it did before (the same as separate connections). Other databases keep one
        connection per step (common-sql's ``insert_rows`` sets autocommit on its connection).
        """
        hook = self.data.hook
        if self.data.dialect_name != "postgresql":
            yield
            return
        open_conn = hook.get_conn
        kept: list[Any] = []

        def get_conn() -> Any:
            if not kept:
                kept.append(_Kept(open_conn()))
            return kept[0]

        hook.get_conn = get_conn
        try:
            yield
        finally:
            hook.get_conn = open_conn
            if kept:
                kept[0].really_close()

    def read_cursor(self, vendor: str, account: str) -> DateTime | None:
        """The newest ``created_at`` landed by the last completed run, or ``None``."""
        assert self.cursor is not None
        row = self.cursor.hook.get_first(
            f"SELECT cursor_at FROM {self.cursor.qualified} WHERE {self.cursor.where_key(CURSOR_KEY)}",
            parameters=(vendor, account),
        )
        return parse_stored_time(row[0]) if row else None

    def write_cursor(self, vendor: str, account: str, cursor_at: datetime, now: datetime) -> None:
        """Move the cursor (only after a completed run)."""
        assert self.cursor is not None
        self.cursor.upsert([(vendor, account, to_naive_utc(cursor_at), to_naive_utc(now))])

    def delete_stale(self, vendor: str, account: str, run_started: DateTime) -> int:
        """Delete this account's rows not re-landed since ``run_started`` (full refresh); return how many."""
        from contextlib import closing

        table = self.data
        cells = table.adapt((vendor, account, to_naive_utc(run_started)))
        where = f"{table.where_key(('vendor', 'account'))} AND loaded_at < {table.param()}"
        sql = f"DELETE FROM {table.qualified} WHERE {where}"
        with closing(table.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
            cur.execute(sql, cells)
            removed = int(cur.rowcount or 0)
            conn.commit()
        return removed


class _Kept:
    """A connection whose ``close`` is left to its owner (:meth:`LandingTarget.one_connection`)."""

    def __init__(self, conn: Any) -> None:
        object.__setattr__(self, "_conn", conn)

    def close(self) -> None:
        """Kept open for the next step; a failed transaction was rolled back by its step."""

    def really_close(self) -> None:
        self._conn.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._conn, name, value)  # autocommit, set by common-sql's run()
