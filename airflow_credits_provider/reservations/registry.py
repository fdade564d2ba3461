"""Where budgets are kept: the ``<reservations table>_budgets`` table in the reservation database."""

from __future__ import annotations

from contextlib import closing
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.budgets import Budget
from airflow_credits_provider.errors import UnknownBudgetError
from airflow_credits_provider.reservations.models import BUDGETS_SUFFIX, DEFAULT_TABLE, utcnow
from airflow_credits_provider.sql.tables import Column, WarehouseTable

if TYPE_CHECKING:
    from collections.abc import Sequence

BUDGET_COLUMNS = (
    Column("name", "key", False),
    Column("account", "key", False),
    Column("cap", "amount", False),
    Column("period", "key", False),
    Column("timezone", "key", False),
    Column("description", "text"),
    Column("updated_at", "ts", False),
)
_SELECT = ("name", "account", "cap", "period", "timezone", "description")


class BudgetRegistry:
    """The budgets of one reservation database: define, list, read and delete them.

    :param hook: the reservation database's common-sql hook
    :param table: the reservations table; budgets live in ``<table>_budgets``
    :param schema: its schema, or ``None`` for the connection's default
    """

    def __init__(self, hook: Any, *, table: str = DEFAULT_TABLE, schema: str | None = None) -> None:
        self.table = WarehouseTable(hook, f"{table}{BUDGETS_SUFFIX}", schema, BUDGET_COLUMNS, ("name",))
        self._created = False

    def create(self) -> None:
        """Create the budgets table when missing (once per registry)."""
        if not self._created:
            self.table.create()
            self._created = True

    def set(self, budgets: Sequence[Budget]) -> None:
        """Create or replace ``budgets``, all in one transaction (all of them or none)."""
        self.create()
        now = utcnow()
        rows = [(b.name, b.account, b.cap, b.period, b.timezone, b.description, now) for b in budgets]
        if rows:
            self.table.upsert(rows, batch_size=max(len(rows), 1))

    def delete(self, name: str) -> bool:
        """Delete the budget ``name``; ``False`` when there was none (its usage rows stay)."""
        self.create()
        t = self.table
        with closing(t.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
            cur.execute(f"DELETE FROM {t.qualified} WHERE {t.where_key(('name',))}", (name,))
            deleted = int(cur.rowcount or 0)
            conn.commit()
        return deleted > 0

    def all(self) -> list[Budget]:
        """Every budget, by name."""
        self.create()
        with closing(self.table.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
            return self.read_all(cur)

    def get(self, name: str) -> Budget:
        """The budget ``name``; :class:`UnknownBudgetError` naming the defined ones when there is none."""
        self.create()
        with closing(self.table.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
            return self.read(cur, name)

    def read(self, cur: Any, name: str) -> Budget:
        """:meth:`get` on an open cursor (inside the reservation's transaction)."""
        t = self.table
        cur.execute(f"SELECT {self._cols()} FROM {t.qualified} WHERE {t.where_key(('name',))}", (name,))
        row = cur.fetchone()
        if row is None:
            defined = [b.name for b in self.read_all(cur)]
            listed = ", ".join(repr(n) for n in defined[:20]) + (", ..." if len(defined) > 20 else "")
            raise UnknownBudgetError(
                f"Unknown credit budget {name!r}. "
                + (f"Defined budgets: {listed}." if defined else "No budget is defined yet.")
                + " Define it with `airflow-credits budgets set` or `budgets import`."
            )
        return budget_from_row(row)

    def read_all(self, cur: Any) -> list[Budget]:
        """Every budget, by name, on an open cursor."""
        t = self.table
        cur.execute(f"SELECT {self._cols()} FROM {t.qualified} ORDER BY {t._escape('name')}")
        return [budget_from_row(row) for row in cur.fetchall()]

    def _cols(self) -> str:
        return ", ".join(self.table._escape(c) for c in _SELECT)


def budget_from_row(row: Sequence[Any]) -> Budget:
    """A row of ``name, account, cap, period, timezone, description``."""
    name, account, cap, period, zone, description = row
    return Budget(name, account, Decimal(str(cap)), period, zone, description or "")
