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
only while its ``balance_seq`` is current. Times (TTLs, budget periods, the shared balance's age) are
the reservation database's clock, read in the statement that takes the lock: machines whose clocks
disagree still agree on what has expired and which period a reservation charges.

Each thread keeps one connection to a PostgreSQL or MySQL/MariaDB reservation database between
transactions (:class:`~airflow_credits_provider.sql.kept_connection.KeptConnection`; a SQLite file is
opened per transaction). A reservation reads the
definitions it needs (its budget, the alert rules) before it takes the lock, then holds the lock for
three statements when nothing expired: the active holds summed by the database, the reservation's row,
commit. Nothing that can happen outside the lock happens inside it.

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
from airflow_credits_provider.parsing import decimal_text, exact_arithmetic
from airflow_credits_provider.reservations.alert_checks import claim_in_transaction, rules_for
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
    reservation_from_row,
)
from airflow_credits_provider.reservations.registry import BudgetRegistry
from airflow_credits_provider.reservations.usage import (
    USAGE_COLUMNS,
    USAGE_KEY,
    budget_spend,
    usage_record,
)
from airflow_credits_provider.sql.clock import DatabaseClock, now_sql, read_now
from airflow_credits_provider.sql.connections import wait_on_sqlite_locks
from airflow_credits_provider.sql.kept_connection import KeptConnection, is_disconnect
from airflow_credits_provider.sql.tables import WarehouseTable, check_identifier

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from datetime import datetime

    from airflow_credits_provider.alerts import AlertRule, Crossing
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
    """The locked account: its release counter, the balance shared under its lock, and the time."""

    release_seq: int
    shared: CreditBalance | None
    shared_seq: int | None
    shared_at: datetime | None
    now: datetime
    #: What the transaction read before it took the lock (definitions: the budget, the alert rules).
    prepared: Any = None
    #: Budgets' spend this period (``"<budget> <period start>"``: decimal text), valid at ``release_seq``.
    spend: dict[str, str] = dataclasses.field(default_factory=dict)
    spend_changed: bool = False


@dataclass
class _Holds:
    """What the account's active reservations hold, without the reserving holder's own.

    :param held: the others' credits, within their TTL
    :param holders: how many others
    :param by_budget: the same per budget they draw on
    :param own: the holder's own reservation (a retry), when within its TTL
    :param expired: reservations past their TTL, still marked active (to expire now)
    """

    held: Decimal
    holders: int
    by_budget: dict[str | None, tuple[Decimal, int]]
    own: Reservation | None
    expired: list[Reservation]

    @classmethod
    def of(cls, active: Sequence[Reservation], expired: list[Reservation], rid: str | None) -> _Holds:
        """From the reservations themselves (SQLite, whose ``SUM`` rounds through a float; releases)."""
        by_budget: dict[str | None, tuple[Decimal, int]] = {}
        own = None
        with exact_arithmetic():
            for r in active:
                if r.reservation_id == rid:
                    own = r
                    continue
                held, count = by_budget.get(r.budget, (Decimal(0), 0))
                by_budget[r.budget] = (held + r.amount, count + 1)
            held = sum((h for h, _ in by_budget.values()), Decimal(0))
        return cls(held, sum(c for _, c in by_budget.values()), by_budget, own, expired)

    def budget(self, name: str) -> tuple[Decimal, int]:
        """What the others drawing on budget ``name`` hold, and how many they are."""
        return self.by_budget.get(name, (Decimal(0), 0))


class ReservationStore:
    """Reservations of credits in a SQL database, atomic across processes and machines.

    :param hook: a common-sql ``DbApiHook`` on PostgreSQL, MySQL/MariaDB or SQLite
    :param table: the reservations table (its lock table is ``<table>_accounts``)
    :param schema: the schema of all three tables, or ``None`` for the connection's default
    :param usage_table: where released reservations are recorded
    :param lock_timeout: seconds to wait for another reserver's lock on the same account
    :param clock: returns "now" as a naive UTC datetime; ``None`` (the default): the reservation
        database's clock, the same for every machine (tests pass one to move across periods and TTLs)
    """

    def __init__(
        self,
        hook: Any,
        *,
        table: str = DEFAULT_TABLE,
        schema: str | None = None,
        usage_table: str = DEFAULT_USAGE_TABLE,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        clock: Callable[[], datetime] | None = None,
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
        self.clock: Callable[[], datetime] = clock or DatabaseClock(hook)
        self._fixed_clock = clock is not None
        self.alert_claims = AlertClaims(hook, table=table, schema=schema, clock=self.clock)
        self._p = self.reservations.param()
        self._conn = KeptConnection(hook.get_conn, _session_setup(self.dialect, self.lock_timeout))
        self._sql: dict[str, str] = {}
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
        confirm_refusal: bool = False,
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

        With ``confirm_refusal`` (a one-shot decision: the operator fails, skips or sizes a partial run
        on it), a shared balance may grant the reservation but never refuse or shrink it: when it falls
        short, the balance is fetched from the vendor (still under the lock) and the reservation sized
        on that. A top-up is then seen at once; a waiting sensor, which tries again anyway, keeps using
        the shared balance.
        """
        self.create()
        rid = holder.reservation_id

        def definitions(cur: Any) -> tuple[Budget | None, list[AlertRule]]:
            """Read before the lock: nothing in them depends on the account's state."""
            spec = self._budget(cur, budget, account) if budget else None
            return spec, rules_for(self.alert_rules, cur, account, [budget] if budget else [])

        with self._locked(account, definitions) as (cur, acct):
            now = acct.now
            spec, rules = acct.prepared
            holds = self._holds(cur, account, rid, now, budget)
            if holds.expired:
                self._finish(cur, account, acct, holds.expired, EXPIRED, None, now)
            own, held = holds.own, holds.held
            state = self._budget_state(cur, spec, *holds.budget(spec.name), now, acct) if spec else None
            balance, fetched = self._balance(cur, account, acct, fetch_balance, max_age, now)
            while True:
                with exact_arithmetic():
                    amount = amount_for(balance)
                    room = balance.available - held
                    if state is not None:
                        room = min(room, state.remaining)
                    short = amount > room
                    if short and amount_within is not None:
                        amount = amount_within(room)
                    fits = amount <= room
                if not (short and confirm_refusal and not fetched):
                    break
                balance, fetched = self._balance(cur, account, acct, fetch_balance, 0.0, now)
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
                    found=rules,
                )
            self._keep_spend(cur, account, acct)
            return ReserveResult(
                balance,
                held,
                holds.holders,
                reservation,
                reused=own is not None,
                fetched=fetched,
                expired=tuple(r.reservation_id for r in holds.expired),
                budget=state,
                amount=amount,
                alerts=tuple(alerts),
            )

    def budget_state(self, name: str) -> BudgetState:
        """The budget ``name`` now: spent and held this period (no lock; reports)."""
        self.create()
        with closing(self.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
            spec, now = self.budgets.read(cur, name), self.clock()
            active, expired = self._active(cur, spec.account, now)
            return self._budget_state(cur, spec, *_Holds.of(active, expired, None).budget(name), now)

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
        self,
        cur: Any,
        spec: Budget,
        held: Decimal,
        holders: int,
        now: datetime,
        acct: _AccountRow | None = None,
    ) -> BudgetState:
        """What ``spec`` spent this period (usage rows), with what its other reservations hold.

        With the locked account ``acct``: the spend is summed once per release. Only a release (or an
        expiry) writes usage rows, and each bumps the account's ``release_seq``: a sum stored on the
        account row at the current ``release_seq`` is still exact, and saves the reservations after it
        the sum over the period's usage rows.
        """
        start, end = spec.period_bounds(now)
        key = f"{spec.name} {start.isoformat()}"
        if acct is not None and key in acct.spend:
            spent = Decimal(acct.spend[key])
        else:
            spent = budget_spend(cur, self.usage, spec.name, to_utc_naive(start), to_utc_naive(end))
            if acct is not None:
                acct.spend[key] = str(decimal_text(spent))
                acct.spend_changed = True
        return BudgetState(spec, start, end, spent, held, holders)

    def _keep_spend(self, cur: Any, account: str, acct: _AccountRow) -> None:
        """Store the budgets' sums made in this transaction on the account row, for the next reserver."""
        if not acct.spend_changed:
            return
        table = self.accounts
        cur.execute(
            f"UPDATE {table.qualified} SET {self._cols(('spend_seq',))} = {self._p}, "
            f"{self._cols(('spend_json',))} = {self._p} WHERE {table.where_key(('account',))}",
            (acct.release_seq, json.dumps(acct.spend), account),
        )

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
                now = acct.now
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
                records.alerts += self._claim_after_release(cur, account, acct, still, left, after, now)
                self._keep_spend(cur, account, acct)
                if after is not None and unchanged and not expired:
                    # Fetched after this work ended and with no other release since: it shows every
                    # ended run's spending, so waiters may use it without a request of their own.
                    self._share_balance(cur, account, after, acct.release_seq, now)
        return records

    def _claim_after_release(
        self,
        cur: Any,
        account: str,
        acct: _AccountRow,
        ended: list[Reservation],
        left: list[Reservation],
        after: CreditBalance | None,
        now: datetime,
    ) -> list[Crossing]:
        """Claim the alerts a release makes due: its budgets' spend, the account's free credits after it."""
        states = []
        holds = _Holds.of(left, [], None)
        for name in sorted({r.budget for r in ended if r.budget}):
            try:
                spec = self.budgets.read(cur, name)
            except BudgetError:  # deleted since the reservation: nothing to warn about
                continue
            states.append(self._budget_state(cur, spec, *holds.budget(name), now, acct))
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
    def _locked(
        self, account: str, prepare: Callable[[Any], Any] | None = None
    ) -> Iterator[tuple[Any, _AccountRow]]:
        """One transaction holding ``account``'s lock; commits on success, rolls back on error.

        Runs on the thread's kept connection (opened when there is none, or after an error). A kept
        connection the server closed meanwhile fails at the lock, before anything changed: the lock is
        taken again once on a new connection. A lock wait longer than ``lock_timeout``, in the
        transaction or in creating the account's row before it, is :class:`ReservationLockTimeout`.

        :param prepare: reads on the same connection before the lock is taken (its result is the
            account row's ``prepared``): work that need not hold other reservers back (on SQLite,
            where a read outside the lock waits for the writer anyway, just after it)
        """
        try:
            self._ensure_account(account)
            for attempt in (1, 2):
                conn, reused = self._conn.get()
                cur = conn.cursor()
                try:
                    # SQLite's readers wait for a committing writer: there a read before the lock
                    # would only add a wait, so it reads under it.
                    early = prepare is not None and self.dialect != "sqlite"
                    prepared = prepare(cur) if early and prepare is not None else None
                    row = self._begin_and_lock(cur, account)
                    row.prepared = prepare(cur) if prepare is not None and not early else prepared
                    break
                except Exception as exc:
                    self._abandon(conn, cur)
                    if reused and attempt == 1 and is_disconnect(exc) and not _is_lock_timeout(exc):
                        continue
                    raise
            try:
                yield cur, row
                if self.dialect == "mysql":
                    conn.commit()
                else:
                    cur.execute("COMMIT")
                cur.close()
                if self.dialect == "sqlite":
                    # Opening a SQLite file costs little, and its connections may only be closed by the
                    # thread that opened them: keep none past the transaction.
                    self._conn.discard()
            except BaseException:
                self._abandon(conn, cur)
                raise
        except Exception as exc:
            if _is_lock_timeout(exc):
                raise self._lock_timeout_error(f"credit account {account!r}") from None
            raise

    def _abandon(self, conn: Any, cur: Any) -> None:
        """Roll back and drop the thread's connection: after an error its state is not known."""
        _rollback(conn, cur, self.dialect)
        self._conn.discard()

    def _begin_and_lock(self, cur: Any, account: str) -> _AccountRow:
        """Begin, take the account's row lock, and read its row and the database's clock."""
        if "lock" not in self._sql:
            table = self.accounts
            names = ("release_seq", "balance_seq", "balance_json", "balance_fetched_at")
            cols = self._cols((*names, "spend_seq", "spend_json"))
            lock = "" if self.dialect == "sqlite" else " FOR UPDATE"
            self._sql["lock"] = (
                f"SELECT {cols}, {now_sql(self.dialect)} "
                f"FROM {table.qualified} WHERE {table.where_key(('account',))}{lock}"
            )
        select = self._sql["lock"]
        if self.dialect == "sqlite":
            cur.execute("BEGIN IMMEDIATE")  # the database's write lock, for the whole transaction
            cur.execute(select, (account,))
        elif self.dialect == "postgresql":
            timeout_ms = max(1, int(self.lock_timeout * 1000))
            cur.execute(f"BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = {timeout_ms}")
            cur.execute(select, (account,))
        else:
            cur.execute(select, (account,))
        seq, balance_seq, balance_json, shared_at, spend_seq, spend_json, now = cur.fetchone()
        shared = None
        if balance_json:
            from airflow_credits_provider.models import CreditBalance

            shared = CreditBalance.from_dict(json.loads(balance_json))
        return _AccountRow(
            int(seq),
            shared,
            None if balance_seq is None else int(balance_seq),
            None if shared_at is None else read_now(shared_at),
            self.clock() if self._fixed_clock else read_now(now),
            spend=json.loads(spend_json)
            if spend_json and spend_seq is not None and int(spend_seq) == seq
            else {},
        )

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

    def _holds(self, cur: Any, account: str, rid: str, now: datetime, budget: str | None) -> _Holds:
        """The account's active holds besides ``rid``'s, summed by the database (one statement).

        With them, what the others drawing on ``budget`` hold. The reservations themselves are read
        only when one is past its TTL or is ``rid``'s own (a retry). SQLite sums decimal text through
        floats: there each active hold's amount is read (not the whole reservation) and summed here.
        """
        table, p, e = self.reservations, self._p, self.reservations._escape
        if "holds" not in self._sql:
            other = f"{e('expires_at')} > {p} AND {e('reservation_id')} <> {p}"
            mine = f"{other} AND {e('budget')} = {p}"
            where = f"WHERE {table.where_key(('account', 'status'))}"
            self._sql["holds"] = (
                f"SELECT {e('budget')}, {e('amount')}, CASE WHEN {other} THEN 1 ELSE 0 END "
                f"FROM {table.qualified} {where}"
                if self.dialect == "sqlite"
                else f"SELECT SUM(CASE WHEN {other} THEN {e('amount')} END), "
                f"COUNT(CASE WHEN {other} THEN 1 END), COUNT(*), "
                f"SUM(CASE WHEN {mine} THEN {e('amount')} END), COUNT(CASE WHEN {mine} THEN 1 END) "
                f"FROM {table.qualified} {where}"
            )
            self._sql["own_or_expired"] = (
                f"SELECT {self._cols(SELECT_RESERVATION)} FROM {table.qualified} {where} "
                f"AND ({e('expires_at')} <= {p} OR {e('reservation_id')} = {p})"
            )
        by_budget: dict[str | None, tuple[Decimal, int]] = {}
        with exact_arithmetic():
            if self.dialect == "sqlite":
                cur.execute(self._sql["holds"], table.adapt((now, rid, account, ACTIVE)))
                rest = 0
                for name, amount, counted in cur.fetchall():
                    if not counted:
                        rest += 1
                        continue
                    held, holders = by_budget.get(name, (Decimal(0), 0))
                    by_budget[name] = (held + Decimal(amount), holders + 1)
                held_total = sum((h for h, _ in by_budget.values()), Decimal(0))
                count = sum(c for _, c in by_budget.values())
            else:
                pair: tuple[Any, ...] = (now, rid)
                in_budget_params = (*pair, budget)
                params = (*pair, *pair, *in_budget_params, *in_budget_params, account, ACTIVE)
                cur.execute(self._sql["holds"], params)
                held, holders, everyone, in_budget, budget_holders = cur.fetchone()
                held_total, count = Decimal(str(held or 0)), int(holders)
                rest = int(everyone) - count
                if budget is not None and budget_holders:
                    by_budget[budget] = (Decimal(str(in_budget)), int(budget_holders))
        own, expired = None, []
        if rest:
            cur.execute(self._sql["own_or_expired"], table.adapt((account, ACTIVE, now, rid)))
            for r in map(reservation_from_row, cur.fetchall()):
                if r.expires_at <= now:
                    expired.append(r)
                else:
                    own = r
        return _Holds(held_total, count, by_budget, own, expired)

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
            and acct.shared_at is not None
            and now - acct.shared_at < timedelta(seconds=max_age)
        ):
            return shared, False
        balance = fetch_balance()
        self._share_balance(cur, account, balance, acct.release_seq, now)
        return balance, True

    def _share_balance(self, cur: Any, account: str, balance: CreditBalance, seq: int, now: datetime) -> None:
        """Store ``balance`` as the account's shared one, valid while the release counter is ``seq``.

        Its age is judged on the database's clock: ``balance_fetched_at`` is the transaction's ``now``.
        """
        table = self.accounts
        cols = ("balance", "balance_fetched_at", "balance_seq", "balance_json")
        sets = ", ".join(f"{table._escape(c)} = {self._p}" for c in cols)
        cur.execute(
            f"UPDATE {table.qualified} SET {sets} WHERE {table.where_key(('account',))}",
            table.adapt(
                (
                    balance.available,
                    now,
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
        cur.execute(table.upsert_sql, table.adapt(row))

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
        acct.spend, acct.spend_changed = {}, False  # summed before these usage rows
        accounts = self.accounts
        cur.execute(
            f"UPDATE {accounts.qualified} SET {accounts._escape('release_seq')} = {self._p}, "
            f"{accounts._escape('updated_at')} = {self._p} WHERE {accounts.where_key(('account',))}",
            accounts.adapt((acct.release_seq, now, account)),
        )
        usage = self.usage
        for rec in records:
            cur.execute(usage.upsert_sql, usage.adapt(rec.row()))
        return records

    def _overlapping(self, cur: Any, r: Reservation, end: datetime) -> int:
        """How many other reservations on the account were held at some time between ``r``'s start and end."""
        table, p, e = self.reservations, self._p, self.reservations._escape
        cur.execute(
            f"SELECT COUNT(*) FROM {table.qualified} WHERE {table.where_key(('account',))} "
            f"AND {e('reservation_id')} <> {p} AND {e('reserved_at')} < {p} "
            f"AND ({e('status')} = {p} OR {e('released_at')} > {p})",
            table.adapt((r.account, r.reservation_id, end, ACTIVE, r.reserved_at)),
        )
        return int(cur.fetchone()[0])

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

    def close(self) -> None:
        """Close the connections the store keeps (it opens new ones when used again)."""
        self._conn.close()


def _session_setup(dialect: str, lock_timeout: float) -> Callable[[Any], None]:
    """Session settings of a new kept connection: who issues ``BEGIN``, lock waits, isolation."""

    def set_up(conn: Any) -> None:
        if dialect == "sqlite":  # its lock wait is set on every connection (wait_on_sqlite_locks)
            conn.isolation_level = None  # we issue BEGIN and COMMIT ourselves
        elif dialect == "postgresql":
            # We send BEGIN with the lock wait (SET LOCAL: nothing outlives the transaction, as
            # PgBouncer's transaction pooling needs) in one round trip, and COMMIT.
            conn.autocommit = True
            if hasattr(conn, "prepare_threshold"):
                # psycopg 3 prepares a statement on the server after its fifth run on a connection;
                # behind PgBouncer in transaction mode the next transaction may be on another server
                # connection, without it ("prepared statement _pg3_0 does not exist").
                conn.prepare_threshold = None
        else:
            conn.autocommit(False)
            with closing(conn.cursor()) as cur:
                cur.execute(f"SET SESSION innodb_lock_wait_timeout = {max(1, round(lock_timeout))}")
                # Each statement sees what committed before it: after the lock, every other reserver's rows.
                cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            conn.commit()

    return set_up


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
        elif dialect == "postgresql":  # autocommit: the transaction is the BEGIN we sent
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
