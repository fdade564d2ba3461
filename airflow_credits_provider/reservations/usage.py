"""``credit_usage``: one row per ended reservation, and what a budget spent in a period from it.

A usage row records who held what and what the account's balance did meanwhile (see
:class:`UsageRecord` for how ``spent`` is worked out). What a budget spent in a period is read from
these rows (:func:`budget_spend`): each counts in the period it was *reserved* in, as its ``spent``
when known (exact, or an upper bound when runs overlapped) and as its full reserved amount when the
balance rose meanwhile (a top-up hid the run's spend). An expired reservation (its run was killed and
never released) stops counting at its TTL, as it does on the account: its spend is unknown, and
charging it in full would lock a team out for the rest of the period for a run that may have spent
nothing; ``budgets usage`` counts such runs as unmeasured.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.parsing import decimal_text, exact_arithmetic
from airflow_credits_provider.reservations.models import iso_utc
from airflow_credits_provider.sql.tables import Column

if TYPE_CHECKING:
    from datetime import datetime

    from airflow_credits_provider.models import CreditBalance
    from airflow_credits_provider.reservations.models import Reservation
    from airflow_credits_provider.sql.tables import WarehouseTable

USAGE_COLUMNS = (
    Column("reservation_id", "key", False),
    Column("reserved_at", "ts", False),
    Column("dag_id", "key", False),
    Column("run_id", "key", False),
    Column("task_id", "key", False),
    Column("map_index", "int", False),
    Column("credit_conn_id", "key", False),
    Column("account", "key", False),
    Column("outcome", "key", False),
    Column("reserved", "amount", False),
    Column("balance_before", "amount", False),
    Column("balance_after", "amount"),
    Column("spent", "amount"),
    Column("exact", "int", False),
    Column("overlapping", "int", False),
    Column("released_at", "ts", False),
    Column("budget", "key"),
)
USAGE_KEY = ("reservation_id", "reserved_at")


@dataclass(frozen=True)
class UsageRecord:
    """One row of ``credit_usage``: a reservation's end and what the account's balance did meanwhile.

    ``spent`` is ``balance_before - balance_after``. It is ``exact`` only when no other reservation on
    the account overlapped this one (``overlapping == 0``), the drop is within the reservation (a larger
    one shows spending outside it) and the balance did not rise (a top-up or
    renewal meanwhile makes it ``None``); when runs overlap it includes their spending too, and is then
    capped at ``reserved`` (an upper bound for this run). Expired reservations have no balance after.
    """

    reservation: Reservation
    outcome: str
    balance_after: Decimal | None
    spent: Decimal | None
    exact: bool
    overlapping: int
    released_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (XCom)."""
        return {
            **self.reservation.to_dict(),
            "outcome": self.outcome,
            "balance_after": decimal_text(self.balance_after),
            "spent": decimal_text(self.spent),
            "exact": self.exact,
            "overlapping": self.overlapping,
            "released_at": iso_utc(self.released_at),
        }

    def row(self) -> tuple[Any, ...]:
        """The ``credit_usage`` row, in :data:`USAGE_COLUMNS` order."""
        r, h = self.reservation, self.reservation.holder
        return (
            r.reservation_id,
            r.reserved_at,
            h.dag_id,
            h.run_id,
            h.task_id,
            h.map_index,
            r.credit_conn_id,
            r.account,
            self.outcome,
            r.amount,
            r.balance_before,
            self.balance_after,
            self.spent,
            int(self.exact),
            self.overlapping,
            self.released_at,
            r.budget,
        )


def usage_record(
    r: Reservation, outcome: str, after: CreditBalance | None, overlapping: int, at: datetime
) -> UsageRecord:
    """The usage record of a reservation that ended (see :class:`UsageRecord` for the rule)."""
    if after is None:
        return UsageRecord(r, outcome, None, None, False, overlapping, at)
    with exact_arithmetic():
        drop = r.balance_before - after.available
    if drop < 0:  # the balance rose: a top-up or a renewal; the run's own spend is unknown
        return UsageRecord(r, outcome, after.available, None, False, overlapping, at)
    if overlapping:
        return UsageRecord(r, outcome, after.available, min(drop, r.amount), False, overlapping, at)
    # Alone, a drop beyond the reservation means spending outside it (another tool, a person): not exact.
    return UsageRecord(r, outcome, after.available, drop, drop <= r.amount, 0, at)


#: What one usage row counts against its budget: its spend when known, else all it reserved; an
#: expired reservation nothing (see the module's docstring).
BUDGET_CHARGE = "CASE WHEN {outcome} = 'expired' THEN 0 ELSE COALESCE({spent}, {reserved}) END"


def budget_spend(cur: Any, usage: WarehouseTable, budget: str, start: datetime, end: datetime) -> Decimal:
    """Credits ``budget`` spent from reservations made in ``[start, end)`` (naive UTC), exactly."""
    sql, params = budget_spend_query(usage, budget, start, end)
    cur.execute(sql, params)
    return sum_charges(cur.fetchall())


def budget_spend_query(
    usage: WarehouseTable, budget: str, start: datetime, end: datetime
) -> tuple[str, tuple[Any, ...]]:
    """The query behind :func:`budget_spend`, for :func:`sum_charges` (also what the Credits pages run).

    PostgreSQL and MySQL/MariaDB sum their exact decimals in the database; SQLite stores amounts as
    decimal text, so its rows are returned one by one and summed here (its ``SUM`` rounds through a float).
    """
    e, p = usage._escape, usage.param()
    charge = BUDGET_CHARGE.format(outcome=e("outcome"), spent=e("spent"), reserved=e("reserved"))
    where = f"{e('budget')} = {p} AND {e('reserved_at')} >= {p} AND {e('reserved_at')} < {p}"
    select = charge if usage.dialect_name == "sqlite" else f"SUM({charge})"
    return f"SELECT {select} FROM {usage.qualified} WHERE {where}", usage.adapt((budget, start, end))


def sum_charges(rows: Any) -> Decimal:
    """The exact sum of :func:`budget_spend_query`'s rows (``NULL``: nothing)."""
    with exact_arithmetic():
        return sum((Decimal(str(row[0])) for row in rows if row[0] is not None), Decimal(0))
