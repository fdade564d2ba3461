"""What the Credits pages read from SQL: balance history aggregated per day, holds, spend, transactions.

Every query runs through a common-sql hook (PostgreSQL, MySQL/MariaDB, SQLite), reads only, and
aggregates in the database: a year of minute-by-minute snapshots comes back as one row per day. The
drops and rises between consecutive snapshots are summed with ``LAG`` over the rows read, by the same
rule as :func:`airflow_credits_provider.runway.forecast` (drops are spend, rises are refills), so the page's
runway is the operator's. Every amount is exact: PostgreSQL and MySQL/MariaDB sum decimals; SQLite, which
stores amounts as exact text but computes in floating point, sums them as integers in units of their
smallest decimal place (:mod:`airflow_credits_provider.sql.exact_sums`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.parsing import decimal_text
from airflow_credits_provider.runway import DEFAULT_MIN_HISTORY, describe_span, forecast_from_totals
from airflow_credits_provider.sql.exact_sums import AmountScale, amount_scale
from airflow_credits_provider.sql.tables import (
    SNAPSHOT_COLUMNS,
    SNAPSHOT_KEY,
    TRANSACTION_COLUMNS,
    TRANSACTION_KEY,
    WarehouseTable,
    parse_stored_time,
    to_naive_utc,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pendulum import DateTime

    from airflow_credits_provider.runway import Runway


class OneConnection:
    """A common-sql hook whose ``get_first`` and ``get_records`` share one database connection.

    common-sql opens a connection per call (about 9 ms each to PostgreSQL here): a page that reads 20
    accounts would spend most of its time connecting. Everything else (dialect, placeholder) is the
    hook's. A failed query rolls its transaction back, so later reads on the connection still work
    (PostgreSQL refuses every statement in an aborted transaction). Close it when the page is done.
    """

    def __init__(self, hook: Any) -> None:
        self.hook = hook
        self._conn: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.hook, name)

    def get_records(self, sql: str, parameters: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """All rows of ``sql``."""
        if self._conn is None:
            self._conn = self.hook.get_conn()
        cursor = self._conn.cursor()
        try:
            cursor.execute(sql, tuple(parameters or ()))
            return list(cursor.fetchall())
        except Exception:
            self._conn.rollback()
            raise
        finally:
            cursor.close()

    def get_first(self, sql: str, parameters: Sequence[Any] | None = None) -> tuple[Any, ...] | None:
        """The first row of ``sql`` (``None`` without rows)."""
        rows = self.get_records(sql, parameters)
        return rows[0] if rows else None

    def close(self) -> None:
        """Close the connection, if one was opened (read-only: nothing to commit)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()


@dataclass(frozen=True)
class DailyBalance:
    """One day of an account's snapshots (UTC days).

    :param day: the day
    :param last: the available balance at the day's last snapshot
    :param low: the lowest available balance that day; ``high`` the highest
    :param snapshots: how many snapshots the day holds
    :param spent: drops summed over the day's snapshots (from the previous snapshot read)
    :param refilled: rises summed likewise (resets, top-ups); ``refills`` how many rises
    """

    day: date
    last: Decimal
    low: Decimal
    high: Decimal
    snapshots: int
    spent: Decimal
    refilled: Decimal
    refills: int


@dataclass(frozen=True)
class BalanceHistory:
    """An account's landed history as the pages show it.

    :param days: one row per day with snapshots, oldest first
    :param newest_at: the newest snapshot's time (``None``: nothing landed for the account)
    :param runway: the forecast over the runway window, ``None`` with ``runway_note`` saying why
    :param spent_this_month: drops summed since the start of the current month (UTC); ``None`` until
        the month holds two snapshots (spend is a drop between two)
    :param newest_available: the available balance at the newest snapshot
    :param spacing: the mean time between the window's snapshots (``None``: fewer than two)
    """

    days: list[DailyBalance] = field(default_factory=list)
    newest_at: datetime | None = None
    runway: Runway | None = None
    runway_note: str | None = None
    spent_this_month: Decimal | None = None
    newest_available: Decimal | None = None
    spacing: timedelta | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: exact decimal strings, ISO times."""
        return {
            "newest_snapshot_at": iso_time(self.newest_at),
            "newest_snapshot_available": decimal_text(self.newest_available),
            "snapshot_spacing_seconds": None if self.spacing is None else self.spacing.total_seconds(),
            "runway": self.runway.to_dict() if self.runway else None,
            "runway_note": self.runway_note,
            "spent_this_month": decimal_text(self.spent_this_month),
            "days": [
                {
                    "day": d.day.isoformat(),
                    "last": decimal_text(d.last),
                    "low": decimal_text(d.low),
                    "high": decimal_text(d.high),
                    "snapshots": d.snapshots,
                    "spent": decimal_text(d.spent),
                    "refilled": decimal_text(d.refilled),
                    "refills": d.refills,
                }
                for d in self.days
            ],
        }


def snapshots_table(hook: Any, table: str, schema: str | None) -> WarehouseTable:
    """The landed balance snapshots table on ``hook``."""
    return WarehouseTable(hook, table, schema or None, SNAPSHOT_COLUMNS, SNAPSHOT_KEY)


def read_history(
    table: WarehouseTable,
    account: str,
    *,
    vendor: str | None,
    days: int,
    window: timedelta,
    now: datetime,
    reserve: Decimal = Decimal(0),
) -> BalanceHistory:
    """``account``'s snapshots per day over the last ``days``, its runway over ``window``, its month spend.

    :param vendor: the vendor key the snapshots were landed with (uses the table's primary key); ``None``
        reads by account alone
    :param now: the current time (aware): the month whose spend is summed
    """
    hook, p = table.hook, table.param()
    where = f"{table.where_key(('vendor', 'account'))}" if vendor else table.where_key(("account",))
    key = (vendor, account) if vendor else (account,)
    found = hook.get_first(f"SELECT MAX(fetched_at) FROM {table.qualified} WHERE {where}", parameters=key)
    newest = parse_stored_time(found[0] if found else None)
    if newest is None:
        return BalanceHistory(runway_note="No balance snapshots of this account have been landed yet.")
    window_start = newest - window
    month_start = now.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    first_day = datetime.combine((newest - timedelta(days=max(days - 1, 0))).date(), datetime.min.time())
    read_from = min(window_start, month_start, first_day.replace(tzinfo=timezone.utc))
    read_params = (*key, *table.adapt((read_from,)))
    read_where = f"{where} AND fetched_at >= {p}"
    scale = amount_scale(
        hook, table.dialect_name, table.qualified, ("available",), read_where, _naive_all(read_params)
    )
    amount = scale.expr("available")
    drop, rise = "prev - a", "a - prev"
    sql = f"""
SELECT d, COUNT(*), MIN(a), MAX(a), MAX(last_a),
  SUM(CASE WHEN a < prev THEN {drop} ELSE 0 END), SUM(CASE WHEN a > prev THEN {rise} ELSE 0 END),
  SUM(CASE WHEN a > prev THEN 1 ELSE 0 END),
  SUM(CASE WHEN prev_at >= {p} AND a < prev THEN {drop} ELSE 0 END),
  SUM(CASE WHEN prev_at >= {p} AND a > prev THEN {rise} ELSE 0 END),
  SUM(CASE WHEN prev_at >= {p} AND a > prev THEN 1 ELSE 0 END),
  SUM(CASE WHEN fetched_at >= {p} THEN 1 ELSE 0 END),
  MIN(CASE WHEN fetched_at >= {p} THEN fetched_at END),
  SUM(CASE WHEN prev_at >= {p} AND a < prev THEN {drop} ELSE 0 END),
  SUM(CASE WHEN prev_at >= {p} THEN 1 ELSE 0 END)
FROM (
  SELECT fetched_at, {amount} AS a, DATE(fetched_at) AS d,
    LAG({amount}) OVER (ORDER BY fetched_at) AS prev,
    LAG(fetched_at) OVER (ORDER BY fetched_at) AS prev_at,
    FIRST_VALUE({amount}) OVER (PARTITION BY DATE(fetched_at) ORDER BY fetched_at DESC) AS last_a
  FROM {table.qualified} WHERE {read_where}
) x GROUP BY d ORDER BY d"""
    bounds = table.adapt((window_start,) * 5 + (month_start, month_start))
    rows = hook.get_records(sql, parameters=_naive_all((*bounds, *read_params)))
    dec = scale.value
    history = []
    w_spent = w_refilled = month = Decimal(0)
    w_refills = w_count = month_pairs = 0
    w_first: DateTime | None = None
    last = Decimal(0)
    for row in rows:
        day = row[0] if isinstance(row[0], date) else date.fromisoformat(str(row[0])[:10])
        last = dec(row[4])
        if day >= first_day.date():
            history.append(
                DailyBalance(
                    day,
                    last,
                    low=dec(row[2]),
                    high=dec(row[3]),
                    snapshots=int(row[1]),
                    spent=dec(row[5]),
                    refilled=dec(row[6]),
                    refills=int(row[7]),
                )
            )
        w_spent += dec(row[8])
        w_refilled += dec(row[9])
        w_refills += int(row[10] or 0)
        w_count += int(row[11] or 0)
        first = parse_stored_time(row[12])
        if first is not None and (w_first is None or first < w_first):
            w_first = first
        month += dec(row[13])
        month_pairs += int(row[14] or 0)
    runway, note = None, None
    if w_first is None or w_count < 2 or newest - w_first < DEFAULT_MIN_HISTORY:
        span = describe_span(newest - w_first) if w_first is not None else "no time"
        note = (
            f"No forecast yet: {w_count} snapshot(s) spanning {span}; a forecast needs history of at "
            f"least {describe_span(DEFAULT_MIN_HISTORY)} (land CreditBalanceToSqlOperator hourly)."
        )
    else:
        runway = forecast_from_totals(
            balance=last,
            at=newest,
            first_at=w_first,
            spent=w_spent,
            refilled=w_refilled,
            refills=w_refills,
            snapshots=w_count,
            reserve=reserve,
        )
    spacing = (newest - w_first) / (w_count - 1) if w_first is not None and w_count >= 2 else None
    return BalanceHistory(
        history,
        newest,
        runway,
        note,
        month if month_pairs else None,
        newest_available=last,
        spacing=spacing,
    )


def recent_transactions(
    hook: Any, table: str, schema: str | None, account: str, vendor: str | None, limit: int = 20
) -> list[dict[str, Any]]:
    """The account's newest landed transactions (not the raw payload)."""
    target = WarehouseTable(hook, table, schema or None, TRANSACTION_COLUMNS, TRANSACTION_KEY)
    where = target.where_key(("vendor", "account") if vendor else ("account",))
    rows = hook.get_records(
        f"SELECT transaction_id, type, amount, description, created_at FROM {target.qualified} "
        f"WHERE {where} ORDER BY created_at DESC LIMIT {int(limit)}",
        parameters=(vendor, account) if vendor else (account,),
    )
    return [
        {
            "transaction_id": str(r[0]),
            "type": str(r[1]),
            "amount": decimal_text(_dec(r[2])),
            "description": r[3],
            "created_at": iso_time(parse_stored_time(r[4])),
        }
        for r in rows
    ]


# -- reservations and usage -----------------------------------------------------------------------------
_USAGE_FIELDS = (
    "reservation_id",
    "account",
    "credit_conn_id",
    "dag_id",
    "run_id",
    "task_id",
    "map_index",
    "outcome",
    "reserved",
    "balance_before",
    "balance_after",
    "spent",
    "exact",
    "overlapping",
    "reserved_at",
    "released_at",
)


def active_reservations(
    hook: Any,
    table: str,
    schema: str | None,
    now: datetime,
    *,
    conn_ids: Sequence[str] | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    """Reservations that hold credits now (active and within their TTL), newest first.

    :param conn_ids: only those made through these credit connections (whatever account label they used)
    """
    from airflow_credits_provider.reservations.models import RESERVATION_COLUMNS, SELECT_RESERVATION

    target = WarehouseTable(hook, table, schema or None, RESERVATION_COLUMNS, ("reservation_id",))
    p = target.param()
    clauses, params = [f"status = {p}", f"expires_at > {p}"], ["active", now]
    if conn_ids is not None:
        if not conn_ids:
            return []
        clauses.append(f"credit_conn_id IN ({', '.join([p] * len(conn_ids))})")
        params += conn_ids
    for column, value in (("dag_id", dag_id), ("run_id", run_id)):
        if value is not None:
            clauses.append(f"{column} = {p}")
            params.append(value)
    # A table made by a release before budgets has no budget column until a reserver adds it.
    existing = target.existing_columns()
    select = [c for c in SELECT_RESERVATION if c in existing]
    rows = hook.get_records(
        f"SELECT {', '.join(select)} FROM {target.qualified} WHERE {' AND '.join(clauses)} "
        "ORDER BY reserved_at DESC",
        parameters=target.adapt(tuple(_naive(v) for v in params)),
    )
    return [_record(select, row) for row in rows]


def usage_by_dag(
    hook: Any, table: str, schema: str | None, conn_id: str, since: datetime
) -> list[dict[str, Any]]:
    """Spend per DAG through the credit connection ``conn_id`` since ``since``, largest first.

    Read from ``credit_usage``: ``spent`` sums what the usage rows measured (an upper bound where runs
    overlapped); ``unmeasured`` counts released reservations with no measured spend (expired holders,
    refills meanwhile).
    """
    from airflow_credits_provider.reservations.usage import USAGE_COLUMNS

    target = WarehouseTable(hook, table, schema or None, USAGE_COLUMNS, ("reservation_id", "reserved_at"))
    p = target.param()
    where = f"credit_conn_id = {p} AND released_at >= {p}"
    params = target.adapt((conn_id, to_naive_utc(since)))
    scale = amount_scale(hook, target.dialect_name, target.qualified, ("spent", "reserved"), where, params)
    rows = hook.get_records(
        f"SELECT dag_id, COUNT(*), SUM({scale.expr('spent')}), SUM({scale.expr('reserved')}), "
        "SUM(CASE WHEN spent IS NULL THEN 1 ELSE 0 END), SUM(CASE WHEN exact = 0 THEN 1 ELSE 0 END) "
        f"FROM {target.qualified} WHERE {where} GROUP BY dag_id",
        parameters=params,
    )
    result = [
        {
            "dag_id": str(r[0]),
            "runs": int(r[1]),
            "spent": decimal_text(scale.value(r[2])),
            "reserved": decimal_text(scale.value(r[3])),
            "unmeasured": int(r[4] or 0),
            "upper_bounds": int(r[5] or 0),
        }
        for r in rows
    ]
    return sorted(result, key=lambda r: (-Decimal(r["spent"]), r["dag_id"]))


def run_usage(
    hook: Any, table: str, schema: str | None, dag_id: str, run_id: str, task_id: str | None = None
) -> list[dict[str, Any]]:
    """The ``credit_usage`` rows of one DAG run (one task's, with ``task_id``), oldest first."""
    from airflow_credits_provider.reservations.usage import USAGE_COLUMNS

    target = WarehouseTable(hook, table, schema or None, USAGE_COLUMNS, ("reservation_id", "reserved_at"))
    columns = ("dag_id", "run_id", "task_id") if task_id is not None else ("dag_id", "run_id")
    params = (dag_id, run_id, task_id) if task_id is not None else (dag_id, run_id)
    rows = hook.get_records(
        f"SELECT {', '.join(_USAGE_FIELDS)} FROM {target.qualified} WHERE {target.where_key(columns)} "
        "ORDER BY released_at",
        parameters=params,
    )
    return [_record(_USAGE_FIELDS, row) for row in rows]


def _record(names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in zip(names, row, strict=True):
        if name in ("amount", "reserved", "balance_before", "balance_after", "spent"):
            out[name] = None if value is None else decimal_text(_dec(value))
        elif name.endswith("_at"):
            out[name] = iso_time(parse_stored_time(value))
        elif name in ("map_index", "overlapping"):
            out[name] = int(value)
        elif name == "exact":
            out[name] = bool(value)
        else:  # a NULL column (a reservation without a budget) stays null, never the text "None"
            out[name] = None if value is None else str(value)
    return out


def _naive_all(values: Sequence[Any]) -> list[Any]:
    return [_naive(v) for v in values]


def _naive(value: Any) -> Any:
    """Times as naive UTC (how the tables store them); anything else as it is."""
    return to_naive_utc(value) if isinstance(value, datetime) else value


def _dec(value: Any) -> Decimal:
    """A single stored amount (not a sum) as an exact decimal."""
    return _AS_STORED.value(value)


_AS_STORED = AmountScale()


def iso_time(value: datetime | None) -> str | None:
    """A time as ISO 8601 text (``None`` stays ``None``), as the pages' JSON gives times."""
    return None if value is None else value.isoformat()


def budget_states(
    hook: Any,
    table: str,
    schema: str | None,
    usage_table: str,
    accounts: Sequence[str],
    now: datetime,
) -> list[dict[str, Any]]:
    """The budgets drawing on ``accounts`` this period: cap, spent, held, remaining (read only).

    The same rule as the reservation's check (:mod:`airflow_credits_provider.reservations.usage`): spent
    from ``credit_usage`` in the budget's current period, held by its active reservations within TTL.
    """
    from airflow_credits_provider.budgets import BudgetState, to_utc_naive
    from airflow_credits_provider.reservations.models import BUDGETS_SUFFIX, RESERVATION_COLUMNS
    from airflow_credits_provider.reservations.registry import BUDGET_COLUMNS, budget_from_row
    from airflow_credits_provider.reservations.usage import USAGE_COLUMNS, budget_spend_query, sum_charges

    if not accounts:
        return []
    budgets = WarehouseTable(hook, f"{table}{BUDGETS_SUFFIX}", schema or None, BUDGET_COLUMNS, ("name",))
    p = budgets.param()
    rows = hook.get_records(
        "SELECT name, account, cap, period, timezone, description FROM "
        f"{budgets.qualified} WHERE account IN ({', '.join([p] * len(accounts))}) ORDER BY name",
        parameters=tuple(accounts),
    )
    if not rows:
        return []
    reservations = WarehouseTable(hook, table, schema or None, RESERVATION_COLUMNS, ("reservation_id",))
    usage = WarehouseTable(
        hook, usage_table, schema or None, USAGE_COLUMNS, ("reservation_id", "reserved_at")
    )
    held: dict[tuple[str, str], list[Decimal]] = {}
    if "budget" in reservations.existing_columns():
        q = reservations.param()
        for name, account, amount in hook.get_records(
            f"SELECT budget, account, amount FROM {reservations.qualified} WHERE status = {q} "
            f"AND expires_at > {q} AND budget IS NOT NULL",
            parameters=reservations.adapt(("active", to_naive_utc(now))),
        ):
            held.setdefault((str(name), str(account)), []).append(Decimal(str(amount)))
    measured = "budget" in usage.existing_columns()  # usage rows of a release before budgets have none
    result = []
    for row in rows:
        spec = budget_from_row(row)
        start, end = spec.period_bounds(now)
        sql, params = budget_spend_query(usage, spec.name, to_utc_naive(start), to_utc_naive(end))
        spent = sum_charges(hook.get_records(sql, parameters=params)) if measured else Decimal(0)
        amounts = held.get((spec.name, spec.account), [])
        state = BudgetState(spec, start, end, spent, sum(amounts, Decimal(0)), len(amounts))
        used = (state.spent + state.held) / spec.cap * 100 if spec.cap else Decimal(100)
        result.append({**state.to_dict(), "used_percent": float(min(used, Decimal(100)))})
    return result


def usage_accounts(hook: Any, table: str, schema: str | None, conn_id: str) -> list[str]:
    """The reservation accounts runs reserved on through the credit connection ``conn_id`` (ended ones)."""
    from airflow_credits_provider.reservations.usage import USAGE_COLUMNS

    target = WarehouseTable(hook, table, schema or None, USAGE_COLUMNS, ("reservation_id", "reserved_at"))
    rows = hook.get_records(
        f"SELECT DISTINCT account FROM {target.qualified} WHERE credit_conn_id = {target.param()}",
        parameters=(conn_id,),
    )
    return sorted(str(r[0]) for r in rows)


# -- alerts ------------------------------------------------------------------------------------------
def recent_alerts(
    hook: Any, table: str, schema: str | None, subjects: Sequence[str], since: datetime, limit: int = 50
) -> list[dict[str, Any]]:
    """The alerts claimed since ``since`` on ``subjects`` (accounts and budgets), newest first."""
    from airflow_credits_provider.reservations.alert_claims import CLAIM_COLUMNS, CLOSED, KEY
    from airflow_credits_provider.reservations.models import ALERT_CLAIMS_SUFFIX

    if not subjects:
        return []
    claims = WarehouseTable(hook, f"{table}{ALERT_CLAIMS_SUFFIX}", schema or None, CLAIM_COLUMNS, KEY)
    p = claims.param()
    rows = hook.get_records(
        "SELECT rule, subject, kind, event, status, title, claimed_at, sent_at, attempts, last_error, "
        f"next_attempt_at FROM {claims.qualified} WHERE subject IN ({', '.join([p] * len(subjects))}) "
        f"AND claimed_at >= {p} AND status <> {p} ORDER BY claimed_at DESC LIMIT {int(limit)}",
        parameters=claims.adapt((*subjects, to_naive_utc(since), CLOSED)),
    )
    return [
        {
            "rule": r[0],
            "subject": r[1],
            "kind": r[2],
            "event": r[3],
            "status": r[4],
            "title": r[5],
            "claimed_at": iso_time(parse_stored_time(r[6])),
            "sent_at": iso_time(parse_stored_time(r[7])),
            "attempts": int(r[8] or 0),
            "last_error": r[9],
            "next_attempt_at": iso_time(parse_stored_time(r[10])),
        }
        for r in rows
    ]
