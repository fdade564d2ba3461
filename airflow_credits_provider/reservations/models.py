"""What the reservation tables hold: holders, reservations, an attempt's result, and the columns."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.parsing import decimal_text, exact_arithmetic
from airflow_credits_provider.sql.tables import Column, parse_stored_time, to_naive_utc

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_credits_provider.alerts import Crossing
    from airflow_credits_provider.budgets import BudgetState
    from airflow_credits_provider.models import CreditBalance

DEFAULT_TABLE = "credit_reservations"
DEFAULT_USAGE_TABLE = "credit_usage"
#: The accounts (lock) table of a reservations table ``t`` is ``t`` + this suffix.
ACCOUNTS_SUFFIX = "_accounts"
#: The budgets table of a reservations table ``t`` is ``t`` + this suffix.
BUDGETS_SUFFIX = "_budgets"
#: The alert rules and alert claims tables of a reservations table ``t``: ``t`` + these suffixes.
ALERT_RULES_SUFFIX = "_alert_rules"
ALERT_CLAIMS_SUFFIX = "_alert_claims"
#: The longest suffix: a reservations table's name leaves room for it.
LONGEST_SUFFIX = max(ACCOUNTS_SUFFIX, BUDGETS_SUFFIX, ALERT_RULES_SUFFIX, ALERT_CLAIMS_SUFFIX, key=len)
#: How long a reservation holds when nobody releases it (a killed run).
DEFAULT_TTL = timedelta(hours=6)
#: Seconds a reserver waits for another's account lock before giving up (and retrying later).
DEFAULT_LOCK_TIMEOUT = 60.0

ACTIVE, RELEASED, EXPIRED = "active", "released", "expired"

RESERVATION_COLUMNS = (
    Column("reservation_id", "key", False),
    Column("account", "key", False),
    Column("credit_conn_id", "key", False),
    Column("status", "key", False),
    Column("amount", "amount", False),
    Column("dag_id", "key", False),
    Column("run_id", "key", False),
    Column("task_id", "key", False),
    Column("map_index", "int", False),
    Column("balance_before", "amount", False),
    Column("reserved_at", "ts", False),
    Column("expires_at", "ts", False),
    Column("released_at", "ts"),
    Column("budget", "key"),
)
ACCOUNT_COLUMNS = (
    Column("account", "key", False),
    Column("release_seq", "int", False),
    Column("balance", "amount"),
    Column("balance_fetched_at", "ts"),
    Column("balance_seq", "int"),
    Column("balance_json", "text"),
    Column("updated_at", "ts", False),
    Column("spend_seq", "int"),
    Column("spend_json", "text"),
)
#: The columns a reservation is read back with (the store, and the Credits pages).
SELECT_RESERVATION = (
    "reservation_id",
    "account",
    "credit_conn_id",
    "amount",
    "dag_id",
    "run_id",
    "task_id",
    "map_index",
    "balance_before",
    "reserved_at",
    "expires_at",
    "budget",
)


@dataclass(frozen=True)
class Holder:
    """The task instance that holds a reservation: a retry of it reuses the reservation it holds."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    @property
    def reservation_id(self) -> str:
        """A stable id for this holder (a hash: the parts can be long, keys cannot)."""
        text = "\x1f".join((self.dag_id, self.run_id, self.task_id, str(self.map_index)))
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def from_context(cls, context: Any) -> Holder:
        """The running task instance of an Airflow context."""
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        return cls(ti.dag_id, ti.run_id, ti.task_id, -1 if map_index is None else int(map_index))


@dataclass(frozen=True)
class Reservation:
    """An active reservation, as read from the table.

    :param budget: the budget it draws on (``None``: the account's balance only)
    """

    reservation_id: str
    account: str
    credit_conn_id: str
    amount: Decimal
    holder: Holder
    balance_before: Decimal
    reserved_at: datetime
    expires_at: datetime
    budget: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (XCom, trigger events)."""
        return {
            "reservation_id": self.reservation_id,
            "account": self.account,
            "credit_conn_id": self.credit_conn_id,
            "amount": decimal_text(self.amount),
            "dag_id": self.holder.dag_id,
            "run_id": self.holder.run_id,
            "task_id": self.holder.task_id,
            "map_index": self.holder.map_index,
            "balance_before": decimal_text(self.balance_before),
            "reserved_at": iso_utc(self.reserved_at),
            "expires_at": iso_utc(self.expires_at),
            "budget": self.budget,
        }


@dataclass(frozen=True)
class ReserveResult:
    """What one reservation attempt found and did.

    :param balance: the balance compared (fetched under the lock, or shared from a recent fetch)
    :param held_by_others: credits held by the account's other active reservations
    :param others: how many other active reservations there are
    :param reservation: the holder's reservation when it fits (or already held), else ``None``
    :param reused: the holder already held an active reservation (a retry): no second one was taken
    :param fetched: the balance was fetched by this attempt (``False``: a shared recent one was used)
    :param expired: reservations found past their TTL and expired by this attempt
    :param budget: the named budget's state in its current period (before this reservation)
    :param amount: the credits this attempt asked for
    :param alerts: the alerts this reservation made due, claimed in its transaction (the caller sends them)
    """

    balance: CreditBalance
    held_by_others: Decimal
    others: int
    reservation: Reservation | None
    reused: bool = False
    fetched: bool = True
    expired: tuple[str, ...] = ()
    budget: BudgetState | None = None
    amount: Decimal | None = None
    alerts: tuple[Crossing, ...] = ()

    @property
    def free(self) -> Decimal:
        """The balance minus every other active reservation (may be negative)."""
        with exact_arithmetic():
            return self.balance.available - self.held_by_others

    def to_dict(self) -> dict[str, Any]:
        """What the preflight records about the attempt (XCom, trigger events)."""
        return {
            "held_by_others": decimal_text(self.held_by_others),
            "others": self.others,
            "reservation": self.reservation.to_dict() if self.reservation else None,
            "budget": self.budget.to_dict() if self.budget else None,
            "alerts": [c.title for c in self.alerts],
        }


def reservation_from_row(row: Sequence[Any]) -> Reservation:
    """A row selected with :data:`SELECT_RESERVATION`."""
    (
        rid,
        account,
        conn_id,
        amount,
        dag_id,
        run_id,
        task_id,
        map_index,
        before,
        reserved_at,
        expires_at,
        budget,
    ) = row
    reserved, expires = read_ts(reserved_at), read_ts(expires_at)
    assert reserved is not None
    assert expires is not None
    return Reservation(
        rid,
        account,
        conn_id,
        Decimal(str(amount)),
        Holder(dag_id, run_id, task_id, int(map_index)),
        Decimal(str(before)),
        reserved,
        expires,
        budget or None,
    )


def utcnow() -> datetime:
    """Now, as a naive UTC datetime (how every reservation table stores time)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def read_ts(value: Any) -> datetime | None:
    """A stored timestamp (driver datetime or SQLite text) as a naive UTC datetime."""
    moment = parse_stored_time(value)
    return None if moment is None else to_naive_utc(moment)


def iso_utc(moment: datetime) -> str:
    """A naive UTC datetime as ISO 8601 with its offset."""
    return moment.replace(tzinfo=timezone.utc).isoformat()
