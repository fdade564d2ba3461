"""CreditRunwayOperator: when will an account run dry, from its balance snapshots; warn, fail or call back."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.compat import BaseOperator

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from airflow_credits_provider.compat import Context
    from airflow_credits_provider.runway import Snapshot

DEFAULT_SNAPSHOT_TABLE = "credit_balance_snapshots"
ON_SHORT = ("warn", "fail", "skip")


def read_snapshots(
    sql_conn_id: str,
    account: str,
    *,
    table: str = DEFAULT_SNAPSHOT_TABLE,
    schema: str | None = None,
    window: timedelta = timedelta(days=14),
    log_sql: bool = True,
) -> list[Snapshot]:
    """The account's balance snapshots from the last ``window`` before its newest one, oldest first.

    Reads what ``CreditBalanceToSqlOperator`` landed (``account`` is its account label, by default the
    credit connection's id) through any common-sql connection.

    :param log_sql: let the SQL hook log its statements (common-sql's ``log_sql``); the CLI turns it off

    :raises MissingDatabaseFileError: the connection's SQLite file does not exist (none is created)
    :raises SnapshotHistoryError: the table cannot be read (missing, wrong schema, database error)
    :raises NotEnoughHistoryError: the table holds no snapshot of ``account`` (the message names the
        accounts it does hold: a typo and "nothing landed yet" look different)
    """
    from decimal import Decimal

    from airflow_credits_provider.errors import NotEnoughHistoryError, SnapshotHistoryError, truncate
    from airflow_credits_provider.runway import Snapshot
    from airflow_credits_provider.sql.connections import sql_hook_for
    from airflow_credits_provider.sql.landing import LandingTarget
    from airflow_credits_provider.sql.tables import parse_stored_time, to_naive_utc

    hook = sql_hook_for(sql_conn_id, read_only=True)
    hook.log_sql = log_sql
    snapshots = LandingTarget.snapshots(hook, table, schema).data
    p = snapshots.param()
    accounts: list[str] = []  # the accounts the table holds, read only when ``account`` is not one
    rows: list[tuple[Any, Any, Any]] = []
    try:
        newest = hook.get_first(
            f"SELECT MAX(fetched_at) FROM {snapshots.qualified} WHERE account = {p}", parameters=(account,)
        )
        if not newest or newest[0] is None:
            sql = f"SELECT DISTINCT account FROM {snapshots.qualified} ORDER BY account"
            accounts = [str(row[0]) for row in hook.get_records(sql)]
        else:
            newest_at = parse_stored_time(newest[0])
            assert newest_at is not None
            rows = hook.get_records(
                f"SELECT fetched_at, available, next_reset_at FROM {snapshots.qualified} "
                f"WHERE account = {p} AND fetched_at >= {p} ORDER BY fetched_at",
                parameters=snapshots.adapt((account, to_naive_utc(newest_at - window))),
            )
    except Exception as exc:  # any driver's error: name the table and what to do
        raise SnapshotHistoryError(
            f"Cannot read balance snapshots from {snapshots.qualified} on connection {sql_conn_id!r} "
            f"({type(exc).__name__}: {truncate(str(exc))}). Land them with CreditBalanceToSqlOperator "
            "(it creates the table), or pass the table and schema it landed into."
        ) from exc
    if not rows:
        held = (
            f"it holds accounts {', '.join(repr(a) for a in accounts[:10])}"
            + (f" and {len(accounts) - 10} more" if len(accounts) > 10 else "")
            if accounts
            else "it is empty"
        )
        raise NotEnoughHistoryError(
            f"No balance snapshots of account {account!r} in {snapshots.qualified} on connection "
            f"{sql_conn_id!r} ({held}). Land them with CreditBalanceToSqlOperator, whose account label "
            "is the credit connection's id unless you set one."
        )
    return [
        Snapshot(parse_stored_time(at), Decimal(str(available)), parse_stored_time(renews))  # type: ignore[arg-type]  # fetched_at is NOT NULL
        for at, available, renews in rows
    ]


class CreditRunwayOperator(BaseOperator):
    """Forecast when a credit account runs dry (or reaches a reserve) from its landed balance snapshots.

    Reads the account's snapshots from the last ``window_days`` (``credit_balance_snapshots``, landed by
    :class:`~airflow_credits_provider.transfers.credit_balance_to_sql.CreditBalanceToSqlOperator` on a
    schedule), computes the burn per day and the forecast date (see
    :mod:`~airflow_credits_provider.runway` for the rule: resets and top-ups are not negative spend) and
    returns the numbers (XCom). When the runway is shorter than ``min_days`` it warns, fails or skips
    (``on_short``), and calls ``on_short_callback(runway=..., context=...)`` first.

    When the vendor reports its next renewal (the newest snapshot's ``next_reset_at``: LocalLeads,
    TrueMail, generic presets with a ``reset_path``), the forecast says whether the account runs dry
    before it (``renews_at``, ``dry_before_renewal``, ``days_dry_before_renewal`` in XCom), and
    ``min_days`` judges the runway up to the renewal: an account renewed before it runs dry is not
    short. A renewal date already past at the newest snapshot is stale vendor data and is ignored
    (``renewal_stale``).

    Until the window holds snapshots spanning ``min_history_hours`` (the first runs of a new snapshot
    schedule), or when the table holds none of the account, there is no burn rate: the task logs why
    and returns ``{"forecast": False, ...}`` without judging the runway. A table that cannot be read
    fails the task (:class:`SnapshotHistoryError`).

    :param sql_conn_id: the common-sql connection holding the snapshots (templated)
    :param account: the account label the snapshots were landed with (default: ``credit_conn_id`` there,
        so usually the credit connection's id) (templated)
    :param table: the snapshots table (templated)
    :param schema: its schema (templated)
    :param min_days: the shortest acceptable runway, in days, up to the vendor's renewal (``None``: only
        report)
    :param reserve: forecast the date the balance reaches this many credits instead of zero
    :param window_days: days of history used
    :param min_history_hours: the shortest span of history to forecast from (below it: no forecast yet)
    :param on_short: ``"warn"`` (default), ``"fail"`` or ``"skip"`` when the runway is below ``min_days``
    :param on_short_callback: called as ``on_short_callback(runway=Runway, context=...)`` when it is
    """

    template_fields: Sequence[str] = ("sql_conn_id", "account", "table", "schema")
    ui_color = "#fdf1d6"

    def __init__(
        self,
        *,
        sql_conn_id: str,
        account: str,
        table: str = DEFAULT_SNAPSHOT_TABLE,
        schema: str | None = None,
        min_days: float | None = None,
        reserve: float | str = 0,
        window_days: float = 14,
        min_history_hours: float = 1,
        on_short: str = "warn",
        on_short_callback: Callable[..., Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_short not in ON_SHORT:
            raise ValueError(f"on_short must be one of {', '.join(ON_SHORT)}, got {on_short!r}")
        if not 0 < window_days < float("inf"):
            raise ValueError(f"window_days must be a positive number of days, got {window_days!r}")
        if not 0 <= min_history_hours < float("inf"):
            raise ValueError(f"min_history_hours must be a number of hours, got {min_history_hours!r}")
        if min_days is not None and not min_days >= 0:
            raise ValueError(f"min_days must be a number of days (or None), got {min_days!r}")
        from airflow_credits_provider.parsing import to_amount

        to_amount(reserve, "reserve", kwargs.get("task_id"))  # a bad reserve fails at DAG parse time
        self.sql_conn_id = sql_conn_id
        self.account = account
        self.table = table
        self.schema = schema
        self.min_days = min_days
        self.reserve = reserve
        self.window_days = window_days
        self.min_history_hours = min_history_hours
        self.on_short = on_short
        self.on_short_callback = on_short_callback

    def execute(self, context: Context) -> dict[str, Any]:
        """Forecast, log it, act on a short runway, return the numbers."""
        from decimal import Decimal

        from airflow_credits_provider.compat import AirflowFailException, AirflowSkipException
        from airflow_credits_provider.errors import NotEnoughHistoryError
        from airflow_credits_provider.parsing import to_amount
        from airflow_credits_provider.runway import forecast

        reserve = to_amount(self.reserve, "reserve", self.task_id)  # checked in __init__ already
        window = timedelta(days=self.window_days)
        try:
            snapshots = read_snapshots(
                self.sql_conn_id, self.account, table=self.table, schema=self.schema, window=window
            )
            runway = forecast(
                snapshots,
                reserve=reserve,
                window=window,
                min_history=timedelta(hours=self.min_history_hours),
                setting_names={"window": "window_days", "min_history": "min_history_hours"},
            )
        except NotEnoughHistoryError as exc:
            self.log.warning("No runway for %r yet: %s", self.account, exc)
            return {"account": self.account, "forecast": False, "snapshots": exc.snapshots, "short": False}
        self.log.info("Runway of %r: %s", self.account, runway.describe())
        result = {"account": self.account, "forecast": True, **runway.to_dict(), "short": False}
        if self.min_days is not None and runway.is_short(Decimal(str(self.min_days))):
            result["short"] = True
            before = " and before its renewal" if runway.dry_before_renewal else ""
            message = (
                f"Account {self.account!r} runs out in less than {self.min_days:g} days{before}: "
                f"{runway.describe()}"
            )
            if self.on_short_callback is not None:
                self.on_short_callback(runway=runway, context=context)
            if self.on_short == "fail":
                raise AirflowFailException(message)
            if self.on_short == "skip":
                raise AirflowSkipException(message)
            self.log.warning(message)
        return result
