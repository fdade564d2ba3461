"""The landing tables: transactions with their cursor table, and balance snapshots."""

from __future__ import annotations

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
