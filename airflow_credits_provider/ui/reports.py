"""What each Credits page shows, as JSON-friendly dicts.

The HTML pages render these; the JSON endpoints return them as they are.

Everything here runs for one user: rows are filtered with :mod:`~airflow_credits_provider.ui.access`
before they are put in. A part that cannot be read (the warehouse is down, a table does not exist yet)
becomes a notice naming the connection and the table; the rest of the page still renders.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from airflow_credits_provider.parsing import decimal_text
from airflow_credits_provider.ui import access
from airflow_credits_provider.ui.balances import get_credit_connection, list_credit_connections, one_line
from airflow_credits_provider.ui.queries import OneConnection

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_credits_provider.config import CreditsSettings
    from airflow_credits_provider.runway import HistoryGap
    from airflow_credits_provider.ui.balances import BalanceCache, BalanceResult, CreditConnection
    from airflow_credits_provider.ui.queries import BalanceHistory

log = logging.getLogger(__name__)
T = TypeVar("T")
#: What a table that does not exist yet holds.
_NO_ROWS: list[dict[str, Any]] = []
_RESERVATIONS_FILL = "the first preflight with reserve=True creates the reservation tables"

#: Days of history the overview's sparkline shows.
SPARKLINE_DAYS = 14
#: Days of usage the account page sums per DAG.
USAGE_DAYS = 30
#: Days of alerts the account page lists (a monthly budget's whole period).
ALERT_DAYS = 31


class NotFound(LookupError):
    """No such credit connection or DAG run: the route answers 404."""


class Forbidden(PermissionError):
    """The user may not read this connection or DAG: the route answers 403."""


def _sql_hook(conn_id: str) -> tuple[Any, str | None]:
    """The common-sql hook of ``conn_id``, read where the api-server reads connections.

    A SQLite file that does not exist is reported, not created (SQLite creates a missing file on
    connect, and a page view must not write anything).
    """
    from airflow.models.connection import Connection
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    from airflow_credits_provider.errors import CreditConnectionConfigError
    from airflow_credits_provider.hooks.connections import checked_hook
    from airflow_credits_provider.sql.connections import missing_sqlite_file

    try:
        conn = Connection.get_connection_from_secrets(conn_id)
    except Exception:
        raise CreditConnectionConfigError(
            f"Connection {conn_id!r} is not defined: create it, or correct the [credits] option naming it."
        ) from None
    if missing_sqlite_file(conn):
        raise NothingLandedYet(f"the SQLite file of connection {conn_id!r} does not exist yet")
    return checked_hook(conn_id, conn, DbApiHook, "not a SQL database connection"), conn.password


class NothingLandedYet(LookupError):
    """A source that holds nothing yet: its table (or SQLite file) is created by the first write."""


def is_missing_table(exc: BaseException) -> bool:
    """Whether a driver's error says the table does not exist (PostgreSQL, MySQL/MariaDB, SQLite)."""
    if isinstance(exc, NothingLandedYet):
        return True
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)  # psycopg 3 / psycopg2
    if state == "42P01":
        return True
    args = getattr(exc, "args", ())
    if args and args[0] == 1146:  # MySQL/MariaDB ER_NO_SUCH_TABLE
        return True
    return type(exc).__name__ == "OperationalError" and "no such table" in str(exc)  # SQLite: no code


class Sources:
    """The SQL sources configured in ``[credits]``, for one page.

    Each connection is opened once and each failure reported once: a missing table is not asked for
    again on the same page.
    """

    def __init__(self, settings: CreditsSettings) -> None:
        self.settings = settings
        self._notices: dict[str, None] = {}
        self._notes: dict[str, None] = {}
        self._hooks: dict[str, Any] = {}
        self._failed: dict[tuple[str, str], bool] = {}
        self._passwords: dict[str, str | None] = {}

    @property
    def notices(self) -> list[str]:
        """What could not be read (errors), each once."""
        return list(self._notices)

    @property
    def notes(self) -> list[str]:
        """What holds nothing yet (tables not created), each once."""
        return list(self._notes)

    def read(
        self, conn_id: str, table: str, query: Callable[[Any], T], missing: T | None = None, fills: str = ""
    ) -> T | None:
        """``query(hook)`` on ``conn_id``.

        :param missing: what to return when the table does not exist yet (a note says so)
        :param fills: what creates the table, for that note
        :return: ``None`` (and a notice) when the source cannot be read
        """
        if not conn_id:
            return None
        if (conn_id, table) in self._failed:
            return missing if self._failed[conn_id, table] else None
        try:
            hook = self.hook(conn_id)
            return None if hook is None else query(hook)
        except Exception as exc:
            absent = is_missing_table(exc)
            self._failed[conn_id, table] = absent
            if absent:
                self._notes[
                    f"No table {table!r} on connection {conn_id!r} yet: {fills or 'nothing written'}."
                ] = None
                return missing
            log.warning("Credits page: reading %s on %s failed: %s", table, conn_id, type(exc).__name__)
            message = f"Cannot read table {table!r} on connection {conn_id!r}: {exc}"
            self._notices[one_line(message, self._passwords.get(conn_id))] = None
            return None

    def hook(self, conn_id: str) -> Any | None:
        """The SQL hook of ``conn_id`` (``None``, and a notice, when it cannot be had).

        :raises NothingLandedYet: its SQLite file does not exist yet
        """
        if conn_id not in self._hooks:
            try:
                hook, self._passwords[conn_id] = _sql_hook(conn_id)
                self._hooks[conn_id] = OneConnection(hook)
            except NothingLandedYet:
                raise
            except Exception as exc:
                self._notices[one_line(str(exc))] = None
                self._hooks[conn_id] = None
        return self._hooks[conn_id]

    def close(self) -> None:
        """Close the page's database connections."""
        for hook in self._hooks.values():
            if hook is not None:
                hook.close()

    def history(
        self, info: CreditConnection, vendor: str | None, *, days: int, reserve: Decimal = Decimal(0)
    ) -> BalanceHistory | None:
        """The account's snapshot history from the warehouse."""
        from airflow_credits_provider.ui.queries import BalanceHistory, read_history, snapshots_table

        s = self.settings
        return self.read(
            s.warehouse_conn_id,
            s.snapshots_table,
            lambda hook: read_history(
                snapshots_table(hook, s.snapshots_table, s.warehouse_schema),
                info.conn_id,
                vendor=vendor,
                days=days,
                window=timedelta(days=s.runway_window_days),
                now=datetime.now(timezone.utc),
                reserve=reserve,
            ),
            missing=BalanceHistory(runway_note="No balance snapshots have been landed yet."),
            fills="CreditBalanceToSqlOperator lands balance snapshots there (example_credit_runway)",
        )

    def active(self, **filters: Any) -> list[dict[str, Any]] | None:
        """Active reservations (see :func:`~airflow_credits_provider.ui.queries.active_reservations`)."""
        from airflow_credits_provider.ui.queries import active_reservations

        s = self.settings
        return self.read(
            s.reservations_conn_id,
            s.reservations_table,
            lambda hook: active_reservations(
                hook, s.reservations_table, s.reservations_schema, datetime.now(timezone.utc), **filters
            ),
            missing=_NO_ROWS,
            fills=_RESERVATIONS_FILL,
        )

    def budgets(self, accounts: list[str]) -> list[dict[str, Any]] | None:
        """The budgets drawing on ``accounts`` (none, and no note, when no budget was ever defined)."""
        from airflow_credits_provider.ui.queries import budget_states

        s = self.settings
        if not s.reservations_conn_id:
            return None
        try:
            hook = self.hook(s.reservations_conn_id)
        except NothingLandedYet:
            return None
        if hook is None:
            return None
        try:
            return budget_states(
                hook,
                s.reservations_table,
                s.reservations_schema,
                s.usage_table,
                sorted(set(accounts)),
                datetime.now(timezone.utc),
            )
        except Exception as exc:
            if is_missing_table(exc):
                return _NO_ROWS  # budgets are optional: no table, no budget, nothing to say
            log.warning("Credits page: reading budgets failed: %s", type(exc).__name__)
            self._notices[
                one_line(f"Cannot read the budgets: {exc}", self._passwords.get(s.reservations_conn_id))
            ] = None
            return None

    def alerts(self, subjects: list[str]) -> list[dict[str, Any]] | None:
        """Alerts on ``subjects`` (accounts, budgets) in the last :data:`ALERT_DAYS` days, latest first."""
        from airflow_credits_provider.reservations.models import ALERT_CLAIMS_SUFFIX
        from airflow_credits_provider.ui.queries import recent_alerts

        s = self.settings
        since = datetime.now(timezone.utc) - timedelta(days=ALERT_DAYS)
        return self.read(
            s.reservations_conn_id,
            f"{s.reservations_table}{ALERT_CLAIMS_SUFFIX}",
            lambda hook: recent_alerts(
                hook, s.reservations_table, s.reservations_schema, sorted(set(subjects)), since
            ),
            missing=_NO_ROWS,
            fills="the first reservation after an alert rule is defined creates it (airflow-credits alerts)",
        )


def with_sources(settings: CreditsSettings, parts: Callable[[Sources], T]) -> T:
    """``parts(sources)`` with the page's SQL sources, closed afterwards."""
    sources = Sources(settings)
    try:
        return parts(sources)
    finally:
        sources.close()


def settings_notes(settings: CreditsSettings) -> list[str]:
    """What to set for the parts of the page that are off."""
    notes = []
    if not settings.warehouse_conn_id:
        notes.append(
            "Balance history, runway and spend this month need the warehouse your snapshots land in: "
            "set [credits] warehouse_conn_id (AIRFLOW__CREDITS__WAREHOUSE_CONN_ID)."
        )
    if not settings.reservations_conn_id:
        notes.append(
            "Credits held by reservations and spend per DAG need the reservation tables' connection: "
            "set [credits] reservations_conn_id (AIRFLOW__CREDITS__RESERVATIONS_CONN_ID)."
        )
    return notes


def _has_ledger(info: CreditConnection) -> bool:
    """Whether the connection's vendor exposes a transaction ledger (a hook is built without any I/O)."""
    from airflow_credits_provider.client.ledger import LedgerHook
    from airflow_credits_provider.ui.balances import hook_class

    return isinstance(hook_class(info.conn_type)(info.conn_id), LedgerHook)


def _snapshot_vendor(info: CreditConnection, result: BalanceResult | None) -> str | None:
    """The vendor key the snapshots were landed with: the balance says; named vendors' key is their type."""
    if result is not None and result.balance is not None:
        return result.balance.vendor
    from airflow_credits_provider.vendors import vendor_class

    return None if vendor_class(info.conn_type).generic else info.conn_type


def _gap(history: BalanceHistory | None, result: BalanceResult | None) -> HistoryGap | None:
    """The landed history against the live balance (``None`` without both)."""
    if history is None or history.newest_at is None or history.newest_available is None:
        return None
    if result is None or result.balance is None:
        return None
    from airflow_credits_provider.runway import history_gap

    return history_gap(
        newest_at=history.newest_at,
        newest_balance=history.newest_available,
        spacing=history.spacing,
        live_balance=result.balance.available,
        live_at=result.checked_at,
        burn_per_day=history.runway.burn_per_day if history.runway else Decimal(0),
    )


def _runway(history: BalanceHistory | None, result: BalanceResult | None) -> dict[str, Any] | None:
    """The runway forecast, knowing the live balance's next renewal (fresher than any snapshot's).

    When the history is behind the live balance (:class:`~airflow_credits_provider.runway.HistoryGap`),
    the runway runs down from the live balance at the history's burn rate (``starts_from`` says so).
    """
    if history is None or history.runway is None:
        return None
    runway = history.runway
    gap = _gap(history, result)
    if gap is not None and gap.behind:
        runway = runway.from_balance(gap.live_balance, gap.live_at)
    renewal = result.balance.next_reset_at if result is not None and result.balance else None
    return runway.with_renewal(renewal).to_dict()


def _gap_part(history: BalanceHistory | None, result: BalanceResult | None) -> dict[str, Any] | None:
    gap = _gap(history, result)
    return None if gap is None else gap.to_dict()


def _balance_part(result: BalanceResult) -> dict[str, Any]:
    renewal = result.balance.next_reset_at if result.balance else None
    return {
        "balance": result.balance.to_dict() if result.balance else None,
        "error": result.error,
        "checked_at": result.checked_at.isoformat(),
        "cached": result.cached,
        # A renewal date the vendor reports in the past is stale data, not the next renewal.
        "renewal_past": renewal is not None and renewal < result.checked_at,
    }


def _holds(rows: list[dict[str, Any]], dags: access.ReadableDags) -> dict[str, Any]:
    """Held credits in total (a property of the account) and the holds on DAGs the user may read."""
    from airflow_credits_provider.parsing import exact_arithmetic

    with exact_arithmetic():
        held = sum((Decimal(r["amount"]) for r in rows), Decimal(0))
    visible = [r for r in rows if r["dag_id"] in dags]
    return {
        "held": decimal_text(held),
        "holds": len(rows),
        "reservations": visible,
        "hidden_reservations": len(rows) - len(visible),
    }


def _history_part(history: BalanceHistory | None, result: BalanceResult | None) -> dict[str, Any]:
    if history is None:
        return {"history": None}
    return {
        "history": {
            **history.to_dict(),
            "runway": _runway(history, result),
            "gap": _gap_part(history, result),
        }
    }


async def overview(user: Any, settings: CreditsSettings, cache: BalanceCache) -> dict[str, Any]:
    """Every credit connection the user may read: live balance, runway, holds and spend this month."""
    from starlette.concurrency import run_in_threadpool

    conns = await run_in_threadpool(list_credit_connections)
    allowed = await run_in_threadpool(access.readable_connections, user, [i.conn_id for i, _ in conns])
    readable = [(info, conn) for info, conn in conns if info.conn_id in allowed]
    balances = await cache.get_many([conn for _, conn in readable])

    def sql_parts(sources: Sources) -> dict[str, Any]:
        dags = access.ReadableDags(user)
        active = sources.active(conn_ids=[info.conn_id for info, _ in readable])
        rows = []
        for info, _ in readable:
            result = balances[info.conn_id]
            history = sources.history(info, _snapshot_vendor(info, result), days=SPARKLINE_DAYS)
            row: dict[str, Any] = {
                "conn_id": info.conn_id,
                "conn_type": info.conn_type,
                "vendor_name": info.vendor_name,
                "source": info.source,
                "url": f"accounts/{quote(info.conn_id, safe='')}",
                **_balance_part(result),
                "runway": _runway(history, result),
                "runway_note": history.runway_note if history else None,
                "history_gap": _gap_part(history, result),
                "spent_this_month": history.to_dict()["spent_this_month"] if history else None,
                "sparkline": [d["last"] for d in history.to_dict()["days"]] if history else [],
            }
            if active is not None:
                row.update(_holds([r for r in active if r["credit_conn_id"] == info.conn_id], dags))
            rows.append(row)
        return {
            "connections": rows,
            "hidden_connections": len(conns) - len(readable),
            "warehouse_conn_id": settings.warehouse_conn_id or None,
            "reservations_conn_id": settings.reservations_conn_id or None,
            "notes": settings_notes(settings) + sources.notes,
            "notices": sources.notices,
        }

    return {"user": access.user_name(user), **(await run_in_threadpool(with_sources, settings, sql_parts))}


async def account(
    user: Any, conn_id: str, settings: CreditsSettings, cache: BalanceCache, *, days: int, reserve: Decimal
) -> dict[str, Any]:
    """One account: live balance, history per day, runway, holds, spend per DAG, recent transactions.

    :raises NotFound: no credit connection ``conn_id``
    :raises Forbidden: the user may not read it
    """
    from starlette.concurrency import run_in_threadpool

    found = await run_in_threadpool(get_credit_connection, conn_id)
    if found is None:
        raise NotFound(f"No credit connection {conn_id!r}.")
    info, conn = found
    if not await run_in_threadpool(access.may_read_connection, user, conn_id):
        raise Forbidden(f"You may not read the connection {conn_id!r}.")
    result = await cache.get(conn)

    def sql_parts(sources: Sources) -> dict[str, Any]:
        from airflow_credits_provider.ui.queries import recent_transactions, usage_accounts, usage_by_dag

        s = settings
        vendor = _snapshot_vendor(info, result)
        history = sources.history(info, vendor, days=days, reserve=reserve)
        part: dict[str, Any] = {**_history_part(history, result), "usage_by_dag": None}
        if _has_ledger(info):  # vendors without a ledger API have no transactions to land
            part["transactions"] = sources.read(
                s.warehouse_conn_id,
                s.transactions_table,
                lambda hook: recent_transactions(
                    hook, s.transactions_table, s.warehouse_schema, conn_id, vendor
                ),
                missing=_NO_ROWS,
                fills="CreditTransactionsToSqlOperator lands the ledger there (example_credit_history)",
            )
        else:
            part["transactions"] = None
        active = sources.active(conn_ids=[conn_id])
        if active is not None:
            dags = access.ReadableDags(user)
            part.update(_holds(active, dags))
            since = datetime.now(timezone.utc) - timedelta(days=USAGE_DAYS)
            usage = sources.read(
                s.reservations_conn_id,
                s.usage_table,
                lambda hook: usage_by_dag(hook, s.usage_table, s.reservations_schema, conn_id, since),
                missing=_NO_ROWS,
                fills=_RESERVATIONS_FILL,
            )
            if usage is not None:
                part["usage_by_dag"] = [u for u in usage if u["dag_id"] in dags]
                part["hidden_usage_dags"] = len(usage) - len(part["usage_by_dag"])
        # Budgets name accounts; a connection's are its own id and those its runs reserved on.
        used: list[str] | None = sources.read(
            s.reservations_conn_id,
            s.usage_table,
            lambda hook: usage_accounts(hook, s.usage_table, s.reservations_schema, conn_id),
            missing=list[str](),
            fills=_RESERVATIONS_FILL,
        )
        accounts = [conn_id, *{r["account"] for r in (active or [])}, *(used or [])]
        part["budgets"] = sources.budgets(accounts)
        part["alerts"] = sources.alerts([*accounts, *(b["name"] for b in part["budgets"] or [])])
        part["notes"] = settings_notes(settings) + sources.notes
        part["notices"] = sources.notices
        return part

    return {
        "user": access.user_name(user),
        "conn_id": info.conn_id,
        "conn_type": info.conn_type,
        "vendor_name": info.vendor_name,
        "source": info.source,
        "days": days,
        "reserve": decimal_text(reserve),
        **_balance_part(result),
        **(await run_in_threadpool(with_sources, settings, sql_parts)),
    }


def run(
    user: Any, settings: CreditsSettings, dag_id: str, run_id: str, task_id: str | None, map_index: int | None
) -> dict[str, Any]:
    """What one DAG run (or one task instance of it) reserved, decided and spent.

    :raises Forbidden: the user may not read the DAG
    """
    if not access.may_read_dag(user, dag_id):
        raise Forbidden(f"You may not read the DAG {dag_id!r}.")
    if not _run_exists(dag_id, run_id):
        raise NotFound(f"DAG {dag_id!r} has no run {run_id!r}.")
    return with_sources(
        settings, lambda sources: _run_parts(sources, user, dag_id, run_id, task_id, map_index)
    )


def _run_parts(
    sources: Sources, user: Any, dag_id: str, run_id: str, task_id: str | None, map_index: int | None
) -> dict[str, Any]:
    from airflow_credits_provider.ui.queries import run_usage

    s = settings = sources.settings
    decisions = _decisions(dag_id, run_id, task_id, map_index)
    active = sources.active(dag_id=dag_id, run_id=run_id)
    usage = sources.read(
        s.reservations_conn_id,
        s.usage_table,
        lambda hook: run_usage(hook, s.usage_table, s.reservations_schema, dag_id, run_id, task_id),
        missing=_NO_ROWS,
        fills=_RESERVATIONS_FILL,
    )
    if task_id is not None and active is not None:
        active = [r for r in active if r["task_id"] == task_id]
    if map_index is not None and map_index >= 0:
        active = None if active is None else [r for r in active if r["map_index"] == map_index]
        usage = None if usage is None else [r for r in usage if r["map_index"] == map_index]
    # The run's own figures (cost, reserved, spent) come with the DAG; the account's balance only to
    # those who may read its connection.
    named = {d["conn_id"] for d in decisions} | {u["credit_conn_id"] for u in usage or ()}
    readable = access.readable_connections(user, sorted(c for c in named if c))
    for row in decisions:
        if row["conn_id"] not in readable:
            row.update(dict.fromkeys(_ACCOUNT_FIGURES & set(row)), balance_hidden=True)
    for row in usage or ():
        if row["credit_conn_id"] not in readable:
            row.update(dict.fromkeys(_ACCOUNT_FIGURES & set(row)), balance_hidden=True)
    return {
        "user": access.user_name(user),
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": task_id,
        "map_index": map_index,
        "decisions": decisions,
        "reservations": active,
        "usage": usage,
        "notes": [n for n in settings_notes(settings) if "reservation" in n] + sources.notes,
        "notices": sources.notices,
    }


#: What a run's rows say about the account rather than the run: shown only with access to the connection.
_ACCOUNT_FIGURES = {
    "available",
    "shortfall",
    "reserved_by_others",
    "message",
    "balance_before",
    "balance_after",
}


def _run_exists(dag_id: str, run_id: str) -> bool:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        found = session.scalar(select(DagRun.id).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    return found is not None


def _decisions(dag_id: str, run_id: str, task_id: str | None, map_index: int | None) -> list[dict[str, Any]]:
    """The preflight decisions the run's tasks pushed to XCom (key ``credit_preflight``)."""
    import json

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_credits_provider.operators.preflight import XCOM_KEY
    from airflow_credits_provider.sql.tables import parse_stored_time
    from airflow_credits_provider.ui.queries import iso_time

    query = select(XComModel.task_id, XComModel.map_index, XComModel.value, XComModel.timestamp).where(
        XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == XCOM_KEY
    )
    if task_id is not None:
        query = query.where(XComModel.task_id == task_id)
    if map_index is not None and map_index >= 0:
        query = query.where(XComModel.map_index == map_index)
    with create_session() as session:
        rows = session.execute(query.order_by(XComModel.timestamp)).all()
    decisions = []
    for task, index, value, pushed_at in rows:
        while isinstance(value, (str, bytes)):  # stored as JSON text (once or twice, by version)
            try:
                value = json.loads(value)
            except ValueError:
                break
        if not isinstance(value, dict):
            continue
        decisions.append(
            {
                "task_id": task,
                "map_index": index,
                **{
                    k: value.get(k)
                    for k in (
                        "conn_id",
                        "vendor_name",
                        "passed",
                        "cost",
                        "margin",
                        "required",
                        "available",
                        "shortfall",
                        "reserved_by_others",
                        "message",
                        "checked_at",
                    )
                },
                "reserved": (value.get("reservation") or {}).get("amount")
                if isinstance(value.get("reservation"), dict)
                else None,
                # when the decision was made (several may share the balance's checked_at: a balance
                # fetched once and shared by the reservers, docs/reservations.md)
                "decided_at": iso_time(parse_stored_time(pushed_at)),
                "outcome": _outcome(value),
            }
        )
    return decisions


def _outcome(decision: dict[str, Any]) -> str:
    """``passed``, ``partial``, ``short`` (the balance), ``budget`` (the budget), or ``short, budget``."""
    if decision.get("passed"):
        return "partial" if decision.get("deferred_units") else "passed"
    try:
        required = Decimal(str(decision.get("required")))
        free = Decimal(str(decision.get("available"))) - Decimal(str(decision.get("reserved_by_others") or 0))
        budget = decision.get("budget")
        budget_short = isinstance(budget, dict) and Decimal(str(budget["remaining"])) < required
    except (ArithmeticError, KeyError, TypeError, ValueError):
        return "short"
    if budget_short and free >= required:
        return "budget"
    return "short, budget" if budget_short else "short"
