"""Credit reservations and budgets, kept in a SQL database (PostgreSQL, MySQL/MariaDB or SQLite).

- :mod:`.models`: holders, reservations and the result of a reservation attempt;
- :mod:`.store`: :class:`ReservationStore`, reserving and releasing under each account's lock;
- :mod:`.usage`: ``credit_usage``, the record of ended reservations, and a budget's spend from it;
- :mod:`.registry`: :class:`BudgetRegistry`, where budgets are defined;
- :mod:`.budget_files`: budgets kept in a YAML or JSON file (``airflow-credits budgets import``).

Airflow-free: everything works on a common-sql ``DbApiHook``. :class:`Budget` (a spend cap per
period) and :class:`BudgetState` are rules of the domain (:mod:`airflow_credits_provider.budgets`),
re-exported here.
"""

from __future__ import annotations

from airflow_credits_provider.budgets import Budget, BudgetState
from airflow_credits_provider.reservations.models import Holder, Reservation, ReserveResult
from airflow_credits_provider.reservations.registry import BudgetRegistry
from airflow_credits_provider.reservations.store import ReservationStore
from airflow_credits_provider.reservations.usage import UsageRecord

__all__ = [
    "Budget",
    "BudgetRegistry",
    "BudgetState",
    "Holder",
    "Reservation",
    "ReservationStore",
    "ReserveResult",
    "UsageRecord",
]
