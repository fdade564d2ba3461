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

import hashlib
import json
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.errors import CreditConnectionConfigError, ReservationLockTimeout
from airflow_credits_provider.parsing import decimal_text, exact_arithmetic
from airflow_credits_provider.transfers.tables import (
    Column,
    WarehouseTable,
    check_identifier,
    parse_stored_time,
    to_naive_utc,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from airflow_credits_provider.models import CreditBalance

DEFAULT_TABLE = "credit_reservations"
DEFAULT_USAGE_TABLE = "credit_usage"
#: The accounts (lock) table of a reservations table ``t`` is ``t`` + this suffix.
ACCOUNTS_SUFFIX = "_accounts"
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
)
ACCOUNT_COLUMNS = (
    Column("account", "key", False),
    Column("release_seq", "int", False),
    Column("balance", "amount"),
    Column("balance_fetched_at", "ts"),
    Column("balance_seq", "int"),
    Column("balance_json", "text"),
    Column("updated_at", "ts", False),
)
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
    """An active reservation, as read from the table."""

    reservation_id: str
    account: str
    credit_conn_id: str
    amount: Decimal
    holder: Holder
    balance_before: Decimal
    reserved_at: datetime
    expires_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (XCom, trigger events)."""
        return {
            "reservation_id": self.reservation_id,
            "account": self.account,
            "credit_conn_id": self.credit_conn_id,
            "amount": _text(self.amount),
            "dag_id": self.holder.dag_id,
            "run_id": self.holder.run_id,
            "task_id": self.holder.task_id,
            "map_index": self.holder.map_index,
            "balance_before": _text(self.balance_before),
            "reserved_at": _iso(self.reserved_at),
            "expires_at": _iso(self.expires_at),
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
    """

    balance: CreditBalance
    held_by_others: Decimal
    others: int
    reservation: Reservation | None
    reused: bool = False
    fetched: bool = True
    expired: tuple[str, ...] = ()

    @property
    def free(self) -> Decimal:
        """The balance minus every other active reservation (may be negative)."""
        with exact_arithmetic():
            return self.balance.available - self.held_by_others


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
            "balance_after": _text(self.balance_after),
            "spent": _text(self.spent),
            "exact": self.exact,
            "overlapping": self.overlapping,
            "released_at": _iso(self.released_at),
        }


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
    """

    def __init__(
        self,
        hook: Any,
        *,
        table: str = DEFAULT_TABLE,
        schema: str | None = None,
        usage_table: str = DEFAULT_USAGE_TABLE,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
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
            reserve=len(ACCOUNTS_SUFFIX),
            why=f"its lock table is named <table>{ACCOUNTS_SUFFIX}",
        )
        self.hook = hook
        self.dialect = dialect
        self.lock_timeout = float(lock_timeout)
        self.reservations = WarehouseTable(hook, table, schema, RESERVATION_COLUMNS, ("reservation_id",))
        self.accounts = WarehouseTable(
            hook, f"{table}{ACCOUNTS_SUFFIX}", schema, ACCOUNT_COLUMNS, ("account",)
        )
        self.usage = WarehouseTable(
            hook, usage_table, schema, USAGE_COLUMNS, ("reservation_id", "reserved_at")
        )
        self._p = self.reservations.param()
        self._created = False
        self._accounts_seen: set[str] = set()

    # -- schema ------------------------------------------------------------------------------------
    def create(self) -> None:
        """Create the three tables and their indexes when missing (once per store)."""
        if self._created:
            return
        steps: list[Callable[[], None]] = [
            table.create for table in (self.reservations, self.accounts, self.usage)
        ]
        steps.append(lambda: self.reservations.create_index("account_status", ("account", "status")))
        steps.append(lambda: self.reservations.create_index("holder", ("dag_id", "run_id")))
        for step in steps:
            _idempotent_ddl(step)
        self._created = True

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
    ) -> ReserveResult:
        """Reserve ``amount_for(balance)`` credits for ``holder`` if the account's free credits cover it.

        One transaction under the account's lock: expire reservations past their TTL, read the active
        ones, take the account's shared balance when it was fetched less than ``max_age`` seconds ago
        and no reservation was released since (otherwise call ``fetch_balance`` and share the result),
        then insert the reservation only if ``balance - others' reservations >= amount``. A holder that
        already has an active reservation (a retried task) keeps it instead of taking a second; its
        amount is updated to the new estimate when that fits.
        """
        self.create()
        rid = holder.reservation_id
        with self._locked(account) as (cur, acct):
            now = _utcnow()
            active, expired = self._active(cur, account, now)
            if expired:
                self._finish(cur, account, acct, expired, EXPIRED, None, now)
            balance, fetched = self._balance(cur, account, acct, fetch_balance, max_age, now)
            own = next((r for r in active if r.reservation_id == rid), None)
            others = [r for r in active if r.reservation_id != rid]
            with exact_arithmetic():
                held = sum((r.amount for r in others), Decimal(0))
                amount = amount_for(balance)
                fits = balance.available - held >= amount
            reservation = None
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
                )
                self._write(cur, reservation)
            return ReserveResult(
                balance,
                held,
                len(others),
                reservation,
                reused=own is not None,
                fetched=fetched,
                expired=tuple(r.reservation_id for r in expired),
            )

    def release(
        self,
        *,
        dag_id: str,
        run_id: str,
        task_ids: Sequence[str],
        map_index: int | None = None,
        balance_after: Callable[[str], CreditBalance | None] | None = None,
    ) -> list[UsageRecord]:
        """Release the active reservations held by ``task_ids`` in one DAG run; record their usage.

        Idempotent: releasing what is already released (or expired) does nothing and returns nothing.

        :param map_index: only that mapped instance's reservation (``None``: every instance's)
        :param balance_after: called once per credit connection, before the release, for the balance
            after the work (``None`` or an exception: usage is recorded without it)
        """
        self.create()
        held = self._held(dag_id, run_id, task_ids, map_index)
        records: list[UsageRecord] = []
        for account in sorted({r.account for r in held}):
            mine = [r for r in held if r.account == account]
            seq_before = self._release_seq(account)
            after = None
            if balance_after is not None:
                after = balance_after(mine[0].credit_conn_id)
            with self._locked(account) as (cur, acct):
                now = _utcnow()
                unchanged = acct.release_seq == seq_before
                active, expired = self._active(cur, account, now)
                if expired:
                    self._finish(cur, account, acct, expired, EXPIRED, None, now)
                ids = {r.reservation_id for r in mine}
                still = [r for r in active if r.reservation_id in ids]
                if not still:
                    continue
                records += self._finish(cur, account, acct, still, RELEASED, after, now)
                if after is not None and unchanged and not expired:
                    # Fetched after this work ended and with no other release since: it shows every
                    # ended run's spending, so waiters may use it without a request of their own.
                    self._share_balance(cur, account, after, acct.release_seq)
        return records

    def active(self, account: str) -> list[Reservation]:
        """The account's reservations that are active and within their TTL (no lock, for reports)."""
        self.create()
        with closing(self.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
            active, _ = self._active(cur, account, _utcnow())
            return active

    # -- the transaction ---------------------------------------------------------------------------
    @contextmanager
    def _locked(self, account: str) -> Iterator[tuple[Any, _AccountRow]]:
        """One transaction holding ``account``'s lock; commits on success, rolls back on error."""
        self._ensure_account(account)
        conn = self.hook.get_conn()
        try:
            cur = conn.cursor()
            try:
                self._begin(conn, cur)
                row = self._lock_account(cur, account)
                yield cur, row
                if self.dialect == "sqlite":
                    cur.execute("COMMIT")
                else:
                    conn.commit()
            except BaseException as exc:
                _rollback(conn, cur, self.dialect)
                if _is_lock_timeout(exc):
                    raise ReservationLockTimeout(
                        f"Another reserver held the lock on credit account {account!r} for more than "
                        f"{self.lock_timeout:g}s; try again (the task's retries will)."
                    ) from exc
                raise
            finally:
                cur.close()
        finally:
            conn.close()

    def _begin(self, conn: Any, cur: Any) -> None:
        timeout_ms = max(1, int(self.lock_timeout * 1000))
        if self.dialect == "sqlite":
            conn.isolation_level = None  # we issue BEGIN and COMMIT ourselves
            cur.execute(f"PRAGMA busy_timeout = {timeout_ms}")
            cur.execute("BEGIN IMMEDIATE")  # the database's write lock, for the whole transaction
            return
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
        insert = {
            "postgresql": "INSERT INTO {t} ({c}) VALUES ({v}) ON CONFLICT DO NOTHING",
            "mysql": "INSERT IGNORE INTO {t} ({c}) VALUES ({v})",
            "sqlite": "INSERT OR IGNORE INTO {t} ({c}) VALUES ({v})",
        }[self.dialect]
        cols = ("account", "release_seq", "updated_at")
        self.hook.run(
            insert.format(t=self.accounts.qualified, c=self._cols(cols), v=", ".join([self._p] * 3)),
            parameters=self.accounts.adapt((account, 0, _utcnow())),
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
        rows = [_reservation(row) for row in cur.fetchall()]
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
            records.append(_usage(r, outcome, after, overlapping, at))
        acct.release_seq += len(ended)
        accounts = self.accounts
        cur.execute(
            f"UPDATE {accounts.qualified} SET {accounts._escape('release_seq')} = {self._p}, "
            f"{accounts._escape('updated_at')} = {self._p} WHERE {accounts.where_key(('account',))}",
            accounts.adapt((acct.release_seq, now, account)),
        )
        usage = self.usage
        for rec in records:
            r, h = rec.reservation, rec.reservation.holder
            row = (
                r.reservation_id,
                r.reserved_at,
                h.dag_id,
                h.run_id,
                h.task_id,
                h.map_index,
                r.credit_conn_id,
                r.account,
                rec.outcome,
                r.amount,
                r.balance_before,
                rec.balance_after,
                rec.spent,
                int(rec.exact),
                rec.overlapping,
                rec.released_at,
            )
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
            start, stop = _read_ts(reserved_at), _read_ts(released_at)
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
            return [_reservation(row) for row in cur.fetchall()]

    def _release_seq(self, account: str) -> int:
        row = self.hook.get_first(
            f"SELECT {self.accounts._escape('release_seq')} FROM {self.accounts.qualified} "
            f"WHERE {self.accounts.where_key(('account',))}",
            parameters=(account,),
        )
        return int(row[0]) if row else 0

    def _cols(self, names: Sequence[str]) -> str:
        return ", ".join(self.reservations._escape(n) for n in names)


def _reservation(row: Sequence[Any]) -> Reservation:
    rid, account, conn_id, amount, dag_id, run_id, task_id, map_index, before, reserved_at, expires_at = row
    reserved, expires = _read_ts(reserved_at), _read_ts(expires_at)
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
    )


def _usage(
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
        except Exception:
            if attempt == attempts:
                raise
            time.sleep(0.05 * attempt)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _read_ts(value: Any) -> datetime | None:
    """A stored timestamp (driver datetime or SQLite text) as a naive UTC datetime."""
    moment = parse_stored_time(value)
    return None if moment is None else to_naive_utc(moment)


def _iso(moment: datetime) -> str:
    return moment.replace(tzinfo=timezone.utc).isoformat()


_text = decimal_text


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
