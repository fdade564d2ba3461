"""Claimed alerts: one row per warning ever due, in ``<reservations table>_alert_claims``.

A row's key is the :class:`~airflow_credits_provider.alerts.Crossing`'s: rule, subject, threshold,
period (or dip) and event, stored as their hash (``claim_id``). Claiming inserts it only when it is not
there (``INSERT ... ON CONFLICT DO NOTHING`` and its equivalents), in the transaction that saw the
crossing: the database's unique key decides between concurrent claimers, whatever machine they run on,
so exactly one claims it.

Delivery is apart from the claim: a deliverer *leases* a pending (or failed, and due again) row for a
while, sends it, and marks it ``sent``, or ``failed`` with the error and the time of the next attempt
(backoff, doubling up to an hour). A row is never dropped: it stays until sent, and the history shows it.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import closing
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.alerts import CROSSED, DIP_KINDS, RECOVERED, dip_crossing
from airflow_credits_provider.errors import truncate
from airflow_credits_provider.reservations.models import ALERT_CLAIMS_SUFFIX, DEFAULT_TABLE, read_ts, utcnow
from airflow_credits_provider.sql.tables import Column, WarehouseTable

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from datetime import datetime
    from decimal import Decimal

    from airflow_credits_provider.alerts import AlertRule, Crossing

PENDING, SENT, FAILED, CLOSED = "pending", "sent", "failed", "closed"
#: Seconds a deliverer holds a claim while it sends (another may take it after that).
LEASE_SECONDS = 300.0
#: Longest wait between two attempts to deliver a failed alert.
MAX_BACKOFF = timedelta(hours=1)
KEY = ("claim_id",)
CLAIM_COLUMNS = (
    Column("claim_id", "key", False),
    Column("rule", "key", False),
    Column("subject", "key", False),
    Column("threshold", "key", False),
    Column("period", "key", False),
    Column("event", "key", False),
    Column("kind", "key", False),
    Column("status", "key", False),
    Column("title", "text", False),
    Column("message", "text", False),
    Column("facts", "text", False),
    Column("claimed_at", "ts", False),
    Column("attempts", "int", False),
    Column("next_attempt_at", "ts"),
    Column("sent_at", "ts"),
    Column("last_error", "text"),
    Column("lease_until", "ts"),
    Column("lease_token", "key"),
)
_SELECT = tuple(c.name for c in CLAIM_COLUMNS[1:-2])


@dataclass(frozen=True)
class Claim:
    """A claimed alert as stored: what it says and how its delivery went."""

    rule: str
    subject: str
    threshold: str
    period: str
    event: str
    kind: str
    status: str
    title: str
    message: str
    facts: Mapping[str, Any] = field(default_factory=dict)
    claimed_at: datetime | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    last_error: str | None = None

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """The claim's unique key (a :class:`~airflow_credits_provider.alerts.Crossing`'s)."""
        return (self.rule, self.subject, self.threshold, self.period, self.event)

    @property
    def claim_id(self) -> str:
        """The key as stored (a hash: five names are too long for one key on MySQL)."""
        return claim_id(self.key)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (``alerts history --json``, the Credits pages)."""

        def iso(moment: datetime | None) -> str | None:
            return None if moment is None else moment.isoformat() + "+00:00"

        return {
            "rule": self.rule,
            "subject": self.subject,
            "threshold": self.threshold,
            "period": self.period,
            "event": self.event,
            "kind": self.kind,
            "status": self.status,
            "title": self.title,
            "message": self.message,
            "facts": dict(self.facts),
            "claimed_at": iso(self.claimed_at),
            "attempts": self.attempts,
            "next_attempt_at": iso(self.next_attempt_at),
            "sent_at": iso(self.sent_at),
            "last_error": self.last_error,
        }


class AlertClaims:
    """The claims table of one reservation database.

    :param hook: the reservation database's common-sql hook
    :param table: the reservations table; claims live in ``<table>_alert_claims``
    :param schema: its schema, or ``None`` for the connection's default
    :param clock: "now" as a naive UTC datetime (the store's)
    """

    def __init__(
        self,
        hook: Any,
        *,
        table: str = DEFAULT_TABLE,
        schema: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.table = WarehouseTable(hook, f"{table}{ALERT_CLAIMS_SUFFIX}", schema, CLAIM_COLUMNS, KEY)
        self.clock = clock
        self._insert = ""
        self._created = False

    def create(self) -> None:
        """Create the claims table when missing (once)."""
        if not self._created:
            self.table.create()
            self.table.create_index("status", ("status",))
            self.table.create_index("rule_subject", ("rule", "subject"))
            self._insert = self.table.insert_ignore_sql(("claim_id", *_SELECT[:12]))
            self._created = True

    # -- claiming (inside the transaction that saw the crossing) -------------------------------------
    def claim(self, cur: Any, crossing: Crossing, kind: str, now: datetime, status: str = PENDING) -> bool:
        """Insert ``crossing``'s row unless it is there; whether this call inserted it."""
        row = (
            claim_id(crossing.key),
            *crossing.key,
            kind,
            status,
            crossing.title,
            crossing.text,
            json.dumps(dict(crossing.facts), sort_keys=True, default=str),
            now,
            0,
        )
        cur.execute(self._insert, self.table.adapt(row))
        return int(cur.rowcount or 0) == 1

    def claim_levels(
        self,
        cur: Any,
        rule: AlertRule,
        past: Mapping[str, bool],
        value: Decimal | None,
        facts: Mapping[str, Any],
        now: datetime,
        dips: Mapping[tuple[str, str], tuple[int, bool]] | None = None,
    ) -> list[Crossing]:
        """Claim the dips that start, and the recoveries that end one, for a dip kind's thresholds.

        ``past`` says, per threshold, whether the watched value is past it now. A threshold is in a dip
        from its crossing until the value is back; a crossing while in a dip, or a recovery outside one,
        claims nothing. Concurrent claimers read the same last dip and race on the same key.

        :param dips: :meth:`last_dips` of the rule's subject, when the caller read them already
        """
        assert rule.kind in DIP_KINDS
        if dips is None:
            dips = self.last_dips(cur, rule.subject, [rule.name])
        claimed = []
        for threshold, is_past in past.items():
            dip, open_ = dips.get((rule.name, threshold), (0, False))
            if is_past and not open_:
                crossing = dip_crossing(rule, threshold, dip + 1, CROSSED, value, facts)
                status = PENDING
            elif not is_past and open_:
                crossing = dip_crossing(rule, threshold, dip, RECOVERED, value, facts)
                status = PENDING if rule.recovered else CLOSED
            else:
                continue
            if self.claim(cur, crossing, rule.kind, now, status) and status == PENDING:
                claimed.append(crossing)
        return claimed

    def claim_all(self, cur: Any, crossings: Sequence[Crossing], kind: str, now: datetime) -> list[Crossing]:
        """Claim each of ``crossings``; those this call claimed."""
        return [c for c in crossings if self.claim(cur, c, kind, now)]

    def last_dips(
        self, cur: Any, subject: str, rules: Sequence[str]
    ) -> dict[tuple[str, str], tuple[int, bool]]:
        """Per ``(rule, threshold)`` of ``rules`` on ``subject``: its last dip's number, and if it is open.

        One read for every dip rule of a reservation's account (dips are numbered from 1; none: absent).
        """
        if not rules:
            return {}
        t, p = self.table, self.table.param()
        cur.execute(
            f"SELECT {t._escape('rule')}, {t._escape('threshold')}, {t._escape('period')}, "
            f"{t._escape('event')} FROM {t.qualified} WHERE {t._escape('subject')} = {p} AND "
            f"{t._escape('rule')} IN ({', '.join([p] * len(rules))})",
            (subject, *rules),
        )
        events: dict[tuple[str, str], dict[int, set[str]]] = {}
        for rule, threshold, period, event in cur.fetchall():
            if str(period).startswith("dip-"):
                events.setdefault((rule, threshold), {}).setdefault(int(str(period)[4:]), set()).add(event)
        out = {}
        for key, dips in events.items():
            last = max(dips)
            out[key] = (last, RECOVERED not in dips[last])
        return out

    def in_transaction(self, fn: Callable[[Any], list[Crossing]]) -> list[Crossing]:
        """Run ``fn(cursor)`` in a transaction of its own (a checker's claims); commit, return its claims."""
        self.create()
        hook = self.table.hook
        with closing(hook.get_conn()) as conn, closing(conn.cursor()) as cur:
            try:
                if self.table.dialect_name == "sqlite":
                    conn.isolation_level = None
                    cur.execute("BEGIN IMMEDIATE")
                claimed = fn(cur)
                if self.table.dialect_name == "sqlite":
                    cur.execute("COMMIT")
                else:
                    conn.commit()
            except BaseException:
                try:
                    if self.table.dialect_name == "sqlite":
                        if conn.in_transaction:
                            cur.execute("ROLLBACK")
                    else:
                        conn.rollback()
                except Exception:  # noqa: BLE001 - the connection is closed next; the error matters
                    pass
                raise
        return claimed

    # -- delivering ------------------------------------------------------------------------------------
    def due(self, keys: Sequence[tuple[str, ...]] | None = None, limit: int = 200) -> list[Claim]:
        """Claims waiting to be sent (pending, or failed and due again); only ``keys`` when given."""
        self.create()
        now = self.clock()
        t, p = self.table, self.table.param()
        where = f"{t._escape('status')} IN ({p}, {p})"
        found = [c for c in self._select(where, (PENDING, FAILED), limit) if _is_due(c, now)]
        if keys is not None:
            wanted = set(map(tuple, keys))
            found = [c for c in found if c.key in wanted]
        return found

    def lease(self, claim: Claim, token: str, seconds: float = LEASE_SECONDS) -> bool:
        """Take ``claim`` for delivery for ``seconds`` unless sent, due later, or leased by another."""
        now = self.clock()
        t, p = self.table, self.table.param()
        lease_until = t._escape("lease_until")
        next_at = t._escape("next_attempt_at")
        return self._update(
            f"{lease_until} = {p}, {t._escape('lease_token')} = {p}",
            f"{t.where_key(KEY)} AND {t._escape('status')} IN ({p}, {p}) "
            f"AND ({lease_until} IS NULL OR {lease_until} <= {p}) "
            f"AND ({next_at} IS NULL OR {next_at} <= {p})",
            (now + timedelta(seconds=seconds), token, claim.claim_id, PENDING, FAILED, now, now),
        )

    def mark_sent(self, claim: Claim, token: str) -> bool:
        """Record ``claim`` as sent (by the holder of its lease)."""
        t, p = self.table, self.table.param()
        return self._update(
            f"{t._escape('status')} = {p}, {t._escape('sent_at')} = {p}, {t._escape('attempts')} = {p}, "
            f"{t._escape('lease_until')} = NULL, {t._escape('last_error')} = NULL",
            f"{t.where_key(KEY)} AND {t._escape('lease_token')} = {p}",
            (SENT, self.clock(), claim.attempts + 1, claim.claim_id, token),
        )

    def mark_failed(self, claim: Claim, token: str, error: str) -> datetime:
        """Record a failed attempt; the claim is due again after a backoff (returned)."""
        now = self.clock()
        attempts = claim.attempts + 1
        retry_at: datetime = now + min(timedelta(minutes=1) * 2 ** (attempts - 1), MAX_BACKOFF)
        t, p = self.table, self.table.param()
        self._update(
            f"{t._escape('status')} = {p}, {t._escape('attempts')} = {p}, "
            f"{t._escape('next_attempt_at')} = {p}, {t._escape('last_error')} = {p}, "
            f"{t._escape('lease_until')} = NULL",
            f"{t.where_key(KEY)} AND {t._escape('lease_token')} = {p}",
            (FAILED, attempts, retry_at, truncate(error, 500), claim.claim_id, token),
        )
        return retry_at

    # -- reading ---------------------------------------------------------------------------------------
    def history(self, rule: str | None = None, subject: str | None = None, limit: int = 200) -> list[Claim]:
        """Claims, newest first; of one rule or subject when given."""
        self.create()
        given = {"rule": rule, "subject": subject}
        names = tuple(k for k, v in given.items() if v is not None)
        where = self.table.where_key(names) if names else "1 = 1"
        params = tuple(v for v in given.values() if v is not None)
        return self._select(where, params, limit)

    def _select(self, where: str, params: tuple[Any, ...], limit: int) -> list[Claim]:
        t = self.table
        cols = ", ".join(t._escape(c) for c in _SELECT)
        with closing(t.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
            cur.execute(
                f"SELECT {cols} FROM {t.qualified} WHERE {where} ORDER BY {t._escape('claimed_at')} DESC, "
                f"{t._escape('rule')}, {t._escape('threshold')} LIMIT {int(limit)}",
                params,
            )
            rows = cur.fetchall()
        return [_claim_from_row(row) for row in rows if row[6] != CLOSED]

    def _update(self, sets: str, where: str, params: tuple[Any, ...]) -> bool:
        t = self.table
        with closing(t.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
            cur.execute(f"UPDATE {t.qualified} SET {sets} WHERE {where}", t.adapt(params))
            changed = int(cur.rowcount or 0) == 1
            conn.commit()
        return changed


def claim_id(key: Sequence[str]) -> str:
    """The stored key of a claim's ``(rule, subject, threshold, period, event)``."""
    return hashlib.sha256("\x1f".join(key).encode()).hexdigest()


def _is_due(claim: Claim, now: datetime) -> bool:
    return claim.next_attempt_at is None or claim.next_attempt_at <= now


def _claim_from_row(row: Sequence[Any]) -> Claim:
    (rule, subject, threshold, period, event, kind, status, title, message, facts, claimed_at, attempts,
     next_at, sent_at, last_error) = row  # fmt: skip
    return Claim(
        rule,
        subject,
        threshold,
        period,
        event,
        kind,
        status,
        title,
        message,
        json.loads(facts or "{}"),
        read_ts(claimed_at),
        int(attempts or 0),
        read_ts(next_at),
        read_ts(sent_at),
        last_error,
    )
