"""Where alert rules are kept: the ``<reservations table>_alert_rules`` table in the reservation database."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.alerts import AlertRule
from airflow_credits_provider.errors import UnknownAlertRuleError
from airflow_credits_provider.reservations.definitions import Definitions
from airflow_credits_provider.reservations.models import ALERT_RULES_SUFFIX, DEFAULT_TABLE
from airflow_credits_provider.sql.tables import Column, WarehouseTable

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

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


class AlertRuleRegistry(Definitions[AlertRule]):
    """The alert rules of one reservation database: define, list, read and delete them.

    :param hook: the reservation database's common-sql hook
    :param table: the reservations table; rules live in ``<table>_alert_rules``
    :param schema: its schema, or ``None`` for the connection's default
    """

    noun, plural, command = "alert rule", "rules", "alerts"
    unknown_error = UnknownAlertRuleError
    select = _SELECT

    def __init__(self, hook: Any, *, table: str = DEFAULT_TABLE, schema: str | None = None) -> None:
        super().__init__(
            WarehouseTable(hook, f"{table}{ALERT_RULES_SUFFIX}", schema, RULE_COLUMNS, ("name",))
        )

    def create_indexes(self) -> None:
        """Reservations read their account's and budgets' rules by subject."""
        self.table.create_index("subject", ("subject",))

    def to_row(self, item: AlertRule, now: datetime) -> tuple[Any, ...]:
        """A rule's row (thresholds and the notifier's arguments as JSON)."""
        return (
            item.name,
            item.kind,
            item.subject,
            json.dumps(list(item.thresholds)),
            item.notifier,
            json.dumps(dict(item.notifier_args), sort_keys=True),
            item.credit_conn_id or None,
            int(item.recovered),
            item.description,
            now,
        )

    def from_row(self, row: Sequence[Any]) -> AlertRule:
        """A rule from its row."""
        return rule_from_row(row)

    def read_for(self, cur: Any, subjects: Sequence[str], kinds: Sequence[str]) -> list[AlertRule]:
        """The rules on ``subjects`` of ``kinds`` (inside a reservation's transaction: one indexed read)."""
        t, p = self.table, self.table.param()
        cur.execute(
            f"SELECT {self.columns()} FROM {t.qualified} WHERE {t._escape('subject')} IN "
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
        credit_conn_id=conn_id or "",
        recovered=bool(recovered),
        description=description or "",
    )
