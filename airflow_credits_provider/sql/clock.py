"""The database's clock: one "now" for every machine that reserves, releases or claims an alert.

Workers' clocks drift (a VM resumed from a snapshot, a container without NTP). Reservation TTLs, budget
periods and alert leases are compared across machines, so they are judged on the reservation
database's clock, read in the statement that takes the account's lock (no extra round trip there) or,
outside a lock, with one ``SELECT``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow_credits_provider.sql.tables import to_naive_utc

#: "Now" in UTC, as a naive timestamp, in each dialect. PostgreSQL's ``clock_timestamp()`` is the time the
#: statement reads it (``now()`` would be the transaction's start); MySQL/MariaDB's ``UTC_TIMESTAMP(6)`` is
#: the statement's start; SQLite's is its machine's clock (one machine: every process shares it).
NOW_SQL = {
    "postgresql": "(clock_timestamp() AT TIME ZONE 'UTC')",
    "mysql": "UTC_TIMESTAMP(6)",
    "sqlite": "strftime('%Y-%m-%d %H:%M:%f', 'now')",
}


def now_sql(dialect: str) -> str:
    """The SQL expression for the database's "now" (naive UTC) in ``dialect``."""
    return NOW_SQL[dialect]


def read_now(value: Any) -> datetime:
    """The value of :data:`NOW_SQL` as the driver returns it, as a naive UTC ``datetime``."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return to_naive_utc(value)


class DatabaseClock:
    """A clock (``clock() -> naive UTC datetime``) that reads the database's time.

    :param hook: a common-sql hook on PostgreSQL, MySQL/MariaDB or SQLite
    """

    def __init__(self, hook: Any) -> None:
        self.hook = hook
        self.sql = now_sql(str(hook.dialect_name))

    def __call__(self) -> datetime:
        """The database's "now" (one ``SELECT`` on a connection of its own)."""
        row = self.hook.get_first(f"SELECT {self.sql}")
        return read_now(row[0])

    def __repr__(self) -> str:
        return f"DatabaseClock({self.hook.dialect_name})"
