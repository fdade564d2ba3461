"""Where budgets are kept: the ``<reservations table>_budgets`` table in the reservation database."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.budgets import Budget
from airflow_credits_provider.errors import UnknownBudgetError
from airflow_credits_provider.reservations.definitions import Definitions
from airflow_credits_provider.reservations.models import BUDGETS_SUFFIX, DEFAULT_TABLE
from airflow_credits_provider.sql.tables import Column, WarehouseTable

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

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


class BudgetRegistry(Definitions[Budget]):
    """The budgets of one reservation database: define, list, read and delete them.

    :param hook: the reservation database's common-sql hook
    :param table: the reservations table; budgets live in ``<table>_budgets``
    :param schema: its schema, or ``None`` for the connection's default
    """

    noun, plural, command = "credit budget", "budgets", "budgets"
    unknown_error = UnknownBudgetError
    select = _SELECT

    def __init__(self, hook: Any, *, table: str = DEFAULT_TABLE, schema: str | None = None) -> None:
        super().__init__(WarehouseTable(hook, f"{table}{BUDGETS_SUFFIX}", schema, BUDGET_COLUMNS, ("name",)))

    def to_row(self, item: Budget, now: datetime) -> tuple[Any, ...]:
        """A budget's row."""
        return (item.name, item.account, item.cap, item.period, item.timezone, item.description, now)

    def from_row(self, row: Sequence[Any]) -> Budget:
        """A budget from its row."""
        return budget_from_row(row)


def budget_from_row(row: Sequence[Any]) -> Budget:
    """A row of ``name, account, cap, period, timezone, description``."""
    name, account, cap, period, zone, description = row
    return Budget(name, account, Decimal(str(cap)), period, zone, description or "")
