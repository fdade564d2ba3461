"""Credit reservations: hold credits against a vendor account so that concurrent runs never spend the same.

A reservation holds an amount of credits against an *account* (by default the credit connection's id)
until it is released or its TTL passes. The credits a run may start with are the account's live
balance minus every active reservation on it. Reservations live in three tables reached through any
common-sql hook (PostgreSQL, MySQL/MariaDB or SQLite), created on first use:

``credit_reservations``
    one row per reservation (active, released or expired), identified by a hash of the holder:
    ``dag_id``, ``run_id``, ``task_id`` and ``map_index`` of the task that reserved.
``credit_reservations_accounts``
    one row per account: the lock every reserver takes, the last balance fetched under it (shared by
    every waiter, so N waiting tasks make about one vendor request per ``max_age``; a release shares the
    balance it fetched after the work) and a release counter that tells whether that balance predates a
    release.
``credit_usage``
    one row per released (or expired) reservation: who held what, and what the account's balance did.
``credit_reservations_budgets``
    the budgets (:mod:`~airflow_credits_provider.budgets`): spend caps per period that a
    reservation naming one must also fit, checked in the same transaction.

The guarantee (see docs/reservations.md): when every spender on an account reserves before spending
and releases after, the sum of the active reservations never exceeds what the account could pay.
Reserving is one database transaction that takes the account's row lock (``SELECT ... FOR UPDATE`` on
PostgreSQL and MySQL/MariaDB, ``BEGIN IMMEDIATE`` on SQLite), expires reservations past their TTL,
reads the active ones, compares with a balance fetched under the lock (or one fetched under it less
than ``max_age`` seconds ago with no release since), and inserts the reservation only if it fits.

A balance fetched before a release may not show the released run's spending, so it is never used
after one: each release (or expiry) bumps the account's ``release_seq``, and a stored balance is used
only while its ``balance_seq`` is current. This needs no clock agreement between machines; only TTLs
compare clock times.

Airflow-free: works on any DB-API hook that has ``get_conn()``, ``run()``, ``get_first()``,
``placeholder``, ``dialect_name`` and ``dialect.escape_word`` (common-sql's ``DbApiHook``).
"""

from __future__ import annotations

import dataclasses
import json
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.budgets import BudgetState, to_utc_naive
from airflow_credits_provider.errors import BudgetError, CreditConnectionConfigError, ReservationLockTimeout
from airflow_credits_provider.parsing import exact_arithmetic
from airflow_credits_provider.reservations.alert_checks import claim_in_transaction
from airflow_credits_provider.reservations.alert_claims import AlertClaims
from airflow_credits_provider.reservations.alert_rules import AlertRuleRegistry
from airflow_credits_provider.reservations.models import (
    ACCOUNT_COLUMNS,
    ACCOUNTS_SUFFIX,
    ACTIVE,
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_TABLE,
    DEFAULT_TTL,
    DEFAULT_USAGE_TABLE,
    EXPIRED,
    LONGEST_SUFFIX,
    RELEASED,
    RESERVATION_COLUMNS,
    SELECT_RESERVATION,
    Reservation,
    ReserveResult,
    read_ts,
    reservation_from_row,
    utcnow,
)
from airflow_credits_provider.reservations.registry import BudgetRegistry
from airflow_credits_provider.reservations.usage import (
    USAGE_COLUMNS,
    USAGE_KEY,
    budget_spend,
    usage_record,
)
from airflow_credits_provider.sql.connections import wait_on_sqlite_locks
from airflow_credits_provider.sql.tables import WarehouseTable, check_identifier, to_naive_utc

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from datetime import datetime

    from airflow_credits_provider.alerts import Crossing
    from airflow_credits_provider.budgets import Budget
    from airflow_credits_provider.models import CreditBalance
    from airflow_credits_provider.reservations.models import Holder
    from airflow_credits_provider.reservations.usage import (
        UsageRecord,
    )


class Released(list["UsageRecord"]):
    """What :meth:`ReservationStore.release` recorded (a list of usage records) and the alerts it claimed."""

    alerts: list[Crossing]

    def __init__(self) -> None:
        super().__init__()
        self.alerts = []


@dataclass
class _AccountRow:
    """The locked account: its release counter and the balance shared under its lock."""

    release_seq: int
    shared: CreditBalance | None
    shared_seq: int | None


class ReservationStore:
    """Reservations of credits in a SQL database, atomic across processes and machines.

    :param hook: a common-sql ``DbApiHook`` on PostgreSQL, MySQL/MariaDB or SQLite
    :param table: the reservations table (its lock table is ``<table>_accounts``)
    :param schema: the schema of all three tables, or ``None`` for the connection's default
    :param usage_table: where released reservations are recorded
    :param lock_timeout: seconds to wait for another reserver's lock on the same account
    :param clock: returns "now" as a naive UTC datetime (tests move it across budget periods and TTLs)
    """

    def __init__(
        self,
        hook: Any,
        *,
        table: str = DEFAULT_TABLE,
        schema: str | None = None,
        usage_table: str = DEFAULT_USAGE_TABLE,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        dialect = str(getattr(hook, "dialect_name", "") or "")
        if dialect not in ("postgresql", "mysql", "sqlite"):
            raise CreditConnectionConfigError(
                f"Credit reservations need PostgreSQL, MySQL/MariaDB or SQLite; the reservation connection "
                f"is {dialect or type(hook).__name__!r}."
            )
        check_identifier(
            table,
            "Reservation table name",
            reserve=len(LONGEST_SUFFIX),
            why=f"its alert claims table is named <table>{LONGEST_SUFFIX}",
        )
        if hasattr(hook, "log_sql"):
            hook.log_sql = False  # common-sql logs each statement: the tables' DDL would fill task logs
        self.hook = hook
        self.dialect = dialect
        self.lock_timeout = float(lock_timeout)
        wait_on_sqlite_locks(hook, self.lock_timeout)  # every statement, not only the locking transaction
        self.reservations = WarehouseTable(hook, table, schema, RESERVATION_COLUMNS, ("reservation_id",))
        self.accounts = WarehouseTable(
            hook, f"{table}{ACCOUNTS_SUFFIX}", schema, ACCOUNT_COLUMNS, ("account",)
        )
        self.usage = WarehouseTable(hook, usage_table, schema, USAGE_COLUMNS, USAGE_KEY)
        self.budgets = BudgetRegistry(hook, table=table, schema=schema)
        self.alert_rules = AlertRuleRegistry(hook, table=table, schema=schema)
        self.alert_claims = AlertClaims(hook, table=table, schema=schema, clock=clock)
        self.clock = clock
        self._p = self.reservations.param()
        self._created = False
        self._accounts_seen: set[str] = set()

    # -- schema ------------------------------------------------------------------------------------
    def create(self) -> None:
        """Create the six tables and their indexes when missing; add columns a newer release has (once)."""
        if self._created:
            return
        steps: list[Callable[[], None]] = [
            table.create for table in (self.reservations, self.accounts, self.usage)
        ]
        steps += [self.budgets.create, self.alert_rules.create, self.alert_claims.create]
        steps.append(lambda: self.reservations.create_index("account_status", ("account", "status")))
        steps.append(lambda: self.reservations.create_index("holder", ("dag_id", "run_id")))
        steps.append(lambda: self.usage.create_index("budget_period", ("budget", "reserved_at")))
        try:
            for step in steps:
                _idempotent_ddl(step)
        except Exception as exc:
            if _is_lock_timeout(exc):
                raise self._lock_timeout_error("the reservation database (creating its tables)") from None
            raise
        self._created = True

    def _lock_timeout_error(self, what: str) -> ReservationLockTimeout:
        return ReservationLockTimeout(
            f"Another reserver held the lock on {what} for more than {self.lock_timeout:g}s; nothing "
            "was changed. Try again later (the task's retries do, when it has any), or raise "
            "lock_timeout."
        )

    # -- reserving ---------------------------------------------------------------------------------
    def reserve(
        self,
        *,
        account: str,
        credit_conn_id: str,
        holder: Holder,
        amount_for: Callable[[CreditBalance], Decimal],
        fetch_balance: Callable[[], CreditBalance],
        ttl: timedelta = DEFAULT_TTL,
        max_age: float = 0.0,
        budget: str | None = None,
        amount_within: Callable[[Decimal], Decimal] | None = None,
    ) -> ReserveResult:
        """Reserve ``amount_for(balance)`` credits for ``holder`` if the account's free credits cover it.

        One transaction under the account's lock: expire reservations past their TTL, read the active
        ones, take the account's shared balance when it was fetched less than ``max_age`` seconds ago
        and no reservation was released since (otherwise call ``fetch_balance`` and share the result),
        then insert the reservation only if ``balance - others' reservations >= amount``. A holder that
        already has an active reservation (a retried task) keeps it instead of taking a second; its
        amount is updated to the new estimate when that fits.

        With ``budget``, the reservation must also fit the budget's remaining credits this period
        (:class:`~airflow_credits_provider.budgets.BudgetState`), read under the same lock:
        every reserver of a budget draws on the budget's one account, so the account's lock serialises
        them. An unknown budget, or one on another account, raises
        :class:`~airflow_credits_provider.errors.BudgetError` before the vendor is called.

        With ``amount_within`` (a partial run), when ``amount_for(balance)`` does not fit, it is called
        with the *room* (the free credits, or the budget's remaining ones when fewer) for the amount to
        reserve instead (:meth:`UnitPlan.amount_within
        <airflow_credits_provider.partial.UnitPlan.amount_within>`); that is reserved when it fits. Under
        the lock, so each of many partial reservers gets what was free at its turn.
        """
        self.create()
        rid = holder.reservation_id
        with self._locked(account) as (cur, acct):
            now = self.clock()
            spec = self._budget(cur, budget, account) if budget else None
            active, expired = self._active(cur, account, now)
            if expired:
                self._finish(cur, account, acct, expired, EXPIRED, None, now)
            balance, fetched = self._balance(cur, account, acct, fetch_balance, max_age, now)
            own = next((r for r in active if r.reservation_id == rid), None)
            others = [r for r in active if r.reservation_id != rid]
            state = self._budget_state(cur, spec, others, now) if spec else None
            with exact_arithmetic():
                held = sum((r.amount for r in others), Decimal(0))
                amount = amount_for(balance)
                room = balance.available - held
                if state is not None:
                    room = min(room, state.remaining)
                if amount > room and amount_within is not None:
                    amount = amount_within(room)
                fits = amount <= room
            reservation, alerts = None, []
            if fits:  # a retry whose new estimate no longer fits keeps its row until released or expired
                reservation = Reservation(
                    rid,
                    account,
                    credit_conn_id,
                    amount,
                    holder,
                    own.balance_before if own else balance.available,
                    own.reserved_at if own else now,
                    now + ttl,
                    budget,
                )
                self._write(cur, reservation)
                with exact_arithmetic():
                    held_after = held + amount
                    after = (
                        []
                        if state is None
                        else [dataclasses.replace(state, held=state.held + amount, holders=state.holders + 1)]
                    )
                alerts = claim_in_transaction(
                    self.alert_rules,
                    self.alert_claims,
                    cur,
                    account=account,
                    budgets=after,
                    free=balance.available - held_after,
                    balance=balance,
                    held=held_after,
                    now=now,
                )
            return ReserveResult(
                balance,
                held,
                len(others),
                reservation,
                reused=own is not None,
                fetched=fetched,
                expired=tuple(r.reservation_id for r in expired),
                budget=state,
                amount=amount,
                alerts=tuple(alerts),
            )

    def budget_state(self, name: str) -> BudgetState:
        """The budget ``name`` now: spent and held this period (no lock; reports)."""
        self.create()
        with closing(self.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
            spec, now = self.budgets.read(cur, name), self.clock()
            active, _ = self._active(cur, spec.account, now)
            return self._budget_state(cur, spec, active, now)

    def _budget(self, cur: Any, name: str, account: str) -> Budget:
        spec = self.budgets.read(cur, name)
        if spec.account != account:
            raise BudgetError(
                f"Budget {name!r} draws on account {spec.account!r}, but this task reserves on account "
                f"{account!r}. Name a budget of that account, or pass account={spec.account!r} if the "
                "connection belongs to it."
            )
        return spec

    def _budget_state(
        self, cur: Any, spec: Budget, others: Sequence[Reservation], now: datetime
    ) -> BudgetState:
        """What ``spec`` spent this period (usage rows) and what its other active reservations hold."""
        start, end = spec.period_bounds(now)
        spent = budget_spend(cur, self.usage, spec.name, to_utc_naive(start), to_utc_naive(end))
        mine = [r for r in others if r.budget == spec.name]
        with exact_arithmetic():
            held = sum((r.amount for r in mine), Decimal(0))
        return BudgetState(spec, start, end, spent, held, len(mine))

    def release(
        self,
        *,
        dag_id: str,
        run_id: str,
        task_ids: Sequence[str],
        map_index: int | None = None,
        balance_after: Callable[[str], CreditBalance | None] | None = None,
    ) -> Released:
        """Release the active reservations held by ``task_ids`` in one DAG run; record their usage.

        Idempotent: releasing what is already released (or expired) does nothing and returns nothing.
        The alerts the release makes due (a budget's measured spend, the balance after the work) are
        claimed in its transaction and listed in the result's ``alerts``, for the caller to deliver.

        :param map_index: only that mapped instance's reservation (``None``: every instance's)
        :param balance_after: called once per credit connection, before the release, for the balance
            after the work (``None`` or an exception: usage is recorded without it)
        """
        self.create()
        held = self._held(dag_id, run_id, task_ids, map_index)
        records = Released()
        for account in sorted({r.account for r in held}):
            mine = [r for r in held if r.account == account]
            seq_before = self._release_seq(account)
            after = None
            if balance_after is not None:
                after = balance_after(mine[0].credit_conn_id)
            with self._locked(account) as (cur, acct):
                now = self.clock()
                unchanged = acct.release_seq == seq_before
                active, expired = self._active(cur, account, now)
                if expired:
                    self._finish(cur, account, acct, expired, EXPIRED, None, now)
                ids = {r.reservation_id for r in mine}
                still = [r for r in active if r.reservation_id in ids]
                if not still:
                    continue
                records += self._finish(cur, account, acct, still, RELEASED, after, now)
                left = [r for r in active if r.reservation_id not in ids]
                records.alerts += self._claim_after_release(cur, account, still, left, after, now)
                if after is not None and unchanged and not expired:
                    # Fetched after this work ended and with no other release since: it shows every
                    # ended run's spending, so waiters may use it without a request of their own.
                    self._share_balance(cur, account, after, acct.release_seq)
        return records

    def _claim_after_release(
        self,
        cur: Any,
        account: str,
        ended: list[Reservation],
        left: list[Reservation],
        after: CreditBalance | None,
        now: datetime,
    ) -> list[Crossing]:
        """Claim the alerts a release makes due: its budgets' spend, the account's free credits after it."""
        states = []
        for name in sorted({r.budget for r in ended if r.budget}):
            try:
                spec = self.budgets.read(cur, name)
            except BudgetError:  # deleted since the reservation: nothing to warn about
                continue
            states.append(self._budget_state(cur, spec, left, now))
        with exact_arithmetic():
            held = sum((r.amount for r in left), Decimal(0))
        return claim_in_transaction(
            self.alert_rules,
            self.alert_claims,
            cur,
            account=account,
            budgets=states,
            free=None if after is None else after.available - held,
            balance=after,
            held=held,
            now=now,
        )

    def known_account(self, account: str) -> bool:
        """Whether a reservation was ever made on ``account`` (its lock row exists)."""
        self.create()
        found = self.hook.get_first(
            f"SELECT 1 FROM {self.accounts.qualified} WHERE {self.accounts.where_key(('account',))}",
            parameters=(account,),
        )
        return bool(found)

    def active(self, account: str) -> list[Reservation]:
        """The account's reservations that are active and within their TTL (no lock, for reports)."""
        self.create()
        with closing(self.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
            active, _ = self._active(cur, account, self.clock())
            return active

    # -- the transaction ---------------------------------------------------------------------------
    @contextmanager
    def _locked(self, account: str) -> Iterator[tuple[Any, _AccountRow]]:
        """One transaction holding ``account``'s lock; commits on success, rolls back on error.

        A lock wait longer than ``lock_timeout``, in the transaction or in creating the account's row
        before it, is :class:`ReservationLockTimeout`.
        """
        try:
            self._ensure_account(account)
            with closing(self.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
                try:
                    self._begin(conn, cur)
                    row = self._lock_account(cur, account)
                    yield cur, row
                    if self.dialect == "sqlite":
                        cur.execute("COMMIT")
                    else:
                        conn.commit()
                except BaseException:
                    _rollback(conn, cur, self.dialect)
                    raise
        except Exception as exc:
            if _is_lock_timeout(exc):
                raise self._lock_timeout_error(f"credit account {account!r}") from None
            raise

    def _begin(self, conn: Any, cur: Any) -> None:
        if self.dialect == "sqlite":  # its lock wait is set on every connection (wait_on_sqlite_locks)
            conn.isolation_level = None  # we issue BEGIN and COMMIT ourselves
            cur.execute("BEGIN IMMEDIATE")  # the database's write lock, for the whole transaction
            return
        timeout_ms = max(1, int(self.lock_timeout * 1000))
        if hasattr(self.hook, "set_autocommit"):
            self.hook.set_autocommit(conn, False)
        if self.dialect == "postgresql":
            # Each statement sees what committed before it: after the lock, every other reserver's rows.
            cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cur.execute(f"SET LOCAL lock_timeout = {timeout_ms}")
        else:
            cur.execute(f"SET SESSION innodb_lock_wait_timeout = {max(1, round(self.lock_timeout))}")
            cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")

    def _ensure_account(self, account: str) -> None:
        """Create the account's lock row when missing, in a transaction of its own.

        Inserting it inside the locking transaction would make concurrent first reservers deadlock on
        MySQL/MariaDB (the duplicate-key check takes a shared lock that the ``FOR UPDATE`` then waits on).
        """
        if account in self._accounts_seen:
            return
        exists = self.hook.get_first(  # a read: no write lock when the row is there (the usual case)
            f"SELECT 1 FROM {self.accounts.qualified} WHERE {self.accounts.where_key(('account',))}",
            parameters=(account,),
        )
        if exists:
            self._accounts_seen.add(account)
            return
        self.hook.run(
            self.accounts.insert_ignore_sql(("account", "release_seq", "updated_at")),
            parameters=self.accounts.adapt((account, 0, self.clock())),
        )
        self._accounts_seen.add(account)

    def _lock_account(self, cur: Any, account: str) -> _AccountRow:
        table = self.accounts
        lock = "" if self.dialect == "sqlite" else " FOR UPDATE"
        cur.execute(
            f"SELECT {self._cols(('release_seq', 'balance_seq', 'balance_json'))} "
            f"FROM {table.qualified} WHERE {table.where_key(('account',))}{lock}",
            (account,),
        )
        seq, balance_seq, balance_json = cur.fetchone()
        shared = None
        if balance_json:
            from airflow_credits_provider.models import CreditBalance

            shared = CreditBalance.from_dict(json.loads(balance_json))
        return _AccountRow(int(seq), shared, None if balance_seq is None else int(balance_seq))

    def _active(self, cur: Any, account: str, now: datetime) -> tuple[list[Reservation], list[Reservation]]:
        """The account's active reservations: ``(within TTL, past TTL)``."""
        table = self.reservations
        cur.execute(
            f"SELECT {self._cols(SELECT_RESERVATION)} FROM {table.qualified} "
            f"WHERE {table.where_key(('account', 'status'))}",
            (account, ACTIVE),
        )
        rows = [reservation_from_row(row) for row in cur.fetchall()]
        return [r for r in rows if r.expires_at > now], [r for r in rows if r.expires_at <= now]

    def _balance(
        self,
        cur: Any,
        account: str,
        acct: _AccountRow,
        fetch_balance: Callable[[], CreditBalance],
        max_age: float,
        now: datetime,
    ) -> tuple[CreditBalance, bool]:
        """The account's shared balance if recent and not older than the last release, else a fresh one."""
        shared = acct.shared
        if (
            max_age > 0
            and shared is not None
            and acct.shared_seq == acct.release_seq
            and now - to_naive_utc(shared.fetched_at) < timedelta(seconds=max_age)
        ):
            return shared, False
        balance = fetch_balance()
        self._share_balance(cur, account, balance, acct.release_seq)
        return balance, True

    def _share_balance(self, cur: Any, account: str, balance: CreditBalance, seq: int) -> None:
        """Store ``balance`` as the account's shared one, valid while the release counter is ``seq``."""
        table = self.accounts
        cols = ("balance", "balance_fetched_at", "balance_seq", "balance_json")
        sets = ", ".join(f"{table._escape(c)} = {self._p}" for c in cols)
        cur.execute(
            f"UPDATE {table.qualified} SET {sets} WHERE {table.where_key(('account',))}",
            table.adapt(
                (
                    balance.available,
                    to_naive_utc(balance.fetched_at),
                    seq,
                    json.dumps(balance.to_dict()),
                    account,
                )
            ),
        )

    def _write(self, cur: Any, reservation: Reservation) -> None:
        table = self.reservations
        h = reservation.holder
        row = (
            reservation.reservation_id,
            reservation.account,
            reservation.credit_conn_id,
            ACTIVE,
            reservation.amount,
            h.dag_id,
            h.run_id,
            h.task_id,
            h.map_index,
            reservation.balance_before,
            reservation.reserved_at,
            reservation.expires_at,
            None,
            reservation.budget,
        )
        # Replaces a retry's active row, or the released row of a holder that runs again (a cleared run).
        cur.execute(
            f"DELETE FROM {table.qualified} WHERE {table.where_key(('reservation_id',))}",
            (reservation.reservation_id,),
        )
        cur.execute(
            f"INSERT INTO {table.qualified} ({self._cols(table.column_names)}) "
            f"VALUES ({', '.join([self._p] * len(row))})",
            table.adapt(row),
        )

    def _finish(
        self,
        cur: Any,
        account: str,
        acct: _AccountRow,
        ended: list[Reservation],
        outcome: str,
        after: CreditBalance | None,
        now: datetime,
    ) -> list[UsageRecord]:
        """Mark ``ended`` released (or expired), bump the account's release counter, record usage."""
        table = self.reservations
        records = []
        for r in ended:
            at = now if outcome == RELEASED else r.expires_at
            cur.execute(
                f"UPDATE {table.qualified} SET {table._escape('status')} = {self._p}, "
                f"{table._escape('released_at')} = {self._p} WHERE {table.where_key(('reservation_id',))}",
                table.adapt((outcome, at, r.reservation_id)),
            )
            overlapping = self._overlapping(cur, r, at)
            records.append(usage_record(r, outcome, after, overlapping, at))
        acct.release_seq += len(ended)
        accounts = self.accounts
        cur.execute(
            f"UPDATE {accounts.qualified} SET {accounts._escape('release_seq')} = {self._p}, "
            f"{accounts._escape('updated_at')} = {self._p} WHERE {accounts.where_key(('account',))}",
            accounts.adapt((acct.release_seq, now, account)),
        )
        usage = self.usage
        for rec in records:
            r = rec.reservation
            row = rec.row()
            cur.execute(
                f"DELETE FROM {usage.qualified} WHERE {usage.where_key(usage.key)}",
                usage.adapt((r.reservation_id, r.reserved_at)),
            )
            cur.execute(
                f"INSERT INTO {usage.qualified} ({self._cols(usage.column_names)}) "
                f"VALUES ({', '.join([self._p] * len(row))})",
                usage.adapt(row),
            )
        return records

    def _overlapping(self, cur: Any, r: Reservation, end: datetime) -> int:
        """How many other reservations on the account were held at some time between ``r``'s start and end."""
        table, p = self.reservations, self._p
        cur.execute(
            f"SELECT {self._cols(('reserved_at', 'released_at', 'status'))} FROM {table.qualified} "
            f"WHERE {table.where_key(('account',))} AND {table._escape('reservation_id')} <> {p}",
            (r.account, r.reservation_id),
        )
        count = 0
        for reserved_at, released_at, status in cur.fetchall():
            start, stop = read_ts(reserved_at), read_ts(released_at)
            assert start is not None
            if start < end and (status == ACTIVE or (stop is not None and stop > r.reserved_at)):
                count += 1
        return count

    def _held(
        self, dag_id: str, run_id: str, task_ids: Sequence[str], map_index: int | None
    ) -> list[Reservation]:
        table = self.reservations
        where = f"{table.where_key(('dag_id', 'run_id', 'status'))}"
        where += f" AND {table._escape('task_id')} IN ({', '.join([self._p] * len(task_ids))})"
        params: tuple[Any, ...] = (dag_id, run_id, ACTIVE, *task_ids)
        if map_index is not None:
            where += f" AND {table._escape('map_index')} = {self._p}"
            params += (map_index,)
        with closing(self.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
            cur.execute(
                f"SELECT {self._cols(SELECT_RESERVATION)} FROM {table.qualified} WHERE {where}", params
            )
            return [reservation_from_row(row) for row in cur.fetchall()]

    def _release_seq(self, account: str) -> int:
        row = self.hook.get_first(
            f"SELECT {self.accounts._escape('release_seq')} FROM {self.accounts.qualified} "
            f"WHERE {self.accounts.where_key(('account',))}",
            parameters=(account,),
        )
        return int(row[0]) if row else 0

    def _cols(self, names: Sequence[str]) -> str:
        return ", ".join(self.reservations._escape(n) for n in names)


def _idempotent_ddl(step: Callable[[], None], attempts: int = 5) -> None:
    """Run a ``... IF NOT EXISTS`` statement that concurrent first users may race on.

    PostgreSQL's ``CREATE TABLE IF NOT EXISTS`` is not atomic: two sessions creating the same table at
    once can fail one with a unique violation in its catalog. Trying again sees the table and succeeds.
    """
    import time

    for attempt in range(1, attempts + 1):
        try:
            step()
            return
        except Exception as exc:
            if attempt == attempts or _is_lock_timeout(exc):  # a lock wait already took lock_timeout
                raise
            time.sleep(0.05 * attempt)


def _rollback(conn: Any, cur: Any, dialect: str) -> None:
    try:
        if dialect == "sqlite":
            if conn.in_transaction:
                cur.execute("ROLLBACK")
        else:
            conn.rollback()
    except Exception:  # noqa: BLE001 - the connection is closed next; the original error matters
        pass


def _is_lock_timeout(exc: BaseException) -> bool:
    """PostgreSQL ``lock_not_available``, MySQL/MariaDB error 1205, SQLite ``database is locked``."""
    if getattr(exc, "sqlstate", None) == "55P03" or getattr(exc, "pgcode", None) == "55P03":
        return True
    args = getattr(exc, "args", ())
    if args and args[0] == 1205:
        return True
    return "database is locked" in str(exc)
