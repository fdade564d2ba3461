"""Where alert rules are kept: the ``<reservations table>_alert_rules`` table in the reservation database."""

from __future__ import annotations

import json
import logging
from contextlib import closing
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.alerts import AlertRule
from airflow_credits_provider.errors import UnknownAlertRuleError
from airflow_credits_provider.reservations.models import ALERT_RULES_SUFFIX, DEFAULT_TABLE, utcnow
from airflow_credits_provider.sql.tables import Column, WarehouseTable

if TYPE_CHECKING:
    from collections.abc import Sequence

log = logging.getLogger(__name__)

RULE_COLUMNS = (
    Column("name", "key", False),
    Column("kind", "key", False),
    Column("subject", "key", False),
    Column("thresholds", "text", False),
    Column("notifier", "text", False),
    Column("notifier_args", "text", False),
    Column("conn_id", "key"),
    Column("recovered", "int", False),
    Column("description", "text"),
    Column("updated_at", "ts", False),
)
_SELECT = tuple(c.name for c in RULE_COLUMNS[:-1])


class AlertRuleRegistry:
    """The alert rules of one reservation database: define, list, read and delete them.

    :param hook: the reservation database's common-sql hook
    :param table: the reservations table; rules live in ``<table>_alert_rules``
    :param schema: its schema, or ``None`` for the connection's default
    """

    def __init__(self, hook: Any, *, table: str = DEFAULT_TABLE, schema: str | None = None) -> None:
        self.table = WarehouseTable(hook, f"{table}{ALERT_RULES_SUFFIX}", schema, RULE_COLUMNS, ("name",))
        self._created = False

    def create(self) -> None:
        """Create the rules table when missing (once per registry)."""
        if not self._created:
            self.table.create()
            self.table.create_index("subject", ("subject",))
            self._created = True

    def set(self, rules: Sequence[AlertRule]) -> None:
        """Create or replace ``rules``, all in one transaction (all of them or none)."""
        self.create()
        now = utcnow()
        rows = [
            (
                r.name,
                r.kind,
                r.subject,
                json.dumps(list(r.thresholds)),
                r.notifier,
                json.dumps(dict(r.notifier_args), sort_keys=True),
                r.conn_id or None,
                int(r.recovered),
                r.description,
                now,
            )
            for r in rules
        ]
        if rows:
            self.table.upsert(rows, batch_size=max(len(rows), 1))

    def delete(self, name: str) -> bool:
        """Delete the rule ``name``; ``False`` when there was none (its alerts' history stays)."""
        self.create()
        t = self.table
        with closing(t.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
            cur.execute(f"DELETE FROM {t.qualified} WHERE {t.where_key(('name',))}", (name,))
            deleted = int(cur.rowcount or 0)
            conn.commit()
        return deleted > 0

    def all(self) -> list[AlertRule]:
        """Every rule, by name."""
        self.create()
        with closing(self.table.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
            return self.read_all(cur)

    def get(self, name: str) -> AlertRule:
        """The rule ``name``; :class:`UnknownAlertRuleError` naming the defined ones when there is none."""
        self.create()
        t = self.table
        with closing(t.hook.get_conn()) as conn, closing(conn.cursor()) as cur:
            cur.execute(f"SELECT {self._cols()} FROM {t.qualified} WHERE {t.where_key(('name',))}", (name,))
            row = cur.fetchone()
            if row is not None:
                return rule_from_row(row)
            defined = [r.name for r in self.read_all(cur)]
        listed = ", ".join(repr(n) for n in defined[:20]) + (", ..." if len(defined) > 20 else "")
        raise UnknownAlertRuleError(
            f"Unknown alert rule {name!r}. "
            + (f"Defined rules: {listed}." if defined else "No alert rule is defined yet.")
            + " Define it with `airflow-credits alerts set` or `alerts import`."
        )

    def read_all(self, cur: Any) -> list[AlertRule]:
        """Every rule, by name, on an open cursor."""
        t = self.table
        cur.execute(f"SELECT {self._cols()} FROM {t.qualified} ORDER BY {t._escape('name')}")
        return [rule_from_row(row) for row in cur.fetchall()]

    def read_for(self, cur: Any, subjects: Sequence[str], kinds: Sequence[str]) -> list[AlertRule]:
        """The rules on ``subjects`` of ``kinds`` (inside a reservation's transaction: one indexed read)."""
        t, p = self.table, self.table.param()
        cur.execute(
            f"SELECT {self._cols()} FROM {t.qualified} WHERE {t._escape('subject')} IN "
            f"({', '.join([p] * len(subjects))}) ORDER BY {t._escape('name')}",
            tuple(subjects),
        )
        found = []
        for row in cur.fetchall():
            try:
                rule = rule_from_row(row)
            except ValueError as exc:  # a row edited by hand into something unreadable: skip it, say so
                log.warning("Alert rule %r cannot be read (%s); skipped.", row[0], exc)
                continue
            if rule.kind in kinds:
                found.append(rule)
        return found

    def _cols(self) -> str:
        return ", ".join(self.table._escape(c) for c in _SELECT)


def rule_from_row(row: Sequence[Any]) -> AlertRule:
    """A row selected in :data:`RULE_COLUMNS` order (without ``updated_at``)."""
    name, kind, subject, thresholds, notifier, args, conn_id, recovered, description = row
    return AlertRule(
        name=name,
        kind=kind,
        subject=subject,
        thresholds=tuple(json.loads(thresholds)),
        notifier=notifier,
        notifier_args=json.loads(args),
        conn_id=conn_id or "",
        recovered=bool(recovered),
        description=description or "",
    )
